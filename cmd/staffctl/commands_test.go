package main

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestMigrateUpDownUpThroughStaffctl(t *testing.T) {
	t.Parallel()
	db := pg.NewEmptyDatabase(t)
	env := map[string]string{"DATABASE_URL": db.AdminURL}
	steps := []struct {
		args []string
		want string
	}{
		{[]string{"migrate", "status"}, "00001 00001_relational.sql"},
		{[]string{"migrate", "up"}, "applied 00002 00002_monitoring.sql"},
		{[]string{"migrate", "up"}, "nothing to apply"},
		{[]string{"migrate", "down"}, "rolled back "},
		{[]string{"migrate", "status"}, " pending"},
		{[]string{"migrate", "up"}, "applied "},
		{[]string{"migrate", "status"}, " applied"},
	}
	for _, s := range steps {
		out, errOut, err := staffctl(t, env, s.args...)
		if err != nil {
			t.Fatalf("%v: %v (%s)", s.args, err, errOut)
		}
		if !strings.Contains(out, s.want) {
			t.Fatalf("%v printed %q, want it to contain %q", s.args, out, s.want)
		}
	}
	if out, _, _ := staffctl(t, env, "migrate", "status"); strings.Contains(out, "pending") {
		t.Fatalf("after up, status still lists pending migrations:\n%s", out)
	}
}

func TestAdminCommands(t *testing.T) {
	t.Parallel()
	db := pg.NewDatabase(t)
	env := map[string]string{"DATABASE_URL": db.AdminURL}

	out, _, err := staffctl(t, env, "org", "create", "--name", "Acme Corp")
	if err != nil || !strings.Contains(out, "slug acme-corp") {
		t.Fatalf("org create: %q, %v", out, err)
	}
	out, _, err = staffctl(t, env, "user", "create", "--org", "acme-corp", "--email", "hr@acme.test", "--role", "hr")
	if err != nil || !strings.Contains(out, "hr@acme.test (HR)") || !strings.Contains(out, "password (shown once): ") {
		t.Fatalf("user create: %q, %v", out, err)
	}
	out, _, err = staffctl(t, env, "gateway", "register", "--org", "acme-corp", "--serial", "GW-7", "--ttl", "2h")
	if err != nil || !regexp.MustCompile(`provisioning_token: scpt_[A-Za-z0-9_-]{43}`).MatchString(out) {
		t.Fatalf("gateway register: %q, %v", out, err)
	}
	out, _, err = staffctl(t, env, "org", "list")
	if err != nil || !strings.Contains(out, "acme-corp") {
		t.Fatalf("org list: %q, %v", out, err)
	}

	// Bad input: a usage error (exit 2) or an error naming the field.
	bad := []struct {
		args []string
		want string
		code int
	}{
		{[]string{"org", "create"}, "--name is required", 2},
		{[]string{"org", "create", "--name", "Acme Corp"}, "slug: an organisation with slug \"acme-corp\" exists already", 1},
		{[]string{"org", "create", "--name", "X", "--slug", "Not OK"}, "slug: must be", 1},
		{[]string{"org", "frobnicate"}, "unknown subcommand", 2},
		{[]string{"user", "create", "--email", "x@acme.test"}, "--role is required", 2},
		{[]string{"user", "create", "--org", "acme-corp", "--email", "nope", "--role", "HR"}, "email: \"nope\" is not a valid e-mail address", 1},
		{[]string{"user", "create", "--org", "acme-corp", "--email", "a@acme.test", "--role", "BOSS"}, "role: unknown role", 1},
		{[]string{"user", "create", "--email", "a@acme.test", "--role", "HR"}, "organization: is required for role HR", 1},
		{[]string{"user", "create", "--org", "no-such-org", "--email", "a@acme.test", "--role", "HR"}, "org: no organisation with slug", 1},
		{[]string{"gateway", "register", "--org", "acme-corp"}, "--serial is required", 2},
		{[]string{"gateway", "register", "--org", "99999", "--serial", "S"}, "organization: organisation 99999 does not exist", 1},
		{[]string{"gateway", "register", "--org", "acme-corp", "--serial", "GW-7"}, "serial: a gateway with serial \"GW-7\" is registered already", 1},
		{[]string{"gateway", "register", "--org", "acme-corp", "--serial", "GW-8", "--ttl", "1s"}, "ttl: must be between", 1},
		{[]string{"gateway", "register", "--bogus"}, "flag provided but not defined: -bogus", 2},
		{[]string{"nope"}, "unknown command \"nope\"", 2},
	}
	for _, b := range bad {
		_, _, err := staffctl(t, env, b.args...)
		if err == nil || !strings.Contains(err.Error(), b.want) || exitCode(err) != b.code {
			t.Errorf("%v: err = %v (exit %d), want %q with exit %d", b.args, err, exitCode(err), b.want, b.code)
		}
	}
	// No database configured.
	if _, _, err := staffctl(t, nil, "org", "list"); err == nil || !strings.Contains(err.Error(), "DATABASE_URL") {
		t.Errorf("without a database: err = %v, want it to name DATABASE_URL", err)
	}
	// --help succeeds.
	for _, args := range [][]string{{"--help"}, {"org", "create", "--help"}, {"migrate", "--help"}, {"up", "--help"}} {
		if _, _, err := staffctl(t, env, args...); err != nil {
			t.Errorf("%v: %v", args, err)
		}
	}
}

