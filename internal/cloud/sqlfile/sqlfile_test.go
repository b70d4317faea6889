package sqlfile_test

import (
	"strings"
	"testing"
	"testing/fstest"

	"github.com/staffcontrol/staffcontrol/internal/cloud/sqlfile"
)

func TestLoad(t *testing.T) {
	const file = `-- Why sqlc cannot take these.

-- name: A :exec
-- A's own comment.
SELECT 1;

-- name: B :one
SELECT 2
  FROM x;
`
	fsys := fstest.MapFS{"raw.sql": {Data: []byte(file)}, "empty.sql": {Data: []byte("-- nothing\n")},
		"dup.sql": {Data: []byte("-- name: A :exec\nSELECT 1;\n-- name: A :exec\nSELECT 2;\n")}}
	for _, tc := range []struct {
		name    string
		file    string
		want    []string // names wanted
		wantErr string
	}{
		{"all", "raw.sql", []string{"A", "B"}, ""},
		{"missing", "raw.sql", []string{"A", "B", "C"}, "has no statement C"},
		{"unused", "raw.sql", []string{"A"}, "statement B is not used"},
		{"no file", "nope.sql", []string{"A"}, "nope.sql"},
		{"no statement", "empty.sql", []string{"A"}, "no named statement"},
		{"named twice", "dup.sql", []string{"A"}, "named twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := map[string]*string{}
			for _, n := range tc.want {
				got[n] = new(string)
			}
			err := sqlfile.Load(fsys, tc.file, got)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if *got["A"] != "SELECT 1" || *got["B"] != "SELECT 2\n  FROM x" {
				t.Fatalf("A = %q, B = %q", *got["A"], *got["B"])
			}
		})
	}
}
