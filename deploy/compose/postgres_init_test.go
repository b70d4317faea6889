package compose

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/staffcontrol/staffcontrol/internal/cloud/pgcluster"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
)

// TestPostgresInitScript runs postgres-init/10-staff-roles.sh as the
// postgres image runs it when it creates its cluster (psql on the local
// server, PGDATA holding a pg_hba.conf), against a throwaway cluster, then
// the migrations as the migrate service runs them: the roles exist with
// their passwords and the attributes the bootstrap would give them, the
// bootstrap accepts them, and pg_hba.conf rejects the owner first. Skipped
// where PostgreSQL's binaries are missing (CI installs them).
func TestPostgresInitScript(t *testing.T) {
	psql, err := exec.LookPath("psql")
	if err != nil {
		t.Skip("psql not found")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := pgcluster.Start(ctx, pgcluster.Options{})
	if err != nil {
		t.Skipf("no throwaway PostgreSQL cluster here: %v", err)
	}
	defer c.Close()

	pgdata := t.TempDir()
	hba := filepath.Join(pgdata, "pg_hba.conf")
	original := "local all all trust\nhost all all all scram-sha-256\n"
	if err := os.WriteFile(hba, []byte(original), 0o600); err != nil {
		t.Fatal(err)
	}
	script, err := filepath.Abs(filepath.Join("postgres-init", "10-staff-roles.sh"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, "/bin/sh", script)
	cmd.Env = append(os.Environ(),
		"PATH="+filepath.Dir(psql)+":"+os.Getenv("PATH"),
		"PGHOST=127.0.0.1", "PGPORT="+strings.TrimPrefix(c.Addr(), "127.0.0.1:"),
		"PGDATA="+pgdata, "POSTGRES_USER=postgres", "POSTGRES_DB=postgres",
		"STAFF_INGEST_PASSWORD=ingest-pw-1", "STAFF_DASHBOARD_PASSWORD=dashboard'pw", "STAFF_ADMIN_PASSWORD=admin pw $(x)")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("10-staff-roles.sh: %v\n%s", err, out)
	}

	b, err := os.ReadFile(hba)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	var rules []string
	for _, l := range lines {
		if l != "" && !strings.HasPrefix(l, "#") {
			rules = append(rules, strings.Join(strings.Fields(l), " "))
		}
	}
	if len(rules) < 4 || rules[0] != "host all staff_owner all reject" || rules[1] != "local all staff_owner reject" {
		t.Errorf("pg_hba.conf does not start by rejecting staff_owner:\n%s", b)
	}
	if !strings.HasSuffix(string(b), original) {
		t.Errorf("pg_hba.conf lost its own lines:\n%s", b)
	}

	admin := c.URL("postgres")
	if _, err := postgres.MigrateUp(ctx, admin, nil); err != nil {
		t.Fatalf("migrate up after the init script: %v", err)
	}
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for role, pw := range map[string]string{"staff_ingest": "ingest-pw-1", "staff_dashboard": "dashboard'pw", "staff_admin": "admin pw $(x)"} {
		var login, super, bypass, inherit, hasPassword bool
		var verifier string
		err := conn.QueryRow(ctx, `SELECT rolcanlogin, rolsuper, rolbypassrls, rolinherit, rolpassword IS NOT NULL, coalesce(rolpassword, '')
			FROM pg_authid WHERE rolname = $1`, role).Scan(&login, &super, &bypass, &inherit, &hasPassword, &verifier)
		if err != nil {
			t.Errorf("%s: %v", role, err)
			continue
		}
		if !login || super || bypass || inherit || !hasPassword {
			t.Errorf("%s: login %v superuser %v bypassrls %v inherit %v password %v; want LOGIN NOSUPERUSER NOBYPASSRLS NOINHERIT with a password",
				role, login, super, bypass, inherit, hasPassword)
		}
		if strings.Contains(verifier, pw) {
			t.Errorf("%s: the password is stored in clear", role)
		}
	}
}
