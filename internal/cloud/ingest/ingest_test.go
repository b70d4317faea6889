package ingest_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/staffcontrol/staffcontrol/internal/cloud/accounts"
	"github.com/staffcontrol/staffcontrol/internal/cloud/ingest"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// makeEvents returns n events of the three log types with UUIDv7 ids and
// sequence numbers from firstSeq.
func makeEvents(n int, firstSeq int64) []protocol.Event {
	now := time.Now().UTC().Truncate(time.Millisecond)
	out := make([]protocol.Event, n)
	for i := range out {
		d := int64(5 + i%60)
		e := protocol.Event{EventID: uuid.Must(uuid.NewV7()).String(), Seq: firstSeq + int64(i), AgentUID: fmt.Sprintf("agent-%d", i%7),
			ComputerName: fmt.Sprintf("PC-%d", i%7), UserSID: "S-1-5-21-100-" + fmt.Sprint(i%7), Datetime: now.Add(-time.Duration(i) * time.Second)}
		switch i % 3 {
		case 0:
			e.Type, e.ProcessName, e.WindowTitle, e.DurationSeconds = protocol.TypeActiveWindow, "code.exe", "main.go", &d
		case 1:
			e.Type, e.URL, e.Title, e.DurationSeconds = protocol.TypeVisitedSite, "https://example.com/"+fmt.Sprint(i), "Example", &d
		default:
			e.Type, e.SessionType = protocol.TypeUserSession, []string{"login", "lock", "unlock", "logout"}[i%4]
		}
		out[i] = e
	}
	return out
}

// storedIDs returns how many times each event id is stored, over the
// three log tables.
func (e *env) storedIDs(org int64) map[string]int {
	e.t.Helper()
	rows, err := e.admin.Query(context.Background(), `
		SELECT id::text FROM monitoring.active_windows WHERE organization_id = $1
		UNION ALL SELECT id::text FROM monitoring.visited_sites WHERE organization_id = $1
		UNION ALL SELECT id::text FROM monitoring.user_sessions WHERE organization_id = $1`, org)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			e.t.Fatal(err)
		}
		out[id]++
	}
	return out
}

func TestExactlyOnceUnderRetriesAndRebatching(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ingest.DefaultLimits())
	events := makeEvents(3000, 1)
	rng := rand.New(rand.NewPCG(1, 2))

	type batch struct {
		key    string
		events []protocol.Event
	}
	var batches []batch
	for i := 0; i < len(events); i += 150 {
		batches = append(batches, batch{key: uuid.NewString(), events: events[i:min(i+150, len(events))]})
	}
	// Four gateways' worth of concurrency on one gateway's batches: each
	// batch is sent once, then retried under its own key (a lost answer),
	// and an overlapping re-batch of random events goes out under a new key
	// (a crash after upload, before the rows were marked sent).
	var wg sync.WaitGroup
	var mu sync.Mutex
	var accepted, dups int
	work := make(chan batch)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range work {
				var first, again protocol.IngestResponse
				if code := e.postGzip(protocol.PathIngestLogs, e.a, b.key, protocol.LogBatch{GatewayID: e.a.id, Events: b.events}, &first); code != 200 {
					t.Errorf("batch %s: %d", b.key, code)
					continue
				}
				if code := e.postGzip(protocol.PathIngestLogs, e.a, b.key, protocol.LogBatch{GatewayID: e.a.id, Events: b.events}, &again); code != 200 || again != first {
					t.Errorf("retry of %s: %d %+v, want the stored answer %+v", b.key, code, again, first)
				}
				mu.Lock()
				accepted += first.Accepted
				dups += first.Duplicates
				mu.Unlock()
			}
		}()
	}
	for _, b := range batches {
		work <- b
	}
	for i := 0; i < 10; i++ {
		var re []protocol.Event
		for j := 0; j < 120; j++ {
			re = append(re, events[rng.IntN(len(events))])
		}
		work <- batch{key: uuid.NewString(), events: re}
	}
	close(work)
	wg.Wait()

	got := e.storedIDs(e.a.org)
	if len(got) != len(events) {
		t.Errorf("stored %d distinct ids, want %d", len(got), len(events))
	}
	for _, ev := range events {
		if got[ev.EventID] != 1 {
			t.Errorf("event %s stored %d times, want exactly once", ev.EventID, got[ev.EventID])
		}
	}
	if accepted != len(events) || dups != 10*120 {
		t.Errorf("answers counted %d accepted and %d duplicates, want %d and %d", accepted, dups, len(events), 10*120)
	}
	if n := len(e.storedIDs(e.b.org)); n != 0 {
		t.Errorf("organisation B has %d rows it never sent", n)
	}
	if gap := e.count(`SELECT (max_seq - events_accepted - events_dropped)::int FROM gateway_ingest_stats WHERE gateway_id = $1`, e.a.id); gap != 0 {
		t.Errorf("sequence gap = %d, want 0", gap)
	}
}

