package service

import (
	"log/slog"
	"strings"
	"testing"
)

func TestConfigFromEnv(t *testing.T) {
	t.Parallel()
	const url = "postgres://staff_ingest@127.0.0.1:5432/staffcontrol"
	tests := []struct {
		name    string
		env     map[string]string
		wantErr string // substring naming the key; empty = valid
		want    Config
	}{
		{"defaults", map[string]string{"DATABASE_URL": url}, "", Config{Addr: ":3001", DatabaseURL: url, LogLevel: slog.LevelInfo}},
		{"overrides", map[string]string{"DATABASE_URL": url, "AGENT_API_ADDR": "127.0.0.1:9", "LOG_LEVEL": "debug"}, "",
			Config{Addr: "127.0.0.1:9", DatabaseURL: url, LogLevel: slog.LevelDebug}},
		{"missing url", map[string]string{}, "DATABASE_URL is required", Config{}},
		{"bad url", map[string]string{"DATABASE_URL": "postgres://%zz"}, "DATABASE_URL", Config{}},
		{"bad migrate url", map[string]string{"DATABASE_URL": url, "MIGRATE_DATABASE_URL": "postgres://%zz"}, "MIGRATE_DATABASE_URL", Config{}},
		{"bad addr", map[string]string{"DATABASE_URL": url, "AGENT_API_ADDR": "3001"}, "AGENT_API_ADDR", Config{}},
		{"bad level", map[string]string{"DATABASE_URL": url, "LOG_LEVEL": "loud"}, "LOG_LEVEL", Config{}},
	}
	for _, tt := range tests {
		got, err := ConfigFromEnv(func(k string) string { return tt.env[k] }, "AGENT_API_ADDR", ":3001")
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: err = %v, want it to mention %q", tt.name, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%s: got %+v, %v; want %+v", tt.name, got, err, tt.want)
		}
	}
}

func TestParseArgs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args     []string
		help     bool
		wantErr  string
		wantText string
	}{
		{nil, false, "", ""},
		{[]string{"-h"}, true, "", "usage: svc"},
		{[]string{"extra"}, false, `unexpected argument "extra"`, ""},
		{[]string{"--bogus"}, false, "flag provided but not defined", ""},
	}
	for _, tt := range tests {
		var out strings.Builder
		help, err := ParseArgs("svc", "usage: svc\n", tt.args, &out)
		if help != tt.help || (tt.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) || !strings.Contains(out.String(), tt.wantText) {
			t.Errorf("%v: help=%v err=%v out=%q", tt.args, help, err, out.String())
		}
	}
}
