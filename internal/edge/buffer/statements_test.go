package buffer

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/staffcontrol/staffcontrol/internal/edge/buffer/bufferdb"
)

// TestOnTxBindsOncePerTransaction: in a transaction, a typed statement is
// the one prepared at open, bound to the transaction at its first use and
// reused after (as the group commit's inserts were with tx.Stmt); every
// typed statement was prepared at open.
func TestOnTxBindsOncePerTransaction(t *testing.T) {
	ctx := context.Background()
	b := openTest(t, filepath.Join(t.TempDir(), "b.sqlite"), nil)
	if len(b.prepared) < 30 {
		t.Fatalf("%d statements prepared at open, want every typed one", len(b.prepared))
	}
	var bound int
	var values []string
	err := b.withTx(ctx, func(tx *sql.Tx) error {
		ts := &txStmts{tx: tx, prepared: b.prepared, bound: map[string]*sql.Stmt{}}
		q := bufferdb.New(ts)
		for _, v := range []string{"a", "b", "c"} {
			if err := q.SetState(ctx, bufferdb.SetStateParams{Key: "test_key", Value: v}); err != nil {
				return err
			}
			got, err := q.GetState(ctx, "test_key")
			if err != nil {
				return err
			}
			values = append(values, got)
		}
		bound = len(ts.bound)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if bound != 2 {
		t.Fatalf("%d statements bound to the transaction for two statements run three times each, want 2", bound)
	}
	if len(values) != 3 || values[0] != "a" || values[1] != "b" || values[2] != "c" {
		t.Fatalf("values read back in the transaction: %v", values)
	}
	if v, err := b.State(ctx, "test_key"); err != nil || v != "c" {
		t.Fatalf("state after commit: %q %v", v, err)
	}
}