func TestSequenceGapCountsUnaccountedEvents(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ingest.DefaultLimits())
	events := makeEvents(10, 1)
	// Seqs 1..10 exist; send 1-4 and 8-10, and report one dropped: 2 unaccounted.
	sent := append(append([]protocol.Event{}, events[:4]...), events[7:]...)
	drops := []protocol.Drop{{Reason: protocol.DropDiskPressure, Class: protocol.ClassScreenshot, Count: 1, FirstAt: time.Now(), LastAt: time.Now()}}
	if code := e.postGzip(protocol.PathIngestLogs, e.a, uuid.NewString(), protocol.LogBatch{Events: sent, Drops: drops}, nil); code != 200 {
		t.Fatalf("status %d", code)
	}
	if gap := e.count(`SELECT (max_seq - events_accepted - events_dropped)::int FROM gateway_ingest_stats WHERE gateway_id = $1`, e.a.id); gap != 2 {
		t.Errorf("gap = %d, want 2", gap)
	}
	if n := e.count(`SELECT count(*)::int FROM gateway_drop_reports WHERE gateway_id = $1 AND reason = 'disk_pressure' AND count = 1`, e.a.id); n != 1 {
		t.Errorf("drop reports stored: %d, want 1", n)
	}
}

func TestIdempotencyKeySemantics(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ingest.DefaultLimits())
	ctx := context.Background()
	batch := protocol.LogBatch{Events: makeEvents(5, 1)}
	key := uuid.NewString()
	if code := e.postGzip(protocol.PathIngestLogs, e.a, key, batch, nil); code != 200 {
		t.Fatalf("first: %d", code)
	}
	var er protocol.ErrorResponse
	other := protocol.LogBatch{Events: makeEvents(5, 6)}
	if code := e.postGzip(protocol.PathIngestLogs, e.a, key, other, &er); code != http.StatusUnprocessableEntity || er.Error != protocol.ErrCodeIdemMismatch {
		t.Errorf("same key, different body: %d %+v, want 422 %s", code, er, protocol.ErrCodeIdemMismatch)
	}
	if code := e.postGzip(protocol.PathIngestDeviceEvents, e.a, key, protocol.DeviceEventBatch{Events: []protocol.DeviceEvent{}}, &er); code == 200 {
		t.Errorf("same key on another endpoint succeeded")
	}
	if code := e.postGzip(protocol.PathIngestLogs, e.a, "", batch, &er); code != http.StatusBadRequest || er.Error != protocol.ErrCodeIdemMissing || er.Field != protocol.HeaderIdempotencyKey {
		t.Errorf("missing key: %d %+v, want 400 naming %s", code, er, protocol.HeaderIdempotencyKey)
	}
	if code := e.postGzip(protocol.PathIngestLogs, e.a, "not-a-uuid", batch, &er); code != http.StatusBadRequest {
		t.Errorf("malformed key: %d", code)
	}

	// A request still in flight under the key: 409. Its body hashes like
	// the new one, as a concurrent retry's would.
	inflight := protocol.LogBatch{Events: makeEvents(3, 100)}
	body, _ := json.Marshal(inflight)
	sum := sha256.Sum256(body)
	k2 := uuid.New()
	if _, err := e.admin.Exec(ctx, `INSERT INTO ingest_batches (organization_id, gateway_id, idempotency_key, endpoint, request_hash, status, locked_until)
		VALUES ($1, $2, $3, 'logs', $4, 'in_flight', now() + interval '1 minute')`, e.a.org, e.a.id, k2, sum[:]); err != nil {
		t.Fatal(err)
	}
	if code := e.postGzip(protocol.PathIngestLogs, e.a, k2.String(), inflight, &er); code != http.StatusConflict || er.Error != protocol.ErrCodeIdemInFlight {
		t.Errorf("in flight: %d %+v, want 409", code, er)
	}
	// Once its holder's claim has lapsed (the process died), a retry takes over.
	if _, err := e.admin.Exec(ctx, `UPDATE ingest_batches SET locked_until = now() - interval '1 second' WHERE idempotency_key = $1`, k2); err != nil {
		t.Fatal(err)
	}
	var ok protocol.IngestResponse
	if code := e.postGzip(protocol.PathIngestLogs, e.a, k2.String(), inflight, &ok); code != 200 || ok.Accepted != 3 {
		t.Errorf("takeover: %d %+v, want 200 with 3 accepted", code, ok)
	}
	// The same key from another gateway is another key.
	if code := e.postGzip(protocol.PathIngestLogs, e.b, key, protocol.LogBatch{Events: makeEvents(2, 1)}, nil); code != 200 {
		t.Errorf("gateway B reusing A's key value: %d, want 200", code)
	}
}

