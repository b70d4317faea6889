package agentapi_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/staffcontrol/staffcontrol/internal/cloud/accounts"
	"github.com/staffcontrol/staffcontrol/internal/cloud/agentapi"
	"github.com/staffcontrol/staffcontrol/internal/cloud/auth"
	"github.com/staffcontrol/staffcontrol/internal/cloud/commandqueue"
	"github.com/staffcontrol/staffcontrol/internal/cloud/control"
	"github.com/staffcontrol/staffcontrol/internal/cloud/ingest"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/cloud/service"
	"github.com/staffcontrol/staffcontrol/internal/cloud/storage"
	"github.com/staffcontrol/staffcontrol/internal/cloud/timeseries"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
	"github.com/staffcontrol/staffcontrol/internal/throttle"
)

// lookups counts the credential lookups the Agent API makes in PostgreSQL
// (a pgx tracer on its pool), apart from those with one excepted argument.
type lookups struct {
	mu      sync.Mutex
	calls   map[string]int // function → calls
	except  []byte         // an API key hash not to count
	skipped int
}

func (c *lookups) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, fn := range []string{"gateway_by_api_key_hash", "gateway_provision"} {
		if !strings.Contains(d.SQL, fn+"(") {
			continue
		}
		if len(d.Args) > 0 && c.except != nil {
			if b, ok := d.Args[0].([]byte); ok && bytes.Equal(b, c.except) {
				c.skipped++
				return ctx
			}
		}
		c.calls[fn]++
	}
	return ctx
}

func (c *lookups) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (c *lookups) count(fn string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls[fn]
}

// testClock is a clock the test moves.
type testClock struct{ ns atomic.Int64 }

