package e2e_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/staffcontrol/staffcontrol/internal/cloud/accounts"
	"github.com/staffcontrol/staffcontrol/internal/cloud/agentapi/agentapitest"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/edge/config"
	"github.com/staffcontrol/staffcontrol/internal/edge/gateway"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// The differential property: any event the collector acknowledges is stored
// by the Agent API, and any event it refuses is answered 4xx naming a
// field. The collector's validation and PostgreSQL's are compared with real
// parts in the loop: a gateway (collector, SQLite buffer, uplink) in front
// of the Agent API and PostgreSQL, fed raw JSON as hostile agents would send
// it (\u0000 and lone-surrogate escapes, 4-byte runes, maximum lengths, times
// around each retention horizon and the future bound, int32 bounds).

// diffWorld is a provisioned gateway uploading to a real Agent API.
type diffWorld struct {
	gatewayURL string
	creds      *agentCreds
	admin      *pgx.Conn
	client     *http.Client
}

func newDiffWorld(t testing.TB) *diffWorld {
	t.Helper()
	ctx := context.Background()
	db := pg.NewDatabase(t)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	ing, err := postgres.Connect(ctx, db.IngestURL, 10, pg.ContextKey())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ing.Close)
	stack := startDiffAgentAPI(t, ing)
	api := httptest.NewServer(stack.routes)
	t.Cleanup(func() { stack.stop(); api.Close() })

	dash, err := postgres.Connect(ctx, db.DashboardURL, 2, pg.ContextKey())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dash.Close)
	acc := accounts.New(pg.Pool(t, db.PlatformAdminURL, 2), time.Now)
	admin := accounts.Actor{Name: "differential", Tenant: postgres.Tenant{Role: postgres.AppAdmin}}
	org, err := acc.CreateOrganization(ctx, admin, "Diff", "")
	if err != nil {
		t.Fatal(err)
	}
	secret := newEnrolmentSecret(t, dash, org.ID)
	regn, err := acc.RegisterGateway(ctx, admin, org.ID, "GW-DIFF", "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	env := map[string]string{
		"STAFF_GATEWAY_SERVER_URL":                      api.URL,
		"STAFF_GATEWAY_ORGANIZATION_ID":                 strconv.FormatInt(org.ID, 10),
		"STAFF_GATEWAY_ORGANIZATION_PROVISIONING_TOKEN": regn.ProvisioningToken,
		"STAFF_GATEWAY_GATEWAY_SERIAL":                  "GW-DIFF",
		"STAFF_GATEWAY_GATEWAY_LISTEN":                  "127.0.0.1:0",
		"STAFF_GATEWAY_GATEWAY_GRPC_LISTEN":             "off",
		"STAFF_GATEWAY_BUFFER_PATH":                     filepath.Join(dir, "buffer.sqlite"),
		"STAFF_GATEWAY_BUFFER_SYNCHRONOUS":              "NORMAL",
		"STAFF_GATEWAY_UPLINK_FLUSH_INTERVAL":           "50ms",
		"STAFF_GATEWAY_UPLINK_BACKOFF_INITIAL":          "20ms",
		"STAFF_GATEWAY_UPLINK_BACKOFF_MAX":              "200ms",
	}
	cfg, err := config.Load("", func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	g, err := gateway.New(context.Background(), cfg, gateway.Deps{Logger: logger, Version: "differential"})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = g.Stop(sctx)
	})
	conn, err := pgx.Connect(ctx, db.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	base := "http://" + g.Addr()
	return &diffWorld{gatewayURL: base, creds: newAgentCreds(base, secret), admin: conn, client: &http.Client{Timeout: 30 * time.Second}}
}

// startDiffAgentAPI starts the Agent API as startAgentAPI does, with a
// discarding logger (the fuzz target builds its world on the *testing.F,
// and its inputs are meant to be refused).
func startDiffAgentAPI(t testing.TB, ing *pgxpool.Pool) *agentAPIStack {
	t.Helper()
	api := agentapitest.Start(t, ing, agentapitest.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registry: prometheus.NewRegistry()})
	return &agentAPIStack{routes: api.Handler, hub: api.Hub, queue: api.Queue, gws: api.Gateways, stop: api.Stop}
}

// outcome is the collector's answer to one request.
type outcome struct {
	status int
	acked  []string
	errRes protocol.ErrorResponse
	raw    string
}

