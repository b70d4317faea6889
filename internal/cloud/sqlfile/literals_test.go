package sqlfile_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// sqlLiteral is a Go string that reads as a SQL statement (the code base
// writes keywords in upper case; "copy chunk: %w" is a message).
var sqlLiteral = regexp.MustCompile(`(?s)^\s*(SELECT\s|INSERT\s+INTO\s|UPDATE\s+\S+\s+SET\s|DELETE\s+FROM\s|WITH\s+\w+\s+AS\s*\(|LISTEN\s|NOTIFY\s|COPY\s|SET\s+(LOCAL\s+)?\w+\s*(=|TO)|CREATE\s|DROP\s|ALTER\s|TRUNCATE\s|CALL\s)`)

// TestNoSQLLiterals: non-test Go code of internal/cloud and cmd/staffctl
// writes no SQL as a string literal. Queries are in sql/*.sql (sqlc) and
// the hand-written rest in sql/raw/*.sql (this package); the generated
// <package>db code and the test harness (pgtest, whose seeding and
// database set-up are test support) are exempt.
func TestNoSQLLiterals(t *testing.T) {
	// Paths from the module's root, where the walk starts.
	const moduleRoot = "../../.."
	found := map[string]int{}
	for _, dir := range []string{"internal/cloud", "cmd/staffctl"} {
		if err := filepath.WalkDir(filepath.Join(moduleRoot, dir), func(path string, d fs.DirEntry, err error) error {
			return scanFile(moduleRoot, path, d, err, found)
		}); err != nil {
			t.Fatal(err)
		}
	}
	for file, n := range found {
		t.Errorf("%s holds %d SQL string literal(s): put the statement in a named .sql file of its package (sql/*.sql for sqlc, or sql/raw/*.sql through sqlfile.Load)", file, n)
	}
}

// scanFile counts the SQL literals of one non-test, non-generated Go file
// into found, by path from root.
func scanFile(root, path string, d fs.DirEntry, err error, found map[string]int) error {
	if err != nil {
		return err
	}
	rel, _ := filepath.Rel(root, path)
	rel = filepath.ToSlash(rel)
	if d.IsDir() {
		if rel == "internal/cloud/pgtest" || strings.HasSuffix(rel, "testdata") {
			return filepath.SkipDir
		}
		return nil
	}
	if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
		return nil
	}
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ParseComments)
	if err != nil {
		return err
	}
	if ast.IsGenerated(f) {
		return nil
	}
	ast.Inspect(f, func(n ast.Node) bool {
		lit, ok := n.(*ast.BasicLit)
		if !ok || lit.Kind != token.STRING {
			return true
		}
		s, err := strconv.Unquote(lit.Value)
		if err == nil && sqlLiteral.MatchString(s) {
			found[rel]++
		}
		return true
	})
	return nil
}
