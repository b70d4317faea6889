package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestPolicyAndCommandCommands(t *testing.T) {
	t.Parallel()
	db := pg.NewDatabase(t)
	env := map[string]string{"DATABASE_URL": db.AdminURL}
	must := mustStaffctl(t, env)
	must("org", "create", "--name", "Acme")
	out := must("gateway", "register", "--org", "acme", "--serial", "GW-1")
	gw := regexp.MustCompile(`gateway ([0-9a-f-]{36}) registered`).FindStringSubmatch(out)[1]
	dir := t.TempDir()
	good := filepath.Join(dir, "p.json")
	_ = os.WriteFile(good, []byte(`{"screenshots": {"enabled": true, "interval_seconds": 300}}`), 0o600)
	bad := filepath.Join(dir, "bad.json")
	_ = os.WriteFile(bad, []byte(`{"screenshots": {"interval_seconds": 1}}`), 0o600)

	out = must("policy", "create", "--org", "acme", "--name", "Office", "--file", good)
	pid := regexp.MustCompile(`policy (\d+) created`).FindStringSubmatch(out)[1]
	if out := must("policy", "release", "--org", "acme", "--policy", pid); !strings.Contains(out, "version 1.0.0 released") {
		t.Fatalf("release: %s", out)
	}
	out = must("policy", "distribute", "--org", "acme", "--policy", pid, "--version", "1.0.0")
	dist := regexp.MustCompile(`distribution ([0-9a-f-]{36}) started`).FindStringSubmatch(out)[1]
	if out := must("policy", "status", "--org", "acme", "--distribution", dist); !strings.Contains(out, "1 targets: 0 applied, 0 delivered, 1 pending") || !strings.Contains(out, gw) {
		t.Fatalf("status: %s", out)
	}
	if out := must("command", "send", "--org", "acme", "--gateway", gw, "--type", "restart_agent", "--payload", `{"agent":"all"}`); !strings.Contains(out, "queued for gateway "+gw) {
		t.Fatalf("send: %s", out)
	}
	// Device commands and device lists belong to the device commands.
	for typ, hint := range map[string]string{"device_command": "staffctl device open-door", "devices_update": "staffctl device sync"} {
		if _, errOut, err := staffctl(t, env, "command", "send", "--org", "acme", "--gateway", gw, "--type", typ, "--payload", `{}`); err == nil || !strings.Contains(errOut+err.Error(), hint) {
			t.Errorf("send %s: %v %s, want a refusal naming %q", typ, err, errOut, hint)
		}
	}
	if out := must("command", "list", "--org", "acme"); strings.Count(out, gw) != 2 || !strings.Contains(out, "policy_update") {
		t.Fatalf("list: %s", out)
	}
	if out := must("command", "send", "--org", "acme", "--gateway", gw, "--type", "replay_dead_letters", "--payload", `{"event_ids":[]}`); !strings.Contains(out, "queued for gateway "+gw) {
		t.Fatalf("send replay_dead_letters: %s", out)
	}

	badCases := []struct {
		args []string
		want string
	}{
		{[]string{"policy", "create", "--name", "X", "--file", good}, "--org is required"},
		{[]string{"policy", "create", "--org", "acme", "--name", "Y", "--file", bad}, "content.screenshots.interval_seconds"},
		{[]string{"policy", "release", "--org", "acme", "--policy", pid}, "nothing to release"},
		{[]string{"policy", "distribute", "--org", "acme", "--policy", pid, "--version", "9.9.9"}, "not found"},
		{[]string{"policy", "fly", "--org", "acme"}, "unknown subcommand"},
		// Each subcommand has its own flags: another one's is refused.
		{[]string{"policy", "status", "--org", "acme", "--distribution", "x", "--canary", "5"}, "flag provided but not defined: -canary"},
		{[]string{"policy", "release", "--org", "acme", "--policy", pid, "--file", good}, "flag provided but not defined: -file"},
		{[]string{"policy", "rollback", "--org", "acme", "--policy", pid}, "--to is required"},
		{[]string{"command", "send", "--org", "acme", "--gateway", gw, "--type", "explode"}, "type: \"explode\" is not a command type"},
		{[]string{"command", "send", "--org", "acme", "--gateway", "x", "--type", "restart_agent"}, "--gateway: \"x\" is not a gateway id"},
	}
	for _, b := range badCases {
		if _, _, err := staffctl(t, env, b.args...); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%v: err = %v, want %q", b.args, err, b.want)
		}
	}
}
