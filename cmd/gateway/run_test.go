package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunFailsAtStartNamingTheKey(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name, file string
		env        map[string]string
		key        string
	}{
		{"unknown key", "server:\n  url: http://x\n  urll: y\n", nil, "server.urll"},
		{"bad size", "server:\n  url: http://x\nbuffer:\n  path: " + dir + "/b.sqlite\n  max_size: huge\n", nil, "buffer.max_size"},
		{"missing url", "buffer:\n  path: " + dir + "/b.sqlite\n", nil, "server.url"},
		{"bad env", "server:\n  url: http://x\n", map[string]string{"STAFF_GATEWAY_BUFFER_RETENTION_DAYS": "-3"}, "buffer.retention_days"},
		{"no credentials", "server:\n  url: http://127.0.0.1:1\ngateway:\n  listen: 127.0.0.1:0\n  grpc_listen: \"off\"\nbuffer:\n  path: " + dir + "/b.sqlite\n", nil, "organization.provisioning_token"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "gateway.yml")
			os.WriteFile(p, []byte(tc.file), 0o600)
			var out, errb bytes.Buffer
			err := run(context.Background(), []string{"--config", p}, func(k string) string { return tc.env[k] }, &out, &errb)
			if err == nil || !strings.Contains(err.Error(), tc.key) {
				t.Fatalf("got %v, want an error naming %s", err, tc.key)
			}
			if exitCode(err) != 1 {
				t.Fatalf("exit code %d", exitCode(err))
			}
		})
	}
}

func TestRunUsageAndTestConnection(t *testing.T) {
	var out, errb bytes.Buffer
	if err := run(context.Background(), []string{"--bogus"}, func(string) string { return "" }, &out, &errb); exitCode(err) != 2 {
		t.Fatalf("bad flag: %v", err)
	}
	h := newHarness(t, "")
	out.Reset()
	err := run(context.Background(), []string{"--config", h.cfg, "--test-connection"}, func(string) string { return "" }, &out, &errb)
	if err != nil || !strings.HasPrefix(out.String(), "OK: ") {
		t.Fatalf("test-connection: %v %q", err, out.String())
	}
	h.srv.Close()
	out.Reset()
	err = run(context.Background(), []string{"--config", h.cfg, "--test-connection"}, func(string) string { return "" }, &out, &errb)
	if err == nil || !strings.HasPrefix(out.String(), "FAIL: ") {
		t.Fatalf("test-connection to a closed server: %v %q", err, out.String())
	}
}
