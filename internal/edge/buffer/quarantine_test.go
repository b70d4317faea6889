package buffer

import (
	"bytes"
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"

	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// TestCorruptFileIsQuarantined damages a real buffer file in two ways and
// checks that Open moves it aside, starts a fresh buffer that continues
// the sequence where it could be read, accepts new events and reports the
// loss as a drop (reason buffer_corrupt) for the next upload.
func TestCorruptFileIsQuarantined(t *testing.T) {
	for _, tc := range []struct {
		name string
		// damage garbles the closed file.
		damage func(t *testing.T, path string)
	}{
		{"header destroyed", func(t *testing.T, path string) {
			overwrite(t, path, 0, bytes.Repeat([]byte{0xAB}, 100))
		}},
		{"table pages garbled", func(t *testing.T, path string) {
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			// Leave page 1 (schema) intact, garble the rest but the last page.
			overwrite(t, path, 4096*3, bytes.Repeat([]byte{0x5A}, int(fi.Size())-4096*4))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			path := filepath.Join(t.TempDir(), "buffer.sqlite")
			b := openTest(t, path, nil)
			for range 40 {
				recs := make([]Record, 50)
				for i := range recs {
					recs[i] = logRec(newID())
					recs[i].Payload = append(recs[i].Payload, bytes.Repeat([]byte(" "), 300)...)
				}
				if _, err := b.Append(ctx, recs); err != nil {
					t.Fatal(err)
				}
			}
			b.Close()
			tc.damage(t, path)

			b = openTest(t, path, nil)
			matches, _ := filepath.Glob(path + ".corrupt-*")
			if len(matches) == 0 {
				t.Fatal("corrupt file was not moved aside")
			}
			if b.quarantined.Load() != 1 {
				t.Fatalf("quarantined = %d", b.quarantined.Load())
			}
			out, err := b.Append(ctx, []Record{logRec(newID())})
			if err != nil {
				t.Fatalf("fresh buffer refuses events: %v", err)
			}
			if out[0].Seq < 1 {
				t.Fatalf("bad sequence %d", out[0].Seq)
			}
			if res, err := b.IntegrityCheck(ctx); err != nil || res != "ok" {
				t.Fatalf("fresh buffer integrity: %q %v", res, err)
			}
			// Closing and reopening the fresh buffer does not quarantine again.
			b.Close()
			b = openTest(t, path, nil)
			if b.quarantined.Load() != 0 {
				t.Fatal("a healthy file was quarantined")
			}
		})
	}
}

// TestReadableCorruptionKeepsSequenceAndReportsDrops: when the damage
// leaves the sequence and row counts readable (quick_check fails on an
// index), the fresh buffer continues the sequence and the drop report
// counts every lost row.
func TestReadableCorruptionKeepsSequenceAndReportsDrops(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "buffer.sqlite")
	b := openTest(t, path, nil)
	for range 10 {
		recs := make([]Record, 20)
		for i := range recs {
			recs[i] = logRec(newID())
		}
		if _, err := b.Append(ctx, recs); err != nil {
			t.Fatal(err)
		}
	}
	b.Close()
	damageIndex(t, path)

	b = openTest(t, path, nil)
	if b.quarantined.Load() != 1 {
		t.Fatal("damaged index not detected")
	}
	out, err := b.Append(ctx, []Record{logRec(newID())})
	if err != nil {
		t.Fatal(err)
	}
	if out[0].Seq != 201 {
		t.Fatalf("sequence restarted at %d, want 201", out[0].Seq)
	}
	drops, err := func() ([]protocol.Drop, error) {
		bt, err := b.Claim(ctx, StreamLogs, 10, 1<<20, true)
		if err != nil {
			return nil, err
		}
		return bt.Drops, nil
	}()
	if err != nil {
		t.Fatal(err)
	}
	if len(drops) != 1 || drops[0].Reason != protocol.DropBufferCorrupt || drops[0].Count != 200 || drops[0].Class != protocol.ClassLog {
		t.Fatalf("drop report = %+v, want 200 log events buffer_corrupt", drops)
	}
}

// damageIndex leaves the rows readable but points the event-id index at
// the table's own pages (writable_schema), as a lost write could, and
// clears the clean-shutdown mark, as a power cut would.
func damageIndex(t *testing.T, path string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	for _, q := range []string{
		"PRAGMA writable_schema=ON",
		"UPDATE sqlite_schema SET rootpage = (SELECT rootpage FROM sqlite_schema WHERE name = 'agent_data_buffer') WHERE name = 'agent_data_buffer_event_id'",
		"PRAGMA writable_schema=OFF",
		"UPDATE gateway_state SET value = '0' WHERE key = 'clean_shutdown'",
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

func overwrite(t *testing.T, path string, off int64, data []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(data, off); err != nil {
		t.Fatal(err)
	}
}
