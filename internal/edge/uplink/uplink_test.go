package uplink

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/staffcontrol/staffcontrol/internal/backoff"
	"github.com/staffcontrol/staffcontrol/internal/edge/buffer"
	"github.com/staffcontrol/staffcontrol/internal/logtest"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
	"github.com/staffcontrol/staffcontrol/internal/sim/fakecloud"
)

const apiKey = "test-api-key"

func newServer(t *testing.T) *fakecloud.Server {
	t.Helper()
	s, err := fakecloud.New(fakecloud.Options{APIKey: apiKey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func openBuffer(t *testing.T, path string) *buffer.Buffer {
	t.Helper()
	b, err := buffer.Open(context.Background(), buffer.Options{Config: buffer.Config{Path: path, MaxBytes: 1 << 30}, Logger: logtest.New(t), FSUsage: func(string) (float64, error) { return 0, nil }})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// appendScreenshot stores img in b as a screenshot event of its own and
// returns the event's id and the image's hex SHA-256.
func appendScreenshot(t *testing.T, b *buffer.Buffer, img []byte) (id, sum string) {
	t.Helper()
	id = uuid.Must(uuid.NewV7()).String()
	digest := sha256.Sum256(img)
	sum = hex.EncodeToString(digest[:])
	f, err := b.CreateScreenshotTemp()
	if err != nil {
		t.Fatal(err)
	}
	f.Write(img)
	if err := b.PlaceScreenshot(f, id); err != nil {
		t.Fatal(err)
	}
	ev := protocol.Event{EventID: id, Type: protocol.TypeScreenshot, AgentUID: "a", ComputerName: "pc", UserSID: "s",
		Datetime: time.Now().UTC(), Screenshot: &protocol.Screenshot{SHA256: sum, Size: int64(len(img)), ContentType: "image/png"}}
	p, _ := json.Marshal(ev)
	if _, err := b.Append(context.Background(), []buffer.Record{{Class: protocol.ClassScreenshot, Type: ev.Type, EventID: id, Payload: p, FileSize: int64(len(img))}}); err != nil {
		t.Fatal(err)
	}
	return id, sum
}

func testOptions(url string) Options {
	return Options{ServerURL: url, APIKey: apiKey, GatewayID: "gw-1", Config: Config{BatchMaxEvents: 100,
		FlushInterval: 20 * time.Millisecond, BackoffInitial: 5 * time.Millisecond, BackoffMax: 40 * time.Millisecond,
		AuthRetryInterval: 50 * time.Millisecond}}
}

// appendLogs commits n log events and returns their ids.
func appendLogs(t *testing.T, b *buffer.Buffer, n int) []string {
	t.Helper()
	recs := make([]buffer.Record, n)
	ids := make([]string, n)
	for i := range recs {
		id := uuid.Must(uuid.NewV7()).String()
		d := int64(5)
		ev := protocol.Event{EventID: id, Type: protocol.TypeActiveWindow, AgentUID: "a1", ComputerName: "PC-1",
			UserSID: "S-1-5-21-1", Datetime: time.Now().UTC(), DurationSeconds: &d, ProcessName: "code.exe"}
		p, _ := json.Marshal(ev)
		recs[i] = buffer.Record{Class: protocol.ClassLog, Type: ev.Type, EventID: id, Payload: p}
		ids[i] = id
	}
	if _, err := b.Append(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	return ids
}

// run starts the uplink and returns a stop function that waits for it.
func run(t *testing.T, u *Uplink) func() {
	if err := u.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	stop := func() {
		if err := u.Stop(context.Background()); err != nil {
			t.Errorf("stop the uplink: %v", err)
		}
	}
	t.Cleanup(stop)
	return stop
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// checkExactlyOnce asserts every id was delivered in exactly one fresh batch.
func checkExactlyOnce(t *testing.T, srv *fakecloud.Server, ids []string) {
	t.Helper()
	// "Drained" is two observations (counters, then pending batches), so
	// it can be seen between a batch's release and its re-claim; wait
	// (bounded) for every id before judging. A lost id still fails below.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		got, all := srv.Deliveries(), true
		for _, id := range ids {
			if got[id] == 0 {
				all = false
				break
			}
		}
		if all {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	got := srv.Deliveries()
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
		if got[id] != 1 {
			t.Errorf("event %s delivered %d times", id, got[id])
		}
	}
	for id := range got {
		if !want[id] {
			t.Errorf("unexpected event %s delivered", id)
		}
	}
}

func drained(b *buffer.Buffer) bool {
	for _, s := range buffer.Streams() {
		if r, _ := b.Unclaimed(s); r > 0 {
			return false
		}
		if p, _ := b.PendingBatch(context.Background(), s, nil); p != nil {
			return false
		}
	}
	return true
}

func TestOutageThenRecoveryDeliversEverythingOnce(t *testing.T) {
	srv := newServer(t)
	b := openBuffer(t, filepath.Join(t.TempDir(), "buffer.sqlite"))
	defer b.Close()
	u, err := New(b, testOptions(srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	ids = append(ids, appendLogs(t, b, 250)...)
	srv.SetDown(true)
	run(t, u)
	// Events keep arriving while the cloud is unreachable.
	for range 10 {
		ids = append(ids, appendLogs(t, b, 50)...)
		time.Sleep(10 * time.Millisecond)
	}
	waitFor(t, "an upload error", 5*time.Second, func() bool { return u.Status().LastError != "" })
	if srv.Stats().Batches != 0 {
		t.Fatal("batches stored while down")
	}
	// 503 with Retry-After for a while, then responses lost after commit.
	srv.SetDown(false)
	srv.SetStatus(http.StatusServiceUnavailable, "0")
	time.Sleep(50 * time.Millisecond)
	srv.SetStatus(0, "")
	srv.DropReplies(2)
	ids = append(ids, appendLogs(t, b, 100)...)
	waitFor(t, "drain", 10*time.Second, func() bool { return drained(b) })
	checkExactlyOnce(t, srv, ids)
	if srv.Stats().Replays < 2 {
		t.Fatalf("replays = %d, want ≥ 2 (lost responses must be retried under the same key)", srv.Stats().Replays)
	}
}

func TestTooLargeHalvesTheBatch(t *testing.T) {
	srv := newServer(t)
	srv.SetMaxEvents(12)
	b := openBuffer(t, filepath.Join(t.TempDir(), "buffer.sqlite"))
	defer b.Close()
	u, err := New(b, testOptions(srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	ids := appendLogs(t, b, 300)
	run(t, u)
	waitFor(t, "drain", 10*time.Second, func() bool { return drained(b) })
	checkExactlyOnce(t, srv, ids)
	if srv.Stats().TooLarge == 0 {
		t.Fatal("no 413 seen")
	}
}

func TestUnauthorizedPausesAndResumes(t *testing.T) {
	srv := newServer(t)
	srv.SetAPIKey("another-key")
	b := openBuffer(t, filepath.Join(t.TempDir(), "buffer.sqlite"))
	defer b.Close()
	u, err := New(b, testOptions(srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	ids := appendLogs(t, b, 20)
	run(t, u)
	waitFor(t, "pause", 5*time.Second, func() bool { return u.Status().Paused == "unauthorized" })
	if n := srv.Stats().Batches; n != 0 {
		t.Fatalf("%d batches stored with a bad key", n)
	}
	srv.SetAPIKey(apiKey)
	waitFor(t, "drain", 5*time.Second, func() bool { return drained(b) })
	checkExactlyOnce(t, srv, ids)
	if u.Status().Paused != "" {
		t.Fatal("still paused after success")
	}
}

func TestClaimedBatchResentUnderSameTokenAfterRestart(t *testing.T) {
	srv := newServer(t)
	path := filepath.Join(t.TempDir(), "buffer.sqlite")
	b := openBuffer(t, path)
	ids := appendLogs(t, b, 10)
	// The server stores the batch but the answer is lost, and the gateway
	// stops before it could retry (a crash after the server committed).
	srv.DropReplies(1)
	// A long backoff keeps the first process from retrying before it is
	// stopped (full jitter can pick a delay near zero out of a short one).
	first := testOptions(srv.URL)
	first.BackoffInitial, first.BackoffMax = time.Minute, time.Minute
	u, _ := New(b, first)
	stop := run(t, u)
	waitFor(t, "first delivery", 5*time.Second, func() bool { return srv.Stats().Batches == 1 })
	stop()
	b.Close()
	b = openBuffer(t, path)
	defer b.Close()
	p, err := b.PendingBatch(context.Background(), buffer.StreamLogs, nil)
	if err != nil || p == nil {
		t.Fatalf("pending batch after restart: %v %v", p, err)
	}
	u, _ = New(b, testOptions(srv.URL))
	run(t, u)
	waitFor(t, "drain", 5*time.Second, func() bool { return drained(b) })
	checkExactlyOnce(t, srv, ids)
	// One stored batch, and the resend answered from the idempotency record
	// (a replay) — at least once: should the first process still have
	// retried before it stopped, that was a replay under the same token too.
	if st := srv.Stats(); st.Replays < 1 || st.Batches != 1 {
		t.Fatalf("stats %+v: want one stored batch and the resend replayed", st)
	}
}

func TestScreenshotsAndDeviceEventsAndDrops(t *testing.T) {
	srv := newServer(t)
	b := openBuffer(t, filepath.Join(t.TempDir(), "buffer.sqlite"))
	defer b.Close()
	ctx := context.Background()
	var shotIDs, devIDs []string
	sums := map[string]string{}
	for i := range 5 {
		id, sum := appendScreenshot(t, b, []byte(fmt.Sprintf("PNG-bytes-%d", i)))
		shotIDs = append(shotIDs, id)
		sums[id] = sum
	}
	for range 7 {
		id := uuid.Must(uuid.NewV7()).String()
		ev := protocol.DeviceEvent{EventID: id, AdapterType: "hikvision", DeviceSerial: "DS-1", Datetime: time.Now().UTC(), MajorCode: 5, MinorCode: 75}
		p, _ := json.Marshal(ev)
		if _, err := b.Append(ctx, []buffer.Record{{Class: protocol.ClassDevice, Type: "access", EventID: id, Payload: p, DeviceSerial: "DS-1", AdapterType: "hikvision"}}); err != nil {
			t.Fatal(err)
		}
		devIDs = append(devIDs, id)
	}
	// A retention drop is pending: it must reach the cloud in a logs batch
	// even though no log event is buffered.
	appendLogs(t, b, 3)
	u, _ := New(b, testOptions(srv.URL))
	if err := expireAll(b); err != nil {
		t.Fatal(err)
	}
	run(t, u)
	waitFor(t, "drain", 5*time.Second, func() bool { return drained(b) })
	checkExactlyOnce(t, srv, append(shotIDs, devIDs...))
	for id, sum := range sums {
		if srv.ScreenshotSHA(id) != sum {
			t.Errorf("screenshot %s: sha %q, want %q", id, srv.ScreenshotSHA(id), sum)
		}
	}
	waitFor(t, "drop report", 5*time.Second, func() bool {
		return srv.Drops()[[2]string{protocol.DropRetention, protocol.ClassLog}] == 3
	})
}

// expireAll drops every unclaimed log row, counted as retention drops, so
// that a drop report is pending with no log event buffered.
func expireAll(b *buffer.Buffer) error {
	bt, err := b.Claim(context.Background(), buffer.StreamLogs, 1000, 1<<30, false)
	if err != nil || bt == nil {
		return err
	}
	return b.Reject(context.Background(), bt, protocol.DropRetention)
}

// TestDelayBackoffSequence: the retry delay's cap doubles per attempt up to
// BackoffMax, each delay drawn at random below it (full jitter); a longer
// Retry-After wins, capped at RetryAfterMax.
func TestDelayBackoffSequence(t *testing.T) {
	u := &Uplink{opts: Options{Config: Config{BackoffInitial: time.Second, BackoffMax: 16 * time.Second}, RetryAfterMax: time.Minute},
		pace: backoff.Policy{Initial: time.Second, Max: 16 * time.Second}}
	for i, want := range []time.Duration{1, 2, 4, 8, 16, 16, 16} {
		want *= time.Second
		var longest time.Duration
		for range 200 {
			attempt := i
			d := u.delay(&attempt, 0)
			if d <= 0 || d > want || attempt != i+1 {
				t.Fatalf("attempt %d: delay %v outside (0, %v] (next attempt %d)", i, d, want, attempt)
			}
			longest = max(longest, d)
		}
		if longest <= want/2 {
			t.Errorf("attempt %d: 200 delays all at most %v; want them spread up to %v", i, longest, want)
		}
	}
	attempt := 7
	if d := u.delay(&attempt, 30*time.Second); d != 30*time.Second {
		t.Errorf("Retry-After 30s: delay %v", d)
	}
	if d := u.delay(&attempt, time.Hour); d != time.Minute {
		t.Errorf("Retry-After capped: delay %v", d)
	}
}

func TestParseRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{{"", 0}, {"3", 3 * time.Second}, {"x", 0}, {"-1", 0}} {
		if got := backoff.ParseRetryAfter(tc.in, time.Now()); got != tc.want {
			t.Errorf("%q: %v, want %v", tc.in, got, tc.want)
		}
	}
}

// TestKeyRotatedInFlightRetriesWithoutPause: a 401 answered to a request
// sent with the previous key, when the key was rotated meanwhile, is
// retried with the new key at once instead of pausing uploads.
func TestKeyRotatedInFlightRetriesWithoutPause(t *testing.T) {
	srv := newServer(t)
	srv.SetAPIKey("rotated-key")
	b := openBuffer(t, filepath.Join(t.TempDir(), "buffer.sqlite"))
	defer b.Close()
	opts := testOptions(srv.URL)
	opts.AuthRetryInterval = time.Hour // a pause would fail the test
	var calls atomic.Int64
	opts.KeyFunc = func() string {
		if calls.Add(1) == 1 {
			return apiKey // the first request still carries the old key
		}
		return "rotated-key"
	}
	u, err := New(b, opts)
	if err != nil {
		t.Fatal(err)
	}
	ids := appendLogs(t, b, 20)
	run(t, u)
	waitFor(t, "drain", 10*time.Second, func() bool { return drained(b) })
	checkExactlyOnce(t, srv, ids)
	if u.Status().Paused != "" {
		t.Fatal("paused although the key had been rotated")
	}
}
