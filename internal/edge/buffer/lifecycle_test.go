package buffer

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/lifecycle"
	"github.com/staffcontrol/staffcontrol/internal/lifecycle/lifecycletest"
	"github.com/staffcontrol/staffcontrol/internal/logtest"
)

func TestBufferKeepsTheLifecycleContract(t *testing.T) {
	lifecycletest.Conformance(t, func(t *testing.T) lifecycle.Service {
		b, err := New(context.Background(), Options{Config: Config{Path: filepath.Join(t.TempDir(), "b.sqlite"), MaxBytes: 1 << 20}, Logger: logtest.New(t), MaintenanceInterval: 10 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Stop(context.Background()) })
		return b
	})
}

// An unstarted buffer reads but does not write; once stopped, writes fail
// with ErrClosed.
func TestBufferWritesAfterStartOnly(t *testing.T) {
	ctx := context.Background()
	b, err := New(ctx, Options{Config: Config{Path: filepath.Join(t.TempDir(), "b.sqlite"), MaxBytes: 1 << 20}, Logger: logtest.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.State(ctx, "anything"); err != nil {
		t.Fatalf("read before Start: %v", err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := b.Append(short, []Record{logRec(newID())}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("append before Start: %v, want it to wait", err)
	}
	if err := b.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Append(ctx, []Record{logRec(newID())}); err != nil {
		t.Fatalf("append after Start: %v", err)
	}
	if err := b.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Append(ctx, []Record{logRec(newID())}); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after Stop: %v, want ErrClosed", err)
	}
}