func (c *testClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *testClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// throttledAPI is a real Agent API on loopback, over a real PostgreSQL,
// with its credential lookups counted and its throttle's clock in the
// test's hands.
type throttledAPI struct {
	url     string
	lookups *lookups
	clock   *testClock
	dash    *pgxpool.Pool
	gws     *auth.Gateways // on the counted pool
	orgID   int64
	key     string // the rightful gateway's API key
	metrics string // the /metrics URL
}

func newThrottledAPI(t *testing.T, proxies []netip.Prefix) *throttledAPI {
	t.Helper()
	ctx := context.Background()
	db := pg.NewDatabase(t)
	logger := discard(t)
	a := &throttledAPI{lookups: &lookups{calls: map[string]int{}}, clock: &testClock{}}
	a.clock.ns.Store(time.Date(2026, 12, 4, 6, 0, 0, 0, time.UTC).UnixNano())
	cfg, err := pgxpool.ParseConfig(db.IngestURL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.Tracer = a.lookups
	key := pg.ContextKey()
	cfg.AfterConnect = func(_ context.Context, c *pgx.Conn) error { postgres.AttachContextKey(c, key); return nil }
	ing, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ing.Close)
	a.dash = pg.Pool(t, db.PlatformAdminURL, 4)
	reg := service.NewRegistry()
	files, _ := storage.NewLocal(t.TempDir())
	svc, err := ingest.New(ingest.Deps{Store: timeseries.NewStore(timeseries.StoreConfig{Main: ing, Logger: logger, Registry: reg}), Files: files, Logger: logger, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	q, err := commandqueue.New(ing, commandqueue.Options{}, reg)
	if err != nil {
		t.Fatal(err)
	}
	gws := auth.NewGateways(ing)
	a.gws = gws
	hub := control.New(ing, gws, q, logger, reg, control.Options{})
	lim, err := throttle.New(throttle.Config{}, throttle.Deps{Now: a.clock.now, Logger: logger, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(agentapi.NewServer(agentapi.Deps{DB: ing, Logger: logger, Registry: reg, Gateways: gws, Ingest: svc, Control: hub,
		Throttle: lim, TrustedProxies: proxies}))
	t.Cleanup(srv.Close)
	a.url, a.metrics = srv.URL, srv.URL+"/metrics"
	acc := accounts.New(a.dash, time.Now)
	actor := accounts.Actor{Name: "test", Tenant: postgres.Tenant{Role: postgres.AppAdmin}}
	o, err := acc.CreateOrganization(ctx, actor, "Alpha", "")
	if err != nil {
		t.Fatal(err)
	}
	a.orgID = o.ID
	r, err := acc.RegisterGateway(ctx, actor, o.ID, "GW-1", "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, a.key, err = gws.Provision(ctx, o.ID, "GW-1", r.ProvisioningToken); err != nil {
		t.Fatal(err)
	}
	a.lookups.mu.Lock()
	a.lookups.except, a.lookups.calls = auth.HashSecret(a.key), map[string]int{} // count from here
	a.lookups.mu.Unlock()
	return a
}

// register makes a gateway registration and returns its provisioning token.
func (a *throttledAPI) register(t *testing.T, serial string) string {
	t.Helper()
	acc := accounts.New(a.dash, time.Now)
	r, err := acc.RegisterGateway(context.Background(), accounts.Actor{Name: "test", Tenant: postgres.Tenant{Role: postgres.AppAdmin}}, a.orgID, serial, "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return r.ProvisioningToken
}

// from returns an HTTP client whose connections come from the loopback
// address ip (any of 127.0.0.0/8 on Linux): a real, distinct TCP peer.
func from(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 32}}
}

// answer is one response, its body decoded.
type answer struct {
	code       int
	retryAfter string
	body       protocol.ErrorResponse
}

func do(t *testing.T, c *http.Client, method, url string, h http.Header, body string) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Error(err)
		return answer{}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := answer{code: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After")}
	_ = json.Unmarshal(b, &a.body)
	return a
}

func ping(t *testing.T, c *http.Client, url, key string) answer {
	return do(t, c, "GET", url+protocol.PathGatewayPing, http.Header{protocol.HeaderAPIKey: {key}}, "")
}

// wrongKey is a random key of the right shape with the given prefix.
func wrongKey(prefix string) string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return prefix + base64.RawURLEncoding.EncodeToString(b)[4:]
}

// checkRefusal checks a 429: Retry-After in whole seconds ≥ 1 and the
// project's error shape naming why.
func checkRefusal(t *testing.T, a answer, field string) {
	t.Helper()
	secs, err := strconv.Atoi(a.retryAfter)
	if a.code != http.StatusTooManyRequests || err != nil || secs < 1 || a.body.Error != protocol.ErrCodeThrottled || a.body.Field != field ||
		!strings.Contains(a.body.Message, "too many failed attempts") {
		t.Fatalf("refusal = %+v, want 429 with Retry-After ≥ 1 and error %q naming %s", a, protocol.ErrCodeThrottled, field)
	}
}

// metric returns the value of one sample line of /metrics, 0 if absent.
func metric(t *testing.T, url, sample string) float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

// TestFiveHundredWrongKeysWhileTheRightKeyKeepsWorking is issue 11's
// throttling test: 500 wrong keys, all with the rightful key's own prefix,
// from one address (16 at a time) are answered 429 with Retry-After after
// the free failures, and reach PostgreSQL at most 16 + FreeFailures + 1
// times (the first wave, then the failures left); the
// right key keeps working throughout from another address, from the
// attacker's own address once it has been accepted, and over the
// WebSocket; the lock grows when it is tried again after it ends.
func TestFiveHundredWrongKeysWhileTheRightKeyKeepsWorking(t *testing.T) {
	t.Parallel()
	a := newThrottledAPI(t, nil)
	attacker, holder := from("127.0.0.2"), from("127.0.0.3")
	prefix := auth.KeyPrefix(a.key)

	// The holder keeps pinging from its own address while the attack runs,
	// starting cold (its key not yet seen by this process).
	stop := make(chan struct{})
	var holderOK, holderBad atomic.Int64
	var holderWG sync.WaitGroup
	holderWG.Add(1)
	go func() {
		defer holderWG.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if r := ping(t, holder, a.url, a.key); r.code == http.StatusOK {
				holderOK.Add(1)
			} else {
				holderBad.Add(1)
				t.Errorf("the right key from another address during the attack: %+v", r)
			}
		}
	}()

	var unauthorized, refused, sameAddress atomic.Int64
	var wg sync.WaitGroup
	jobs := make(chan int)
	const workers = 16
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				r := ping(t, attacker, a.url, wrongKey(prefix))
				switch r.code {
				case http.StatusUnauthorized:
					unauthorized.Add(1)
				case http.StatusTooManyRequests:
					refused.Add(1)
					checkRefusal(t, r, protocol.HeaderAPIKey)
				default:
					t.Errorf("wrong key %d answered %+v", i, r)
				}
				if i%100 == 99 && holderOK.Load() > 0 {
					// The right key from the attacker's address, once the
					// holder's requests have had it accepted.
					sameAddress.Add(1)
					if r := ping(t, attacker, a.url, a.key); r.code != http.StatusOK {
						t.Errorf("the accepted key from the attacker's address: %+v", r)
					}
				}
			}
		}()
	}
	for i := range 500 {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	// On a loaded machine the holder's first (cold) request can outlast the
	// whole attack: then the right key is tried from the attacker's
	// address, still locked, as soon as it has been accepted.
	if sameAddress.Load() == 0 {
		for deadline := time.Now().Add(30 * time.Second); holderOK.Load() == 0 && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
		if holderOK.Load() > 0 {
			sameAddress.Add(1)
			if r := ping(t, attacker, a.url, a.key); r.code != http.StatusOK {
				t.Errorf("the accepted key from the attacker's address after the attack: %+v", r)
			}
		}
	}
	close(stop)
	holderWG.Wait()

	// Under concurrency the attack may end before the free failures'
	// lookups do (they were in flight while everything else was refused):
	// then the next guess is the one that locks.
	for r := ping(t, attacker, a.url, wrongKey(prefix)); r.code != http.StatusTooManyRequests; r = ping(t, attacker, a.url, wrongKey(prefix)) {
		if r.code != http.StatusUnauthorized || unauthorized.Add(1) > 10 {
			t.Fatalf("after the attack: %+v", r)
		}
	}
	// A clean address is not bounded in flight (many gateways may share
	// one), so the first wave — one guess per connection — reaches the
	// database; after the first failure, only the free failures left and
	// the one that locks.
	bound := workers + throttle.DefaultFreeFailures + 1
	if got := a.lookups.count("gateway_by_api_key_hash"); got > bound {
		t.Errorf("500 wrong keys made %d database lookups, want at most %d", got, bound)
	}
	if unauthorized.Load() > int64(bound) || refused.Load() < 500-int64(bound) {
		t.Errorf("%d answered 401, %d answered 429; want at most %d 401s", unauthorized.Load(), refused.Load(), bound)
	}
	if sameAddress.Load() == 0 {
		t.Error("the right key was never tried from the attacker's address")
	}
	if holderOK.Load() == 0 || holderBad.Load() != 0 {
		t.Errorf("the holder: %d accepted, %d refused", holderOK.Load(), holderBad.Load())
	}
	t.Logf("500 wrong keys: %d → 401 (database lookups %d), %d → 429; the right key meanwhile: %d × 200",
		unauthorized.Load(), a.lookups.count("gateway_by_api_key_hash"), refused.Load(), holderOK.Load())

	// Every door: ingest, rotation and the WebSocket upgrade refuse the
	// attacker's next guess before the database, and take the right key.
	before := a.lookups.count("gateway_by_api_key_hash")
	for _, route := range []struct{ method, path string }{{"POST", protocol.PathIngestLogs}, {"POST", protocol.PathGatewayKeyRotate},
		{"GET", protocol.PathGatewaySocket}, {"GET", protocol.PathGatewayCommands}} {
		checkRefusal(t, do(t, attacker, route.method, a.url+route.path, http.Header{protocol.HeaderAPIKey: {wrongKey(prefix)}}, "{}"), protocol.HeaderAPIKey)
	}
	if got := a.lookups.count("gateway_by_api_key_hash"); got != before {
		t.Errorf("refused requests made %d database lookups", got-before)
	}
	dialer := websocket.Dialer{NetDialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}).DialContext}
	ws, resp, err := dialer.Dial("ws"+strings.TrimPrefix(a.url, "http")+protocol.PathGatewaySocket, http.Header{protocol.HeaderAPIKey: {a.key}})
	if err != nil {
		t.Fatalf("the right key's WebSocket from the attacker's address: %v (%v)", err, resp)
	}
	ws.Close()

	// The holder's successes reset nothing: the attacker is still locked.
	checkRefusal(t, ping(t, attacker, a.url, wrongKey(prefix)), protocol.HeaderAPIKey)
	// When the lock ends, one more guess reaches the database; the next
	// lock is twice as long (up to the cap: the first wave's 16 failures
	// may have reached it already).
	r := ping(t, attacker, a.url, wrongKey(prefix))
	first := r.retryAfter
	a.clock.advance(time.Duration(mustAtoi(t, first)) * time.Second)
	if r := ping(t, attacker, a.url, wrongKey(prefix)); r.code != http.StatusUnauthorized {
		t.Fatalf("after the lock ended: %+v, want 401", r)
	}
	r = ping(t, attacker, a.url, wrongKey(prefix))
	checkRefusal(t, r, protocol.HeaderAPIKey)
	if want := min(2*mustAtoi(t, first), int(throttle.DefaultMaxLockout/time.Second)); mustAtoi(t, r.retryAfter) != want {
		t.Errorf("Retry-After %s after %s, want %d (doubled, at most the cap)", r.retryAfter, first, want)
	}

	if got := metric(t, a.metrics, `auth_failures_total{kind="api_key",reason="unknown"}`); got != float64(unauthorized.Load()+1) {
		t.Errorf("auth_failures_total unknown = %v, want %d", got, unauthorized.Load()+1)
	}
	if got := metric(t, a.metrics, `auth_throttled_total{by="source",kind="api_key"}`); got < float64(refused.Load()) {
		t.Errorf("auth_throttled_total by source = %v, want ≥ %d", got, refused.Load())
	}
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return n
}

