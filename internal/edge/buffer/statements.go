package buffer

// The typed statements (bufferdb) are prepared once on the connection at
// open. Outside a transaction they run as prepared (b.qs). In a write
// transaction, onTx binds each one to the transaction the first time the
// transaction runs it and reuses that binding for the rest of it, as the
// writer's hand-written inserts did with tx.Stmt: sqlc's own WithTx would
// bind the statement again at every call (tx.StmtContext per insert of a
// group commit).

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/staffcontrol/staffcontrol/internal/edge/buffer/bufferdb"
)

// preparer records the statements bufferdb.Prepare prepares on the
// connection, by query text, for onTx.
type preparer struct {
	db       *sql.DB
	prepared map[string]*sql.Stmt
}

func (p *preparer) PrepareContext(ctx context.Context, query string) (*sql.Stmt, error) {
	s, err := p.db.PrepareContext(ctx, query)
	if err == nil {
		p.prepared[query] = s
	}
	return s, err
}

func (p *preparer) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return p.db.ExecContext(ctx, query, args...)
}

func (p *preparer) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return p.db.QueryContext(ctx, query, args...)
}

func (p *preparer) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return p.db.QueryRowContext(ctx, query, args...)
}

// prepare prepares every typed statement on the connection, once (the
// writer's inserts among them), and the group commit's multi-row inserts
// (groupinsert.go). They are closed with the connection.
func (b *Buffer) prepare(ctx context.Context) error {
	p := &preparer{db: b.db, prepared: map[string]*sql.Stmt{}}
	qs, err := bufferdb.Prepare(ctx, p)
	if err != nil {
		return fmt.Errorf("buffer: prepare: %w", err)
	}
	for _, name := range hotStreamQueries() {
		for _, st := range Streams() {
			if _, err := p.PrepareContext(ctx, b.sq(name, st)); err != nil {
				_ = qs.Close()
				return fmt.Errorf("buffer: prepare %s:%s: %w", name, st, err)
			}
		}
	}
	for _, n := range groupInsertSizes() {
		if _, err := p.PrepareContext(ctx, b.groupInsert[n]); err != nil {
			_ = qs.Close()
			return fmt.Errorf("buffer: prepare the %d-row insert: %w", n, err)
		}
	}
	b.qs, b.prepared = qs, p.prepared
	return nil
}

// hotStreamQueries names the per-stream statements (sql/raw/streams.sql)
// run for every batch or every poll, prepared once at open like bufferdb's
// rather than compiled again at each run: the claim's reads, the
// acknowledgement's deletes, the uplink's age check.
func hotStreamQueries() []string {
	return []string{"unclaimed_rows", "batch_rows", "delete_rows_chunk", "oldest_unclaimed"}
}

// stmt returns query as prepared at open on the connection, or nil.
func (b *Buffer) stmt(query string) *sql.Stmt { return b.prepared[query] }

// txStmts runs bufferdb's statements on a transaction through the
// statements prepared at open, each bound to the transaction once.
type txStmts struct {
	tx       *sql.Tx
	prepared map[string]*sql.Stmt // on the connection, by query text
	bound    map[string]*sql.Stmt // on tx
}

// onTx returns the typed statements on tx (see txStmts).
func (b *Buffer) onTx(tx *sql.Tx) *bufferdb.Queries { return bufferdb.New(b.txStmts(tx)) }

// txStmts returns the statements prepared at open, bound to tx on first use.
func (b *Buffer) txStmts(tx *sql.Tx) *txStmts {
	return &txStmts{tx: tx, prepared: b.prepared, bound: map[string]*sql.Stmt{}}
}

// stmt returns query bound to the transaction, or nil for a statement not
// prepared at open (which then runs as text).
func (t *txStmts) stmt(ctx context.Context, query string) *sql.Stmt {
	if s, ok := t.bound[query]; ok {
		return s
	}
	p, ok := t.prepared[query]
	if !ok {
		return nil
	}
	s := t.tx.StmtContext(ctx, p) // closed with the transaction
	t.bound[query] = s
	return s
}

func (t *txStmts) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if s := t.stmt(ctx, query); s != nil {
		return s.ExecContext(ctx, args...)
	}
	return t.tx.ExecContext(ctx, query, args...)
}

func (t *txStmts) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if s := t.stmt(ctx, query); s != nil {
		return s.QueryContext(ctx, args...)
	}
	return t.tx.QueryContext(ctx, query, args...)
}

func (t *txStmts) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if s := t.stmt(ctx, query); s != nil {
		return s.QueryRowContext(ctx, args...)
	}
	return t.tx.QueryRowContext(ctx, query, args...)
}

func (t *txStmts) PrepareContext(ctx context.Context, query string) (*sql.Stmt, error) {
	return t.tx.PrepareContext(ctx, query)
}