func TestBadInputsAreRejectedAndWriteNothing(t *testing.T) {
	t.Parallel()
	limits := ingest.Limits{MaxBodyBytes: 256 << 10, MaxDecodedBytes: 1 << 20, MaxEvents: 100, MaxImageBytes: 64 << 10}
	e := newEnv(t, limits)
	ctx := context.Background()
	var devB int64
	if err := e.admin.QueryRow(ctx, `INSERT INTO devices (organization_id, name, adapter_type) VALUES ($1, 'B door', 'zkteco') RETURNING id`, e.b.org).Scan(&devB); err != nil {
		t.Fatal(err)
	}
	good := makeEvents(3, 1)
	withEvent := func(mod func(*protocol.Event)) protocol.LogBatch {
		ev := makeEvents(1, 1)[0]
		mod(&ev)
		return protocol.LogBatch{Events: []protocol.Event{ev}}
	}
	bomb := gz(bytes.Repeat([]byte(" "), 4<<20)) // 4 MiB of spaces: a few KiB compressed
	door := 1
	tests := []struct {
		name        string
		path        string
		apiKey      string
		contentType string
		encoding    string
		body        []byte
		status      int
		field       string
	}{
		{"no api key", protocol.PathIngestLogs, "", "application/json", "", mustJSON(protocol.LogBatch{Events: good}), 401, protocol.HeaderAPIKey},
		{"wrong api key", protocol.PathIngestLogs, "scgw_" + strings.Repeat("x", 43), "application/json", "", mustJSON(protocol.LogBatch{Events: good}), 401, protocol.HeaderAPIKey},
		{"another organisation's gateway id", protocol.PathIngestLogs, e.a.key, "application/json", "", mustJSON(protocol.LogBatch{GatewayID: e.b.id, Events: good}), 422, "gateway_id"},
		{"another organisation's device id", protocol.PathIngestDeviceEvents, e.a.key, "application/json", "", mustJSON(protocol.DeviceEventBatch{Events: []protocol.DeviceEvent{{
			EventID: uuid.NewString(), Seq: 1, AdapterType: "zkteco", DeviceSerial: "X", DeviceID: &devB, Datetime: time.Now(), Door: &door, MajorCode: 5, MinorCode: 75}}}), 422, "events[0].device_id"},
		{"malformed json", protocol.PathIngestLogs, e.a.key, "application/json", "", []byte(`{"events": [`), 400, ""},
		{"wrong type", protocol.PathIngestLogs, e.a.key, "application/json", "", []byte(`{"events":[{"event_id":"` + uuid.NewString() + `","seq":"one"}]}`), 422, "events[0].seq"},
		{"not json", protocol.PathIngestLogs, e.a.key, "text/plain", "", []byte(`hello`), 415, "Content-Type"},
		{"bad encoding", protocol.PathIngestLogs, e.a.key, "application/json", "br", []byte(`{}`), 415, "Content-Encoding"},
		{"broken gzip", protocol.PathIngestLogs, e.a.key, "application/json", "gzip", []byte(`not gzip at all`), 400, "Content-Encoding"},
		{"oversized body", protocol.PathIngestLogs, e.a.key, "application/json", "", bytes.Repeat([]byte(" "), 300<<10), 413, ""},
		{"gzip bomb", protocol.PathIngestLogs, e.a.key, "application/json", "gzip", bomb, 413, ""},
		{"too many events", protocol.PathIngestLogs, e.a.key, "application/json", "", mustJSON(protocol.LogBatch{Events: makeEvents(101, 1)}), 413, "events"},
		{"empty batch", protocol.PathIngestLogs, e.a.key, "application/json", "", mustJSON(protocol.LogBatch{}), 422, "events"},
		{"title too long", protocol.PathIngestLogs, e.a.key, "application/json", "", mustJSON(withEvent(func(ev *protocol.Event) {
			ev.Type, ev.ProcessName, ev.WindowTitle, ev.URL, ev.Title, ev.SessionType = protocol.TypeActiveWindow, "x.exe", strings.Repeat("t", 501), "", "", ""
		})), 422, "events[0].window_title"},
		{"missing seq", protocol.PathIngestLogs, e.a.key, "application/json", "", mustJSON(withEvent(func(ev *protocol.Event) { ev.Seq = 0 })), 422, "events[0].seq"},
		{"missing event id", protocol.PathIngestLogs, e.a.key, "application/json", "", mustJSON(withEvent(func(ev *protocol.Event) { ev.EventID = "" })), 422, "events[0].event_id"},
		{"screenshot on logs", protocol.PathIngestLogs, e.a.key, "application/json", "", mustJSON(withEvent(func(ev *protocol.Event) {
			ev.Type, ev.Screenshot = protocol.TypeScreenshot, &protocol.Screenshot{SHA256: strings.Repeat("a", 64), Size: 1, ContentType: "image/png"}
		})), 422, "events[0].type"},
		{"bad drop report", protocol.PathIngestLogs, e.a.key, "application/json", "", mustJSON(protocol.LogBatch{Events: good, Drops: []protocol.Drop{{Reason: "retention", Class: "log", Count: -1}}}), 422, "drops[0].count"},
	}
	for _, tt := range tests {
		var er protocol.ErrorResponse
		code := e.post(tt.path, tt.apiKey, uuid.NewString(), tt.contentType, tt.encoding, tt.body, &er)
		if code != tt.status || !strings.Contains(er.Field, tt.field) || er.Message == "" {
			t.Errorf("%s: %d %+v, want %d naming %q", tt.name, code, er, tt.status, tt.field)
		}
	}
	written := e.count(`SELECT ((SELECT count(*) FROM monitoring.active_windows) + (SELECT count(*) FROM monitoring.visited_sites)
		+ (SELECT count(*) FROM monitoring.user_sessions) + (SELECT count(*) FROM monitoring.device_events)
		+ (SELECT count(*) FROM monitoring.screenshots) + (SELECT count(*) FROM ingest_batches)
		+ (SELECT count(*) FROM gateway_drop_reports) + (SELECT count(*) FROM gateway_ingest_stats))::int`)
	if written != 0 {
		t.Errorf("rejected requests wrote %d rows", written)
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// screenshotRequest builds a multipart screenshot upload.
func screenshotRequest(t *testing.T, events []protocol.Event, images map[string][]byte) (string, []byte) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	w, _ := mw.CreateFormField(protocol.ScreenshotBatchPart)
	_ = json.NewEncoder(w).Encode(protocol.ScreenshotBatch{Events: events})
	for id, img := range images {
		fw, _ := mw.CreateFormFile(id, id+".png")
		_, _ = fw.Write(img)
	}
	_ = mw.Close()
	return mw.FormDataContentType(), buf.Bytes()
}

func TestScreenshotsStoreFilesOnceAndReplayAcrossBoundaries(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ingest.DefaultLimits())
	now := time.Now().UTC()
	var events []protocol.Event
	images := map[string][]byte{}
	for i := 0; i < 3; i++ {
		img := bytes.Repeat([]byte{byte(i), 0x89, 'P', 'N', 'G'}, 1000+i)
		sum := sha256.Sum256(img)
		id := uuid.Must(uuid.NewV7()).String()
		images[id] = img
		events = append(events, protocol.Event{EventID: id, Seq: int64(i + 1), Type: protocol.TypeScreenshot, AgentUID: "agent-1", ComputerName: "PC-1",
			UserSID: "S-1-5-21-1", Datetime: now, Screenshot: &protocol.Screenshot{SHA256: hex.EncodeToString(sum[:]), Size: int64(len(img)), ContentType: "image/png"}})
	}
	key := uuid.NewString()
	ct, body := screenshotRequest(t, events, images)
	var first protocol.IngestResponse
	if code := e.post(protocol.PathIngestScreenshots, e.a.key, key, ct, "", body, &first); code != 200 || first.Accepted != 3 {
		t.Fatalf("upload: %d %+v", code, first)
	}
	// A retry is framed with a new multipart boundary: same content, same answer.
	ct2, body2 := screenshotRequest(t, events, images)
	var again protocol.IngestResponse
	if code := e.post(protocol.PathIngestScreenshots, e.a.key, key, ct2, "", body2, &again); code != 200 || again != first {
		t.Fatalf("retry: %d %+v, want %+v", code, again, first)
	}
	for id, img := range images {
		var path string
		if err := e.admin.QueryRow(context.Background(), `SELECT file_path FROM monitoring.screenshots WHERE id = $1`, id).Scan(&path); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(e.files, path))
		if err != nil || !bytes.Equal(got, img) {
			t.Errorf("image %s at %s: %v", id, path, err)
		}
		if !strings.HasPrefix(path, fmt.Sprintf("screenshots/%d/", e.a.org)) {
			t.Errorf("image stored outside its organisation's prefix: %s", path)
		}
	}
	// A corrupted image is refused, naming the field.
	bad := map[string][]byte{}
	for id, img := range images {
		bad[id] = append([]byte{'X'}, img[1:]...)
	}
	ct3, body3 := screenshotRequest(t, events, bad)
	var er protocol.ErrorResponse
	if code := e.post(protocol.PathIngestScreenshots, e.a.key, uuid.NewString(), ct3, "", body3, &er); code != 422 || !strings.HasSuffix(er.Field, "screenshot.sha256") {
		t.Errorf("corrupted image: %d %+v", code, er)
	}
	// A missing image part is refused.
	ct4, body4 := screenshotRequest(t, events, map[string][]byte{})
	if code := e.post(protocol.PathIngestScreenshots, e.a.key, uuid.NewString(), ct4, "", body4, &er); code != 422 || !strings.HasSuffix(er.Field, ".screenshot") {
		t.Errorf("missing image: %d %+v", code, er)
	}
}