// TestAPrefixLockedFromManyAddressesStillTakesTheRightKey: wrong keys with
// the rightful key's prefix, one from each of many addresses, lock the
// prefix; addresses that failed are then refused before the database, while
// the right key gets through both from a clean address and, once accepted,
// from an address that failed.
func TestAPrefixLockedFromManyAddressesStillTakesTheRightKey(t *testing.T) {
	t.Parallel()
	a := newThrottledAPI(t, nil)
	prefix := auth.KeyPrefix(a.key)
	for i := range throttle.DefaultFreeFailures + 1 {
		if r := ping(t, from(fmt.Sprintf("127.0.1.%d", i+1)), a.url, wrongKey(prefix)); r.code != http.StatusUnauthorized {
			t.Fatalf("guess %d: %+v", i, r)
		}
	}
	before := a.lookups.count("gateway_by_api_key_hash")
	r := ping(t, from("127.0.1.1"), a.url, wrongKey(prefix))
	checkRefusal(t, r, protocol.HeaderAPIKey)
	if !strings.Contains(r.body.Message, "for this credential") {
		t.Errorf("refusal %q does not say the credential's prefix is locked", r.body.Message)
	}
	if got := a.lookups.count("gateway_by_api_key_hash"); got != before {
		t.Errorf("a refused guess made %d lookups", got-before)
	}
	// Another prefix from the same address is not held back by this one.
	if r := ping(t, from("127.0.1.1"), a.url, wrongKey("scgw_zzzz")); r.code != http.StatusUnauthorized {
		t.Errorf("another prefix: %+v, want 401", r)
	}
	// The rightful holder, cold, from a clean address, then (accepted) from
	// an address that failed.
	for _, ip := range []string{"127.0.2.1", "127.0.1.2"} {
		if r := ping(t, from(ip), a.url, a.key); r.code != http.StatusOK {
			t.Fatalf("the right key from %s: %+v", ip, r)
		}
	}
}

