package buffer

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestUpgradeFromRowTokens builds the state a format 1 gateway leaves (each
// claimed row carries its batch's token; two pending batches whose rows
// interleave, rows of an acknowledged batch whose Ack was interrupted, a
// batch with only a drop report, unclaimed rows) and checks that after
// Open every pending batch keeps its token and exactly its rows, the
// acknowledged rows are gone, and the unclaimed rows are claimed next.
func TestUpgradeFromRowTokens(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "b.sqlite")
	b := openTest(t, path, nil)
	ids := make([]string, 13) // ids[i] is the event in row i (1-based)
	for i := 1; i <= 12; i++ {
		ids[i] = newID()
		if _, err := b.Append(ctx, []Record{logRec(ids[i])}); err != nil {
			t.Fatal(err)
		}
	}
	b.Close()

	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	rowsOf := map[string][]int{"A": {1, 2, 5, 6}, "B": {3, 4, 7}, "acked": {11, 12}}
	for _, stmt := range []string{
		"DELETE FROM gateway_state WHERE key = 'buffer_format' OR key LIKE 'claimed_through:%'",
		"UPDATE agent_data_buffer SET batch_token = 'A' WHERE id IN (1, 2, 5, 6)",
		"UPDATE agent_data_buffer SET batch_token = 'B' WHERE id IN (3, 4, 7)",
		"UPDATE agent_data_buffer SET batch_token = 'acked' WHERE id IN (11, 12)",
		"INSERT INTO upload_batches (token, stream, event_count, first_id, last_id, bytes, created_at) VALUES ('A', 'logs', 4, 1, 6, 1, 100)",
		"INSERT INTO upload_batches (token, stream, event_count, first_id, last_id, bytes, created_at) VALUES ('B', 'logs', 3, 3, 7, 1, 200)",
		`INSERT INTO upload_batches (token, stream, event_count, first_id, last_id, bytes, drops, created_at)
		 VALUES ('D', 'logs', 0, 0, 0, 0, '[{"reason":"retention","class":"log","count":3}]', 300)`,
	} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	db.Close()

	b = openTest(t, path, nil)
	skip := map[string]bool{}
	for _, want := range []string{"A", "B", "D"} {
		p, err := b.PendingBatch(ctx, StreamLogs, skip)
		if err != nil || p == nil {
			t.Fatalf("pending batch %s: %v %v", want, p, err)
		}
		if p.Token != want {
			t.Fatalf("pending batch %s, want %s", p.Token, want)
		}
		var got, exp []string
		for _, e := range p.Events {
			got = append(got, e.EventID)
		}
		for _, r := range rowsOf[want] {
			exp = append(exp, ids[r])
		}
		if !slices.Equal(got, exp) {
			t.Fatalf("batch %s carries %v, want %v", want, got, exp)
		}
		if want == "D" && (len(p.Drops) != 1 || p.Drops[0].Count != 3) {
			t.Fatalf("batch D lost its drop report: %+v", p.Drops)
		}
		skip[p.Token] = true
	}
	if p, err := b.PendingBatch(ctx, StreamLogs, skip); err != nil || p != nil {
		t.Fatalf("unexpected pending batch %+v %v", p, err)
	}
	for _, r := range rowsOf["acked"] {
		if has, _ := b.HasEvent(ctx, ids[r]); has {
			t.Fatalf("acknowledged row %d survived the upgrade", r)
		}
	}
	if n, _ := b.Unclaimed(StreamLogs); n != 3 {
		t.Fatalf("unclaimed = %d, want 3 (rows 8-10)", n)
	}
	c, err := b.Claim(ctx, StreamLogs, 100, 1<<30, false)
	if err != nil || c == nil {
		t.Fatalf("claim: %v %v", c, err)
	}
	var got []string
	for _, e := range c.Events {
		got = append(got, e.EventID)
	}
	if !slices.Equal(got, []string{ids[8], ids[9], ids[10]}) {
		t.Fatalf("claimed %v, want rows 8-10", got)
	}
	// Acknowledging A removes exactly its rows; B is untouched.
	a, _ := b.PendingBatch(ctx, StreamLogs, nil)
	if err := b.Ack(ctx, a); err != nil {
		t.Fatal(err)
	}
	bb, _ := b.PendingBatch(ctx, StreamLogs, nil)
	if bb == nil || bb.Token != "B" || len(bb.Events) != 3 {
		t.Fatalf("after acking A: %+v", bb)
	}
	// The upgrade runs once: reopening changes nothing.
	b.Close()
	b = openTest(t, path, nil)
	if p, _ := b.PendingBatch(ctx, StreamLogs, nil); p == nil || p.Token != "B" || len(p.Events) != 3 {
		t.Fatalf("after reopen: %+v", p)
	}
	if n, _ := b.Unclaimed(StreamLogs); n != 0 {
		t.Fatalf("unclaimed after reopen = %d, want 0", n)
	}
}

