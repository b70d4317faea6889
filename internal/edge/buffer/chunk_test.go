package buffer

import (
	"context"
	"database/sql"
	"path/filepath"
	"sync"
	"testing"
)

// TestChunkedClaimAndAck: a batch larger than WriteChunkRows is claimed and
// deleted in several transactions; what the batch holds, the counters and
// the rows left are the same as for a single transaction, table-driven over
// batch sizes around the chunk size.
func TestChunkedClaimAndAck(t *testing.T) {
	for _, tc := range []struct {
		name             string
		rows, max, chunk int
		maxBytes         int64
		want             int
	}{
		{"below one chunk", 10, 100, 16, 1 << 20, 10},
		{"exactly one chunk", 16, 16, 16, 1 << 20, 16},
		{"several chunks", 100, 100, 16, 1 << 20, 100},
		{"max not a multiple", 100, 37, 16, 1 << 20, 37},
		{"bytes stop in a later chunk", 100, 100, 16, 40 * (rowOverhead + 60), 40},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			b := openTest(t, filepath.Join(t.TempDir(), "b.sqlite"), func(o *Options) { o.WriteChunkRows = tc.chunk })
			var ids []string
			for range tc.rows {
				id := newID()
				ids = append(ids, id)
				if _, err := b.Append(ctx, []Record{{Class: "log", Type: "active_window", EventID: id, Payload: make60(id)}}); err != nil {
					t.Fatal(err)
				}
			}
			bt, err := b.Claim(ctx, StreamLogs, tc.max, tc.maxBytes, true)
			if err != nil || bt == nil {
				t.Fatalf("claim: %v %v", bt, err)
			}
			if len(bt.Events) != tc.want {
				t.Fatalf("batch holds %d events, want %d", len(bt.Events), tc.want)
			}
			for i, e := range bt.Events {
				if e.EventID != ids[i] {
					t.Fatalf("event %d is %s, want %s (oldest first)", i, e.EventID, ids[i])
				}
			}
			if rows, _ := b.Unclaimed(StreamLogs); rows != int64(tc.rows-tc.want) {
				t.Fatalf("unclaimed = %d, want %d", rows, tc.rows-tc.want)
			}
			// The stored batch record matches what Claim returned.
			pb, err := b.PendingBatch(ctx, StreamLogs, nil)
			if err != nil || pb == nil || pb.Token != bt.Token || len(pb.Events) != tc.want || pb.Bytes != bt.Bytes {
				t.Fatalf("pending batch %+v differs from claimed %d events, %d bytes: %v", pb, tc.want, bt.Bytes, err)
			}
			if err := b.Ack(ctx, bt); err != nil {
				t.Fatal(err)
			}
			for _, e := range bt.Events {
				if has, _ := b.HasEvent(ctx, e.EventID); has {
					t.Fatalf("event %s still buffered after ack", e.EventID)
				}
			}
			st, err := b.Stats(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if got := st.Tables["agent_data_buffer"]["log"].Rows; got != int64(tc.rows-tc.want) {
				t.Fatalf("rows after ack = %d, want %d", got, tc.rows-tc.want)
			}
		})
	}
}

func make60(id string) []byte {
	p := []byte(`{"event_id":"` + id + `","type":"x"}`)
	for len(p) < 60 {
		p = append(p, ' ')
	}
	return p[:60]
}