// TestTheSourceIsTheTCPPeerUnlessAProxyIsTrusted: X-Forwarded-For from an
// untrusted peer changes nothing (an attacker cannot rotate "addresses" by
// header); from a trusted proxy it names the client.
func TestTheSourceIsTheTCPPeerUnlessAProxyIsTrusted(t *testing.T) {
	t.Parallel()
	for _, trusted := range []bool{false, true} {
		t.Run(fmt.Sprint("trusted=", trusted), func(t *testing.T) {
			t.Parallel()
			var proxies []netip.Prefix
			if trusted {
				proxies = []netip.Prefix{netip.MustParsePrefix("127.0.3.1/32")}
			}
			a := newThrottledAPI(t, proxies)
			c := from("127.0.3.1")
			var last answer
			for i := range 20 {
				last = do(t, c, "GET", a.url+protocol.PathGatewayPing, http.Header{protocol.HeaderAPIKey: {wrongKey(fmt.Sprintf("scgw_%04d", i))},
					"X-Forwarded-For": {fmt.Sprintf("203.0.113.%d", i+1)}}, "")
			}
			if trusted && last.code != http.StatusUnauthorized {
				t.Fatalf("behind a trusted proxy, 20 clients with one guess each: the last %+v, want 401", last)
			}
			if !trusted {
				checkRefusal(t, last, protocol.HeaderAPIKey)
			}
		})
	}
}

