package buffer

import (
	"context"
	"database/sql"
	"path/filepath"
	"slices"
	"testing"

	_ "modernc.org/sqlite"
)

func traced(tp string, ids ...string) []Record {
	out := make([]Record, len(ids))
	for i, id := range ids {
		out[i] = logRec(id)
		out[i].TraceParent = tp
	}
	return out
}

// A traced append's context is stored for its events' sequence range,
// survives a reopen, is found for a batch holding any of them (and only
// them), and goes with the acknowledgement.
func TestTraceParentsFollowTheirEvents(t *testing.T) {
	const tp1 = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	const tp2 = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	path := filepath.Join(t.TempDir(), "buffer.sqlite")
	b := openTest(t, path, nil)
	ctx := context.Background()
	dup := newID()
	for _, recs := range [][]Record{
		traced("", newID(), newID()),       // seq 1–2, untraced
		traced(tp1, newID(), dup),          // 3–4
		traced(tp2, newID(), dup, newID()), // 5–6 (the duplicate takes none)
		traced(tp1, dup),                   // only a duplicate: nothing stored
	} {
		if _, err := b.Append(ctx, recs); err != nil {
			t.Fatal(err)
		}
	}
	b.Close()
	b = openTest(t, path, nil)
	tests := []struct {
		max  int
		want []string
	}{{2, nil}, {3, []string{tp1, tp2}}, {3, []string{tp2}}}
	var batches []*Batch
	for i, tc := range tests {
		bt, err := b.Claim(ctx, StreamLogs, tc.max, 1<<20, false)
		if err != nil {
			t.Fatal(err)
		}
		got, err := b.TraceParents(ctx, bt, 16)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("batch %d (seq %d…): trace parents %q, want %q", i, bt.Events[0].Seq, got, tc.want)
		}
		batches = append(batches, bt)
	}
	if got, _ := b.TraceParents(ctx, batches[1], 1); !slices.Equal(got, []string{tp1}) {
		t.Errorf("max not applied: %q", got)
	}
	for _, bt := range batches {
		if err := b.Ack(ctx, bt); err != nil {
			t.Fatal(err)
		}
	}
	b.Close()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM trace_contexts`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("trace contexts left after the acks: %d (%v)", n, err)
	}
}

// A buffer file from before trace_contexts opens and traces from then on.
func TestOldFileGainsTraceContexts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "buffer.sqlite")
	b := openTest(t, path, nil)
	if _, err := b.Append(context.Background(), traced("", newID())); err != nil {
		t.Fatal(err)
	}
	b.Close()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`DROP TABLE trace_contexts`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	b = openTest(t, path, nil)
	if _, err := b.Append(context.Background(), traced("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", newID())); err != nil {
		t.Fatal(err)
	}
	bt, err := b.Claim(context.Background(), StreamLogs, 10, 1<<20, false)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := b.TraceParents(context.Background(), bt, 4); err != nil || len(got) != 1 {
		t.Fatalf("trace parents %q, %v", got, err)
	}
}

// BenchmarkAppendTraced is the buffer's cost of tracing: agent batches of
// 50 events appended by 8 writers, untraced (tracing off: no row) and
// traced (one trace_contexts row per append). b.N counts events.
func BenchmarkAppendTraced(b *testing.B) {
	for _, tp := range []string{"", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"} {
		name := "tracing=off"
		if tp != "" {
			name = "tracing=on"
		}
		b.Run(name, func(b *testing.B) {
			buf, err := Open(context.Background(), Options{Config: Config{Path: filepath.Join(b.TempDir(), "b.sqlite"), MaxBytes: 1 << 40},
				FSUsage: func(string) (float64, error) { return 0, nil }})
			if err != nil {
				b.Fatal(err)
			}
			defer buf.Close()
			const batch = 50
			b.SetParallelism(8)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				recs := make([]Record, 0, batch)
				for pb.Next() {
					id := newID()
					r := logRec(id)
					r.TraceParent = tp
					recs = append(recs, r)
					if len(recs) == batch {
						if _, err := buf.Append(context.Background(), recs); err != nil {
							b.Error(err)
							return
						}
						recs = recs[:0]
					}
				}
			})
		})
	}
}