// agentOf is the agent a raw event or screenshot metadata names (the one
// whose credential sends it), "diff-agent" when it names none.
func agentOf(raw string) string {
	var probe struct {
		AgentUID *string `json:"agent_uid"`
	}
	if json.Unmarshal([]byte(raw), &probe) == nil && probe.AgentUID != nil && *probe.AgentUID != "" {
		return *probe.AgentUID
	}
	return "diff-agent"
}

// do posts body with the credential of agent uid (enrolled on first use;
// an agent_uid that cannot enrol sends with diff-agent's, and the gateway
// refuses the request for the uid's text).
func (w *diffWorld) do(t testing.TB, uid, path, ctype string, body []byte) outcome {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, w.gatewayURL+path, bytes.NewReader(body))
	req.Header.Set("Content-Type", ctype)
	req.Header.Set(protocol.HeaderAuthorization, "Bearer "+w.creds.of(t, uid, "diff-agent"))
	resp, err := w.client.Do(req)
	if err != nil {
		// Errorf, not Fatalf: do runs on the sender goroutines.
		t.Errorf("POST %s: %v", path, err)
		return outcome{status: -1, raw: err.Error()}
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	o := outcome{status: resp.StatusCode, raw: string(raw)}
	if resp.StatusCode == http.StatusOK {
		var ack protocol.EventBatchResponse
		if err := json.Unmarshal(raw, &ack); err != nil {
			t.Errorf("200 with an unreadable acknowledgement: %s", raw)
		}
		for _, a := range ack.Events {
			o.acked = append(o.acked, a.EventID)
		}
		return o
	}
	_ = json.Unmarshal(raw, &o.errRes)
	return o
}

// postEvent sends one raw JSON event (a batch of one) to /v1/events.
func (w *diffWorld) postEvent(t testing.TB, rawEvent string) outcome {
	// The batch names no agent: the credential's fills events without one.
	return w.do(t, agentOf(rawEvent), protocol.PathAgentEvents, "application/json",
		[]byte(`{"computer_name":"DIFF-PC","events":[`+rawEvent+`]}`))
}

// postScreenshot sends one screenshot with raw JSON metadata; "SHA" in it
// is replaced by the image's SHA-256.
func (w *diffWorld) postScreenshot(t testing.TB, rawMeta string, img []byte) outcome {
	sum := sha256.Sum256(img)
	rawMeta = strings.ReplaceAll(rawMeta, `"SHA"`, `"`+hex.EncodeToString(sum[:])+`"`)
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	part, _ := mw.CreateFormField(protocol.CollectorMetadataPart)
	part.Write([]byte(rawMeta))
	part, _ = mw.CreateFormFile(protocol.CollectorImagePart, "shot.png")
	part.Write(img)
	mw.Close()
	return w.do(t, agentOf(rawMeta), protocol.PathAgentScreenshot, mw.FormDataContentType(), b.Bytes())
}

// stored counts rows per event id over every agent-event table. The read
// can lose a deadlock against ingest creating a partition (DDL on the
// parent); the caller polls again.
func (w *diffWorld) stored() (map[string]int, error) {
	rows, err := w.admin.Query(context.Background(), `SELECT id::text FROM monitoring.active_windows
		UNION ALL SELECT id::text FROM monitoring.visited_sites
		UNION ALL SELECT id::text FROM monitoring.user_sessions
		UNION ALL SELECT id::text FROM monitoring.screenshots`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out[id]++
	}
	return out, rows.Err()
}

// short bounds a description for failure messages.
func short(s string) string {
	if r := []rune(s); len(r) > 160 {
		return string(r[:160]) + "…"
	}
	return s
}

// checkDiffRefusal asserts the property for a refused request: a 4xx naming a
// field (a body over the limit, 413, or one that is not JSON, malformed_body,
// may name none).
func checkDiffRefusal(t testing.TB, what string, o outcome) {
	t.Helper()
	switch {
	case o.status < 400 || o.status > 499:
		if o.status != -1 {
			t.Errorf("%s: answered %d %s, want 200 or a 4xx", short(what), o.status, o.raw)
		}
	case o.status != http.StatusRequestEntityTooLarge && o.errRes.Error != protocol.ErrCodeMalformed && o.errRes.Field == "":
		t.Errorf("%s: %d names no field: %s", short(what), o.status, o.raw)
	}
}

