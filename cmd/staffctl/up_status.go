package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/staffcontrol/staffcontrol/internal/bench/stack"
	"github.com/staffcontrol/staffcontrol/internal/cloud/commandqueue"
	"github.com/staffcontrol/staffcontrol/internal/cloud/policy"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/cloud/sqlfile"
)

// upStatus is one reading of the running system, for the live summary.
// Each part that could not be read carries its error in the matching
// ...Err field rather than failing the whole reading.
type upStatus struct {
	At time.Time
	// EventsPerSec is the rate of events newly stored by the Agent API
	// replicas (their ingest_events_total) over the last rateWindow of
	// readings (the gateway uploads in batches every few seconds, so a
	// one-second rate swings between 0 and bursts); EventsTotal the count
	// since start. Rated is false until a second reading exists.
	EventsPerSec float64
	EventsTotal  float64
	Rated        bool
	// Requests are the requests the balancer sent each replica.
	Requests []int64
	// BufferRows is the rows in the gateway's buffer (gateway_buffer_rows,
	// every class), OldestUnsent the age of the oldest not yet acknowledged.
	BufferRows   float64
	OldestUnsent time.Duration
	HasGateway   bool
	// GatewaysOnline of GatewaysProvisioned (the organisation's).
	GatewaysOnline, GatewaysProvisioned int
	// Policy is the demo distribution's progress.
	Policy policy.Progress
	// GatewayPolicy is the policy version the gateway applied, and
	// AgentsOnPolicy of AgentsListed the agents it lists (at most its 50
	// most recent) that report running it (HasAgents: read).
	GatewayPolicy                string
	AgentsOnPolicy, AgentsListed int
	HasAgents                    bool
	// LastCommand is the newest command of the run's gateway (nil: none).
	LastCommand *commandqueue.Command
	// Door is the newest door-terminal event (nil: none yet).
	Door *doorEvent
	// Departments, Employees and EmployeesWithSID are the organisation's.
	Departments, Employees, EmployeesWithSID int
	// Errs are the parts that could not be read, by part.
	Errs map[string]error
}

// doorEvent is the newest door-terminal event stored.
type doorEvent struct {
	At                                   time.Time
	DeviceID                             int64
	Device                               string
	Door                                 int32
	EmployeeNumber, CardNumber, Employee string
	Direction                            string
}

// upSources are where the live summary reads from: the database (as
// staff_admin, in the demo organisation's tenant), the replicas' metrics
// and request counts, and the gateway's metrics.
type upSources struct {
	pool         *pgxpool.Pool
	tsPool       *pgxpool.Pool // the separate time-series store, as staff_admin (nil: none)
	tenant       postgres.Tenant
	gateway      uuid.UUID           // the run's gateway
	distribution uuid.UUID           // the demo policy's distribution (Nil: none)
	cloud        *stack.Stack        // the Agent API replicas
	gatewayReg   prometheus.Gatherer // the in-process gateway's metrics (nil: no gateway)
	gatewayURL   string              // its base URL, for /health/details
	gatewayToken string              // its health.operator_token
	client       *http.Client
	queue        *commandqueue.Queue
	dist         *policy.Distributor
	sql          upSQL
}

// upSQL are the hand-written status reads (sql/raw/up_status.sql).
type upSQL struct {
	gateways, directory, lastDoor, doorNames string
}

// newUpSources loads the status statements and builds the readers.
func newUpSources(pool, tsPool *pgxpool.Pool, tenant postgres.Tenant, gateway, distribution uuid.UUID, cloud *stack.Stack, gw *runningGateway) (*upSources, error) {
	s := &upSources{pool: pool, tsPool: tsPool, tenant: tenant, gateway: gateway, distribution: distribution, cloud: cloud, client: &http.Client{}}
	if gw != nil {
		s.gatewayReg, s.gatewayURL, s.gatewayToken = gw.registry, gw.url, gw.token
	}
	if err := sqlfile.Load(rawSQL, "sql/raw/up_status.sql", map[string]*string{
		"UpGateways": &s.sql.gateways, "UpDirectory": &s.sql.directory, "UpLastDoorEvent": &s.sql.lastDoor, "UpDoorNames": &s.sql.doorNames,
	}); err != nil {
		return nil, err
	}
	q, err := commandQueue(pool)
	if err != nil {
		return nil, err
	}
	s.queue, s.dist = q, policy.NewDistributor(pool, q)
	return s, nil
}

// rateWindow is the span the events rate is measured over.
const rateWindow = 5 * time.Second

// upReader turns the sources into readings, rating the event counter
// over the readings of the last rateWindow.
type upReader struct {
	src     *upSources
	samples []eventSample // oldest first, spanning at most rateWindow
}

