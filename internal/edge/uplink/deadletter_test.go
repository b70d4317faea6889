package uplink

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/edge/buffer"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
	"github.com/staffcontrol/staffcontrol/internal/sim/fakecloud"
)

// poisonIDs answers code for any batch holding one of ids.
func poisonIDs(code int, retryAfter string, ids ...string) fakecloud.Poison {
	return func(id string, _ json.RawMessage) fakecloud.PoisonAnswer {
		if slices.Contains(ids, id) {
			return fakecloud.PoisonAnswer{Code: code, RetryAfter: retryAfter, Field: "window_title"}
		}
		return fakecloud.PoisonAnswer{}
	}
}

func deadLetters(t *testing.T, b *buffer.Buffer) buffer.DeadLetterStats {
	t.Helper()
	st, err := b.DeadLetters(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func without(ids []string, drop ...string) []string {
	var out []string
	for _, id := range ids {
		if !slices.Contains(drop, id) {
			out = append(out, id)
		}
	}
	return out
}

// The NUL bug's shape: one event makes the cloud answer 503 forever while
// it accepts everything else. The uplink isolates it (split, then a dead
// letter with reason persistent_failure, reported as a drop), and every
// other event, including those appended after it, is delivered exactly
// once, within the normal drain time.
func TestPersistentServerErrorIsIsolatedAndDeadLettered(t *testing.T) {
	srv := newServer(t)
	var logs lockedBuffer
	logger := slog.New(slog.NewJSONHandler(&logs, nil))
	b, err := buffer.Open(context.Background(), buffer.Options{Config: buffer.Config{Path: filepath.Join(t.TempDir(), "buffer.sqlite"), MaxBytes: 1 << 30}, FSUsage: func(string) (float64, error) { return 0, nil }, Logger: logger.With("component", "buffer")})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	opts := testOptions(srv.URL)
	opts.Logger = logger.With("component", "uplink")
	u, err := New(b, opts)
	if err != nil {
		t.Fatal(err)
	}
	ids := appendLogs(t, b, 300)
	poison := ids[137]
	srv.SetPoison(poisonIDs(http.StatusServiceUnavailable, "0", poison))
	start := time.Now()
	run(t, u)
	for range 5 {
		ids = append(ids, appendLogs(t, b, 40)...)
		time.Sleep(20 * time.Millisecond)
	}
	waitFor(t, "the poison set aside", 20*time.Second, func() bool { return deadLetters(t, b).Count == 1 })
	waitFor(t, "drain", 20*time.Second, func() bool { return drained(b) })
	elapsed := time.Since(start)
	clean := without(ids, poison)
	checkExactlyOnce(t, srv, clean)
	st := deadLetters(t, b)
	if st.Recent[0].EventID != poison || st.Recent[0].Reason != protocol.DropPersistentFailure ||
		st.Recent[0].Attempts < DefaultIsolateAfter || st.LastError == "" {
		t.Fatalf("dead letter %+v", st.Recent[0])
	}
	waitFor(t, "the drop reported", 10*time.Second, func() bool {
		return srv.Drops()[[2]string{protocol.DropPersistentFailure, protocol.ClassLog}] == 1
	})
	if n := srv.Deliveries()[poison]; n != 0 {
		t.Fatalf("poison delivered %d times", n)
	}
	t.Logf("isolated 1 poison among %d events in %v (%d poisoned answers)", len(ids), elapsed, srv.Stats().Poisoned)
	text := logs.String()
	if n := strings.Count(text, `"msg":"event set aside as a dead letter"`); n != 1 ||
		!strings.Contains(text, `"event_id":"`+poison+`"`) || !strings.Contains(text, `"reason":"persistent_failure"`) {
		t.Fatalf("%d dead-letter log lines; logs:\n%s", n, text)
	}
	checkLogKeys(t, text)
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// checkLogKeys fails on a JSON log line that repeats a top-level key (a
// log pipeline keeping the last one would misread it).
func checkLogKeys(t *testing.T, text string) {
	t.Helper()
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		dec := json.NewDecoder(strings.NewReader(line))
		if _, err := dec.Token(); err != nil {
			t.Fatalf("not JSON: %s", line)
		}
		seen := map[string]bool{}
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				t.Fatalf("bad JSON %s: %v", line, err)
			}
			if seen[tok.(string)] {
				t.Errorf("duplicate key %q in %s", tok, line)
			}
			seen[tok.(string)] = true
			var v json.RawMessage
			if err := dec.Decode(&v); err != nil {
				t.Fatalf("bad JSON %s: %v", line, err)
			}
		}
	}
}

// A whole-cloud outage (every ingest request and the ping answer 503) sets
// nothing aside, however long it lasts; everything is delivered after it.
func TestWholeCloudOutageDeadLettersNothing(t *testing.T) {
	srv := newServer(t)
	b := openBuffer(t, filepath.Join(t.TempDir(), "buffer.sqlite"))
	defer b.Close()
	opts := testOptions(srv.URL)
	opts.IsolateAfterFailures = 2
	u, err := New(b, opts)
	if err != nil {
		t.Fatal(err)
	}
	srv.SetStatus(http.StatusServiceUnavailable, "0")
	ids := appendLogs(t, b, 200)
	run(t, u)
	for range 5 {
		ids = append(ids, appendLogs(t, b, 20)...)
		time.Sleep(50 * time.Millisecond)
	}
	// Far more failures than a bisection down to single events would need
	// (about 2 per level, 8 levels).
	waitFor(t, "many failed attempts", 20*time.Second, func() bool { return srv.Stats().Requests >= 150 })
	time.Sleep(500 * time.Millisecond)
	if st := deadLetters(t, b); st.Count != 0 {
		t.Fatalf("dead letters during an outage: %+v", st)
	}
	srv.SetStatus(0, "")
	waitFor(t, "drain", 20*time.Second, func() bool { return drained(b) })
	checkExactlyOnce(t, srv, ids)
	if st := deadLetters(t, b); st.Count != 0 {
		t.Fatalf("dead letters after the outage: %+v", st)
	}
	if d := srv.Drops(); len(d) != 0 {
		t.Fatalf("drops reported: %v", d)
	}
}

