package main

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/staffcontrol/staffcontrol/internal/sim/fleetsim"
)

func TestSimulateGatewaysFlags(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys.txt")
	_ = os.WriteFile(keys, []byte("00000000-0000-0000-0000-000000000001 scgw_a\n00000000-0000-0000-0000-000000000002 scgw_b\n"), 0o600)
	empty := filepath.Join(dir, "empty.txt")
	_ = os.WriteFile(empty, nil, 0o600)
	for _, b := range []struct {
		args []string
		want string
		code int
	}{
		{[]string{"simulate", "gateways"}, "--keys is required", 2},
		{[]string{"simulate", "gateways", "--keys", keys, "--count", "3"}, "holds 2 gateways", 2},
		{[]string{"simulate", "gateways", "--keys", empty}, "holds no gateway", 2},
		{[]string{"simulate", "gateways", "--keys", keys, "--server", "127.0.0.1:1"}, "--server", 2},
		{[]string{"simulate", "gateways", "--keys", filepath.Join(dir, "missing")}, "--keys", 1},
		{[]string{"simulate", "trains"}, "simulate gateways --count N", 2},
	} {
		_, _, err := staffctl(t, nil, b.args...)
		if err == nil || !strings.Contains(err.Error(), b.want) || exitCode(err) != b.code {
			t.Errorf("%v: err = %v (exit %d), want %q with exit %d", b.args, err, exitCode(err), b.want, b.code)
		}
	}
}

// TestSimulateGatewaysStopsAfterDuration runs the fleet against a port that
// refuses connections: it keeps retrying, stops at --duration and prints
// its counters.
func TestSimulateGatewaysStopsAfterDuration(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	keys := filepath.Join(t.TempDir(), "keys.txt")
	_ = os.WriteFile(keys, []byte("00000000-0000-0000-0000-000000000001 scgw_a\n"), 0o600)
	out, errOut, err := staffctl(t, nil, "simulate", "gateways", "--keys", keys, "--server", "http://"+addr, "--duration", "500ms")
	if err != nil {
		t.Fatalf("%v: %s", err, errOut)
	}
	var s fleetsim.Stats
	if err := json.Unmarshal([]byte(out), &s); err != nil || s.Gateways != 1 || s.DialFailures < 1 || s.Connected != 0 {
		t.Fatalf("output %q (%v), want counters with a dial failure", out, err)
	}
}
