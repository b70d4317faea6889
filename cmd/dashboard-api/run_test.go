package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/cloud/accesstoken"
	"github.com/staffcontrol/staffcontrol/internal/cloud/pgtest"
	"github.com/staffcontrol/staffcontrol/internal/logtest"
)

var pg *pgtest.Server

func TestMain(m *testing.M) { pgtest.Main(m, &pg) }

// TestServerTimeoutsComeFromTheEnvironment runs the binary's run with the
// HTTP_* keys set: a trickled body and an idle keep-alive are both closed.
func TestServerTimeoutsComeFromTheEnvironment(t *testing.T) {
	db := pg.NewDatabase(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	env := map[string]string{"DASHBOARD_ADDR": addr, "DATABASE_URL": db.DashboardURL, "TENANT_CONTEXT_KEY": pg.ContextKey().String(),
		"DASHBOARD_TOKEN_KEYS": testTokenKey(t),
		"STORAGE_BASE_PATH":    t.TempDir(), "STORAGE_URL_KEY": strings.Repeat("ab", 32), "STORAGE_PUBLIC_URL": "http://" + addr + "/files",
		"HTTP_BODY_MIN_RATE": "1000", "HTTP_BODY_GRACE": "500ms", "HTTP_IDLE_TIMEOUT": "500ms"}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, nil, func(k string) string { return env[k] }, io.Discard, logtest.Writer(t, "dashboard-api stderr"))
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/health")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dashboard-api not serving: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	closedAfter := func(c net.Conn) (time.Duration, string) {
		start := time.Now()
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		b, err := io.ReadAll(c)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("connection still open after 5 s (answered %q)", b)
		}
		return time.Since(start), string(b)
	}
	// A trickled body.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprint(c, "POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n")
	go func() {
		for i := 0; i < 500; i++ {
			time.Sleep(200 * time.Millisecond)
			if _, err := c.Write([]byte(" ")); err != nil {
				return
			}
		}
	}()
	if d, _ := closedAfter(c); d > 1500*time.Millisecond {
		t.Fatalf("a body at 5 B/s held the connection %v, want about the 500ms grace", d)
	}
	// An idle keep-alive.
	c2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	fmt.Fprint(c2, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
	d, answer := closedAfter(c2)
	if !strings.HasPrefix(answer, "HTTP/1.1 200") || d > 1500*time.Millisecond {
		t.Fatalf("idle keep-alive: answered %q, closed after %v, want 200 then a close after about 500ms", answer, d)
	}
}

// TestBadCORSOriginFailsAtStartNamingTheKey: a malformed origin stops the
// start before anything is opened, and the error names the key.
func TestBadCORSOriginFailsAtStartNamingTheKey(t *testing.T) {
	env := map[string]string{
		"DATABASE_URL":           "postgres://staff_app@127.0.0.1:1/none",
		"TENANT_CONTEXT_KEY":     pg.ContextKey().String(),
		"DASHBOARD_CORS_ORIGINS": "https://console.example.com, console.example.com/app",
		"DASHBOARD_TOKEN_KEYS":   testTokenKey(t),
	}
	var stderr strings.Builder
	err := run(context.Background(), nil, func(k string) string { return env[k] }, io.Discard, &stderr)
	if err == nil || !strings.Contains(err.Error(), "DASHBOARD_CORS_ORIGINS") {
		t.Fatalf("run: %v, want an error naming DASHBOARD_CORS_ORIGINS", err)
	}
}

func testTokenKey(t *testing.T) string {
	t.Helper()
	k, err := accesstoken.GenerateKey("t1")
	if err != nil {
		t.Fatal(err)
	}
	return accesstoken.FormatKey(k)
}

// TestBadConfigFailsAtStartNamingTheKey: each of the Dashboard API's own
// keys, missing or malformed, stops the start naming the key.
func TestBadConfigFailsAtStartNamingTheKey(t *testing.T) {
	base := map[string]string{
		"DATABASE_URL":         "postgres://staff_app@127.0.0.1:1/none",
		"TENANT_CONTEXT_KEY":   pg.ContextKey().String(),
		"DASHBOARD_TOKEN_KEYS": testTokenKey(t),
		"STORAGE_BASE_PATH":    t.TempDir(),
		"STORAGE_URL_KEY":      strings.Repeat("ab", 32),
		"STORAGE_PUBLIC_URL":   "https://dash.example.com/files",
	}
	for _, tc := range []struct{ key, value string }{
		{"DASHBOARD_TOKEN_KEYS", ""},
		{"DASHBOARD_TOKEN_KEYS", "k1:not-base64!"},
		{"DASHBOARD_ACCESS_TTL", "forever"},
		{"SIGNIN_LOCK_BASE", "-1m"},
		{"SIGNIN_MAX_FAILURES", "zero"},
		{"TRUSTED_PROXIES", "10.0.0.0/33"},
		{"STORAGE_DRIVER", "ftp"},
		{"STORAGE_BASE_PATH", ""},
		{"STORAGE_URL_KEY", ""},
		{"STORAGE_URL_KEY", "abcd"},
		{"STORAGE_PUBLIC_URL", ""},
		{"STORAGE_PUBLIC_URL", "/files"},
		{"STORAGE_URL_TTL", "30d"},
		{"TIMESCALE_URL", "postgres://staff_app@127.0.0.1:1/ts"}, // with an admin URL below, the admin one is missing
	} {
		env := map[string]string{}
		for k, v := range base {
			env[k] = v
		}
		env[tc.key] = tc.value
		if tc.key == "TIMESCALE_URL" {
			env["DASHBOARD_ADMIN_DATABASE_URL"] = "postgres://staff_admin@127.0.0.1:1/none"
			tc.key = "DASHBOARD_ADMIN_TIMESCALE_URL"
		}
		err := run(context.Background(), nil, func(k string) string { return env[k] }, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%s=%q: %v, want an error naming %s", tc.key, tc.value, err, tc.key)
		}
	}
}