// A 422 naming one event: bisection isolates it, it becomes a dead letter
// (not deleted) reported as rejected_by_cloud; once the cloud accepts it, a
// replay delivers it under a new seq.
func TestRejectedEventIsDeadLetteredAndReplayed(t *testing.T) {
	srv := newServer(t)
	b := openBuffer(t, filepath.Join(t.TempDir(), "buffer.sqlite"))
	defer b.Close()
	u, err := New(b, testOptions(srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	ids := appendLogs(t, b, 100)
	bad := ids[42]
	srv.SetPoison(poisonIDs(http.StatusUnprocessableEntity, "", bad))
	run(t, u)
	waitFor(t, "the refused event set aside", 20*time.Second, func() bool { return deadLetters(t, b).Count == 1 })
	waitFor(t, "drain", 20*time.Second, func() bool { return drained(b) })
	checkExactlyOnce(t, srv, without(ids, bad))
	st := deadLetters(t, b)
	if st.Recent[0].EventID != bad || st.Recent[0].Reason != protocol.DropRejected || st.ByReason[protocol.DropRejected].Count != 1 {
		t.Fatalf("dead letters %+v", st)
	}
	oldSeq := st.Recent[0].Seq
	waitFor(t, "the drop reported", 10*time.Second, func() bool {
		return srv.Drops()[[2]string{protocol.DropRejected, protocol.ClassLog}] == 1
	})
	srv.SetPoison(nil)
	if n, err := b.ReplayDeadLetters(context.Background(), []string{bad}); err != nil || n != 1 {
		t.Fatalf("replay: %d %v", n, err)
	}
	waitFor(t, "the replayed event delivered", 10*time.Second, func() bool { return srv.Deliveries()[bad] == 1 })
	if seq := srv.Seq(bad); seq <= oldSeq {
		t.Fatalf("replayed under seq %d, was %d: want a new, higher one", seq, oldSeq)
	}
	if st := deadLetters(t, b); st.Count != 0 {
		t.Fatalf("dead letters after replay %+v", st)
	}
	checkExactlyOnce(t, srv, ids)
}

// A screenshot the cloud fails on alone (503 forever) is set aside with its
// image; the other screenshots arrive; a replay sends it with the very same
// bytes once the cloud accepts it.
func TestScreenshotDeadLetterKeepsItsImage(t *testing.T) {
	srv := newServer(t)
	b := openBuffer(t, filepath.Join(t.TempDir(), "buffer.sqlite"))
	defer b.Close()
	ctx := context.Background()
	var ids []string
	sums := map[string]string{}
	for i := range 6 {
		id, sum := appendScreenshot(t, b, []byte(fmt.Sprintf("PNG-image-%d", i)))
		ids = append(ids, id)
		sums[id] = sum
	}
	bad := ids[4]
	srv.SetPoison(poisonIDs(http.StatusInternalServerError, "", bad))
	u, err := New(b, testOptions(srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	run(t, u)
	waitFor(t, "the screenshot set aside", 20*time.Second, func() bool { return deadLetters(t, b).Count == 1 })
	waitFor(t, "drain", 10*time.Second, func() bool { return drained(b) })
	checkExactlyOnce(t, srv, without(ids, bad))
	// The image moves right after the commit that made it a dead letter.
	waitFor(t, "the image kept aside", 5*time.Second, func() bool { _, err := os.Stat(b.DeadLetterPath(bad)); return err == nil })
	if st := deadLetters(t, b); st.Recent[0].Stream != string(buffer.StreamScreenshots) || st.Recent[0].Reason != protocol.DropPersistentFailure {
		t.Fatalf("dead letter %+v", st.Recent[0])
	}
	srv.SetPoison(nil)
	if n, err := b.ReplayDeadLetters(ctx, nil); err != nil || n != 1 {
		t.Fatalf("replay: %d %v", n, err)
	}
	waitFor(t, "the replayed screenshot delivered", 10*time.Second, func() bool { return srv.Deliveries()[bad] == 1 })
	for id, sum := range sums {
		if srv.ScreenshotSHA(id) != sum {
			t.Errorf("screenshot %s: sha %q, want %q", id, srv.ScreenshotSHA(id), sum)
		}
	}
	waitFor(t, "drain after replay", 10*time.Second, func() bool { return drained(b) })
	// The image is removed right after the ack's commit, so a drained buffer
	// may still hold it for an instant; it must be gone soon after.
	waitFor(t, "the image removed after upload", 5*time.Second, func() bool {
		_, err := os.Stat(b.ScreenshotPath(bad))
		return os.IsNotExist(err)
	})
}