// waitStored waits until every acknowledged id is stored, then asserts
// exactly once each; what describes each id for failure messages.
func (w *diffWorld) waitStored(t testing.TB, what map[string]string, within time.Duration) {
	t.Helper()
	var got map[string]int
	deadline := time.Now().Add(within)
	for {
		var err error
		if got, err = w.stored(); err != nil {
			if time.Now().After(deadline) {
				t.Fatalf("count stored events: %v", err)
			}
			t.Logf("count stored events: %v (polling again)", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		missing := 0
		for id := range what {
			if got[id] == 0 {
				missing++
			}
		}
		if missing == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	bad := 0
	for id, desc := range what {
		if got[id] != 1 {
			if bad++; bad <= 20 {
				t.Errorf("acknowledged %s (%s) stored %d times, want exactly once", id, short(desc), got[id])
			}
		}
	}
	if bad > 20 {
		t.Errorf("... %d acknowledged events not stored exactly once in all", bad)
	}
}

// jsonString encodes s as a JSON string literal, then applies raw escapes:
// the generator writes \u0000 and \ud800 as the escapes an agent would send.
func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// gen generates hostile events; every choice comes from r, so a seed
// reproduces a run.
type gen struct {
	r   *rand.Rand
	now time.Time
}

// text returns a JSON string literal for a text field limited to max
// characters.
func (g *gen) text(max int) string {
	switch g.r.IntN(14) {
	case 0:
		return `"nul\u0000inside"`
	case 1:
		return `"\u0000"`
	case 2:
		return `"lone \ud800 surrogate"`
	case 3:
		return `"\udfff"`
	case 4:
		return `"pair \ud83d\ude00 ok"`
	case 5:
		return jsonString(strings.Repeat("😀", max)) // exactly at the limit, 4 bytes each
	case 6:
		return jsonString(strings.Repeat("é", max+1)) // one over
	case 7:
		return jsonString("ctl \x01\x1f\x7f tab\t" + "\ufffe\uffff")
	case 8:
		return jsonString("\u202eRTL override \u200d zwj")
	case 9:
		return `"bad \x escape"` // malformed JSON
	case 10:
		return `""`
	default:
		return jsonString(fmt.Sprintf("value-%d ü 漢字", g.r.IntN(1000)))
	}
}

func (g *gen) required(max int) string {
	if g.r.IntN(4) == 0 {
		return g.text(max)
	}
	return jsonString(fmt.Sprintf("v%d", g.r.IntN(100)))
}

// datetime returns a JSON time around the type's horizon or the future
// bound. Margins are an hour: the cloud validates again a moment later, so
// an event a second inside its horizon at the collector may be past it at
// the cloud (documented in docs/protocol.md).
func (g *gen) datetime(typ string) string {
	maxAge, ok := protocol.MaxEventAge(typ)
	if !ok {
		maxAge = protocol.MaxAgeActiveWindow
	}
	var t time.Time
	switch g.r.IntN(9) {
	case 0:
		t = g.now.Add(-maxAge + time.Hour)
	case 1:
		t = g.now.Add(-maxAge - time.Hour)
	case 2:
		t = g.now.Add(protocol.MaxEventFuture - time.Hour)
	case 3:
		t = g.now.Add(protocol.MaxEventFuture + time.Hour)
	case 4:
		return `"0001-01-01T00:00:00Z"`
	case 5:
		return `"9999-12-31T23:59:59.999999999Z"`
	case 6:
		return jsonString(g.now.Add(-time.Minute).In(time.FixedZone("", 14*3600)).Format(time.RFC3339Nano))
	case 7:
		return `"yesterday"`
	default:
		t = g.now.Add(-time.Duration(g.r.IntN(3600)) * time.Second)
	}
	return jsonString(t.UTC().Format(time.RFC3339Nano))
}

func (g *gen) duration() string {
	vals := []string{"0", "1", "604800", "604801", "-1", "2147483647", "2147483648", "9223372036854775807", "1e20", "1.5", `"12"`, "null"}
	if g.r.IntN(3) == 0 {
		return vals[g.r.IntN(len(vals))]
	}
	return strconv.Itoa(g.r.IntN(600))
}

func (g *gen) int32ish() string {
	vals := []string{"0", "-1", "1920", strconv.Itoa(math.MaxInt32), strconv.Itoa(math.MaxInt32 + 1), "4294967296", "-2147483649"}
	return vals[g.r.IntN(len(vals))]
}

// event returns one raw agent event and its id (lower-case, as stored).
func (g *gen) event() (raw, id, typ string) {
	types := []string{protocol.TypeActiveWindow, protocol.TypeVisitedSite, protocol.TypeUserSession}
	typ = types[g.r.IntN(len(types))]
	u := uuid.Must(uuid.NewV7()).String()
	idLit := jsonString(u)
	if g.r.IntN(10) == 0 {
		idLit = jsonString(strings.ToUpper(u)) // canonicalised by the collector
	}
	m := []string{`"event_id":` + idLit, `"type":"` + typ + `"`, `"user_sid":` + g.required(protocol.MaxShortField),
		`"datetime":` + g.datetime(typ)}
	if g.r.IntN(5) == 0 {
		m = append(m, `"agent_uid":`+g.required(protocol.MaxShortField))
	}
	if g.r.IntN(5) == 0 {
		m = append(m, `"computer_name":`+g.required(protocol.MaxShortField))
	}
	switch typ {
	case protocol.TypeActiveWindow:
		m = append(m, `"process_name":`+g.required(protocol.MaxShortField), `"window_title":`+g.text(protocol.MaxTitleField),
			`"duration_seconds":`+g.duration())
		if g.r.IntN(3) == 0 {
			m = append(m, `"url":`+g.text(protocol.MaxURLField))
		}
	case protocol.TypeVisitedSite:
		m = append(m, `"url":`+g.required(protocol.MaxURLField), `"title":`+g.text(protocol.MaxTitleField), `"duration_seconds":`+g.duration())
	case protocol.TypeUserSession:
		st := []string{`"login"`, `"logout"`, `"lock"`, `"unlock"`, `"sleep"`, `"login\u0000"`}
		m = append(m, `"session_type":`+st[g.r.IntN(len(st))])
	}
	g.r.Shuffle(len(m), func(i, j int) { m[i], m[j] = m[j], m[i] })
	return "{" + strings.Join(m, ",") + "}", u, typ
}

// screenshot returns raw screenshot metadata ("SHA" for the real hash).
func (g *gen) screenshot() (raw, id string) {
	u := uuid.Must(uuid.NewV7()).String()
	ct := []string{`"image/png"`, `"image/jpeg"`, `"image/png\u0000"`, `"text/html"`}
	m := []string{`"event_id":"` + u + `"`, `"type":"screenshot"`, `"agent_uid":` + g.required(protocol.MaxShortField),
		`"computer_name":` + g.required(protocol.MaxShortField), `"user_sid":` + g.required(protocol.MaxShortField),
		`"datetime":` + g.datetime(protocol.TypeScreenshot),
		`"screenshot":{"sha256":"SHA","content_type":` + ct[g.r.IntN(len(ct))] + `,"width":` + g.int32ish() + `,"height":` + g.int32ish() + `}`}
	return "{" + strings.Join(m, ",") + "}", u
}

func TestCollectorToCloudDifferential(t *testing.T) {
	t.Parallel()
	const seed, events, shots = 10, 400, 60
	w := newDiffWorld(t)
	g := &gen{r: rand.New(rand.NewPCG(seed, seed)), now: time.Now()}
	type job struct {
		raw, id, what string
		shot          bool
	}
	var jobs []job
	for range events {
		raw, id, typ := g.event()
		jobs = append(jobs, job{raw: raw, id: id, what: typ + " " + raw})
	}
	for range shots {
		raw, id := g.screenshot()
		jobs = append(jobs, job{raw: raw, id: id, what: "screenshot " + raw, shot: true})
	}
	var mu sync.Mutex
	acked := map[string]string{}
	refused := map[string]int{}
	var wg sync.WaitGroup
	ch := make(chan job)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range ch {
				var o outcome
				if j.shot {
					o = w.postScreenshot(t, j.raw, []byte("\x89PNG differential "+j.id))
				} else {
					o = w.postEvent(t, j.raw)
				}
				mu.Lock()
				if o.status == http.StatusOK {
					if len(o.acked) != 1 || o.acked[0] != j.id {
						t.Errorf("%s: acknowledged %v, want [%s]", j.what, o.acked, j.id)
					}
					acked[j.id] = j.what
				} else {
					checkDiffRefusal(t, j.what, o)
					refused[o.errRes.Field]++
				}
				mu.Unlock()
			}
		}()
	}
	for _, j := range jobs {
		ch <- j
	}
	close(ch)
	wg.Wait()
	if n := refused[protocol.HeaderAuthorization]; n > 0 {
		t.Fatalf("%d requests refused for their credential: the test's agents must all be enrolled", n)
	}
	if len(acked) < len(jobs)/10 || len(acked) == len(jobs) {
		t.Fatalf("the generator is off: %d of %d acknowledged", len(acked), len(jobs))
	}
	w.waitStored(t, acked, 90*time.Second)
	t.Logf("%d events: %d acknowledged (checked stored once above), %d refused by field %v", len(jobs), len(acked), len(jobs)-len(acked), refused)
}

// rawJSONString writes s as a JSON string literal the way a careless agent
// might: quotes and control bytes escaped, any other byte (invalid UTF-8
// included) sent raw. With escapes true a backslash is sent raw too, so the
// input can carry its own escapes (\u0000, \ud800).
func rawJSONString(s string, escapes bool) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			b.WriteString(`\"`)
		case c == '\\' && !escapes:
			b.WriteString(`\\`)
		case c < 0x20:
			fmt.Fprintf(&b, `\u%04x`, c)
		default:
			b.WriteByte(c)
		}
	}
	if escapes && strings.HasSuffix(s, `\`) {
		b.WriteString(`\`)
	}
	b.WriteByte('"')
	return b.String()
}

// FuzzCollectorToCloud is the differential property as a fuzz target: one
// agent event built from fuzzed values (type, strings sent as raw JSON, a
// time offset from now, a duration) goes through the real gateway; an
// acknowledged event must be stored exactly once, a refused one answered 4xx
// naming the field. Its seed corpus runs in every go test.
func FuzzCollectorToCloud(f *testing.F) {
	day := int64(24 * 3600)
	f.Add(uint8(0), "S-1", "code.exe", "main.go", int64(-60), int64(5))
	f.Add(uint8(0), "S-1", "code.exe", "a\x00b", int64(-60), int64(5))
	f.Add(uint8(8), "S-1", "code.exe", `a\u0000b`, int64(-60), int64(5))
	f.Add(uint8(9), "S-1", `https://example.com/\ud800`, "t", int64(-60), int64(0))
	f.Add(uint8(1), "S-1", "https://example.com/😀", strings.Repeat("😀", 500), -89*day, int64(0))
	f.Add(uint8(1), "S-1", "https://example.com/", "", -91*day, int64(0))
	f.Add(uint8(2), "S\xff", "login", "PC", int64(-60), int64(0))
	f.Add(uint8(2), "S-1", "lock", "PC", -364*day, int64(0))
	f.Add(uint8(2), "S-1", "unlock", "PC", int64(23*3600), int64(0))
	f.Add(uint8(2), "S-1", "unlock", "PC", int64(25*3600), int64(0))
	f.Add(uint8(4), "S-1", "p", "", int64(-60), int64(2147483648))
	f.Add(uint8(4), "S-1", "p", "", int64(-60), int64(604800))
	w := newDiffWorld(f)
	f.Fuzz(func(t *testing.T, kind uint8, sid, a, b string, offset, dur int64) {
		esc := kind&8 != 0
		str := func(v string) string { return rawJSONString(v, esc) }
		offset = max(min(offset, 2*366*day), -2*366*day)
		at := time.Now().UTC().Add(time.Duration(offset) * time.Second).Format(time.RFC3339Nano)
		m := []string{`"user_sid":` + str(sid), `"datetime":"` + at + `"`}
		switch kind % 3 {
		case 0:
			m = append(m, `"type":"active_window"`, `"process_name":`+str(a), `"window_title":`+str(b))
		case 1:
			m = append(m, `"type":"visited_site"`, `"url":`+str(a), `"title":`+str(b))
		default:
			m = append(m, `"type":"user_session"`, `"session_type":`+str(a), `"computer_name":`+str(b))
		}
		if kind&4 != 0 {
			m = append(m, `"duration_seconds":`+strconv.FormatInt(dur, 10))
		}
		raw := "{" + strings.Join(m, ",") + "}"
		o := w.postEvent(t, raw)
		if o.status != http.StatusOK {
			checkDiffRefusal(t, raw, o)
			return
		}
		what := map[string]string{}
		for _, id := range o.acked {
			what[id] = raw
		}
		w.waitStored(t, what, 30*time.Second)
	})
}
