package buffer

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestFileHeldExclusively: the buffer holds its file with an exclusive
// lock (WAL index in heap memory, so no -shm file), a second buffer on the
// same path — say a second gateway process with the same buffer.path — is
// refused with a message naming the cause, and the file opens again once
// the first is closed.
func TestFileHeldExclusively(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "buffer.sqlite")
	b := openTest(t, path, nil)
	if _, err := b.Append(ctx, []Record{logRec(newID())}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + "-shm"); !os.IsNotExist(err) {
		t.Fatalf("a -shm file exists (%v): the WAL index is not in heap memory", err)
	}
	if _, err := os.Stat(path + "-wal"); err != nil {
		t.Fatalf("no WAL file: %v", err)
	}
	// Refused after the busy timeout (10 s): the lock is never released.
	b2, err := Open(ctx, Options{Config: Config{Path: path, MaxBytes: 1 << 20}, FSUsage: func(string) (float64, error) { return 0, nil }})
	if err == nil {
		b2.Close()
		t.Fatal("a second buffer opened the same file")
	}
	if !strings.Contains(err.Error(), "in use by another process") {
		t.Fatalf("refusal does not name the cause: %v", err)
	}
	b.Close()
	start := time.Now()
	b = openTest(t, path, nil)
	if st, err := b.Stats(ctx); err != nil || st.Tables["agent_data_buffer"]["log"].Rows != 1 {
		t.Fatalf("after reopen: %+v %v", st, err)
	}
	t.Logf("reopened in %s", time.Since(start))
	// A file already in WAL mode must also take the exclusive lock before
	// WAL is entered, or the reopened buffer maps a -shm index.
	if _, err := b.Append(ctx, []Record{logRec(newID())}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + "-shm"); !os.IsNotExist(err) {
		t.Fatalf("a -shm file exists after reopening (%v): the WAL index is not in heap memory", err)
	}
}
