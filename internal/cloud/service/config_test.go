package service

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
)

func TestConfigFromEnv(t *testing.T) {
	t.Parallel()
	const url = "postgres://staff_ingest@127.0.0.1:5432/staffcontrol"
	const keyText = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"
	key, err := postgres.ParseContextKey(keyText)
	if err != nil {
		t.Fatal(err)
	}
	defaults := HTTPTimeouts{ReadHeader: 10 * time.Second, BodyMinRate: 16384, BodyGrace: 10 * time.Second, Write: time.Minute, Idle: 2 * time.Minute}
	tests := []struct {
		name    string
		env     map[string]string
		wantErr string // substring naming the key; empty = valid
		want    Config
	}{
		{"defaults", map[string]string{"DATABASE_URL": url, "TENANT_CONTEXT_KEY": keyText}, "", Config{Addr: ":3001", DatabaseURL: url, ContextKey: key, LogLevel: slog.LevelInfo, HTTP: defaults}},
		{"overrides", map[string]string{"DATABASE_URL": url, "TENANT_CONTEXT_KEY": keyText, "AGENT_API_ADDR": "127.0.0.1:9", "LOG_LEVEL": "debug",
			"HTTP_READ_HEADER_TIMEOUT": "5s", "HTTP_BODY_MIN_RATE": "4096", "HTTP_BODY_GRACE": "30s", "HTTP_WRITE_TIMEOUT": "2m", "HTTP_IDLE_TIMEOUT": "90s"}, "",
			Config{Addr: "127.0.0.1:9", DatabaseURL: url, ContextKey: key, LogLevel: slog.LevelDebug,
				HTTP: HTTPTimeouts{ReadHeader: 5 * time.Second, BodyMinRate: 4096, BodyGrace: 30 * time.Second, Write: 2 * time.Minute, Idle: 90 * time.Second}}},
		{"bad header timeout", map[string]string{"DATABASE_URL": url, "TENANT_CONTEXT_KEY": keyText, "HTTP_READ_HEADER_TIMEOUT": "10"}, "HTTP_READ_HEADER_TIMEOUT", Config{}},
		{"negative write timeout", map[string]string{"DATABASE_URL": url, "TENANT_CONTEXT_KEY": keyText, "HTTP_WRITE_TIMEOUT": "-1s"}, "HTTP_WRITE_TIMEOUT", Config{}},
		{"zero grace", map[string]string{"DATABASE_URL": url, "TENANT_CONTEXT_KEY": keyText, "HTTP_BODY_GRACE": "0s"}, "HTTP_BODY_GRACE", Config{}},
		{"bad idle timeout", map[string]string{"DATABASE_URL": url, "TENANT_CONTEXT_KEY": keyText, "HTTP_IDLE_TIMEOUT": "soon"}, "HTTP_IDLE_TIMEOUT", Config{}},
		{"bad rate", map[string]string{"DATABASE_URL": url, "TENANT_CONTEXT_KEY": keyText, "HTTP_BODY_MIN_RATE": "16KiB"}, "HTTP_BODY_MIN_RATE", Config{}},
		{"zero rate", map[string]string{"DATABASE_URL": url, "TENANT_CONTEXT_KEY": keyText, "HTTP_BODY_MIN_RATE": "0"}, "HTTP_BODY_MIN_RATE", Config{}},
		{"missing url", map[string]string{}, "DATABASE_URL is required", Config{}},
		{"bad url", map[string]string{"DATABASE_URL": "postgres://%zz"}, "DATABASE_URL", Config{}},
		{"bad migrate url", map[string]string{"DATABASE_URL": url, "TENANT_CONTEXT_KEY": keyText, "MIGRATE_DATABASE_URL": "postgres://%zz"}, "MIGRATE_DATABASE_URL", Config{}},
		{"bad addr", map[string]string{"DATABASE_URL": url, "TENANT_CONTEXT_KEY": keyText, "AGENT_API_ADDR": "3001"}, "AGENT_API_ADDR", Config{}},
		{"missing context key", map[string]string{"DATABASE_URL": url}, "TENANT_CONTEXT_KEY is required", Config{}},
		{"context key without id", map[string]string{"DATABASE_URL": url, "TENANT_CONTEXT_KEY": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"}, "TENANT_CONTEXT_KEY", Config{}},
		{"context key too short", map[string]string{"DATABASE_URL": url, "TENANT_CONTEXT_KEY": "k1:AAECAwQF"}, "TENANT_CONTEXT_KEY", Config{}},
		{"context key not base64", map[string]string{"DATABASE_URL": url, "TENANT_CONTEXT_KEY": "k1:!!!!"}, "TENANT_CONTEXT_KEY", Config{}},
		{"bad level", map[string]string{"DATABASE_URL": url, "TENANT_CONTEXT_KEY": keyText, "LOG_LEVEL": "loud"}, "LOG_LEVEL", Config{}},
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
