package dashboard_test

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// The tests of the console's pages beyond the first slice (departments,
// fleet, commands, audit log, users, reports, policies): the real
// Dashboard API on loopback over a real PostgreSQL with two
// organisations, as console_test.go.

// inlineCode finds inline scripts, style attributes and event handlers.
var inlineCode = regexp.MustCompile(`<script>|<script [^>]*>[^<]|<style|style="| on[a-z]+="`)

// checkPage fails unless p is a console page under 100 KB without inline
// code.
func checkPage(t *testing.T, path string, p page) {
	t.Helper()
	if len(p.Body) >= 100<<10 {
		t.Errorf("%s: %d bytes, want < 100 KB", path, len(p.Body))
	}
	if m := inlineCode.FindString(p.Body); m != "" {
		t.Errorf("%s has inline code: %q", path, m)
	}
}

// okPage fetches path, wants 200 and checks the page.
func (b *browser) okPage(t *testing.T, path string) page {
	t.Helper()
	p := b.ok(path)
	checkPage(t, path, p)
	return p
}

// signedIn is a browser signed in as a new user of org with role.
func signedInAs(t *testing.T, e *apiEnv, org int64, email, role string, department int64) *browser {
	t.Helper()
	e.addUser(org, email, role, consolePassword, department, 0)
	b := newBrowser(t, e)
	b.mustSignIn(email, consolePassword)
	return b
}

func TestConsoleDepartments(t *testing.T) {
	e := newConsoleEnv(t)
	// Organisation A: Engineering (seeded, one employee) > Backend > Storage,
	// and Sales beside them; B's departments are named apart.
	var backend, storage, sales int64
	e.scan(&backend, `INSERT INTO departments (organization_id, parent_id, name) VALUES ($1, $2, 'Backend') RETURNING id`, e.orgA.OrganizationID, e.orgA.DepartmentID)
	e.scan(&storage, `INSERT INTO departments (organization_id, parent_id, name) VALUES ($1, $2, 'Storage <&> "team"') RETURNING id`, e.orgA.OrganizationID, backend)
	e.scan(&sales, `INSERT INTO departments (organization_id, name) VALUES ($1, 'Sales') RETURNING id`, e.orgA.OrganizationID)
	e.exec(`INSERT INTO employees (organization_id, department_id, employee_number, first_name, last_name)
		SELECT $1, $2, 'B-' || i, 'B', 'Person' || i FROM generate_series(1, 3) i`, e.orgA.OrganizationID, backend)
	e.exec(`INSERT INTO employees (organization_id, department_id, employee_number, first_name, last_name)
		SELECT $1, $2, 'S-' || i, 'S', 'Person' || i FROM generate_series(1, 2) i`, e.orgA.OrganizationID, storage)
	e.exec(`UPDATE departments SET name = 'Globexdept' WHERE id = $1`, e.orgB.DepartmentID)

	hr := signedInAs(t, e, e.orgA.OrganizationID, "hr@acme.test", "HR", 0)
	p := hr.okPage(t, "/console/departments")
	for _, want := range []string{
		fmt.Sprintf(`<a href="/console/employees?department=%d">Engineering</a>`, e.orgA.DepartmentID),
		"1 employees (6 with subdepartments)", // Engineering: itself 1, Backend 3, Storage 2
		"3 employees (5 with subdepartments)",
		"Storage &lt;&amp;&gt; &#34;team&#34;",
		"0 employees (0 with subdepartments)", // Sales
	} {
		if !strings.Contains(p.Body, want) {
			t.Errorf("HR's tree lacks %s: %.3000s", want, p.Body)
		}
	}
	if strings.Contains(p.Body, "Globexdept") {
		t.Error("A's HR sees B's department")
	}
	if strings.Contains(p.Body, `Storage <&>`) {
		t.Error("a department's name is not escaped")
	}
	// Nesting: Storage's item is inside Backend's list, inside Engineering's.
	eng := strings.Index(p.Body, ">Engineering<")
	back := strings.Index(p.Body, ">Backend<")
	stor := strings.Index(p.Body, ">Storage &lt;")
	if !(eng >= 0 && eng < back && back < stor) || strings.Count(p.Body[eng:stor], "<ul>") != 2 {
		t.Errorf("the tree does not nest Engineering > Backend > Storage: %.3000s", p.Body)
	}

	// A department lead of Backend sees their subtree only.
	lead := signedInAs(t, e, e.orgA.OrganizationID, "lead@acme.test", "DEPARTMENT_LEAD", backend)
	p = lead.okPage(t, "/console/departments")
	if !strings.Contains(p.Body, ">Backend<") || !strings.Contains(p.Body, "3 employees (5 with subdepartments)") {
		t.Errorf("the lead's tree lacks Backend: %.3000s", p.Body)
	}
	for _, not := range []string{">Engineering<", ">Sales<", "Globexdept"} {
		if strings.Contains(p.Body, not) {
			t.Errorf("the lead sees %s", not)
		}
	}

	hrB := signedInAs(t, e, e.orgB.OrganizationID, "hr@globex.test", "HR", 0)
	if p := hrB.okPage(t, "/console/departments"); !strings.Contains(p.Body, "Globexdept") || strings.Contains(p.Body, "Backend") {
		t.Errorf("B's HR tree: %.2000s", p.Body)
	}
	// Many departments with long names: the page stays under 100 KB and
	// says the tree is cut.
	e.exec(`INSERT INTO departments (organization_id, parent_id, name)
		SELECT $1, $2, 'A department with a rather long name, number ' || lpad(i::text, 4, '0') || repeat(' x', 40) FROM generate_series(1, 600) i`,
		e.orgA.OrganizationID, sales)
	if p := hr.okPage(t, "/console/departments"); !strings.Contains(p.Body, `id="departments-truncated"`) {
		t.Errorf("600 departments: no note that the tree is cut")
	}
	if p := newBrowser(t, e).get("/console/departments"); p.Status != http.StatusSeeOther {
		t.Errorf("signed out: %d, want 303", p.Status)
	}
}

