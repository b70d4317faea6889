package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/staffcontrol/staffcontrol/internal/edge/agentauth"
	"github.com/staffcontrol/staffcontrol/internal/logtest"
	"github.com/staffcontrol/staffcontrol/internal/sim/agentsim"
	"github.com/staffcontrol/staffcontrol/internal/sim/fakecloud"
)

// childEnv makes the test binary act as the gateway (re-exec): the crash
// tests SIGKILL real gateway processes without a separate build step.
const childEnv = "STAFF_GATEWAY_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, "gateway:", err)
			os.Exit(exitCode(err))
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

const (
	testAPIKey = "gw-test-key-0123456789"
	testToken  = "prov-token-abc"
	testOrg    = 7
)

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

type harness struct {
	t      *testing.T
	dir    string
	cfg    string
	port   int
	url    string
	srv    *fakecloud.Server
	logBuf *lockedBuffer
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() > 4<<20 {
		l.b.Reset()
	}
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// newHarness writes a gateway config pointing at a fresh ingest server.
func newHarness(t *testing.T, extra string) *harness {
	t.Helper()
	srv, err := fakecloud.New(fakecloud.Options{APIKey: testAPIKey, ProvisioningToken: testToken, OrganizationID: testOrg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	h := &harness{t: t, dir: t.TempDir(), port: freePort(t), srv: srv, logBuf: &lockedBuffer{}}
	h.url = fmt.Sprintf("http://127.0.0.1:%d", h.port)
	cfg := fmt.Sprintf(`server:
  url: %s
  timeout: 5s
organization:
  id: %d
  provisioning_token: %s
gateway:
  serial: test-gw
  listen: 127.0.0.1:%d
  grpc_listen: "off"
buffer:
  path: %s
  max_size: 1GB
  retention_days: 7
uplink:
  batch_max_events: 250
  flush_interval: 50ms
  backoff_initial: 20ms
  backoff_max: 200ms
  auth_retry_interval: 200ms
collector:
  retry_after: 1s
  enrolment_verifier: %s
health:
  max_unsent_age: 1m
logging:
  level: info
%s`, srv.URL, testOrg, testToken, h.port, filepath.Join(h.dir, "buffer.sqlite"),
		// Seeded: these tests take the cloud down right after provisioning,
		// possibly before the gateway fetched the verifier (the fetch is
		// tested in internal/edge/gateway).
		agentauth.Verifier(fakecloud.DefaultEnrolmentSecret), extra)
	h.cfg = filepath.Join(h.dir, "gateway.yml")
	if err := os.WriteFile(h.cfg, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return h
}

type child struct {
	cmd  *exec.Cmd
	done chan error
}

// start launches the gateway process and waits until /health answers.
func (h *harness) start() *child {
	h.t.Helper()
	cmd := exec.Command(os.Args[0], "--config", h.cfg)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	cmd.Stdout = h.logBuf
	cmd.Stderr = io.MultiWriter(h.logBuf, logtest.Writer(h.t, "gateway stderr"))
	if err := cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	c := &child{cmd: cmd, done: make(chan error, 1)}
	go func() { c.done <- cmd.Wait() }()
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(h.url + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return c
			}
		}
		select {
		case err := <-c.done:
			h.t.Fatalf("gateway exited during start: %v\n%s", err, tail(h.logBuf.String()))
		default:
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			h.t.Fatalf("gateway not healthy in 15s\n%s", tail(h.logBuf.String()))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func tail(s string) string {
	if len(s) > 4000 {
		return s[len(s)-4000:]
	}
	return s
}

func (c *child) kill(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-c.done
}

func (c *child) stop(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-c.done:
		if err != nil {
			t.Fatalf("gateway exited with %v after SIGTERM", err)
		}
	case <-time.After(30 * time.Second):
		c.cmd.Process.Kill()
		t.Fatal("gateway did not stop within 30s of SIGTERM")
	}
}

// integrity runs PRAGMA integrity_check on the (closed) buffer file.
func (h *harness) integrity(t *testing.T) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(h.dir, "buffer.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var res string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&res); err != nil {
		t.Fatal(err)
	}
	if res != "ok" {
		t.Fatalf("integrity_check: %s", res)
	}
}

func (h *harness) details(t *testing.T) map[string]any {
	t.Helper()
	resp, err := http.Get(h.url + "/health/details")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var d map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
		t.Fatal(err)
	}
	return d
}

// ledger is the agents' side of the history: ids by outcome.
type ledger struct {
	mu            sync.Mutex
	acked         map[string]bool
	indeterminate map[string]bool
}

func newLedger() *ledger {
	return &ledger{acked: map[string]bool{}, indeterminate: map[string]bool{}}
}

func (l *ledger) observe(ids []string, o agentsim.Outcome) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, id := range ids {
		switch o {
		case agentsim.Acked:
			l.acked[id] = true
		case agentsim.Indeterminate:
			l.indeterminate[id] = true
		}
	}
}

// waitDelivered waits until every acknowledged id reached the server.
func (h *harness) waitDelivered(t *testing.T, l *ledger, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := h.srv.Deliveries()
		missing := 0
		l.mu.Lock()
		for id := range l.acked {
			if got[id] == 0 {
				missing++
			}
		}
		l.mu.Unlock()
		if missing == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d acknowledged events never reached the server\n%s", missing, tail(h.logBuf.String()))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// check is the per-id verdict (Jepsen total-queue style): every acked id
// delivered exactly once, indeterminate ids at most once, nothing unexpected,
// and no sequence number used twice.
func (h *harness) check(t *testing.T, l *ledger) {
	t.Helper()
	got := h.srv.Deliveries()
	l.mu.Lock()
	defer l.mu.Unlock()
	lost, dup, unexpected, recovered := 0, 0, 0, 0
	for id := range l.acked {
		switch n := got[id]; {
		case n == 0:
			lost++
		case n > 1:
			dup++
			if dup <= 5 {
				t.Errorf("acked event %s delivered %d times", id, n)
			}
		}
	}
	for id := range l.indeterminate {
		if got[id] > 1 {
			dup++
			t.Errorf("indeterminate event %s delivered %d times", id, got[id])
		}
		if got[id] == 1 {
			recovered++
		}
	}
	seqs := map[int64]string{}
	for id := range got {
		if !l.acked[id] && !l.indeterminate[id] {
			unexpected++
		}
		s := h.srv.Seq(id)
		if other, ok := seqs[s]; ok {
			t.Errorf("seq %d used by %s and %s", s, other, id)
		}
		seqs[s] = id
	}
	if lost > 0 || dup > 0 || unexpected > 0 {
		t.Fatalf("acked=%d lost=%d duplicated=%d unexpected=%d", len(l.acked), lost, dup, unexpected)
	}
	t.Logf("acked=%d indeterminate=%d (recovered %d) delivered=%d batches=%d replays=%d: 0 lost, 0 duplicated",
		len(l.acked), len(l.indeterminate), recovered, len(got), h.srv.Stats().Batches, h.srv.Stats().Replays)
}

func TestSIGKILLLosesNothingAndDuplicatesNothing(t *testing.T) {
	h := newHarness(t, "")
	l := newLedger()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := h.start()
	// Agents send throughout, through every kill and restart.
	simDone := make(chan agentsim.Result, 1)
	go func() {
		res, _ := agentsim.Run(ctx, agentsim.Options{EnrolmentSecret: fakecloud.DefaultEnrolmentSecret, GatewayURL: h.url, Agents: 6, Rate: 400, BatchSize: 25,
			ScreenshotEvery: 8, ScreenshotBytes: 8 << 10, Observe: l.observe,
			Client: &http.Client{Timeout: 5 * time.Second}, MaxRetryAfter: 200 * time.Millisecond})
		simDone <- res
	}()
	// The cloud also loses some answers after storing the batch, so that
	// retries under the same idempotency key happen between kills.
	const kills = 20
	maxUp := 700 * time.Millisecond
	if testing.Short() {
		maxUp = 400 * time.Millisecond
	}
	for i := 0; i < kills; i++ {
		if i%5 == 2 {
			h.srv.DropReplies(1)
		}
		up := time.Duration(int64(50*time.Millisecond) + time.Now().UnixNano()%int64(maxUp))
		time.Sleep(up)
		c.kill(t)
		h.integrity(t)
		c = h.start()
	}
	time.Sleep(300 * time.Millisecond)
	cancel()
	res := <-simDone
	t.Logf("simulator: %s", res)
	h.waitDelivered(t, l, 60*time.Second)
	// Let the uplink finish the tail (e.g. indeterminate events) and stop.
	waitEmpty(t, h, 30*time.Second)
	c.stop(t)
	h.integrity(t)
	h.check(t, l)
	if n := h.srv.Stats().Provisions; n != 1 {
		t.Fatalf("provisioned %d times; the stored key must be reused across restarts", n)
	}
	fi, err := os.Stat(filepath.Join(h.dir, "gateway-key.json"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v mode %v", err, fi.Mode())
	}
	if res.Acked < 1000 {
		t.Fatalf("only %d events acknowledged: the test did not exercise the gateway", res.Acked)
	}
}

// waitEmpty waits until the gateway's buffer holds no row left to send.
// Dead letters (events the cloud refused, set aside) do not count: they no
// longer wait for the uplink.
func waitEmpty(t *testing.T, h *harness, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		d := h.details(t)
		buf := d["buffer"].(map[string]any)
		dead, _ := buf["dead_letter_bytes"].(float64)
		if buf["bytes"].(float64)-dead == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("buffer not empty: %v", buf)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestCloudOutageThenRecoveryDrainsEverything(t *testing.T) {
	h := newHarness(t, "")
	l := newLedger()
	c := h.start()
	defer func() {
		if c != nil {
			c.kill(t)
		}
	}()
	// Provision first, then take the cloud away.
	deadline := time.Now().Add(10 * time.Second)
	for h.srv.Stats().Provisions == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	h.srv.SetDown(true)
	ctx := context.Background()
	res, err := agentsim.Run(ctx, agentsim.Options{EnrolmentSecret: fakecloud.DefaultEnrolmentSecret, GatewayURL: h.url, Agents: 4, BatchSize: 50, MaxEvents: 6000,
		ScreenshotEvery: 10, ScreenshotBytes: 4 << 10, Observe: l.observe})
	if err != nil {
		t.Fatal(err)
	}
	if res.Acked < 6000 {
		t.Fatalf("acked %d during the outage: %s", res.Acked, res)
	}
	time.Sleep(500 * time.Millisecond) // several failed attempts with backoff
	d := h.details(t)
	up := d["uplink"].(map[string]any)
	if up["last_error"] == "" || h.srv.Stats().Batches != 0 {
		t.Fatalf("uplink should be failing: %v", up)
	}
	if d["buffer"].(map[string]any)["oldest_unsent_age_seconds"].(float64) <= 0 {
		t.Fatal("oldest unsent age not reported")
	}
	// A gateway restart during the outage must not matter either.
	c.kill(t)
	c = h.start()
	h.srv.SetDown(false)
	h.waitDelivered(t, l, 60*time.Second)
	waitEmpty(t, h, 30*time.Second)
	c.stop(t)
	c = nil
	h.check(t, l)
}

func TestBackPressureShedsThenRefusesThenRecovers(t *testing.T) {
	h := newHarness(t, "")
	// A 400 kB buffer: screenshots of 16 kB fill it quickly.
	cfg, _ := os.ReadFile(h.cfg)
	os.WriteFile(h.cfg, []byte(strings.Replace(string(cfg), "max_size: 1GB", "max_size: 400KB", 1)), 0o600)
	c := h.start()
	defer func() {
		if c != nil {
			c.kill(t)
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for h.srv.Stats().Provisions == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	h.srv.SetDown(true)
	l := newLedger()
	// Screenshots first (about 60 % of the buffer), then logs until refused.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	shots, err := agentsim.Run(ctx, agentsim.Options{EnrolmentSecret: fakecloud.DefaultEnrolmentSecret, GatewayURL: h.url, Agents: 1, BatchSize: 1, ScreenshotEvery: 1,
		ScreenshotBytes: 16 << 10, MaxEvents: 30, Observe: l.observe})
	if err != nil || shots.Screenshots < 10 {
		t.Fatalf("screenshots acked: %d (%v)", shots.Screenshots, err)
	}
	// Logs until the gateway refuses with 503; the simulator keeps retrying
	// refused batches, so bound it in time.
	lctx, lcancel := context.WithTimeout(ctx, 3*time.Second)
	logs, _ := agentsim.Run(lctx, agentsim.Options{EnrolmentSecret: fakecloud.DefaultEnrolmentSecret, GatewayURL: h.url, Agents: 2, BatchSize: 20, Observe: l.observe,
		MaxRetryAfter: 100 * time.Millisecond})
	lcancel()
	if logs.Refusals == 0 {
		t.Fatalf("no 503 seen: %s", logs)
	}
	d := h.details(t)
	buf := d["buffer"].(map[string]any)
	if buf["level"] != "critical" && buf["level"] != "warning" {
		t.Fatalf("level %v, want warning or critical: %v", buf["level"], buf)
	}
	if u := buf["usage"].(float64); u < 0.90 || u > 1.0 {
		t.Fatalf("usage %.3f", u)
	}
	shed := dropCount(buf, "disk_pressure", "screenshot")
	if shed == 0 {
		t.Fatalf("no screenshot shed at 80 %%: %v", buf)
	}
	metrics := get(t, h.url+"/metrics")
	for _, want := range []string{`buffer_overflow_total{level="warning"}`, `buffer_overflow_total{level="critical"}`,
		`gateway_events_dropped_total{class="screenshot",reason="disk_pressure"}`, `gateway_events_rejected_total{reason="buffer_full"}`,
		"gateway_backpressure_state 2"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if code := status(t, h.url+"/health/ready"); code != 503 {
		t.Fatalf("/health/ready = %d at critical, want 503", code)
	}
	// Space frees when the cloud comes back: everything drains, the shed
	// count reaches the cloud in a drop report, and intake resumes.
	h.srv.SetDown(false)
	waitEmpty(t, h, 30*time.Second)
	deadline = time.Now().Add(10 * time.Second)
	for h.srv.Drops()[[2]string{"disk_pressure", "screenshot"}] != int64(shed) {
		if time.Now().After(deadline) {
			t.Fatalf("drop report: server has %v, gateway counted %d", h.srv.Drops(), shed)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if lvl := h.details(t)["buffer"].(map[string]any)["level"]; lvl != "normal" {
		t.Fatalf("level after drain: %v", lvl)
	}
	after, _ := agentsim.Run(context.Background(), agentsim.Options{EnrolmentSecret: fakecloud.DefaultEnrolmentSecret, GatewayURL: h.url, Agents: 1, BatchSize: 10, MaxEvents: 50,
		ScreenshotEvery: 1, ScreenshotBytes: 1024, Observe: l.observe})
	if after.Refusals != 0 || after.Acked < 50 {
		t.Fatalf("after recovery: %s", after)
	}
	waitEmpty(t, h, 20*time.Second)
	c.stop(t)
	c = nil
	// Every acked event arrived once except the shed screenshots, which
	// are accounted for by the drop report.
	got := h.srv.Deliveries()
	missing := 0
	for id := range l.acked {
		switch got[id] {
		case 0:
			missing++
		case 1:
		default:
			t.Fatalf("event %s delivered %d times", id, got[id])
		}
	}
	if missing != shed {
		t.Fatalf("%d acked events missing, %d shed and reported", missing, shed)
	}
	t.Logf("acked %d, shed and reported %d, refusals %d, all others delivered once", len(l.acked), shed, logs.Refusals)
}

func dropCount(buf map[string]any, reason, class string) int {
	for _, d := range buf["drops"].([]any) {
		m := d.(map[string]any)
		if m["reason"] == reason && m["class"] == class {
			return int(m["total"].(float64))
		}
	}
	return 0
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return b.String()
}

func status(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
