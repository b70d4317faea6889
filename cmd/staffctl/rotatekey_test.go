package main

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestGatewayRotateKey(t *testing.T) {
	t.Parallel()
	db := pg.NewDatabase(t)
	env := map[string]string{"DATABASE_URL": db.AdminURL}
	must := mustStaffctl(t, env)
	must("org", "create", "--name", "Acme")
	must("org", "create", "--name", "Other")
	out := must("gateway", "register", "--org", "acme", "--serial", "GW-1")
	gw := regexp.MustCompile(`gateway ([0-9a-f-]{36}) registered`).FindStringSubmatch(out)[1]

	out = must("gateway", "rotate-key", "--gateway", gw, "--org", "acme", "--overlap", "30m")
	m := regexp.MustCompile(`command ([0-9a-f-]{36}) queued: gateway ` + gw + ` will rotate its API key \(overlap 30m0s`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("rotate-key printed %q", out)
	}
	must("gateway", "rotate-key", "--gateway", gw) // --org is optional
	conn, err := pgx.Connect(context.Background(), db.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var typ, payload, status string
	if err := conn.QueryRow(context.Background(), `SELECT type, payload::text, status FROM gateway_commands WHERE id = $1`, m[1]).Scan(&typ, &payload, &status); err != nil {
		t.Fatal(err)
	}
	if typ != "rotate_api_key" || payload != `{"overlap_seconds": 1800}` || status != "pending" {
		t.Fatalf("queued %s %s %s, want a pending rotate_api_key with only the overlap", typ, payload, status)
	}
	if out := must("command", "list", "--org", "acme", "--gateway", gw); strings.Count(out, "rotate_api_key") != 2 {
		t.Fatalf("command list: %s", out)
	}

	bad := []struct {
		args []string
		want string
		code int
	}{
		{[]string{"gateway", "rotate-key"}, "--gateway is required", 2},
		{[]string{"gateway", "rotate-key", "--gateway", "x"}, `"x" is not a gateway id`, 2},
		{[]string{"gateway", "rotate-key", "--gateway", gw, "--overlap", "10s"}, "--overlap must be", 2},
		{[]string{"gateway", "rotate-key", "--gateway", gw, "--overlap", "200h"}, "--overlap must be", 2},
		{[]string{"gateway", "rotate-key", "--gateway", gw, "--org", "other"}, "gateway: no gateway " + gw + " in organisation", 1},
		{[]string{"gateway", "rotate-key", "--gateway", "0199a2b4-0000-7000-8000-000000000000"}, "gateway: no gateway", 1},
		{[]string{"gateway", "rotate"}, "unknown subcommand", 2},
	}
	for _, b := range bad {
		_, _, err := staffctl(t, env, b.args...)
		if err == nil || !strings.Contains(err.Error(), b.want) || exitCode(err) != b.code {
			t.Errorf("%v: err = %v (exit %d), want %q with exit %d", b.args, err, exitCode(err), b.want, b.code)
		}
	}
}

// TestGatewayRevoke: staffctl gateway revoke revokes through
// accounts.RevokeGateway (the Dashboard API's implementation): the row is
// revoked, its pending command cancelled; a second revoke and an unknown
// gateway name the flag.
func TestGatewayRevoke(t *testing.T) {
	t.Parallel()
	db := pg.NewDatabase(t)
	env := map[string]string{"DATABASE_URL": db.AdminURL}
	must := mustStaffctl(t, env)
	must("org", "create", "--name", "Acme")
	out := must("gateway", "register", "--org", "acme", "--serial", "GW-9")
	gw := regexp.MustCompile(`gateway ([0-9a-f-]{36}) registered`).FindStringSubmatch(out)[1]
	must("gateway", "rotate-key", "--gateway", gw)
	out = must("gateway", "revoke", "--gateway", gw)
	if !strings.Contains(out, "revoked; 1 unfinished commands cancelled") {
		t.Fatalf("revoke printed %q", out)
	}
	conn, err := pgx.Connect(context.Background(), db.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var status string
	if err := conn.QueryRow(context.Background(), `SELECT status FROM gateway_instances WHERE id = $1`, gw).Scan(&status); err != nil || status != "revoked" {
		t.Fatalf("status %q, %v", status, err)
	}
	if _, _, err := staffctl(t, env, "gateway", "revoke", "--gateway", gw); err == nil || !strings.Contains(err.Error(), "revoked already") {
		t.Fatalf("second revoke: %v", err)
	}
	if _, _, err := staffctl(t, env, "gateway", "revoke", "--gateway", "00000000-0000-0000-0000-000000000009"); err == nil || !strings.Contains(err.Error(), "no gateway") {
		t.Fatalf("unknown gateway: %v", err)
	}
}