// eventSample is the events counter at one reading.
type eventSample struct {
	at    time.Time
	total float64
}

// rate records total at now and returns the rate over the samples kept
// (ok false with fewer than two).
func (r *upReader) rate(now time.Time, total float64) (float64, bool) {
	r.samples = append(r.samples, eventSample{now, total})
	for len(r.samples) > 2 && now.Sub(r.samples[1].at) >= rateWindow {
		r.samples = r.samples[1:]
	}
	first := r.samples[0]
	dt := now.Sub(first.at).Seconds()
	if len(r.samples) < 2 || dt <= 0 {
		return 0, false
	}
	return (total - first.total) / dt, true
}

// read takes one reading. Parts that fail are recorded in Errs; only a
// cancelled ctx fails the reading.
func (r *upReader) read(ctx context.Context) (upStatus, error) {
	st := upStatus{At: time.Now(), Errs: map[string]error{}}
	fail := func(part string, err error) {
		if err != nil {
			st.Errs[part] = err
		}
	}
	s := r.src
	replicas, err := s.cloud.Gather()
	fail("events", err)
	if err == nil {
		st.EventsTotal = replicas.Sum("ingest_events_total")
		st.EventsPerSec, st.Rated = r.rate(st.At, st.EventsTotal)
	}
	for _, rep := range s.cloud.Replicas {
		st.Requests = append(st.Requests, rep.Requests.Load())
	}
	if s.gatewayReg != nil {
		st.HasGateway = true
		gw, err := stack.Gather(s.gatewayReg)
		fail("buffer", err)
		st.BufferRows = gw.Sum("gateway_buffer_rows")
		st.OldestUnsent = time.Duration(gw.Sum("gateway_buffer_oldest_unsent_age_seconds") * float64(time.Second))
	}
	fail("database", postgres.InTenant(ctx, s.pool, s.tenant, func(tx pgx.Tx) error {
		org := s.tenant.OrganizationID
		if err := tx.QueryRow(ctx, s.sql.gateways, org).Scan(&st.GatewaysOnline, &st.GatewaysProvisioned); err != nil {
			return fmt.Errorf("gateways: %w", err)
		}
		if err := tx.QueryRow(ctx, s.sql.directory, org).Scan(&st.Departments, &st.Employees, &st.EmployeesWithSID); err != nil {
			return fmt.Errorf("directory: %w", err)
		}
		st.Door, err = lastDoorEvent(ctx, tx, s.sql.lastDoor, org)
		return err
	}))
	if s.tsPool != nil {
		// With a separate store the door events live there (the main
		// database keeps the fallback's): the newer of both.
		fail("timeseries", postgres.InTenant(ctx, s.tsPool, s.tenant, func(tx pgx.Tx) error {
			d, err := lastDoorEvent(ctx, tx, s.sql.lastDoor, s.tenant.OrganizationID)
			if d != nil && (st.Door == nil || d.At.After(st.Door.At)) {
				st.Door = d
			}
			return err
		}))
		if d := st.Door; d != nil && d.Employee == "" && st.Errs["timeseries"] == nil {
			// Its names are the main database's.
			fail("database", postgres.InTenant(ctx, s.pool, s.tenant, func(tx pgx.Tx) error {
				var device, employee string
				if err := tx.QueryRow(ctx, s.sql.doorNames, s.tenant.OrganizationID, d.DeviceID, d.EmployeeNumber).Scan(&device, &employee); err != nil {
					return fmt.Errorf("door event names: %w", err)
				}
				if device != "" {
					d.Device = device
				}
				d.Employee = employee
				return nil
			}))
		}
	}
	if s.gatewayURL != "" {
		d, err := fetchGatewayDetails(ctx, s.client, s.gatewayURL, s.gatewayToken)
		fail("agents", err)
		if err == nil {
			st.HasAgents = true
			st.GatewayPolicy, st.AgentsOnPolicy, st.AgentsListed = d.agentsOnPolicy()
		}
	}
	if s.distribution != uuid.Nil {
		st.Policy, err = s.dist.Progress(ctx, s.tenant, s.distribution)
		fail("policy", err)
	}
	cmds, err := s.queue.List(ctx, s.tenant, s.gateway, 1)
	fail("commands", err)
	if len(cmds) > 0 {
		st.LastCommand = &cmds[0]
	}
	if ctx.Err() != nil {
		return st, ctx.Err()
	}
	return st, nil
}

