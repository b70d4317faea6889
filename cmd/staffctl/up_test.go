package main

import (
	"context"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/staffcontrol/staffcontrol/internal/cloud/commandqueue"
	"github.com/staffcontrol/staffcontrol/internal/cloud/policy"
)

// statusLineRE parses up's non-terminal status line.
var statusLineRE = regexp.MustCompile(`^status \S+: events/s ([0-9.]+) \((\d+) stored\) \| buffer (\d+) rows, oldest unsent \S+ \| ` +
	`gateways online (\d+) of (\d+) \| policy applied (\d+) of (\d+) \(version (\S+), (\w+)\)(?:; agents on it (\d+) of (\d+))? \| ` +
	`replicas (\d+) \(requests (\d+)/(\d+)\) \| last command (.+?) \| last door event (.+?) \| ` +
	`directory (\d+) departments, (\d+) employees \((\d+) with a Windows SID\)$`)

// TestUpShowsTheSystemAlive runs `staffctl up` with stdout not a terminal
// on a fresh database and waits (bounded) for a status line showing the
// system alive: events stored at a rate above 0, the gateway online, the
// demo policy applied 1 of 1 and every agent running it, both Agent API
// replicas serving, a door event,
// the departments and one employee per agent with its Windows SID. The
// database then says the same, and the agents' events name those
// employees' SIDs. A second run on the same database with --quiet reuses
// the people and the policy and prints no status line.
func TestUpShowsTheSystemAlive(t *testing.T) {
	t.Parallel()
	db := pg.NewDatabase(t)
	env := map[string]string{"DATABASE_URL": db.AdminURL}
	const agents = 4
	out, stop := startUp(t, env, "--agent-addr", "127.0.0.1:0", "--dashboard-addr", "127.0.0.1:0", "--gateway-addr", "127.0.0.1:0",
		"--agents", strconv.Itoa(agents), "--agent-rate", "10", "--badge-rate", "2", "--status-every", "1s")
	banner := out.String()
	for _, want := range []string{"Replicas        2 behind", "Demo directory    4 departments; 4 employees created for the agents, 0 reused",
		`Policy          "Demo policy"`, "as employees A-0001 to A-0004"} {
		if !strings.Contains(banner, want) {
			t.Errorf("banner lacks %q:\n%s", want, banner)
		}
	}
	var m []string
	alive := func(m []string) bool {
		rate, _ := strconv.ParseFloat(m[1], 64)
		n := strconv.Itoa(agents)
		return rate > 0 && m[4] == "1" && m[5] == "1" && m[6] == "1" && m[7] == "1" && m[9] == "done" && m[10] == n && m[11] == n &&
			m[12] == "2" && m[13] != "0" && m[14] != "0" && m[16] != "none yet" &&
			m[17] == "4" && m[18] == strconv.Itoa(agents+len(demoStaff)) && m[19] == n
	}
	deadline := time.Now().Add(60 * time.Second) // agents fetch the policy every 10 s
	for m == nil || !alive(m) {
		if time.Now().After(deadline) {
			t.Fatalf("no status line showing the system alive within 60 s; last parsed %q; output:\n%s", m, lastBytes(out.String(), 4000))
		}
		time.Sleep(250 * time.Millisecond)
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		for i := len(lines) - 1; i >= 0; i-- {
			if strings.HasPrefix(lines[i], "status ") {
				if strings.Contains(lines[i], "unreadable") {
					t.Fatalf("status line with unreadable parts: %s", lines[i])
				}
				if m = statusLineRE.FindStringSubmatch(lines[i]); m == nil {
					t.Fatalf("status line not in the expected form: %s", lines[i])
				}
				break
			}
		}
	}
	t.Logf("status line: %s", m[0])

	// The database agrees.
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, db.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var online, depts, applied int
	if err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM gateway_instances WHERE status = 'online')::int,
		(SELECT count(*) FROM departments)::int,
		(SELECT count(*) FROM policy_distribution_targets t JOIN gateway_commands c ON c.id = t.command_id WHERE c.status = 'completed')::int`).
		Scan(&online, &depts, &applied); err != nil {
		t.Fatal(err)
	}
	if online != 1 || depts != 4 || applied != 1 {
		t.Errorf("database: %d gateways online, %d departments, %d policy targets applied; want 1, 4, 1", online, depts, applied)
	}
	// Every SID the agents reported is one of the demo employees'
	// identities, and every agent's employee has events.
	var sids, matched int
	if err := conn.QueryRow(ctx, `SELECT count(DISTINCT a.user_sid)::int, count(DISTINCT i.employee_id)::int
		FROM monitoring.active_windows a LEFT JOIN employee_identities i ON i.kind = 'windows_sid' AND i.value = a.user_sid`).Scan(&sids, &matched); err != nil {
		t.Fatal(err)
	}
	if sids != agents || matched != agents {
		t.Errorf("the agents' events name %d SIDs, %d of them demo employees'; want %d and %d", sids, matched, agents, agents)
	}
	if err := stop(); err != nil {
		t.Fatalf("up returned %v", err)
	}
	if !strings.Contains(out.String(), "stopped cleanly") {
		t.Errorf("no clean stop reported:\n%s", lastBytes(out.String(), 2000))
	}

	// Again, quietly: the people and the policy are reused, a new
	// distribution goes to the new gateway, and no status line is printed.
	out2, stop2 := startUp(t, env, "--agent-addr", "127.0.0.1:0", "--dashboard-addr", "127.0.0.1:0", "--gateway-addr", "127.0.0.1:0",
		"--agents", strconv.Itoa(agents), "--devices=false", "--quiet", "--status-every", "1s")
	if !strings.Contains(out2.String(), "Demo directory    4 departments; 0 employees created for the agents, 4 reused") ||
		!regexp.MustCompile(`Policy          "Demo policy" \(policy 1\) version 1\.0\.0 distributed`).MatchString(out2.String()) {
		t.Errorf("second run did not reuse the people and the policy:\n%s", out2.String())
	}
	time.Sleep(3 * time.Second)
	if err := stop2(); err != nil {
		t.Fatalf("second up returned %v", err)
	}
	if strings.Contains(out2.String(), "status ") {
		t.Errorf("--quiet printed status lines:\n%s", out2.String())
	}
}

// lastBytes is the end of s, at most n bytes.
func lastBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// TestUpStatusRendering: the status line and the screen show each part,
// say what is missing, and name the parts that could not be read.
func TestUpStatusRendering(t *testing.T) {
	at := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	done := at.Add(-3 * time.Second)
	failed := "policy: checksum mismatch"
	alive := upStatus{At: at, EventsPerSec: 41.25, EventsTotal: 1200, Rated: true, Requests: []int64{7, 8}, BufferRows: 12,
		OldestUnsent: 1500 * time.Millisecond, HasGateway: true, GatewaysOnline: 1, GatewaysProvisioned: 2,
		Policy:      policy.Progress{ID: uuid.New(), Version: "1.0.0", Stage: policy.StageDone, Total: 1, Applied: 1},
		LastCommand: &commandqueue.Command{Type: "policy_update", Status: "completed", CreatedAt: at.Add(-time.Minute), CompletedAt: &done},
		Door:        &doorEvent{At: at.Add(-time.Second), Device: "Front door", Door: 1, EmployeeNumber: "D-1001", Employee: "Ana Ruiz", Direction: "in"},
		Departments: 4, Employees: 25, EmployeesWithSID: 20, Errs: map[string]error{},
		HasAgents: true, GatewayPolicy: "1.0.0", AgentsOnPolicy: 19, AgentsListed: 20}
	tests := []struct {
		name      string
		st        upStatus
		want      []string
		wantNot   []string
		parseable bool
	}{
		{"alive", alive, []string{"events/s 41.2 (1200 stored)", "buffer 12 rows, oldest unsent 2s", "gateways online 1 of 2",
			"policy applied 1 of 1 (version 1.0.0, done); agents on it 19 of 20", "replicas 2 (requests 7/8)", "last command policy_update completed 3s ago",
			"last door event " + at.Add(-time.Second).Local().Format("15:04:05") + " Front door door 1, Ana Ruiz (D-1001), in",
			"directory 4 departments, 25 employees (20 with a Windows SID)"}, []string{"unreadable"}, true},
		{"starting", upStatus{At: at, EventsTotal: 3, Requests: []int64{0, 0}, Errs: map[string]error{}},
			[]string{"events/s … (3 stored)", "buffer no gateway", "policy applied none distributed", "last command none", "last door event none yet"}, nil, false},
		{"failed command, unknown card", func() upStatus {
			s := alive
			s.LastCommand = &commandqueue.Command{Type: "policy_update", Status: "failed", CreatedAt: at.Add(-time.Minute), Error: &failed}
			s.Door = &doorEvent{At: at, Device: "Side door", CardNumber: "42"}
			return s
		}(), []string{"last command policy_update failed 1m0s ago: policy: checksum mismatch", "Side door, card 42 |"}, []string{"door 0"}, true},
		{"unreadable", func() upStatus {
			s := alive
			s.Errs = map[string]error{"database": errors.New("connection refused"), "policy": errors.New("timeout")}
			return s
		}(), []string{"gateways online ?", "policy applied ? (timeout)", "unreadable: database: connection refused; policy: timeout"}, nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			line := tc.st.statusLine()
			for _, w := range tc.want {
				if !strings.Contains(line, w) {
					t.Errorf("status line lacks %q:\n%s", w, line)
				}
			}
			for _, w := range tc.wantNot {
				if strings.Contains(line, w) {
					t.Errorf("status line has %q:\n%s", w, line)
				}
			}
			if got := statusLineRE.MatchString(line); got != tc.parseable {
				t.Errorf("status line parseable = %v, want %v:\n%s", got, tc.parseable, line)
			}
			screen := tc.st.screen("BANNER")
			if !strings.HasPrefix(screen, "BANNER\n") || !strings.HasSuffix(screen, "Press Ctrl-C to stop.\n") {
				t.Errorf("screen does not start with the banner and end with the prompt:\n%s", screen)
			}
			for _, row := range []string{"Events/s in", "Buffer depth", "Gateways online", "Policy applied", "Last command", "Last door event"} {
				if !strings.Contains(screen, "\n  "+row) {
					t.Errorf("screen lacks the row %q:\n%s", row, screen)
				}
			}
		})
	}
}

// TestUpEventsRate: the events rate is measured over the readings of the
// last rateWindow, not the last second (uploads come in bursts).
func TestUpEventsRate(t *testing.T) {
	var r upReader
	t0 := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	if _, ok := r.rate(t0, 0); ok {
		t.Fatal("rated with one reading")
	}
	// 100 events every other second: 50/s, never 0 or 100 once the window
	// is full.
	total := 0.0
	for s := 1; s <= 20; s++ {
		if s%2 == 0 {
			total += 100
		}
		got, ok := r.rate(t0.Add(time.Duration(s)*time.Second), total)
		if !ok {
			t.Fatalf("second %d: not rated", s)
		}
		if s >= 6 && (got < 40 || got > 60) {
			t.Errorf("second %d: rate %.1f, want about 50", s, got)
		}
	}
	if len(r.samples) > int(rateWindow/time.Second)+2 {
		t.Errorf("%d samples kept, want those of the window only", len(r.samples))
	}
}

// TestGatewayDetailsAgentsOnPolicy: the agents counted on the policy are
// those listed reporting the gateway's applied version; none before the
// gateway applied one.
func TestGatewayDetailsAgentsOnPolicy(t *testing.T) {
	tests := []struct {
		body       string
		version    string
		on, listed int
		wantErr    bool
	}{
		{`{"control": {"policy_version": "1.0.0"}, "agents": {"connected": 3, "recent": [{"policy_version": "1.0.0"}, {"policy_version": "0.9.0"}, {}]}}`, "1.0.0", 1, 3, false},
		{`{"control": {"policy_version": ""}, "agents": {"recent": [{}, {}]}}`, "", 0, 2, false},
		{`{"control": null, "agents": {"redacted": true}}`, "", 0, 0, false},
		{`{"agents": {"recent": "x"}}`, "", 0, 0, true},
		{`not json`, "", 0, 0, true},
	}
	for _, tc := range tests {
		d, err := parseGatewayDetails([]byte(tc.body))
		if (err != nil) != tc.wantErr {
			t.Errorf("%s: err = %v, want error %v", tc.body, err, tc.wantErr)
			continue
		}
		v, on, listed := d.agentsOnPolicy()
		if v != tc.version || on != tc.on || listed != tc.listed {
			t.Errorf("%s: %q %d of %d, want %q %d of %d", tc.body, v, on, listed, tc.version, tc.on, tc.listed)
		}
	}
}

// FuzzParseGatewayDetails: any body decodes or fails cleanly, and the
// count on the policy never exceeds the agents listed.
func FuzzParseGatewayDetails(f *testing.F) {
	f.Add([]byte(`{"control": {"policy_version": "1.0.0"}, "agents": {"connected": 1, "recent": [{"policy_version": "1.0.0"}]}}`))
	f.Add([]byte(`{"agents": {"recent": null}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := parseGatewayDetails(b)
		if err != nil {
			return
		}
		if _, on, listed := d.agentsOnPolicy(); on > listed || on < 0 {
			t.Fatalf("%d on the policy of %d listed", on, listed)
		}
	})
}
