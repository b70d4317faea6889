package buffer

// The group commit's fast path: a group's agent rows (logs and
// screenshots) are inserted by multi-row INSERTs, each prepared once at open
// for a fixed row count, instead of one statement per event. One statement
// of 256 rows costs SQLite one statement start and reset and database/sql
// one call, where 256 single-row inserts cost 256 of each (issue 17: the
// per-event inserts were half of the buffer writer's CPU).
//
// Sequence numbers are assigned before the insert, assuming no event id of
// the group is buffered already; the statement's row count proves it. When
// it falls short (an agent resending events the gateway has, or one id twice
// in a group), the transaction is rolled back and the group is written again
// by the row-by-row path, which tells duplicates apart and keeps the
// sequence gapless.

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// agentInsertColumns is the number of parameters of one row of
// insert_agent_rows (sql/raw/groupinsert.sql).
const agentInsertColumns = 8

// groupInsertSizes returns the row counts of the prepared multi-row inserts,
// largest first; a group's rows are cut greedily into them. 256 rows are
// 2,048 parameters, far below SQLite's limit (32,766).
func groupInsertSizes() []int { return []int{256, 64, 16, 4, 1} }

// errGroupDuplicate means the fast path inserted fewer rows than it was
// given: some event id was buffered already (the group is written again
// row by row).
var errGroupDuplicate = errors.New("buffer: the group holds an event id already buffered")

// parseGroupInsert reads sql/raw/groupinsert.sql and returns the text of
// insert_agent_rows for each row count of groupInsertSizes.
func parseGroupInsert() (map[int]string, error) {
	const file = "sql/raw/groupinsert.sql"
	data, err := sqlFiles.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("buffer: read %s: %w", file, err)
	}
	var text strings.Builder
	found := false
	for _, line := range strings.Split(string(data), "\n") {
		if n, ok := strings.CutPrefix(line, "-- name: "); ok {
			if strings.TrimSpace(n) != "insert_agent_rows" || found {
				return nil, fmt.Errorf("buffer: %s: unexpected query %q", file, strings.TrimSpace(n))
			}
			found = true
			continue
		}
		if found && !strings.HasPrefix(line, "--") {
			text.WriteString(line)
			text.WriteByte('\n')
		}
	}
	tmpl := strings.TrimSpace(text.String())
	if !found || strings.Count(tmpl, "{rows}") != 1 {
		return nil, fmt.Errorf("buffer: %s: insert_agent_rows with one {rows} is required", file)
	}
	row := "(" + strings.TrimSuffix(strings.Repeat("?, ", agentInsertColumns), ", ") + ")"
	out := map[int]string{}
	for _, n := range groupInsertSizes() {
		out[n] = strings.Replace(tmpl, "{rows}", strings.TrimSuffix(strings.Repeat(row+", ", n), ", "), 1)
	}
	return out, nil
}

// agentRow is one agent event of a group, with the sequence number it
// gets if no event id of the group is buffered already.
type agentRow struct {
	rec  *Record
	seq  int64
	size int64
}

// insertAgentRows inserts rows by the prepared multi-row statements, bound
// to the transaction through ts. It returns errGroupDuplicate when fewer
// rows were inserted than given. args is scratch space for the parameters,
// returned (grown) for the next group.
func (b *Buffer) insertAgentRows(ctx context.Context, ts *txStmts, rows []agentRow, nowMS int64, args []any) ([]any, error) {
	for len(rows) > 0 {
		n := 1
		for _, size := range groupInsertSizes() {
			if size <= len(rows) {
				n = size
				break
			}
		}
		part := rows[:n]
		rows = rows[n:]
		args = args[:0]
		for i := range part {
			r := part[i].rec
			args = append(args, r.EventID, part[i].seq, r.Type, r.Class, r.Payload, part[i].size, r.FileSize, nowMS)
		}
		res, err := ts.ExecContext(ctx, b.groupInsert[n], args...)
		if err != nil {
			return args, fmt.Errorf("insert %d events: %w", n, err)
		}
		got, err := res.RowsAffected()
		if err != nil {
			return args, fmt.Errorf("insert %d events: %w", n, err)
		}
		if got != int64(n) {
			return args, errGroupDuplicate
		}
	}
	clear(args) // no payload stays reachable until the next group
	return args[:0], nil
}