// TestAckInterruptedBetweenChunksIsCompletedAtOpen reproduces the state a
// crash leaves between two delete chunks of an Ack (the batch record and
// the first chunk gone, later rows still below the claim cursor): the next Open
// deletes those rows, so they are neither resent nor counted.
func TestAckInterruptedBetweenChunksIsCompletedAtOpen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "b.sqlite")
	b := openTest(t, path, func(o *Options) { o.WriteChunkRows = 8 })
	keep := newID()
	for range 30 {
		if _, err := b.Append(ctx, []Record{logRec(newID())}); err != nil {
			t.Fatal(err)
		}
	}
	bt, err := b.Claim(ctx, StreamLogs, 30, 1<<20, false)
	if err != nil || len(bt.Events) != 30 {
		t.Fatalf("claim: %v %v", bt, err)
	}
	if _, err := b.Append(ctx, []Record{logRec(keep)}); err != nil {
		t.Fatal(err)
	}
	// What Ack's first transaction commits.
	if err := b.withTx(ctx, func(tx *sql.Tx) error {
		if _, err := b.onTx(tx).DeleteBatch(ctx, bt.Token); err != nil {
			return err
		}
		_, err := tx.Exec(b.sq("delete_rows_chunk", StreamLogs), bt.FirstID, bt.LastID, 8)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	b.Close()
	b = openTest(t, path, nil)
	if pb, err := b.PendingBatch(ctx, StreamLogs, nil); err != nil || pb != nil {
		t.Fatalf("an acknowledged batch is pending again: %+v %v", pb, err)
	}
	st, err := b.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c := st.Tables["agent_data_buffer"]["log"]; c.Rows != 1 || c.ClaimedRows != 0 {
		t.Fatalf("after reopen: %+v, want the one unsent row", c)
	}
	if has, _ := b.HasEvent(ctx, keep); !has {
		t.Fatal("an unsent event was removed")
	}
	for _, e := range bt.Events {
		if has, _ := b.HasEvent(ctx, e.EventID); has {
			t.Fatalf("acknowledged event %s survived reopen", e.EventID)
		}
	}
}

// TestAppendsInterleaveWithChunkedJobs: appends and chunked claims/acks
// running at once lose nothing and never place one event in two batches.
func TestAppendsInterleaveWithChunkedJobs(t *testing.T) {
	ctx := context.Background()
	b := openTest(t, filepath.Join(t.TempDir(), "b.sqlite"), func(o *Options) { o.WriteChunkRows = 7 })
	const writers, per = 4, 300
	var wg sync.WaitGroup
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range per / 3 {
				if _, err := b.Append(ctx, []Record{logRec(newID()), logRec(newID()), logRec(newID())}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	seen := map[string]bool{}
	var mu sync.Mutex
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	uploader := func() {
		for {
			bt, err := b.Claim(ctx, StreamLogs, 50, 1<<20, false)
			if err != nil {
				t.Error(err)
				return
			}
			if bt == nil {
				select {
				case <-done:
					if r, _ := b.Unclaimed(StreamLogs); r == 0 {
						return
					}
				default:
				}
				continue
			}
			mu.Lock()
			for _, e := range bt.Events {
				if seen[e.EventID] {
					t.Errorf("event %s claimed twice", e.EventID)
				}
				seen[e.EventID] = true
			}
			mu.Unlock()
			if err := b.Ack(ctx, bt); err != nil {
				t.Error(err)
				return
			}
		}
	}
	var up sync.WaitGroup
	for range 2 {
		up.Add(1)
		go func() { defer up.Done(); uploader() }()
	}
	up.Wait()
	if len(seen) != writers*per {
		t.Fatalf("uploaded %d distinct events, want %d", len(seen), writers*per)
	}
	st, err := b.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c := st.Tables["agent_data_buffer"]["log"]; c.Rows != 0 || c.ClaimedRows != 0 {
		t.Fatalf("rows left: %+v", c)
	}
}

// TestLazyAckRestoresSynchronous: Ack commits with synchronous=OFF on the
// one connection; afterwards the connection must be back at the configured
// level, or every later append would be acknowledged without an fsync.
func TestLazyAckRestoresSynchronous(t *testing.T) {
	for _, tc := range []struct {
		sync string
		want int
	}{{"FULL", 2}, {"EXTRA", 3}, {"NORMAL", 1}} {
		t.Run(tc.sync, func(t *testing.T) {
			ctx := context.Background()
			b := openTest(t, filepath.Join(t.TempDir(), "b.sqlite"), func(o *Options) {
				o.Synchronous = tc.sync
				o.WriteChunkRows = 4
			})
			for range 10 {
				if _, err := b.Append(ctx, []Record{logRec(newID())}); err != nil {
					t.Fatal(err)
				}
			}
			bt, err := b.Claim(ctx, StreamLogs, 10, 1<<20, false)
			if err != nil || bt == nil {
				t.Fatalf("claim: %v %v", bt, err)
			}
			if err := b.Ack(ctx, bt); err != nil {
				t.Fatal(err)
			}
			var level int
			if err := b.db.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&level); err != nil {
				t.Fatal(err)
			}
			if level != tc.want {
				t.Fatalf("synchronous after Ack = %d, want %d", level, tc.want)
			}
			if r, _ := b.Stats(ctx); r.Tables["agent_data_buffer"]["log"].Rows != 0 {
				t.Fatalf("rows left after Ack: %+v", r.Tables)
			}
		})
	}
}
