package buffer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/staffcontrol/staffcontrol/internal/logtest"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

func openTest(t *testing.T, path string, mod func(*Options)) *Buffer {
	t.Helper()
	opts := Options{Config: Config{Path: path, MaxBytes: 1 << 30}, Logger: logtest.New(t), FSUsage: func(string) (float64, error) { return 0, nil }, MaintenanceInterval: 20 * time.Millisecond}
	if mod != nil {
		mod(&opts)
	}
	b, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func logRec(id string) Record {
	return Record{Class: protocol.ClassLog, Type: protocol.TypeActiveWindow, EventID: id,
		Payload: []byte(`{"event_id":"` + id + `","type":"active_window"}`)}
}

func newID() string { return uuid.Must(uuid.NewV7()).String() }

func TestAppendAssignsSequenceAndDedupes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "buffer.sqlite")
	b := openTest(t, path, nil)
	ctx := context.Background()
	a, c := newID(), newID()
	out, err := b.Append(ctx, []Record{logRec(a), logRec(c), logRec(a)})
	if err != nil {
		t.Fatal(err)
	}
	if out[0].Seq != 1 || out[1].Seq != 2 || !out[2].Duplicate {
		t.Fatalf("unexpected outcome %+v", out)
	}
	b.Close()
	b = openTest(t, path, nil)
	out, err = b.Append(ctx, []Record{logRec(newID()), logRec(c)})
	if err != nil {
		t.Fatal(err)
	}
	if out[0].Seq != 3 || !out[1].Duplicate {
		t.Fatalf("sequence did not continue after reopen: %+v", out)
	}
	if rows, _ := b.Unclaimed(StreamLogs); rows != 3 {
		t.Fatalf("unclaimed rows = %d, want 3", rows)
	}
}

func TestSequenceSurvivesDeletion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "buffer.sqlite")
	b := openTest(t, path, nil)
	ctx := context.Background()
	if _, err := b.Append(ctx, []Record{logRec(newID()), logRec(newID())}); err != nil {
		t.Fatal(err)
	}
	bt, err := b.Claim(ctx, StreamLogs, 10, 1<<20, true)
	if err != nil || bt == nil {
		t.Fatalf("claim: %v %v", bt, err)
	}
	if err := b.Ack(ctx, bt); err != nil {
		t.Fatal(err)
	}
	b.Close()
	b = openTest(t, path, nil)
	out, err := b.Append(ctx, []Record{logRec(newID())})
	if err != nil {
		t.Fatal(err)
	}
	if out[0].Seq != 3 {
		t.Fatalf("seq after emptying and reopening = %d, want 3", out[0].Seq)
	}
}

