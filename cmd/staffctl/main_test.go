package main

import (
	"bytes"
	"context"
	"testing"

	"github.com/staffcontrol/staffcontrol/internal/cloud/pgtest"
)

var pg *pgtest.Server

func TestMain(m *testing.M) { pgtest.Main(m, &pg) }

// staffctl runs the command in-process with only the given environment.
func staffctl(t *testing.T, environ map[string]string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	err = run(context.Background(), args, func(k string) string { return environ[k] }, &out, &errb)
	return out.String(), errb.String(), err
}

// mustStaffctl returns a runner of staffctl commands under environ that
// returns standard output and fails the test when a command fails.
func mustStaffctl(t *testing.T, environ map[string]string) func(args ...string) string {
	return func(args ...string) string {
		t.Helper()
		out, errOut, err := staffctl(t, environ, args...)
		if err != nil {
			t.Fatalf("%v: %v %s", args, err, errOut)
		}
		return out
	}
}