func TestConsoleGateways(t *testing.T) {
	e := newConsoleEnv(t)
	const evil = `<b>"gw"</b>`
	e.exec(`UPDATE gateway_instances SET name = $2, status = 'online', last_seen_at = now() WHERE id = $1`, e.orgA.GatewayID, evil)
	e.exec(`UPDATE gateway_instances SET name = 'Globexgw' WHERE id = $1`, e.orgB.GatewayID)
	e.exec(`INSERT INTO gateway_status_snapshots (organization_id, gateway_id, "timestamp", cpu_usage, buffer_usage, queue_depth, connected_agents)
		VALUES ($1, $2, now() + interval '1 second', 12.5, 42.0, 7, 3)`, e.orgA.OrganizationID, e.orgA.GatewayID)
	admin := signedInAs(t, e, e.orgA.OrganizationID, "boss@acme.test", "ORG_ADMIN", 0)
	hr := signedInAs(t, e, e.orgA.OrganizationID, "hr@acme.test", "HR", 0)
	lead := signedInAs(t, e, e.orgA.OrganizationID, "lead@acme.test", "DEPARTMENT_LEAD", e.orgA.DepartmentID)

	list := hr.okPage(t, "/console/gateways")
	gwPath := "/console/gateways/" + e.orgA.GatewayID.String()
	if !strings.Contains(list.Body, `href="`+gwPath+`"`) || !strings.Contains(list.Body, "&lt;b&gt;&#34;gw&#34;&lt;/b&gt;") {
		t.Errorf("HR's gateway list lacks A's gateway (escaped): %.3000s", list.Body)
	}
	if strings.Contains(list.Body, "Globexgw") || strings.Contains(list.Body, evil) {
		t.Error("HR's list shows B's gateway or an unescaped name")
	}
	if p := hr.okPage(t, "/console/gateways?status=offline"); strings.Contains(p.Body, gwPath) {
		t.Error("the status filter does not narrow the list")
	}
	if p := hr.get("/console/gateways?status=bogus"); p.Status != http.StatusUnprocessableEntity && p.Status != http.StatusBadRequest {
		t.Errorf("a bad status filter: %d, want the API's refusal", p.Status)
	}

	detail := hr.okPage(t, gwPath)
	for _, want := range []string{`id="gateway-status">online<`, "12.5 %", "42.0 %", "<dd>7</dd>", "PC-1", "agent-1", "restart_agent"} {
		if !strings.Contains(detail.Body, want) {
			t.Errorf("the gateway's page lacks %s: %.4000s", want, detail.Body)
		}
	}
	// HR reads but may not rotate: no button, and the POST is refused by
	// the API's own role check.
	if strings.Contains(detail.Body, `id="rotate-key"`) {
		t.Error("HR is offered the key rotation")
	}
	if p := hr.post(gwPath+"/rotate-key", url.Values{"csrf_token": {hr.csrf(detail)}}); p.Status != http.StatusForbidden {
		t.Errorf("HR's rotation: %d, want 403", p.Status)
	}
	// B's gateway is not found for A's users.
	if p := admin.get("/console/gateways/" + e.orgB.GatewayID.String()); p.Status != http.StatusNotFound || strings.Contains(p.Body, "Globexgw") {
		t.Errorf("A's admin opening B's gateway: %d", p.Status)
	}
	// Dates are in the organisation's zone.
	e.exec(`UPDATE organizations SET time_zone = 'Asia/Tashkent' WHERE id = $1`, e.orgA.OrganizationID)
	e.exec(`UPDATE gateway_instances SET last_seen_at = '2026-03-01T20:30:00Z' WHERE id = $1`, e.orgA.GatewayID)
	if p := hr.okPage(t, gwPath); !strings.Contains(p.Body, "2026-03-02 01:30") || !strings.Contains(p.Body, "Asia/Tashkent") {
		t.Errorf("the gateway's last heartbeat is not in Tashkent time: %.3000s", p.Body)
	}
	// The page speaks the visitor's language.
	hr.lang = "ru"
	if p := hr.okPage(t, gwPath); !strings.Contains(p.Body, `<html lang="ru">`) || !strings.Contains(p.Body, "Последний сигнал") {
		t.Errorf("the gateway's page in Russian: %.2000s", p.Body)
	}
	hr.lang = "uz"
	if p := hr.okPage(t, "/console/departments"); !strings.Contains(p.Body, "Boʻlimlar") {
		t.Errorf("the departments page in Uzbek: %.2000s", p.Body)
	}
	hr.lang = ""
	// A lead sees no fleet at all: the API refuses their role.
	if p := lead.get("/console/gateways"); p.Status != http.StatusForbidden {
		t.Errorf("the lead's gateway list: %d, want 403", p.Status)
	}
	if p := lead.ok("/console/"); strings.Contains(p.Body, `href="/console/gateways"`) {
		t.Error("the lead's menu offers the gateways")
	}

	// The admin rotates the key: a rotate_api_key command is queued and
	// audited as through the API, and the page names it.
	page := admin.okPage(t, gwPath)
	if !strings.Contains(page.Body, `id="rotate-key"`) {
		t.Fatalf("the admin is not offered the key rotation: %.3000s", page.Body)
	}
	if p := admin.post(gwPath+"/rotate-key", url.Values{}); p.Status != http.StatusForbidden {
		t.Errorf("a rotation without a CSRF token: %d, want 403", p.Status)
	}
	p := admin.post(gwPath+"/rotate-key", url.Values{"csrf_token": {admin.csrf(page)}})
	if p.Status != http.StatusSeeOther || !strings.HasPrefix(p.Header.Get("Location"), gwPath+"?queued=") {
		t.Fatalf("rotation: %d %q %.1000s", p.Status, p.Header.Get("Location"), p.Body)
	}
	cmdID := strings.TrimPrefix(p.Header.Get("Location"), gwPath+"?queued=")
	var typ string
	e.scan(&typ, `SELECT type FROM gateway_commands WHERE id = $1 AND gateway_id = $2`, cmdID, e.orgA.GatewayID)
	if typ != "rotate_api_key" {
		t.Errorf("queued command type %q, want rotate_api_key", typ)
	}
	var audited int
	e.scan(&audited, `SELECT count(*) FROM audit_log WHERE action = 'rotate_key' AND resource_id = $1`, cmdID)
	if audited != 1 {
		t.Errorf("rotation audited %d times, want 1", audited)
	}
	if p := admin.okPage(t, p.Header.Get("Location")); !strings.Contains(p.Body, cmdID) || !strings.Contains(p.Body, "rotate_api_key") {
		t.Errorf("the page after the rotation does not name the command: %.3000s", p.Body)
	}
}