// TestClaimCursorSurvivesReopen: rows claimed before a restart stay in
// their batch, and later appends are claimed after them, never into them.
func TestClaimCursorSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "b.sqlite")
	b := openTest(t, path, nil)
	var first []string
	for range 4 {
		id := newID()
		first = append(first, id)
		if _, err := b.Append(ctx, []Record{logRec(id)}); err != nil {
			t.Fatal(err)
		}
	}
	bt, err := b.Claim(ctx, StreamLogs, 10, 1<<30, false)
	if err != nil || len(bt.Events) != 4 {
		t.Fatalf("claim: %v %v", bt, err)
	}
	b.Close()
	b = openTest(t, path, nil)
	later := newID()
	if _, err := b.Append(ctx, []Record{logRec(later)}); err != nil {
		t.Fatal(err)
	}
	p, err := b.PendingBatch(ctx, StreamLogs, nil)
	if err != nil || p == nil || p.Token != bt.Token || len(p.Events) != 4 {
		t.Fatalf("pending after reopen: %+v %v", p, err)
	}
	for i, e := range p.Events {
		if e.EventID != first[i] {
			t.Fatalf("pending after reopen: event %d is %s, want %s (the claimed batch, in order)", i, e.EventID, first[i])
		}
	}
	c, err := b.Claim(ctx, StreamLogs, 10, 1<<30, false)
	if err != nil || c == nil || len(c.Events) != 1 || c.Events[0].EventID != later {
		t.Fatalf("claim after reopen: %+v %v", c, err)
	}
	if c.FirstID <= p.LastID {
		t.Fatalf("new batch [%d, %d] overlaps the pending one [%d, %d]", c.FirstID, c.LastID, p.FirstID, p.LastID)
	}
}

// TestEveryNamedQueryExists: a per-stream query name the code uses but
// sql/raw/streams.sql lacks would run as an empty statement and silently do
// nothing. (The other statements are bufferdb's typed methods: a missing
// one does not compile.) Every query of the file is used, too.
func TestEveryNamedQueryExists(t *testing.T) {
	q, err := parseStreamQueries()
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	plain := regexp.MustCompile(`b\.q\["([a-z_]+)"\]`) // the loader before bufferdb: none may remain
	perStream := regexp.MustCompile(`b\.sq\("([a-z_]+)"`)
	used := 0
	usedNames := map[string]bool{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range plain.FindAllSubmatch(src, -1) {
			t.Errorf("%s uses query %q by name; it is a bufferdb method now", f, m[1])
		}
		for _, m := range perStream.FindAllSubmatch(src, -1) {
			used++
			usedNames[string(m[1])] = true
			for _, s := range Streams() {
				if _, ok := q[string(m[1])+":"+string(s)]; !ok {
					t.Errorf("%s uses per-stream query %q, which has no copy for %s", f, m[1], s)
				}
			}
		}
	}
	if used < len(streamQueries) {
		t.Fatalf("found only %d query uses: the pattern no longer matches the code", used)
	}
	for _, name := range streamQueries {
		if !usedNames[name] {
			t.Errorf("sql/raw/streams.sql defines %s, which no code uses", name)
		}
	}
}

// TestUpgradeFromFormat2 opens a format 2 file (before agent credentials:
// no agent_credentials table) holding unsent rows and a claim cursor: it is
// stamped format 3, keeps its rows and cursor, and stores credentials.
func TestUpgradeFromFormat2(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "b.sqlite")
	b := openTest(t, path, nil)
	id := newID()
	if _, err := b.Append(ctx, []Record{logRec(id)}); err != nil {
		t.Fatal(err)
	}
	b.Close()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{
		"DROP TABLE agent_credentials",
		"UPDATE gateway_state SET value = '2' WHERE key = 'buffer_format'",
		"INSERT INTO gateway_state (key, value) VALUES ('claimed_through:logs', '0') ON CONFLICT (key) DO UPDATE SET value = '0'",
	} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	db.Close()

	b = openTest(t, path, nil)
	if v, err := b.State(ctx, "buffer_format"); err != nil || v != "3" {
		t.Fatalf("format %q %v, want 3", v, err)
	}
	if ok, err := b.HasEvent(ctx, id); err != nil || !ok {
		t.Fatalf("row lost in the upgrade: %v", err)
	}
	if rows, _ := b.Unclaimed(StreamLogs); rows != 1 {
		t.Fatalf("%d unclaimed rows, want 1", rows)
	}
	hash := make([]byte, 32)
	hash[0] = 7
	if _, err := b.PutAgentCredential(ctx, "agent-1", "PC-1", hash, time.Now()); err != nil {
		t.Fatal(err)
	}
	if uid, ok, err := b.AgentByCredential(ctx, hash); err != nil || !ok || uid != "agent-1" {
		t.Fatalf("credential after upgrade: %q %v %v", uid, ok, err)
	}
	b.Close()

	// A file from a newer gateway is refused, naming the formats.
	db, _ = sql.Open("sqlite", path)
	if _, err := db.Exec("UPDATE gateway_state SET value = '4' WHERE key = 'buffer_format'"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := Open(ctx, Options{Config: Config{Path: path, MaxBytes: 1 << 30}}); err == nil || !strings.Contains(err.Error(), "format 4") {
		t.Fatalf("newer format opened: %v", err)
	}
}

// TestStreamQueriesCheckedBothWays: the per-stream file must define every
// name the code runs, nothing else, and only per-stream statements.
func TestStreamQueriesCheckedBothWays(t *testing.T) {
	data, err := sqlFiles.ReadFile("sql/raw/streams.sql")
	if err != nil {
		t.Fatal(err)
	}
	file := string(data)
	tests := []struct {
		name    string
		file    string
		wantErr string // "" when the file is accepted
	}{
		{"the embedded file", file, ""},
		{"a name missing", strings.Replace(file, "-- name: max_id", "-- name: max_id_renamed", 1), "lacks query max_id"},
		{"a name no code runs", file + "\n-- name: unused\nSELECT 1 FROM {table};\n", "has query unused"},
		{"a statement not per stream", strings.Replace(file, "SELECT coalesce(max(id), 0) FROM {table};",
			"SELECT coalesce(max(id), 0) FROM agent_data_buffer;", 1), "query max_id is not per stream"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := expandStreamQueries("streams.sql", []byte(tt.file))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if len(q) != len(streamQueries)*len(Streams()) {
					t.Fatalf("%d expanded queries, want %d", len(q), len(streamQueries)*len(Streams()))
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}