// lastDoorEvent runs the UpLastDoorEvent statement: the newest door event
// of org (nil: none).
func lastDoorEvent(ctx context.Context, tx pgx.Tx, stmt string, org int64) (*doorEvent, error) {
	rows, err := tx.Query(ctx, stmt, org)
	if err != nil {
		return nil, fmt.Errorf("door events: %w", err)
	}
	defer rows.Close()
	var out *doorEvent
	for rows.Next() {
		var d doorEvent
		if err := rows.Scan(&d.At, &d.DeviceID, &d.Device, &d.Door, &d.EmployeeNumber, &d.CardNumber, &d.Employee, &d.Direction); err != nil {
			return nil, fmt.Errorf("door events: %w", err)
		}
		out = &d
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("door events: %w", err)
	}
	return out, nil
}

// The parts of the summary, each rendered the same way on the screen and
// in the status line.

func (st upStatus) eventsText() string {
	if err := st.Errs["events"]; err != nil {
		return "? (" + err.Error() + ")"
	}
	if !st.Rated {
		return fmt.Sprintf("… (%.0f stored)", st.EventsTotal)
	}
	return fmt.Sprintf("%.1f (%.0f stored)", st.EventsPerSec, st.EventsTotal)
}

func (st upStatus) bufferText() string {
	if !st.HasGateway {
		return "no gateway"
	}
	if err := st.Errs["buffer"]; err != nil {
		return "? (" + err.Error() + ")"
	}
	return fmt.Sprintf("%.0f rows, oldest unsent %s", st.BufferRows, st.OldestUnsent.Round(time.Second))
}

func (st upStatus) gatewaysText() string {
	if st.Errs["database"] != nil {
		return "?"
	}
	return fmt.Sprintf("%d of %d", st.GatewaysOnline, st.GatewaysProvisioned)
}

func (st upStatus) policyText() string {
	if err := st.Errs["policy"]; err != nil {
		return "? (" + err.Error() + ")"
	}
	if st.Policy.ID == uuid.Nil {
		return "none distributed"
	}
	s := fmt.Sprintf("%d of %d (version %s, %s)", st.Policy.Applied, st.Policy.Total, st.Policy.Version, st.Policy.Stage)
	if st.HasAgents && st.GatewayPolicy != "" {
		s += fmt.Sprintf("; agents on it %d of %d", st.AgentsOnPolicy, st.AgentsListed)
	}
	return s
}

func (st upStatus) replicasText() string {
	parts := make([]string, len(st.Requests))
	for i, n := range st.Requests {
		parts[i] = fmt.Sprint(n)
	}
	return fmt.Sprintf("%d (requests %s)", len(st.Requests), strings.Join(parts, "/"))
}

func (st upStatus) commandText() string {
	if err := st.Errs["commands"]; err != nil {
		return "? (" + err.Error() + ")"
	}
	c := st.LastCommand
	if c == nil {
		return "none"
	}
	when := c.CreatedAt
	if c.CompletedAt != nil {
		when = *c.CompletedAt
	}
	s := fmt.Sprintf("%s %s %s ago", c.Type, c.Status, ago(st.At, when))
	if c.Error != nil && *c.Error != "" {
		s += ": " + *c.Error
	}
	return s
}

func (st upStatus) doorText() string {
	if st.Errs["database"] != nil {
		return "?"
	}
	d := st.Door
	if d == nil {
		return "none yet"
	}
	who := d.Employee
	switch {
	case who != "" && d.EmployeeNumber != "":
		who += " (" + d.EmployeeNumber + ")"
	case d.EmployeeNumber != "":
		who = d.EmployeeNumber
	case d.CardNumber != "":
		who = "card " + d.CardNumber
	default:
		who = "unknown"
	}
	s := fmt.Sprintf("%s %s, %s", d.At.Local().Format("15:04:05"), d.Device, who)
	if d.Door > 0 {
		s = fmt.Sprintf("%s %s door %d, %s", d.At.Local().Format("15:04:05"), d.Device, d.Door, who)
	}
	if d.Direction != "" {
		s += ", " + d.Direction
	}
	return s
}

func (st upStatus) directoryText() string {
	if st.Errs["database"] != nil {
		return "?"
	}
	return fmt.Sprintf("%d departments, %d employees (%d with a Windows SID)", st.Departments, st.Employees, st.EmployeesWithSID)
}

// ago is how long before now t was, in whole seconds (never negative).
func ago(now, t time.Time) time.Duration {
	return max(0, now.Sub(t)).Round(time.Second)
}

// errorsText lists the parts that could not be read ("" when none).
func (st upStatus) errorsText() string {
	var parts []string
	for _, part := range []string{"events", "buffer", "database", "timeseries", "policy", "agents", "commands"} {
		if err := st.Errs[part]; err != nil {
			parts = append(parts, part+": "+err.Error())
		}
	}
	return strings.Join(parts, "; ")
}