func TestConsoleDevicesOpenDoor(t *testing.T) {
	e := newConsoleEnv(t)
	const evil = `Door <script>x</script>`
	e.exec(`UPDATE devices SET name = $2, status = 'online' WHERE id = $1`, e.orgA.DeviceID, evil)
	e.exec(`UPDATE devices SET name = 'Globexdoor' WHERE id = $1`, e.orgB.DeviceID)
	hr := signedInAs(t, e, e.orgA.OrganizationID, "hr@acme.test", "HR", 0)
	lead := signedInAs(t, e, e.orgA.OrganizationID, "lead@acme.test", "DEPARTMENT_LEAD", e.orgA.DepartmentID)

	list := hr.okPage(t, "/console/devices")
	devPath := fmt.Sprintf("/console/devices/%d", e.orgA.DeviceID)
	if !strings.Contains(list.Body, `href="`+devPath+`"`) || !strings.Contains(list.Body, "Door &lt;script&gt;x&lt;/script&gt;") {
		t.Errorf("HR's device list: %.3000s", list.Body)
	}
	if strings.Contains(list.Body, "Globexdoor") {
		t.Error("HR sees B's device")
	}
	if p := hr.get(fmt.Sprintf("/console/devices/%d", e.orgB.DeviceID)); p.Status != http.StatusNotFound {
		t.Errorf("HR opening B's device: %d, want 404", p.Status)
	}
	if p := lead.get(devPath); p.Status != http.StatusForbidden {
		t.Errorf("the lead opening a device: %d, want 403", p.Status)
	}

	page := hr.okPage(t, devPath)
	if !strings.Contains(page.Body, `id="open-door"`) {
		t.Fatalf("HR is not offered the door: %.3000s", page.Body)
	}
	p := hr.post(devPath+"/open-door", url.Values{"csrf_token": {hr.csrf(page)}, "door": {"2"}})
	if p.Status != http.StatusSeeOther || !strings.HasPrefix(p.Header.Get("Location"), devPath+"?sent=") {
		t.Fatalf("open door: %d %q %.1000s", p.Status, p.Header.Get("Location"), p.Body)
	}
	cmdID := strings.TrimPrefix(p.Header.Get("Location"), devPath+"?sent=")
	var door int
	var gwCmd string
	e.scan(&door, `SELECT (payload->>'door')::int FROM device_commands WHERE id = $1 AND command_type = 'open_door'`, cmdID)
	e.scan(&gwCmd, `SELECT gateway_command_id::text FROM device_commands WHERE id = $1`, cmdID)
	if door != 2 {
		t.Errorf("door %d, want 2", door)
	}
	// While pending, the page and the fragment ask htmx to poll again.
	statusPath := "/console/device-commands/" + cmdID + "/status"
	sent := hr.okPage(t, p.Header.Get("Location"))
	if !strings.Contains(sent.Body, `hx-get="`+statusPath+`"`) || !strings.Contains(sent.Body, `hx-trigger="every 1s"`) {
		t.Errorf("the sent command is not polled: %.4000s", sent.Body)
	}
	frag := hr.ok(statusPath)
	if strings.Contains(frag.Body, "<html") || !strings.Contains(frag.Body, `data-status="pending"`) || !strings.Contains(frag.Body, `hx-trigger="every 1s"`) {
		t.Errorf("pending fragment: %s", frag.Body)
	}
	// The gateway completes it: the fragment shows the result and stops
	// the polling.
	e.exec(`UPDATE gateway_commands SET status = 'delivered', delivered_at = now(), attempts = 1 WHERE id = $1`, gwCmd)
	e.exec(`UPDATE gateway_commands SET status = 'completed', completed_at = now(), result = '{"status":"ok","message":"opened"}' WHERE id = $1`, gwCmd)
	frag = hr.ok(statusPath)
	if !strings.Contains(frag.Body, `data-status="completed"`) || strings.Contains(frag.Body, "hx-trigger") {
		t.Errorf("completed fragment: %s", frag.Body)
	}
	// Another organisation's user cannot poll it.
	hrB := signedInAs(t, e, e.orgB.OrganizationID, "hr@globex.test", "HR", 0)
	if p := hrB.get(statusPath); p.Status != http.StatusNotFound {
		t.Errorf("B polling A's command: %d, want 404", p.Status)
	}
}