// TestProvisioningTokenBruteForceIsThrottled: guessed tokens for one
// registration from one address are refused after the free failures
// without reaching PostgreSQL, guesses for it from many addresses lock it
// for those addresses, and the right token still provisions from a clean
// address.
func TestProvisioningTokenBruteForceIsThrottled(t *testing.T) {
	t.Parallel()
	a := newThrottledAPI(t, nil)
	token := a.register(t, "GW-2")
	body := func(tok string) string {
		b, _ := json.Marshal(protocol.ProvisionRequest{OrganizationID: a.orgID, Serial: "GW-2", ProvisioningToken: tok})
		return string(b)
	}
	h := http.Header{"Content-Type": {"application/json"}}
	attacker := from("127.0.4.1")
	var unauthorized, refused int
	for range 200 {
		r := do(t, attacker, "POST", a.url+protocol.PathGatewayProvision, h, body(wrongKey("scpt_AAAA")))
		switch r.code {
		case http.StatusUnauthorized:
			unauthorized++
		case http.StatusTooManyRequests:
			refused++
			checkRefusal(t, r, "provisioning_token")
		default:
			t.Fatalf("a guessed token answered %+v", r)
		}
	}
	free := throttle.DefaultFreeFailures + 1 // the free failures and the one that locks
	if got := a.lookups.count("gateway_provision"); got > free || unauthorized > free {
		t.Errorf("200 guessed tokens: %d provisioning calls in PostgreSQL, %d × 401; want at most %d", got, unauthorized, free)
	}
	// Guesses from many addresses lock the registration (organisation and
	// serial) for addresses that failed.
	for i := range 6 {
		if r := do(t, from(fmt.Sprintf("127.0.5.%d", i+1)), "POST", a.url+protocol.PathGatewayProvision, h, body(wrongKey("scpt_BBBB"))); r.code != http.StatusUnauthorized {
			t.Fatalf("guess from address %d: %+v", i, r)
		}
	}
	r := do(t, from("127.0.5.1"), "POST", a.url+protocol.PathGatewayProvision, h, body(wrongKey("scpt_CCCC")))
	checkRefusal(t, r, "provisioning_token")
	if !strings.Contains(r.body.Message, "for this credential") {
		t.Errorf("refusal %q does not say the registration is locked", r.body.Message)
	}
	resp := do(t, from("127.0.6.1"), "POST", a.url+protocol.PathGatewayProvision, h, body(token))
	if resp.code != http.StatusCreated {
		t.Fatalf("the right token from a clean address during the attack: %+v", resp)
	}
	if got := metric(t, a.metrics, `auth_throttled_total{by="prefix",kind="provisioning_token"}`); got < 1 {
		t.Errorf("auth_throttled_total by prefix for tokens = %v", got)
	}
}

// TestManyGatewaysBehindOneAddressStartTogether: gateways behind one NAT (or
// a proxy not listed in TRUSTED_PROXIES) all present keys this process has
// not seen yet, at once — after an Agent API restart, say. Nobody failed, so
// nobody is refused.
func TestManyGatewaysBehindOneAddressStartTogether(t *testing.T) {
	t.Parallel()
	a := newThrottledAPI(t, nil)
	ctx := context.Background()
	acc := accounts.New(a.dash, time.Now)
	actor := accounts.Actor{Name: "test", Tenant: postgres.Tenant{Role: postgres.AppAdmin}}
	keys := []string{a.key}
	for i := range 39 {
		r, err := acc.RegisterGateway(ctx, actor, a.orgID, fmt.Sprintf("NAT-%d", i), "", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		_, key, err := a.gws.Provision(ctx, a.orgID, fmt.Sprintf("NAT-%d", i), r.ProvisioningToken)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, key)
	}
	nat := from("127.0.8.1")
	var wg sync.WaitGroup
	for _, key := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := ping(t, nat, a.url, key); r.code != http.StatusOK {
				t.Errorf("gateway %s behind the shared address: %+v", auth.KeyPrefix(key), r)
			}
		}()
	}
	wg.Wait()
}
