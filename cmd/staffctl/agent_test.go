package main

import (
	"context"
	"crypto/sha256"
	"regexp"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestEnrolmentSecretAndAgentRevoke: staffctl org enrolment-secret shows a
// new secret once and stores only its hash (a rotation replaces it);
// staffctl agent revoke queues revoke_agent for every gateway of the
// organisation only.
func TestEnrolmentSecretAndAgentRevoke(t *testing.T) {
	t.Parallel()
	db := pg.NewDatabase(t)
	env := map[string]string{"DATABASE_URL": db.AdminURL}
	must := mustStaffctl(t, env)
	must("org", "create", "--name", "Acme")
	must("org", "create", "--name", "Other")
	must("gateway", "register", "--org", "acme", "--serial", "GW-1")
	must("gateway", "register", "--org", "acme", "--serial", "GW-2")
	must("gateway", "register", "--org", "other", "--serial", "GW-3")
	secretRe := regexp.MustCompile(`\n(sce_[A-Za-z0-9_-]{43})\n`)
	first := secretRe.FindStringSubmatch(must("org", "enrolment-secret", "acme"))
	second := secretRe.FindStringSubmatch(must("org", "enrolment-secret", "acme"))
	if first == nil || second == nil || first[1] == second[1] {
		t.Fatalf("secrets %v %v", first, second)
	}
	conn, err := pgx.Connect(context.Background(), db.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var hash []byte
	if err := conn.QueryRow(context.Background(), `SELECT enrolment_secret_hash FROM organizations WHERE slug = 'acme'`).Scan(&hash); err != nil {
		t.Fatal(err)
	}
	if h := sha256.Sum256([]byte(second[1])); string(hash) != string(h[:]) {
		t.Fatal("the stored hash is not the latest secret's SHA-256")
	}
	var clear int
	_ = conn.QueryRow(context.Background(), `SELECT count(*) FROM organizations WHERE row_to_json(organizations)::text LIKE '%sce_%'`).Scan(&clear)
	if clear != 0 {
		t.Fatal("a secret is stored in clear")
	}

	out := must("agent", "revoke", "acme", "leaked-agent")
	if n := strings.Count(out, "revoke_agent "); n != 2 {
		t.Fatalf("revoke queued %d commands, want one per gateway of acme:\n%s", n, out)
	}
	var perOrg map[string]int = map[string]int{}
	rows, err := conn.Query(context.Background(), `SELECT o.slug, c.payload->>'agent_uid' FROM gateway_commands c JOIN organizations o ON o.id = c.organization_id
		WHERE c.type = 'revoke_agent' AND c.status = 'pending'`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var slug, uid string
		_ = rows.Scan(&slug, &uid)
		if uid != "leaked-agent" {
			t.Errorf("payload agent_uid %q", uid)
		}
		perOrg[slug]++
	}
	rows.Close()
	if perOrg["acme"] != 2 || perOrg["other"] != 0 {
		t.Fatalf("revoke_agent commands per organisation %v", perOrg)
	}

	for _, b := range []struct {
		args []string
		want string
		code int
	}{
		{[]string{"org", "enrolment-secret"}, "organisation (id or slug) is required", 2},
		{[]string{"org", "enrolment-secret", "nosuch"}, `no organisation with slug "nosuch"`, 1},
		{[]string{"agent", "revoke", "acme"}, "agent uid are required", 2},
		{[]string{"agent", "unrevoke", "acme", "x"}, "unknown subcommand", 2},
	} {
		_, _, err := staffctl(t, env, b.args...)
		if err == nil || !strings.Contains(err.Error(), b.want) || exitCode(err) != b.code {
			t.Errorf("%v: err = %v (exit %d), want %q with exit %d", b.args, err, exitCode(err), b.want, b.code)
		}
	}
	// An organisation without gateways: nothing to revoke at.
	must("org", "create", "--name", "Empty")
	if _, _, err := staffctl(t, env, "agent", "revoke", "empty", "x"); err == nil || !strings.Contains(err.Error(), "has no gateway") {
		t.Errorf("revoke in an organisation without gateways: %v", err)
	}
}