func TestConsoleCommandsAuditUsers(t *testing.T) {
	e := newConsoleEnv(t)
	e.exec(`INSERT INTO gateway_commands (organization_id, gateway_id, type, payload, status)
		SELECT $1, $2, 'replay_dead_letters', '{}', 'completed' FROM generate_series(1, 60)`, e.orgA.OrganizationID, e.orgA.GatewayID)
	e.exec(`INSERT INTO gateway_commands (organization_id, gateway_id, type, payload) VALUES ($1, $2, 'revoke_agent', '{}')`, e.orgB.OrganizationID, e.orgB.GatewayID)
	e.exec(`INSERT INTO audit_log (organization_id, actor, action, resource_type, outcome, details) VALUES ($1, '<i>actor</i>', 'probe', 'thing', 'denied', '{"why":"<b>"}')`, e.orgA.OrganizationID)
	e.exec(`INSERT INTO audit_log (organization_id, actor, action, resource_type) VALUES ($1, 'globex-actor', 'probe', 'thing')`, e.orgB.OrganizationID)
	admin := signedInAs(t, e, e.orgA.OrganizationID, "boss@acme.test", "ORG_ADMIN", 0)
	hr := signedInAs(t, e, e.orgA.OrganizationID, "hr@acme.test", "HR", 0)

	// Commands: the gateway's, a keyset page at a time, by status.
	seen, pages := 0, 0
	path := "/console/commands?gateway_id=" + e.orgA.GatewayID.String()
	nextRE := regexp.MustCompile(`href="([^"]+)" rel="next"`)
	for path != "" && pages < 5 {
		p := hr.okPage(t, path)
		seen += strings.Count(p.Body, "<td>replay_dead_letters</td>") + strings.Count(p.Body, "<td>restart_agent</td>")
		if strings.Contains(p.Body, "revoke_agent") {
			t.Error("A's HR sees B's command")
		}
		pages++
		path = ""
		if m := nextRE.FindStringSubmatch(p.Body); m != nil {
			path = strings.ReplaceAll(m[1], "&amp;", "&")
		}
	}
	if seen != 61 || pages != 2 {
		t.Errorf("paged through %d commands in %d pages, want 61 in 2", seen, pages)
	}
	if p := hr.okPage(t, "/console/commands?status=pending&gateway_id="+e.orgA.GatewayID.String()); strings.Contains(p.Body, "replay_dead_letters") || !strings.Contains(p.Body, "restart_agent") {
		t.Error("the status filter does not narrow the commands")
	}
	if p := hr.get("/console/commands?gateway_id=" + e.orgB.GatewayID.String()); p.Status != http.StatusNotFound {
		t.Errorf("A's HR listing B's gateway's commands: %d, want 404", p.Status)
	}

	// The audit log is the organisation managers': HR is refused.
	if p := hr.get("/console/audit-log"); p.Status != http.StatusForbidden {
		t.Errorf("HR's audit log: %d, want 403", p.Status)
	}
	if p := hr.ok("/console/"); strings.Contains(p.Body, `href="/console/audit-log"`) || strings.Contains(p.Body, `href="/console/users"`) {
		t.Error("HR's menu offers the audit log or the users")
	}
	p := admin.okPage(t, "/console/audit-log?outcome=denied")
	if !strings.Contains(p.Body, "&lt;i&gt;actor&lt;/i&gt;") || !strings.Contains(p.Body, `<code>{&#34;why&#34;:&#34;\u003cb\u003e&#34;}</code>`) {
		t.Errorf("the denied entry is missing or unescaped: %.4000s", p.Body)
	}
	if strings.Contains(p.Body, "globex-actor") || strings.Contains(p.Body, "<i>actor") {
		t.Error("the audit log shows B's entry or markup")
	}
	if p := admin.okPage(t, "/console/audit-log?outcome=allowed&action=probe"); strings.Contains(p.Body, "actor&lt;/i&gt;") {
		t.Error("the outcome filter does not narrow the audit log")
	}

	// Users: list, create (the initial password shown once), a refusal
	// at its field, disable.
	page := admin.okPage(t, "/console/users")
	if !strings.Contains(page.Body, "hr@acme.test") || strings.Contains(page.Body, "globex") {
		t.Errorf("the users list: %.3000s", page.Body)
	}
	p = admin.post("/console/users", url.Values{"csrf_token": {admin.csrf(page)}, "email": {"new@acme.test"}, "role": {"HR"}})
	if p.Status != http.StatusOK || !strings.Contains(p.Body, `id="initial-password"`) {
		t.Fatalf("create a user: %d %.3000s", p.Status, p.Body)
	}
	var created int64
	e.scan(&created, `SELECT id FROM users WHERE email = 'new@acme.test' AND organization_id = $1 AND role = 'HR'`, e.orgA.OrganizationID)
	p = admin.post("/console/users", url.Values{"csrf_token": {admin.csrf(page)}, "email": {"not-an-email"}, "role": {"HR"}})
	if p.Status != http.StatusUnprocessableEntity || !strings.Contains(p.Body, `id="email" name="email" type="email" required maxlength="255" value="not-an-email" aria-invalid="true"`) {
		t.Errorf("a refused user: %d %.4000s", p.Status, p.Body)
	}
	p = admin.post(fmt.Sprintf("/console/users/%d/disable", created), url.Values{"csrf_token": {admin.csrf(page)}})
	if p.Status != http.StatusSeeOther {
		t.Fatalf("disable: %d %.1000s", p.Status, p.Body)
	}
	var active bool
	e.scan(&active, `SELECT is_active FROM users WHERE id = $1`, created)
	if active {
		t.Error("the user is still active")
	}
	// HR may not manage users: the API refuses.
	if p := hr.post(fmt.Sprintf("/console/users/%d/enable", created), url.Values{"csrf_token": {hr.csrf(hr.ok("/console/"))}}); p.Status != http.StatusForbidden {
		t.Errorf("HR enabling a user: %d, want 403", p.Status)
	}
}

