// Package logtest gives tests a structured logger whose every line is
// checked: each must be one JSON object with no name repeated at any
// nesting level (a log pipeline that keeps the first or the last of two
// "level" keys reads a different record than the one written). New is for
// in-process loggers, Writer and Check for the stderr of subprocesses.
package logtest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"

	"github.com/go-json-experiment/json/jsontext"
)

// keep is how many of the latest lines a checker shows when its test fails.
const keep = 40

// CheckLine reports why line is not one JSON object with unique names at
// every level, or nil when it is.
func CheckLine(line []byte) error {
	line = bytes.TrimSpace(line)
	if len(line) == 0 || line[0] != '{' {
		return errors.New("not a JSON object")
	}
	// jsontext refuses duplicate names by default, at any depth.
	dec := jsontext.NewDecoder(bytes.NewReader(line))
	if _, err := dec.ReadValue(); err != nil {
		return err
	}
	if _, err := dec.ReadToken(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("trailing data after the JSON object: %v", err)
	}
	return nil
}

// checker receives log output, splits it into lines and reports each bad
// line as a test error while its test runs.
type checker struct {
	t      testing.TB
	name   string
	tail   bool // check an unterminated last line at the end
	mu     sync.Mutex
	done   bool
	part   []byte   // an unfinished line
	recent [][]byte // the latest lines, shown when the test fails
	lines  int
}

func newChecker(t testing.TB, name string, tail bool) *checker {
	c := &checker{t: t, name: name, tail: tail}
	// Registered early, so it runs after the cleanups that stop servers.
	t.Cleanup(c.finish)
	return c
}

// Write checks each complete line of p; a partial line waits for the rest.
func (c *checker) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.part = append(c.part, p...)
	for {
		i := bytes.IndexByte(c.part, '\n')
		if i < 0 {
			break
		}
		c.line(c.part[:i])
		c.part = c.part[i+1:]
	}
	if len(c.part) == 0 {
		c.part = nil // let the backing array go
	}
	return len(p), nil
}

// line checks one line; c.mu is held.
func (c *checker) line(l []byte) {
	if len(bytes.TrimSpace(l)) == 0 {
		return
	}
	c.lines++
	if len(c.recent) == keep {
		c.recent = c.recent[1:]
	}
	c.recent = append(c.recent, bytes.Clone(l))
	if err := CheckLine(l); err != nil {
		if c.done {
			// The test has ended: testing would panic on an error now.
			return
		}
		c.t.Helper()
		c.t.Errorf("logtest: %s line %d is not a clean JSON log record: %v\n\t%s", c.name, c.lines, err, l)
	}
}

// finish checks an unterminated last line (when asked to) and, when the
// test failed, shows the latest lines.
func (c *checker) finish() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.part) > 0 && c.tail {
		c.line(c.part)
	}
	c.part = nil
	if c.t.Failed() && len(c.recent) > 0 {
		var b bytes.Buffer
		for _, l := range c.recent {
			b.Write(l)
			b.WriteByte('\n')
		}
		c.t.Logf("logtest: the last %d of %d %s lines:\n%s", len(c.recent), c.lines, c.name, b.Bytes())
	}
	c.done = true
}

// New returns a debug-level JSON logger for t: every record it writes is
// checked (valid JSON, no repeated name at any level), a bad one fails the
// test with t.Errorf, and the latest records are shown if the test fails.
// Records written after the test has ended are not reported.
func New(t testing.TB) *slog.Logger {
	t.Helper()
	return slog.New(slog.NewJSONHandler(newChecker(t, "log", true), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// Writer returns a writer that checks every complete line written to it
// the way New does: give it as (part of) a subprocess's stderr. name labels
// its failures (e.g. "gateway stderr"). An unterminated last line (a
// process killed in mid-write) is not checked.
func Writer(t testing.TB, name string) io.Writer {
	t.Helper()
	return newChecker(t, name, false)
}

// Check reads r to its end and fails t (t.Errorf) for every line that is
// not one JSON object with unique names at every level.
func Check(t testing.TB, r io.Reader) {
	t.Helper()
	for _, err := range Errors(r) {
		t.Errorf("logtest: %v", err)
	}
}

// Errors reads r to its end and returns an error for every line that is
// not one JSON object with unique names at every level (for harnesses that
// run outside a test, such as a TestMain).
func Errors(r io.Reader) []error {
	var errs []error
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	n := 0
	for sc.Scan() {
		n++
		l := sc.Bytes()
		if len(bytes.TrimSpace(l)) == 0 {
			continue
		}
		if err := CheckLine(l); err != nil {
			errs = append(errs, fmt.Errorf("line %d is not a clean JSON log record: %w\n\t%s", n, err, l))
		}
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, fmt.Errorf("read log: %w", err))
	}
	return errs
}