// TestUpRunsTheSystemAndStopsCleanly runs the README's main command with no
// environment: a throwaway cluster, both APIs, the demo organisation, the
// gateway with its agents and door terminals; then it cancels, as Ctrl-C
// does.
func TestUpRunsTheSystemAndStopsCleanly(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &lockedBuffer{}
	var errOut lockedBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"up", "--agent-addr", "127.0.0.1:0", "--dashboard-addr", "127.0.0.1:0", "--gateway-addr", "127.0.0.1:0", "--agents", "2", "--agent-rate", "50", "--badge-rate", "5"},
			func(string) string { return "" }, out, &errOut)
	}()
	re := regexp.MustCompile(`(Agent|Dashboard) API\s+http://(\S+)`)
	deadline := time.Now().Add(90 * time.Second)
	var urls []string
	for time.Now().Before(deadline) {
		if m := re.FindAllStringSubmatch(out.String(), -1); len(m) == 2 {
			urls = []string{m[0][2], m[1][2]}
			break
		}
		select {
		case err := <-done:
			t.Fatalf("up exited early: %v\nstdout: %s\nstderr: %s", err, out.String(), errOut.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	if urls == nil {
		t.Fatalf("up did not print both APIs:\n%s\n%s", out.String(), errOut.String())
	}
	for _, u := range urls {
		body, code := httpGet(t, "http://"+u+"/health/ready")
		if code != 200 || !strings.Contains(body, "ready") {
			t.Errorf("%s/health/ready = %d %q", u, code, body)
		}
	}
	if !strings.Contains(out.String(), `Demo organisation 1 (slug "demo")`) || !strings.Contains(out.String(), "provisioning token scpt_") {
		t.Errorf("demo organisation not reported:\n%s", out.String())
	}
	// The printed admin login works against the Dashboard API.
	login := regexp.MustCompile(`Demo admin\s+(\S+) / (\S+)`).FindStringSubmatch(out.String())
	if login == nil {
		t.Fatalf("no demo admin login printed:\n%s", out.String())
	}
	dash := "http://" + urls[1]
	if strings.HasPrefix(re.FindAllStringSubmatch(out.String(), -1)[0][1], "Dashboard") {
		dash = "http://" + urls[0]
	}
	body, code := httpPostJSON(t, dash+"/api/auth/login", fmt.Sprintf(`{"email": %q, "password": %q}`, login[1], login[2]))
	token := regexp.MustCompile(`"access_token":"([^"]+)"`).FindStringSubmatch(body)
	if code != 200 || token == nil {
		t.Fatalf("login with the printed credentials: %d %s", code, body)
	}
	req, _ := http.NewRequest("GET", dash+"/api/v2/employees", nil)
	req.Header.Set("Authorization", "Bearer "+token[1])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("GET /api/v2/employees as the demo admin: %d", resp.StatusCode)
	}
	// The gateway is up, and the simulated agents' events reach PostgreSQL
	// through it and the Agent API.
	gw := regexp.MustCompile(`Agent Gateway\s+(http://\S+)`).FindStringSubmatch(out.String())
	if gw == nil {
		t.Fatalf("no gateway reported:\n%s", out.String())
	}
	if body, code := httpGet(t, gw[1]+"/health"); code != 200 {
		t.Errorf("gateway /health = %d %q", code, body)
	}
	pgURL := regexp.MustCompile(`PostgreSQL\s+(postgres://\S+)`).FindStringSubmatch(out.String())
	if pgURL == nil {
		t.Fatalf("no PostgreSQL URL reported:\n%s", out.String())
	}
	conn, err := pgx.Connect(ctx, pgURL[1])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var stored int
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline) && stored == 0; time.Sleep(200 * time.Millisecond) {
		_ = conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM monitoring.active_windows) + (SELECT count(*) FROM monitoring.visited_sites) + (SELECT count(*) FROM monitoring.user_sessions)`).Scan(&stored)
	}
	if stored == 0 {
		t.Errorf("no simulated agent event reached PostgreSQL within 60 s")
	}
	// The simulated agents enrolled with the secret up created, and the
	// gateway reported them.
	if !regexp.MustCompile(`Agent enrolment\s+sce_\S+`).MatchString(out.String()) {
		t.Errorf("no enrolment secret reported:\n%s", out.String())
	}
	var enrolled int
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && enrolled < 2; time.Sleep(200 * time.Millisecond) {
		_ = conn.QueryRow(ctx, `SELECT count(*) FROM agent_instances WHERE enrolled_at IS NOT NULL`).Scan(&enrolled)
	}
	if enrolled != 2 {
		t.Errorf("%d enrolled agents recorded, want the 2 simulated ones", enrolled)
	}
	checkUpDevices(t, ctx, conn, out.String())
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("up returned %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("up did not stop within 30 s of Ctrl-C")
	}
	if !strings.Contains(out.String(), "stopped cleanly") {
		t.Errorf("no clean stop reported:\n%s", out.String())
	}
}

// checkUpDevices: up printed both simulated door terminals; their events
// (catch-up and live badges of the demo staff) land in
// monitoring.device_events under their devices ids, the staff are
// employees with their card and employee numbers, and the printed
// open-door command opens the door through the gateway.
func checkUpDevices(t *testing.T, ctx context.Context, conn *pgx.Conn, out string) {
	t.Helper()
	terms := regexp.MustCompile(`Door terminal\s+device (\d+), [^:]*\((Hikvision|ZKTeco) simulator\)`).FindAllStringSubmatch(out, -1)
	if len(terms) != 2 {
		t.Fatalf("up printed %d door terminals, want 2:\n%s", len(terms), out)
	}
	cmd := regexp.MustCompile(`Open a door\s+DATABASE_URL='(\S+)' staffctl (device open-door .*)`).FindStringSubmatch(out)
	if cmd == nil {
		t.Fatalf("no open-door command printed:\n%s", out)
	}
	var devices, rows, known int
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		// 10 past events each, then live badges at 5/s each.
		_ = conn.QueryRow(ctx, `SELECT count(DISTINCT device_id)::int, count(*)::int, count(*) FILTER (WHERE employee_number LIKE 'D-10%')::int
			FROM monitoring.device_events WHERE device_id IN ($1::bigint, $2::bigint)`, terms[0][1], terms[1][1]).Scan(&devices, &rows, &known)
		if devices == 2 && rows >= 30 {
			break
		}
	}
	if devices != 2 || rows < 30 || known < 30 {
		t.Fatalf("device events of the door terminals %s and %s: from %d devices, %d rows (%d naming demo staff), want both and ≥ 30",
			terms[0][1], terms[1][1], devices, rows, known)
	}
	var staff int
	if err := conn.QueryRow(ctx, `SELECT count(DISTINCT e.id)::int FROM employees e JOIN employee_identities i ON i.employee_id = e.id
		WHERE e.employee_number LIKE 'D-10%' AND i.kind = 'card_number'`).Scan(&staff); err != nil || staff != 4 {
		t.Errorf("%d demo employees with a card, want 4 (%v)", staff, err)
	}
	stdout, stderr, err := staffctl(t, map[string]string{"DATABASE_URL": cmd[1]}, strings.Fields(cmd[2])...)
	if err != nil || !strings.Contains(stdout, `"status": "completed"`) {
		t.Fatalf("the printed %q: %v\n%s\n%s", cmd[2], err, stdout, stderr)
	}
}
