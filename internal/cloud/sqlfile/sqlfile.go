// Package sqlfile loads the cloud's hand-written statements: the few that
// sqlc cannot compile (dynamic identifiers, COPY into a table chosen at run
// time, LISTEN, DDL, the tenant context's set_config, catalog calls of
// TimescaleDB). They live, like every other query, in named .sql files of
// the package that owns them (by convention sql/raw/*.sql, beside the
// sqlc-compiled sql/*.sql), in sqlc's format: each statement starts with a
// "-- name: Name :kind" line, and each file says why sqlc cannot take it.
//
// This is the one mechanism for such statements; a test of this package
// fails on SQL written as a string literal in non-test code anywhere else
// in internal/cloud.
package sqlfile

import (
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strings"
)

// nameLine is sqlc's query header: "-- name: Name :kind".
var nameLine = regexp.MustCompile(`^--\s*name:\s*(\w+)(\s+:\w+)?\s*$`)

// Load reads file from fsys and stores each named statement into the string
// into[name] points to. Every name of into must be in the file and every
// statement of the file must be wanted, so that a renamed or forgotten
// statement fails at construction, not at its first use.
func Load(fsys fs.FS, file string, into map[string]*string) error {
	b, err := fs.ReadFile(fsys, file)
	if err != nil {
		return fmt.Errorf("sqlfile: %w", err)
	}
	stmts, err := Parse(string(b))
	if err != nil {
		return fmt.Errorf("sqlfile: %s: %w", file, err)
	}
	var missing, extra []string
	for name, dst := range into {
		s, ok := stmts[name]
		if !ok {
			missing = append(missing, name)
			continue
		}
		*dst = s
	}
	for name := range stmts {
		if _, ok := into[name]; !ok {
			extra = append(extra, name)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 {
		return fmt.Errorf("sqlfile: %s has no statement %s", file, strings.Join(missing, ", "))
	}
	if len(extra) > 0 {
		return fmt.Errorf("sqlfile: %s: statement %s is not used", file, strings.Join(extra, ", "))
	}
	return nil
}

// Parse splits a file into its named statements: the text after each name
// line up to the next, without comment lines before the first SQL and
// without the trailing semicolon.
func Parse(text string) (map[string]string, error) {
	out := map[string]string{}
	var name string
	var body []string
	flush := func() error {
		if name == "" {
			return nil
		}
		s := strings.TrimSpace(strings.Join(body, "\n"))
		s = strings.TrimSpace(strings.TrimSuffix(s, ";"))
		if s == "" {
			return fmt.Errorf("statement %s is empty", name)
		}
		if _, dup := out[name]; dup {
			return fmt.Errorf("statement %s is named twice", name)
		}
		out[name] = s
		return nil
	}
	for _, line := range strings.Split(text, "\n") {
		if m := nameLine.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
			if err := flush(); err != nil {
				return nil, err
			}
			name, body = m[1], nil
			continue
		}
		if name == "" {
			continue // the file's header comment
		}
		if len(body) == 0 && strings.HasPrefix(strings.TrimSpace(line), "--") {
			continue // the statement's own comment
		}
		body = append(body, line)
	}
	if err := flush(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no named statement (-- name: Name :kind)")
	}
	return out, nil
}
