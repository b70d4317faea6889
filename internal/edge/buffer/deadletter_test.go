package buffer

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// claimSingles claims every unclaimed row of s as one-event batches.
func claimSingles(t *testing.T, b *Buffer, s Stream) []*Batch {
	t.Helper()
	var out []*Batch
	for {
		bt, err := b.Claim(context.Background(), s, 1, 1<<30, false)
		if err != nil {
			t.Fatal(err)
		}
		if bt == nil {
			return out
		}
		out = append(out, bt)
	}
}

func dropTotal(t *testing.T, b *Buffer, reason, class string) (total, pending int64) {
	t.Helper()
	st, err := b.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range st.Drops {
		if d.Reason == reason && d.Class == class {
			return d.Total, d.Pending
		}
	}
	return 0, 0
}

// A dead-lettered event leaves its stream (no longer unsent), is counted as
// a pending drop, survives a restart with its payload, reason and error,
// and a replay puts it back at the end of its stream under a new seq.
func TestDeadLetterMoveSurviveRestartReplay(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "buffer.sqlite")
	reg := prometheus.NewRegistry()
	b := openTest(t, path, func(o *Options) { o.Registerer = reg })
	ids := []string{newID(), newID(), newID()}
	for _, id := range ids {
		if _, err := b.Append(ctx, []Record{logRec(id)}); err != nil {
			t.Fatal(err)
		}
	}
	batches := claimSingles(t, b, StreamLogs)
	if len(batches) != 3 {
		t.Fatalf("%d batches", len(batches))
	}
	poison := batches[0]
	oldSeq := poison.Events[0].Seq
	cause := "POST /v2/ingest/logs: 503 Service Unavailable: " + strings.Repeat("x", 5000)
	if err := b.DeadLetter(ctx, poison, protocol.DropPersistentFailure, cause); err != nil {
		t.Fatal(err)
	}
	// The stream no longer holds it: the oldest unsent row is the second.
	if rows := b.counters[protocol.ClassLog].rows; rows != 2 {
		t.Fatalf("log rows %d, want 2", rows)
	}
	if p, _ := b.PendingBatch(ctx, StreamLogs, nil); p == nil || p.Token != batches[1].Token {
		t.Fatalf("next pending batch %+v, want the second", p)
	}
	if total, pending := dropTotal(t, b, protocol.DropPersistentFailure, protocol.ClassLog); total != 1 || pending != 1 {
		t.Fatalf("drops total %d pending %d, want 1 1", total, pending)
	}
	if v := counterValue(t, b.m.deadMoved.WithLabelValues(protocol.DropPersistentFailure)); v != 1 {
		t.Fatalf("moved metric %v", v)
	}
	if v := counterValue(t, b.m.dropped.WithLabelValues(protocol.DropPersistentFailure, protocol.ClassLog)); v != 1 {
		t.Fatalf("dropped metric %v", v)
	}
	b.Close()

	b = openTest(t, path, nil)
	st, err := b.DeadLetters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Count != 1 || st.Bytes <= 0 || st.ByReason[protocol.DropPersistentFailure].Count != 1 || len(st.Recent) != 1 ||
		st.Recent[0].EventID != ids[0] || st.Recent[0].Seq != oldSeq || st.Recent[0].Type != protocol.TypeActiveWindow ||
		st.Recent[0].Stream != string(StreamLogs) || st.Oldest.IsZero() {
		t.Fatalf("after restart: %+v", st)
	}
	if len(st.LastError) != maxDeadLetterError || !strings.HasPrefix(st.LastError, "POST /v2/ingest/logs: 503") {
		t.Fatalf("last error %d bytes: %.60q", len(st.LastError), st.LastError)
	}
	b.mu.Lock()
	deadBytes := b.deadBytes
	b.mu.Unlock()
	if deadBytes != st.Bytes {
		t.Fatalf("accounted dead bytes %d, table %d", deadBytes, st.Bytes)
	}
	if n, err := b.ReplayDeadLetters(ctx, []string{newID()}); err != nil || n != 0 {
		t.Fatalf("replay of an unknown id: %d %v", n, err)
	}
	n, err := b.ReplayDeadLetters(ctx, []string{ids[0], ids[0]}) // a repeated id counts once
	if err != nil || n != 1 {
		t.Fatalf("replay: %d %v", n, err)
	}
	if st, _ := b.DeadLetters(ctx); st.Count != 0 || len(st.Recent) != 0 {
		t.Fatalf("dead letters after replay %+v", st)
	}
	// The two pending singles come first, then the replayed event with a new
	// seq above every earlier one.
	var got []StoredEvent
	for {
		p, err := b.PendingBatch(ctx, StreamLogs, nil)
		if err != nil {
			t.Fatal(err)
		}
		if p == nil {
			p, err = b.Claim(ctx, StreamLogs, 10, 1<<30, false)
			if err != nil {
				t.Fatal(err)
			}
			if p == nil {
				break
			}
		}
		got = append(got, p.Events...)
		if err := b.Ack(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	if len(got) != 3 || got[2].EventID != ids[0] || got[2].Seq <= batches[2].Events[0].Seq {
		t.Fatalf("delivery order %+v", got)
	}
	if string(got[2].Payload) != string(logRec(ids[0]).Payload) {
		t.Fatalf("payload changed: %s", got[2].Payload)
	}
	// The next append continues after the replayed seq.
	out, err := b.Append(ctx, []Record{logRec(newID())})
	if err != nil || out[0].Seq != got[2].Seq+1 {
		t.Fatalf("append after replay: %+v %v (replayed seq %d)", out, err, got[2].Seq)
	}
}

// A screenshot dead letter keeps its image aside (not removed as an orphan
// at Open) and gets it back on replay; a device event keeps its columns.
func TestDeadLetterScreenshotAndDevice(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "buffer.sqlite")
	b := openTest(t, path, nil)
	shot := newID()
	f, err := b.CreateScreenshotTemp()
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("PNGDATA")
	if err := b.PlaceScreenshot(f, shot); err != nil {
		t.Fatal(err)
	}
	dev := newID()
	_, err = b.Append(ctx, []Record{
		{Class: protocol.ClassScreenshot, Type: protocol.TypeScreenshot, EventID: shot, Payload: []byte(`{"event_id":"` + shot + `"}`), FileSize: 7},
		{Class: protocol.ClassDevice, Type: "usb", EventID: dev, Payload: []byte(`{"event_id":"` + dev + `"}`), DeviceSerial: "SN-1", AdapterType: "usb"},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []Stream{StreamScreenshots, StreamDevice} {
		for _, bt := range claimSingles(t, b, s) {
			if err := b.DeadLetter(ctx, bt, protocol.DropRejected, "422"); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := os.Stat(b.ScreenshotPath(shot)); !os.IsNotExist(err) {
		t.Fatalf("image still in screenshots/: %v", err)
	}
	b.Close()
	b = openTest(t, path, nil)
	if data, err := os.ReadFile(b.DeadLetterPath(shot)); err != nil || string(data) != "PNGDATA" {
		t.Fatalf("dead letter image after restart: %q %v", data, err)
	}
	if st, _ := b.Stats(ctx); st.Bytes == 0 {
		t.Fatal("dead letters not counted in the buffer's bytes")
	}
	if n, err := b.ReplayDeadLetters(ctx, nil); err != nil || n != 2 {
		t.Fatalf("replay all: %d %v", n, err)
	}
	if data, err := os.ReadFile(b.ScreenshotPath(shot)); err != nil || string(data) != "PNGDATA" {
		t.Fatalf("image after replay: %q %v", data, err)
	}
	bt, err := b.Claim(ctx, StreamScreenshots, 10, 1<<30, false)
	if err != nil || bt == nil || len(bt.Events) != 1 || bt.Events[0].EventID != shot || bt.Events[0].FileSize != 7 {
		t.Fatalf("replayed screenshot batch %+v %v", bt, err)
	}
	var serial, adapter string
	if err := b.db.QueryRowContext(ctx, `SELECT device_id, adapter_type FROM device_data_buffer WHERE event_id = ?`, dev).Scan(&serial, &adapter); err != nil || serial != "SN-1" || adapter != "usb" {
		t.Fatalf("replayed device row: %q %q %v", serial, adapter, err)
	}
}

// A crash between a dead-letter commit and the image move (or a replay's
// move and its commit) is finished at Open.
func TestDeadLetterImageMoveFinishedAtOpen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "buffer.sqlite")
	b := openTest(t, path, nil)
	shot := newID()
	f, _ := b.CreateScreenshotTemp()
	f.WriteString("IMG")
	if err := b.PlaceScreenshot(f, shot); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Append(ctx, []Record{{Class: protocol.ClassScreenshot, Type: protocol.TypeScreenshot, EventID: shot,
		Payload: []byte(`{}`), FileSize: 3}}); err != nil {
		t.Fatal(err)
	}
	bt := claimSingles(t, b, StreamScreenshots)[0]
	if err := b.DeadLetter(ctx, bt, protocol.DropRejected, "422"); err != nil {
		t.Fatal(err)
	}
	b.Close()
	// As if the rename had not happened.
	if err := os.Rename(filepath.Join(filepath.Dir(path), "dead-letters", shot), filepath.Join(filepath.Dir(path), "screenshots", shot)); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(filepath.Dir(path), "dead-letters", newID()), []byte("orphan"), 0o600)
	b = openTest(t, path, nil)
	if _, err := os.Stat(b.DeadLetterPath(shot)); err != nil {
		t.Fatalf("image not moved aside at Open: %v", err)
	}
	if entries, _ := os.ReadDir(b.deadDir); len(entries) != 1 {
		t.Fatalf("dead-letter directory holds %d files, want 1 (orphan removed)", len(entries))
	}
}

// Over the count or byte bound the oldest dead letters are purged, counted
// and logged; past the retention they expire.
func TestDeadLetterBoundsAndExpiry(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	var logs bytes.Buffer
	var logMu sync.Mutex
	b := openTest(t, filepath.Join(t.TempDir(), "buffer.sqlite"), func(o *Options) {
		o.Now = clock
		o.DeadLetterMaxEvents = 3
		o.MaintenanceInterval = time.Hour
		o.Logger = slog.New(slog.NewJSONHandler(lockedWriter{&logMu, &logs}, nil))
	})
	var ids []string
	for range 5 {
		id := newID()
		ids = append(ids, id)
		if _, err := b.Append(ctx, []Record{logRec(id)}); err != nil {
			t.Fatal(err)
		}
	}
	for _, bt := range claimSingles(t, b, StreamLogs) {
		if err := b.DeadLetter(ctx, bt, protocol.DropRejected, "400"); err != nil {
			t.Fatal(err)
		}
	}
	st, err := b.DeadLetters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Count != 3 || st.Recent[0].EventID != ids[4] || st.Recent[2].EventID != ids[2] {
		t.Fatalf("after bound: %+v", st)
	}
	if v := counterValue(t, b.m.deadPurged.WithLabelValues(purgeBound)); v != 2 {
		t.Fatalf("purged (bound) %v, want 2", v)
	}
	// Every purged one was still reported as a drop.
	if total, _ := dropTotal(t, b, protocol.DropRejected, protocol.ClassLog); total != 5 {
		t.Fatalf("drops %d, want 5", total)
	}
	// The byte bound: one dead letter's bytes.
	b.opts.DeadLetterMaxBytes = st.Recent[0].size(t, b)
	if n, err := b.purgeDeadLetters(ctx); err != nil || n != 2 {
		t.Fatalf("byte bound purge: %d %v", n, err)
	}
	mu.Lock()
	now = now.Add(8 * 24 * time.Hour)
	mu.Unlock()
	if n, err := b.purgeDeadLetters(ctx); err != nil || n != 1 {
		t.Fatalf("expiry purge: %d %v", n, err)
	}
	if v := counterValue(t, b.m.deadPurged.WithLabelValues(purgeExpired)); v != 1 {
		t.Fatalf("purged (expired) %v, want 1", v)
	}
	b.mu.Lock()
	rows, bytes := b.deadRows, b.deadBytes
	b.mu.Unlock()
	if rows != 0 || bytes != 0 {
		t.Fatalf("dead counters %d %d after purging all", rows, bytes)
	}
	logMu.Lock()
	text := logs.String()
	logMu.Unlock()
	if !strings.Contains(text, `"msg":"dead letters purged"`) || strings.Count(text, `"msg":"event set aside as a dead letter"`) != 5 {
		t.Fatalf("logs:\n%s", text)
	}
	checkNoDuplicateKeys(t, text)
}

// size reads a dead letter's accounted size.
func (d DeadLetterInfo) size(t *testing.T, b *Buffer) int64 {
	t.Helper()
	var n int64
	if err := b.db.QueryRow(`SELECT size FROM dead_letters WHERE event_id = ?`, d.EventID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// checkNoDuplicateKeys fails on a JSON log line that repeats a top-level key.
func checkNoDuplicateKeys(t *testing.T, text string) {
	t.Helper()
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		if line == "" {
			continue
		}
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
			k := tok.(string)
			if seen[k] {
				t.Errorf("duplicate key %q in log line %s", k, line)
			}
			seen[k] = true
			var v json.RawMessage
			if err := dec.Decode(&v); err != nil {
				t.Fatalf("bad JSON %s: %v", line, err)
			}
		}
	}
}

// The back-pressure log lines carry one "level" (slog's) and the buffer's
// level as buffer_level.
func TestBackPressureLogHasNoDuplicateKeys(t *testing.T) {
	var mu sync.Mutex
	var logs bytes.Buffer
	var fs sync.Mutex
	usage := 0.97
	b := openTest(t, filepath.Join(t.TempDir(), "buffer.sqlite"), func(o *Options) {
		o.Logger = slog.New(slog.NewJSONHandler(lockedWriter{&mu, &logs}, nil))
		o.FSUsage = func(string) (float64, error) { fs.Lock(); defer fs.Unlock(); return usage, nil }
	})
	deadline := time.Now().Add(5 * time.Second)
	for b.Level() != LevelCritical && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	fs.Lock()
	usage = 0
	fs.Unlock()
	// The level changes just before its log line is written: wait for both.
	var text string
	for {
		mu.Lock()
		text = logs.String()
		mu.Unlock()
		if (b.Level() == LevelNormal && strings.Contains(text, `"buffer_level":"normal"`)) || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !strings.Contains(text, `"level":"ERROR","msg":"buffer usage rose to a back-pressure level","buffer_level":"critical"`) ||
		!strings.Contains(text, `"buffer_level":"normal"`) {
		t.Fatalf("logs:\n%s", text)
	}
	checkNoDuplicateKeys(t, text)
}

// counterValue reads a counter.
func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