func TestConsoleReports(t *testing.T) {
	e := newConsoleEnv(t)
	a, b := e.orgA, e.orgB
	var sales, emp2 int64
	e.scan(&sales, `INSERT INTO departments (organization_id, name) VALUES ($1, 'Sales') RETURNING id`, a.OrganizationID)
	e.scan(&emp2, `INSERT INTO employees (organization_id, department_id, employee_number, first_name, last_name)
		VALUES ($1, $2, 'E-2', '<em>Bo</em>', 'Ray') RETURNING id`, a.OrganizationID, sales)
	e.exec(`INSERT INTO employee_identities (organization_id, employee_id, kind, value) VALUES ($1, $2, 'windows_sid', 'S-2')`, a.OrganizationID, emp2)
	e.exec(`UPDATE employees SET first_name = 'Globexonly' WHERE id = $1`, b.EmployeeID)
	day := time.Now().UTC().Add(-48 * time.Hour).Truncate(24 * time.Hour)
	for _, org := range []struct {
		id  int64
		gw  uuid.UUID
		sid string
		n   int
	}{{a.OrganizationID, a.GatewayID, "S-1-5-21-1", 3}, {a.OrganizationID, a.GatewayID, "S-2", 2}, {b.OrganizationID, b.GatewayID, "S-1-5-21-1", 3}} {
		for i := range org.n {
			e.exec(`INSERT INTO monitoring.active_windows (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, process_name, datetime, duration_seconds)
				VALUES ($1, $2, $3, 100, 'agent', 'PC', $4, 'code.exe', $5, 600)`,
				uuid.Must(uuid.NewV7()), org.id, org.gw, org.sid, day.Add(9*time.Hour+time.Duration(i)*10*time.Minute))
		}
		e.exec(`INSERT INTO monitoring.activity_dirty (organization_id, user_sid, hour) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`, org.id, org.sid, day.Add(9*time.Hour))
	}
	period := "from=" + day.Format(time.DateOnly) + "&to=" + day.Format(time.DateOnly)
	e.addUser(a.OrganizationID, "hr@acme.test", "HR", consolePassword, 0, 0)
	hr := newBrowser(t, e)
	hr.mustSignIn("hr@acme.test", consolePassword)
	lead := signedInAs(t, e, a.OrganizationID, "lead@acme.test", "DEPARTMENT_LEAD", sales)

	p := hr.okPage(t, "/console/reports?"+period)
	for _, want := range []string{"E-1", "E-2", "&lt;em&gt;Bo&lt;/em&gt; Ray", `<svg class="chart"`, `<rect class="bar"`, `id="report-zone">Days are in UTC`,
		`href="/console/reports/export?department_id=&amp;from=`} {
		if want == `href="/console/reports/export?department_id=&amp;from=` {
			want = `href="/console/reports/export?from=`
		}
		if !strings.Contains(p.Body, want) {
			t.Errorf("HR's report lacks %s: %.5000s", want, p.Body)
		}
	}
	if strings.Contains(p.Body, "Globexonly") || strings.Contains(p.Body, "<em>Bo") {
		t.Error("HR's report shows B's employee or unescaped markup")
	}
	// The default period is the last seven days, ending today.
	if p := hr.okPage(t, "/console/reports"); !strings.Contains(p.Body, `name="to" type="date" required value="`+time.Now().UTC().Format(time.DateOnly)+`"`) {
		t.Errorf("the default period does not end today: %.3000s", p.Body)
	}
	// A bad period is the API's refusal, shown on the form.
	if p := hr.get("/console/reports?from=2026-02-30&to=2026-03-01"); p.Status != http.StatusUnprocessableEntity || !strings.Contains(p.Body, `class="error"`) {
		t.Errorf("a bad period: %d %.2000s", p.Status, p.Body)
	}

	// The lead's report is their department's.
	p = lead.okPage(t, "/console/reports?"+period)
	if !strings.Contains(p.Body, "E-2") || strings.Contains(p.Body, "<td>E-1</td>") {
		t.Errorf("the lead's report: %.4000s", p.Body)
	}

	// Each CSV export is byte for byte what the API answers for the same
	// caller.
	hrToken := e.login("hr@acme.test", consolePassword).AccessToken
	for _, kind := range []string{"summary", "employee-days", "attendance", "attendance-vs-activity"} {
		got := hr.get("/console/reports/export?report=" + kind + "&" + period)
		want := e.call("GET", "/api/v2/reports/"+kind+"?format=csv&"+period, hrToken, nil)
		if got.Status != http.StatusOK || got.Body != string(want.Body) || got.Body == "" {
			t.Errorf("%s export: %d %q, the API's %d %q", kind, got.Status, got.Body, want.Status, want.Body)
		}
		if ct := got.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/csv") || !strings.Contains(got.Header.Get("Content-Disposition"), kind+".csv") {
			t.Errorf("%s export: Content-Type %q, Content-Disposition %q", kind, ct, got.Header.Get("Content-Disposition"))
		}
	}
	if got := hr.get("/console/reports/export?report=employee-days&" + period); strings.Count(got.Body, "\n") != 3 {
		t.Errorf("employee-days CSV: %q, want a header and two rows", got.Body)
	}
	if got := hr.get("/console/reports/export?report=bogus&" + period); got.Status != http.StatusBadRequest {
		t.Errorf("an unknown report: %d, want 400", got.Status)
	}
	if got := hr.get("/console/reports/export?report=summary&from=x&to=y"); got.Status != http.StatusBadRequest && got.Status != http.StatusUnprocessableEntity ||
		strings.HasPrefix(got.Header.Get("Content-Type"), "text/csv") {
		t.Errorf("a refused export: %d %s", got.Status, got.Header.Get("Content-Type"))
	}
	leadCSV := lead.get("/console/reports/export?report=employee-days&" + period)
	if !strings.Contains(leadCSV.Body, "E-2") || strings.Contains(leadCSV.Body, "E-1") {
		t.Errorf("the lead's export: %q", leadCSV.Body)
	}

	// Attendance: the page answers, in the organisation's zone.
	e.exec(`UPDATE organizations SET time_zone = 'Asia/Tashkent' WHERE id = $1`, a.OrganizationID)
	if p := hr.okPage(t, "/console/attendance?"+period); !strings.Contains(p.Body, `id="report-zone">Days are in Asia/Tashkent`) {
		t.Errorf("the attendance page's zone: %.3000s", p.Body)
	}
}

