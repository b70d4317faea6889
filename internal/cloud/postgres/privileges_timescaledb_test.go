package postgres_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// timescaleDBPrivileges sorts out, when the database stores the series in
// TimescaleDB, the privileges of got (lines of privilegesQuery) that the
// engine itself brings, checks them, and returns the others, which must be
// exactly the documented list as on native partitions. With native
// partitions it returns got unchanged.
//
//   - The extension's own schemas, tables, views and sequences (members of
//     extension timescaledb in pg_depend): TimescaleDB grants PUBLIC USAGE
//     on its schemas and SELECT on its catalog, which its planner and
//     functions need in every session. The runtime roles may hold only
//     those, and none on the statistics of the stored data that
//     bootstrap.sql revokes (timescaleDBStatistics).
//
// The chunks of the five hypertables, the compressed hypertables, their
// chunks and the aggregate's materialisation hypertable are not set aside:
// any privilege on them is an extra privilege. Chunks copy their
// hypertable's grants, and since 00020 no runtime role holds any privilege
// on the hypertables (the ingest role inserts through definer functions),
// so no chunk may carry one (the test checks again after
// makeTimescaleDBChunks made chunks, some compressed).
func timescaleDBPrivileges(ctx context.Context, t *testing.T, admin *pgx.Conn, got []string) []string {
	t.Helper()
	if storageKind(ctx, t, admin) != "timescaledb" {
		return got
	}
	rows, err := admin.Query(ctx, `
		SELECT n.nspname::text FROM pg_namespace n
		JOIN pg_depend d ON d.classid = 'pg_namespace'::regclass AND d.objid = n.oid AND d.deptype = 'e'
		JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'timescaledb'
		UNION ALL
		SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'
		JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'timescaledb'`)
	if err != nil {
		t.Fatal(err)
	}
	members, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	var rest, ext []string
	for _, g := range got {
		f := strings.Fields(g)
		if len(f) != 4 || !slices.Contains([]string{"schema", "table", "view", "sequence"}, f[1]) {
			rest = append(rest, g)
			continue
		}
		switch object, priv := f[2], f[3]; {
		case slices.Contains(members, object):
			ext = append(ext, g)
			if want := map[bool]string{true: "USAGE", false: "SELECT"}[f[1] == "schema"]; priv != want {
				t.Errorf("TimescaleDB's own %s %s: %s holds %s, want %s only", f[1], object, f[0], priv, want)
			}
			if slices.Contains(timescaleDBStatistics, object) {
				t.Errorf("%s may read %s (bootstrap.sql revokes TimescaleDB's statistics from PUBLIC)", f[0], object)
			}
		default:
			rest = append(rest, g)
		}
	}
	if len(ext) == 0 {
		t.Errorf("no privilege on TimescaleDB's own objects found: the extension's membership query is wrong")
	}
	return rest
}