func TestClaimSurvivesReopenWithSameToken(t *testing.T) {
	path := filepath.Join(t.TempDir(), "buffer.sqlite")
	b := openTest(t, path, nil)
	ctx := context.Background()
	var ids []string
	for range 5 {
		id := newID()
		ids = append(ids, id)
		if _, err := b.Append(ctx, []Record{logRec(id)}); err != nil {
			t.Fatal(err)
		}
	}
	bt, err := b.Claim(ctx, StreamLogs, 3, 1<<20, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(bt.Events) != 3 || bt.Events[0].EventID != ids[0] {
		t.Fatalf("claimed %d events", len(bt.Events))
	}
	b.Close()
	b = openTest(t, path, nil)
	p, err := b.PendingBatch(ctx, StreamLogs, nil)
	if err != nil || p == nil {
		t.Fatalf("pending: %v %v", p, err)
	}
	if p.Token != bt.Token || len(p.Events) != 3 {
		t.Fatalf("pending batch %s with %d events, want %s with 3", p.Token, len(p.Events), bt.Token)
	}
	for i := range p.Events {
		if p.Events[i].EventID != bt.Events[i].EventID || string(p.Events[i].Payload) != string(bt.Events[i].Payload) {
			t.Fatalf("event %d differs after reopen", i)
		}
	}
	if rows, _ := b.Unclaimed(StreamLogs); rows != 2 {
		t.Fatalf("unclaimed after reopen = %d, want 2", rows)
	}
	// Reissue splits the batch under new tokens; the pieces come next, in
	// row order, then a new claim takes the two unclaimed rows.
	if _, err := b.Reissue(ctx, p, 2); err != nil {
		t.Fatal(err)
	}
	var got []string
	seen := map[string]bool{p.Token: true}
	for range 2 {
		q, err := b.PendingBatch(ctx, StreamLogs, seen)
		if err != nil || q == nil {
			t.Fatalf("reissued piece: %v %v", q, err)
		}
		seen[q.Token] = true
		for _, e := range q.Events {
			got = append(got, e.EventID)
		}
	}
	if q, err := b.PendingBatch(ctx, StreamLogs, seen); err != nil || q != nil {
		t.Fatalf("a third pending batch: %v %v", q, err)
	}
	if strings.Join(got, ",") != strings.Join(ids[:3], ",") {
		t.Fatalf("reissued pieces carry %v, want %v", got, ids[:3])
	}
	if rows, _ := b.Unclaimed(StreamLogs); rows != 2 {
		t.Fatalf("unclaimed after reissue = %d, want 2", rows)
	}
	n, err := b.Claim(ctx, StreamLogs, 10, 1<<20, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(n.Events) != 2 || n.Events[0].EventID != ids[3] || n.Events[1].EventID != ids[4] {
		t.Fatalf("reclaim: %d events", len(n.Events))
	}
}

func TestClaimBoundedByBytes(t *testing.T) {
	b := openTest(t, filepath.Join(t.TempDir(), "b.sqlite"), nil)
	ctx := context.Background()
	for range 10 {
		if _, err := b.Append(ctx, []Record{logRec(newID())}); err != nil {
			t.Fatal(err)
		}
	}
	one := int64(len(logRec(newID()).Payload)) + rowOverhead
	bt, err := b.Claim(ctx, StreamLogs, 100, 3*one, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(bt.Events) != 3 {
		t.Fatalf("claimed %d, want 3", len(bt.Events))
	}
	// A single event larger than the byte bound still goes alone.
	bt, err = b.Claim(ctx, StreamLogs, 100, 1, false)
	if err != nil || len(bt.Events) != 1 {
		t.Fatalf("claim single: %v", err)
	}
}

func TestConcurrentAppendsGetUniqueSequences(t *testing.T) {
	b := openTest(t, filepath.Join(t.TempDir(), "b.sqlite"), nil)
	ctx := context.Background()
	var mu sync.Mutex
	seen := map[int64]bool{}
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				recs := make([]Record, 10)
				for i := range recs {
					recs[i] = logRec(newID())
				}
				out, err := b.Append(ctx, recs)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for _, o := range out {
					if seen[o.Seq] {
						t.Errorf("seq %d twice", o.Seq)
					}
					seen[o.Seq] = true
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(seen) != 1600 {
		t.Fatalf("%d sequences, want 1600", len(seen))
	}
	for i := int64(1); i <= 1600; i++ {
		if !seen[i] {
			t.Fatalf("gap at %d", i)
		}
	}
}

func shotRec(t *testing.T, b *Buffer, size int) Record {
	t.Helper()
	id := newID()
	f, err := b.CreateScreenshotTemp()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(make([]byte, size)); err != nil {
		t.Fatal(err)
	}
	if err := b.PlaceScreenshot(f, id); err != nil {
		t.Fatal(err)
	}
	return Record{Class: protocol.ClassScreenshot, Type: protocol.TypeScreenshot, EventID: id,
		Payload: []byte(`{"event_id":"` + id + `"}`), FileSize: int64(size)}
}

func TestBackPressureShedsScreenshotsThenRefuses(t *testing.T) {
	const max = 100_000
	b := openTest(t, filepath.Join(t.TempDir(), "b.sqlite"), func(o *Options) { o.MaxBytes = max })
	ctx := context.Background()
	// 7 screenshots of ~10 kB: 70 % usage.
	var shots []Record
	for range 7 {
		r := shotRec(t, b, 10_000)
		shots = append(shots, r)
		if _, err := b.Append(ctx, []Record{r}); err != nil {
			t.Fatal(err)
		}
	}
	if b.Level() != LevelNormal {
		t.Fatalf("level %v at %.2f", b.Level(), b.Usage())
	}
	// Logs push usage past 80 %: screenshots are shed, oldest first.
	for b.Usage() < 0.81 {
		if _, err := b.Append(ctx, []Record{logRec(newID())}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool { rows, _ := b.Unclaimed(StreamScreenshots); return rows < 7 })
	if _, err := os.Stat(b.ScreenshotPath(shots[0].EventID)); !os.IsNotExist(err) {
		t.Fatalf("oldest screenshot file still present: %v", err)
	}
	st, err := b.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Drops) != 1 || st.Drops[0].Reason != protocol.DropDiskPressure || st.Drops[0].Class != protocol.ClassScreenshot {
		t.Fatalf("drops %+v", st.Drops)
	}
	// Fill with logs to 95 %: refused with ErrFull.
	var err2 error
	for i := 0; i < 10_000 && err2 == nil; i++ {
		_, err2 = b.Append(ctx, []Record{logRec(newID())})
	}
	if !errors.Is(err2, ErrFull) {
		t.Fatalf("got %v, want ErrFull", err2)
	}
	if b.Usage() > 1 {
		t.Fatalf("usage %.3f exceeds the limit", b.Usage())
	}
	// Drain: level returns to normal and appends succeed again.
	for {
		bt, err := b.Claim(ctx, StreamLogs, 1000, 1<<30, true)
		if err != nil {
			t.Fatal(err)
		}
		if bt == nil {
			break
		}
		if err := b.Ack(ctx, bt); err != nil {
			t.Fatal(err)
		}
	}
	if b.Level() != LevelNormal {
		t.Fatalf("level %v after drain, usage %.2f", b.Level(), b.Usage())
	}
	if _, err := b.Append(ctx, []Record{logRec(newID())}); err != nil {
		t.Fatalf("append after recovery: %v", err)
	}
}

func TestRetentionDropsOldUnclaimedRows(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	b := openTest(t, filepath.Join(t.TempDir(), "b.sqlite"), func(o *Options) {
		o.Now = clock
		o.Retention = time.Hour
		o.MaintenanceInterval = time.Hour
	})
	ctx := context.Background()
	for range 3 {
		if _, err := b.Append(ctx, []Record{logRec(newID())}); err != nil {
			t.Fatal(err)
		}
	}
	claimed, err := b.Claim(ctx, StreamLogs, 1, 1<<20, false)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	now = now.Add(2 * time.Hour)
	mu.Unlock()
	if _, err := b.Append(ctx, []Record{logRec(newID())}); err != nil {
		t.Fatal(err)
	}
	if err := b.EnforceRetention(ctx); err != nil {
		t.Fatal(err)
	}
	rows, _ := b.Unclaimed(StreamLogs)
	if rows != 1 {
		t.Fatalf("unclaimed rows after retention = %d, want 1", rows)
	}
	if p, _ := b.PendingBatch(ctx, StreamLogs, nil); p == nil || p.Token != claimed.Token {
		t.Fatal("claimed batch must survive retention")
	}
	// The drop report travels in the next logs batch, then is cleared.
	if err := b.Ack(ctx, claimed); err != nil {
		t.Fatal(err)
	}
	bt, err := b.Claim(ctx, StreamLogs, 10, 1<<20, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(bt.Drops) != 1 || bt.Drops[0].Count != 2 || bt.Drops[0].Reason != protocol.DropRetention {
		t.Fatalf("drop report %+v", bt.Drops)
	}
	if err := b.Ack(ctx, bt); err != nil {
		t.Fatal(err)
	}
	if pend, _ := b.HasPendingDrops(ctx); pend {
		t.Fatal("drops still pending after ack")
	}
}

func TestOrphanScreenshotFilesRemovedAtOpen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "b.sqlite")
	b := openTest(t, path, nil)
	kept := shotRec(t, b, 10)
	if _, err := b.Append(context.Background(), []Record{kept}); err != nil {
		t.Fatal(err)
	}
	orphan := shotRec(t, b, 10) // placed, never committed
	tmp, _ := b.CreateScreenshotTemp()
	tmp.Close()
	b.Close()
	b = openTest(t, path, nil)
	if _, err := os.Stat(b.ScreenshotPath(kept.EventID)); err != nil {
		t.Fatalf("committed screenshot removed: %v", err)
	}
	if _, err := os.Stat(b.ScreenshotPath(orphan.EventID)); !os.IsNotExist(err) {
		t.Fatal("orphan screenshot kept")
	}
	if _, err := os.Stat(tmp.Name()); !os.IsNotExist(err) {
		t.Fatal("temporary file kept")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestOpenRejectsBadOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"no path", Options{Config: Config{MaxBytes: 1}}},
		{"no size", Options{Config: Config{Path: filepath.Join(t.TempDir(), "x")}}},
		{"bad sync", Options{Config: Config{Path: filepath.Join(t.TempDir(), "x"), MaxBytes: 1, Synchronous: "OFF"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if b, err := Open(context.Background(), tc.opts); err == nil {
				b.Close()
				t.Fatal("expected error")
			}
		})
	}
	_ = fmt.Sprint()
}
