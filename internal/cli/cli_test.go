package cli

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
)

func TestMainExitStatus(t *testing.T) {
	errUsage := errors.New("bad flag")
	tests := []struct {
		name     string
		err      error
		exitCode func(error) int
		want     int
		stderr   string
	}{
		{name: "success", want: 0},
		{name: "failure", err: errors.New("boom"), want: 1, stderr: "prog: boom\n"},
		{name: "failure with exit code", err: errUsage, want: 2, stderr: "prog: bad flag\n",
			exitCode: func(err error) int {
				if errors.Is(err, errUsage) {
					return 2
				}
				return 1
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			var gotArgs []string
			run := func(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
				if ctx.Err() != nil {
					t.Errorf("run's context already ended: %v", ctx.Err())
				}
				gotArgs = args
				if getenv("K") != "v" {
					t.Errorf("getenv(K) = %q, want v", getenv("K"))
				}
				return tt.err
			}
			getenv := func(k string) string { return map[string]string{"K": "v"}[k] }
			if got := main("prog", run, tt.exitCode, []string{"a", "b"}, getenv, io.Discard, &stderr); got != tt.want {
				t.Errorf("exit status %d, want %d", got, tt.want)
			}
			if len(gotArgs) != 2 || gotArgs[0] != "a" {
				t.Errorf("run got args %q, want [a b]", gotArgs)
			}
			if stderr.String() != tt.stderr {
				t.Errorf("stderr %q, want %q", stderr.String(), tt.stderr)
			}
		})
	}
}
