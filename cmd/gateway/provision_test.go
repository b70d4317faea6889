package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestProvisionFlag: --provision exchanges the token once and writes the key
// file; a second run is a no-op; a refused token or an unreachable cloud
// fails without a key file.
func TestProvisionFlag(t *testing.T) {
	gw := func(env map[string]string, args ...string) (string, error) {
		var out, errb bytes.Buffer
		err := run(context.Background(), args, func(k string) string { return env[k] }, &out, &errb)
		return out.String(), err
	}
	h := newHarness(t, "")
	key := filepath.Join(h.dir, "gateway-key.json")

	if out, err := gw(map[string]string{"STAFF_GATEWAY_ORGANIZATION_PROVISIONING_TOKEN": "wrong-token"}, "--config", h.cfg, "--provision"); err == nil {
		t.Fatalf("a refused token passed: %q", out)
	}
	if _, err := os.Stat(key); !os.IsNotExist(err) {
		t.Fatalf("a refused provisioning left a key file: %v", err)
	}

	out, err := gw(nil, "--config", h.cfg, "--provision")
	if err != nil || !strings.HasPrefix(out, "provisioned as gateway ") {
		t.Fatalf("provision: %v %q", err, out)
	}
	if fi, err := os.Stat(key); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	out, err = gw(nil, "--config", h.cfg, "--provision")
	if err != nil || !strings.HasPrefix(out, "already provisioned as gateway ") {
		t.Fatalf("second provision: %v %q", err, out)
	}
	out, err = gw(nil, "--config", h.cfg, "--test-connection")
	if err != nil || !strings.HasPrefix(out, "OK: connected to ") {
		t.Fatalf("test-connection after provisioning: %v %q", err, out)
	}

	h2 := newHarness(t, "")
	h2.srv.Close()
	if out, err := gw(nil, "--config", h2.cfg, "--provision"); err == nil {
		t.Fatalf("provisioning against a closed server passed: %q", out)
	}
}

func TestVersionFlag(t *testing.T) {
	var out, errb bytes.Buffer
	if err := run(context.Background(), []string{"--version"}, func(string) string { return "" }, &out, &errb); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "staff-control gateway ") || !strings.Contains(out.String(), "go1.") {
		t.Fatalf("--version: %q", out.String())
	}
}
