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

	"github.com/staffcontrol/staffcontrol/internal/cloud/pgtest"
	"github.com/staffcontrol/staffcontrol/internal/logtest"
)

var pg *pgtest.Server

func TestMain(m *testing.M) { pgtest.Main(m, &pg) }

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestTheUnauthenticatedProvisionRouteCutsOffASlowBody runs the binary's
// run with the HTTP_* keys set, and trickles a body to the one route that
// needs no credential.
func TestTheUnauthenticatedProvisionRouteCutsOffASlowBody(t *testing.T) {
	db := pg.NewDatabase(t)
	addr := freeAddr(t)
	env := map[string]string{"AGENT_API_ADDR": addr, "DATABASE_URL": db.IngestURL, "TENANT_CONTEXT_KEY": pg.ContextKey().String(), "STORAGE_BASE_PATH": t.TempDir(),
		"HTTP_BODY_MIN_RATE": "1000", "HTTP_BODY_GRACE": "500ms", "HTTP_WRITE_TIMEOUT": "1s", "HTTP_READ_HEADER_TIMEOUT": "1s"}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, nil, func(k string) string { return env[k] }, io.Discard, logtest.Writer(t, "agent-api stderr"))
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
			t.Fatalf("agent-api not serving: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	fmt.Fprint(c, "POST /v2/gateway/provision HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{")
	go func() {
		for i := 0; i < 499; i++ {
			time.Sleep(200 * time.Millisecond) // 5 B/s
			if _, err := c.Write([]byte(" ")); err != nil {
				return
			}
		}
	}()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("a provision body sent at 5 B/s held the connection for 5 s (answered %q)", b)
	}
	if !strings.HasPrefix(string(b), "HTTP/1.1 408") {
		t.Fatalf("answered %q, want 408", b)
	}
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Fatalf("cut off after %v, want just after the 500ms grace", d)
	}
}

func TestABadTimeoutKeyIsNamed(t *testing.T) {
	env := map[string]string{"DATABASE_URL": "postgres://staff_ingest@127.0.0.1/x", "TENANT_CONTEXT_KEY": pg.ContextKey().String(), "STORAGE_BASE_PATH": t.TempDir(), "HTTP_BODY_GRACE": "ten seconds"}
	err := run(context.Background(), nil, func(k string) string { return env[k] }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "HTTP_BODY_GRACE") {
		t.Fatalf("err = %v, want it to name HTTP_BODY_GRACE", err)
	}
}

func TestABadThrottleOrStorageKeyIsNamed(t *testing.T) {
	for key, v := range map[string]string{"THROTTLE_MAX_LOCKOUT": "forever", "TRUSTED_PROXIES": "10.0.0.0/33",
		"STORAGE_DRIVER": "ftp", "STORAGE_URL_TTL": "8d", "STORAGE_URL_KEY": "short", "STORAGE_BASE_PATH": ""} {
		env := map[string]string{"DATABASE_URL": "postgres://staff_ingest@127.0.0.1/x", "TENANT_CONTEXT_KEY": pg.ContextKey().String(), "STORAGE_BASE_PATH": t.TempDir(), key: v}
		err := run(context.Background(), nil, func(k string) string { return env[k] }, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%s=%s: err = %v, want it to name %s", key, v, err, key)
		}
	}
}