func TestProvisioningAndAPIKeys(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ingest.DefaultLimits())
	ctx := context.Background()
	// The provisioned key works; the token is spent.
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+protocol.PathGatewayPing, nil)
	req.Header.Set(protocol.HeaderAPIKey, e.a.key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var pr protocol.PingResponse
	_ = json.NewDecoder(resp.Body).Decode(&pr)
	resp.Body.Close()
	if resp.StatusCode != 200 || pr.GatewayID != e.a.id || pr.OrganizationID != e.a.org {
		t.Fatalf("ping: %d %+v", resp.StatusCode, pr)
	}
	var stored int
	if err := e.admin.QueryRow(ctx, `SELECT count(*) FROM gateway_instances WHERE api_key_hash IS NOT NULL AND id = $1`, e.a.id).Scan(&stored); err != nil || stored != 1 {
		t.Fatalf("key hash stored: %d %v", stored, err)
	}
	var er protocol.ErrorResponse
	cases := []struct {
		name   string
		req    protocol.ProvisionRequest
		status int
		field  string
	}{
		{"missing organisation", protocol.ProvisionRequest{ProvisioningToken: "scpt_x", Serial: "S"}, 422, "organization_id"},
		{"missing token", protocol.ProvisionRequest{OrganizationID: e.a.org, Serial: "S"}, 422, "provisioning_token"},
		{"unknown token", protocol.ProvisionRequest{OrganizationID: e.a.org, ProvisioningToken: "scpt_" + strings.Repeat("y", 43), Serial: e.a.serial}, 401, "provisioning_token"},
		// What PostgreSQL would refuse is refused at the door, never a 503.
		{"NUL in serial", protocol.ProvisionRequest{OrganizationID: e.a.org, ProvisioningToken: "scpt_x", Serial: "GW\x00"}, 422, "serial"},
		{"NUL in token", protocol.ProvisionRequest{OrganizationID: e.a.org, ProvisioningToken: "scpt_\x00", Serial: "S"}, 422, "provisioning_token"},
		{"long hostname", protocol.ProvisionRequest{OrganizationID: e.a.org, ProvisioningToken: "scpt_x", Serial: "S", Hostname: strings.Repeat("h", 256)}, 422, "hostname"},
		{"body over 64 KiB", protocol.ProvisionRequest{OrganizationID: e.a.org, ProvisioningToken: "scpt_x", Serial: "S", Version: strings.Repeat("v", 70<<10)}, 413, ""},
	}
	for _, c := range cases {
		er = protocol.ErrorResponse{}
		if code := e.postJSON(protocol.PathGatewayProvision, "", "", c.req, &er); code != c.status || er.Field != c.field {
			t.Errorf("%s: %d %+v, want %d naming %s", c.name, code, er, c.status, c.field)
		}
	}
	// A token works once, only with its serial and organisation, and only
	// before it expires.
	admin := accounts.Actor{Name: "test", Tenant: postgres.Tenant{Role: postgres.AppAdmin}}
	reg, err := e.acc.RegisterGateway(ctx, admin, e.a.org, "GW-2", "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tries := []struct {
		name   string
		req    protocol.ProvisionRequest
		status int
	}{
		{"wrong serial", protocol.ProvisionRequest{OrganizationID: e.a.org, ProvisioningToken: reg.ProvisioningToken, Serial: "GW-1"}, 401},
		{"wrong organisation", protocol.ProvisionRequest{OrganizationID: e.b.org, ProvisioningToken: reg.ProvisioningToken, Serial: "GW-2"}, 401},
		{"right", protocol.ProvisionRequest{OrganizationID: e.a.org, ProvisioningToken: reg.ProvisioningToken, Serial: "GW-2"}, 201},
		{"reused", protocol.ProvisionRequest{OrganizationID: e.a.org, ProvisioningToken: reg.ProvisioningToken, Serial: "GW-2"}, 401},
	}
	for _, tr := range tries {
		if code := e.postJSON(protocol.PathGatewayProvision, "", "", tr.req, nil); code != tr.status {
			t.Errorf("%s: %d, want %d", tr.name, code, tr.status)
		}
	}
	reg3, err := e.acc.RegisterGateway(ctx, admin, e.a.org, "GW-3", "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.admin.Exec(ctx, `UPDATE provisioning_tokens SET expires_at = now() - interval '1 second' WHERE gateway_id = $1`, reg3.GatewayID); err != nil {
		t.Fatal(err)
	}
	if code := e.postJSON(protocol.PathGatewayProvision, "", "", protocol.ProvisionRequest{OrganizationID: e.a.org, ProvisioningToken: reg3.ProvisioningToken, Serial: "GW-3"}, nil); code != 401 {
		t.Errorf("expired token: %d, want 401", code)
	}
	// Revoking the gateway turns its key away at once.
	if _, err := e.admin.Exec(ctx, `UPDATE gateway_instances SET revoked_at = now(), status = 'revoked' WHERE id = $1`, e.a.id); err != nil {
		t.Fatal(err)
	}
	if code := e.postGzip(protocol.PathIngestLogs, e.a, uuid.NewString(), protocol.LogBatch{Events: makeEvents(1, 1)}, &er); code != 401 {
		t.Errorf("revoked key: %d, want 401", code)
	}
}