func TestConsolePolicies(t *testing.T) {
	e := newConsoleEnv(t)
	e.exec(`UPDATE policies SET name = 'Globexpolicy' WHERE id = $1`, e.orgB.PolicyID)
	admin := signedInAs(t, e, e.orgA.OrganizationID, "boss@acme.test", "ORG_ADMIN", 0)
	hr := signedInAs(t, e, e.orgA.OrganizationID, "hr@acme.test", "HR", 0)
	lead := signedInAs(t, e, e.orgA.OrganizationID, "lead@acme.test", "DEPARTMENT_LEAD", e.orgA.DepartmentID)
	// A policy of A's own (the seeded one's version rows are not the
	// policy service's numbering).
	created := e.call("POST", "/api/v2/policies", e.login("boss@acme.test", consolePassword).AccessToken, map[string]any{"name": "<b>Office</b>",
		"content": map[string]any{"screenshots": map[string]any{"enabled": true}}})
	if created.Status != http.StatusCreated {
		t.Fatalf("create a policy: %d %s", created.Status, created.Body)
	}
	var pol struct {
		ID int64 `json:"id"`
	}
	created.JSON(t, &pol)
	base := fmt.Sprintf("/console/policies/%d", pol.ID)

	list := hr.okPage(t, "/console/policies")
	if !strings.Contains(list.Body, `href="`+base+`"`) || !strings.Contains(list.Body, "&lt;b&gt;Office&lt;/b&gt;") || strings.Contains(list.Body, "Globexpolicy") {
		t.Errorf("HR's policy list: %.3000s", list.Body)
	}
	if p := lead.get("/console/policies"); p.Status != http.StatusForbidden {
		t.Errorf("the lead's policies: %d, want 403", p.Status)
	}
	if p := admin.get(fmt.Sprintf("/console/policies/%d", e.orgB.PolicyID)); p.Status != http.StatusNotFound {
		t.Errorf("A's admin opening B's policy: %d, want 404", p.Status)
	}
	// HR reads: no editor.
	if p := hr.okPage(t, base); strings.Contains(p.Body, `id="policy-editor"`) || !strings.Contains(p.Body, `<pre id="content">`) {
		t.Errorf("HR's policy page offers the editor: %.3000s", p.Body)
	}

	// A schema error is shown at the field the policy package names.
	page := admin.okPage(t, base)
	etag := regexp.MustCompile(`name="etag" value="([^"]*)"`).FindStringSubmatch(page.Body)
	if etag == nil {
		t.Fatalf("no ETag in the editor: %.3000s", page.Body)
	}
	form := func(content string) url.Values {
		return url.Values{"csrf_token": {admin.csrf(page)}, "etag": {strings.ReplaceAll(etag[1], "&#34;", `"`)}, "content": {content}}
	}
	p := admin.post(base, form(`{"screenshots":{"interval_seconds":1}}`))
	if p.Status != http.StatusUnprocessableEntity || !strings.Contains(p.Body, `id="content-error" role="alert">At /screenshots/interval_seconds:`) ||
		!strings.Contains(p.Body, `aria-invalid="true" aria-describedby="content-error">{&#34;screenshots&#34;:{&#34;interval_seconds&#34;:1}}</textarea>`) {
		t.Errorf("a schema error: %d %.5000s", p.Status, p.Body)
	}
	if p := admin.post(base, form(`{not json`)); p.Status != http.StatusUnprocessableEntity || !strings.Contains(p.Body, "not JSON") {
		t.Errorf("not JSON: %d %.3000s", p.Status, p.Body)
	}
	// Save, release, change, release again; compare the two.
	p = admin.post(base, form(`{"screenshots":{"enabled":true,"interval_seconds":60}}`))
	if p.Status != http.StatusSeeOther {
		t.Fatalf("save: %d %.3000s", p.Status, p.Body)
	}
	if p := admin.post(base, form(`{"screenshots":{"enabled":true,"interval_seconds":90}}`)); p.Status != http.StatusConflict && p.Status != http.StatusUnprocessableEntity {
		t.Errorf("a save with a stale ETag: %d, want a refusal", p.Status)
	}
	release := func() string {
		t.Helper()
		page := admin.okPage(t, base)
		p := admin.post(base+"/release", url.Values{"csrf_token": {admin.csrf(page)}})
		if p.Status != http.StatusSeeOther || !strings.Contains(p.Header.Get("Location"), "?released=") {
			t.Fatalf("release: %d %q %.2000s", p.Status, p.Header.Get("Location"), p.Body)
		}
		v, _ := url.QueryUnescape(p.Header.Get("Location")[strings.Index(p.Header.Get("Location"), "released=")+9:])
		return v
	}
	v1 := release()
	page = admin.okPage(t, base)
	etag = regexp.MustCompile(`name="etag" value="([^"]*)"`).FindStringSubmatch(page.Body)
	if p := admin.post(base, form(`{"screenshots":{"enabled":false,"interval_seconds":60}}`)); p.Status != http.StatusSeeOther {
		t.Fatalf("second save: %d %.3000s", p.Status, p.Body)
	}
	v2 := release()
	diff := hr.okPage(t, base+"/compare?from="+url.QueryEscape(v1)+"&to="+url.QueryEscape(v2))
	if !strings.Contains(diff.Body, "<td>replace</td><td><code>/screenshots/enabled</code></td><td class=\"long\"><code>true</code></td><td class=\"long\"><code>false</code></td>") {
		t.Errorf("the comparison: %.4000s", diff.Body)
	}
	if p := hr.okPage(t, base+"/versions/"+url.PathEscape(v1)); !strings.Contains(p.Body, "&#34;interval_seconds&#34;: 60") {
		t.Errorf("version %s: %.3000s", v1, p.Body)
	}

	// Distribute v2: the progress is polled until every gateway answered.
	page = admin.okPage(t, base)
	p = admin.post(base+"/distributions", url.Values{"csrf_token": {admin.csrf(page)}, "version": {v2}, "canary_percent": {"0"}})
	if p.Status != http.StatusSeeOther || !strings.HasPrefix(p.Header.Get("Location"), base+"/distributions/") {
		t.Fatalf("distribute: %d %q %.2000s", p.Status, p.Header.Get("Location"), p.Body)
	}
	dist := p.Header.Get("Location")
	did := strings.TrimPrefix(dist, base+"/distributions/")
	prog := hr.okPage(t, dist)
	if !strings.Contains(prog.Body, `hx-trigger="every 1s"`) || !strings.Contains(prog.Body, `<strong id="percent">0 %</strong>`) ||
		!strings.Contains(prog.Body, e.orgA.GatewayID.String()) || strings.Contains(prog.Body, e.orgB.GatewayID.String()) {
		t.Errorf("the progress before any answer: %.4000s", prog.Body)
	}
	e.exec(`UPDATE gateway_commands SET status = 'completed', completed_at = now() WHERE id IN (SELECT command_id FROM policy_distribution_targets WHERE distribution_id = $1)`, did)
	frag := hr.ok(dist + "/progress")
	if strings.Contains(frag.Body, "<html") || !strings.Contains(frag.Body, `<strong id="percent">100 %</strong>`) || strings.Contains(frag.Body, "hx-trigger") {
		t.Errorf("the progress once applied: %s", frag.Body)
	}

	// Roll back to v1: a new version with v1's content.
	page = admin.okPage(t, base)
	p = admin.post(base+"/release", url.Values{"csrf_token": {admin.csrf(page)}, "rollback_to": {v1}})
	if p.Status != http.StatusSeeOther {
		t.Fatalf("rollback: %d %.2000s", p.Status, p.Body)
	}
	var enabled bool
	e.scan(&enabled, `SELECT (content->'screenshots'->>'enabled')::boolean FROM policies WHERE id = $1`, pol.ID)
	if !enabled {
		t.Error("after the rollback the policy's content is not v1's")
	}
	// HR may not release.
	if p := hr.post(base+"/release", url.Values{"csrf_token": {hr.csrf(hr.ok(base))}}); p.Status != http.StatusForbidden {
		t.Errorf("HR's release: %d, want 403", p.Status)
	}

	// The seeded policy (released 1.0.0, its draft changed since) releases
	// from its page as 1.1.0; it used to collide with the seeded 1.0.0
	// (a 500).
	seeded := fmt.Sprintf("/console/policies/%d", e.orgA.PolicyID)
	p = admin.post(seeded+"/release", url.Values{"csrf_token": {admin.csrf(admin.okPage(t, seeded))}})
	if p.Status != http.StatusSeeOther || !strings.HasSuffix(p.Header.Get("Location"), "?released=1.1.0") {
		t.Errorf("releasing the seeded policy: %d %q %.2000s", p.Status, p.Header.Get("Location"), p.Body)
	}
}
