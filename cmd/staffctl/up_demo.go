package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/cloud/accounts"
	"github.com/staffcontrol/staffcontrol/internal/cloud/directory"
	"github.com/staffcontrol/staffcontrol/internal/cloud/policy"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
)

// demoDepartments are the departments `up` creates (or reuses); the
// simulated agents' employees are spread over them in turn.
var demoDepartments = []string{"Engineering", "Sales", "Support", "Finance"}

// demoFirstNames and demoLastNames name the simulated agents' employees.
var (
	demoFirstNames = []string{"Alice", "Bruno", "Carla", "Dmitri", "Elif", "Farah", "Goran", "Hana", "Ivo", "Jana"}
	demoLastNames  = []string{"Novak", "Silva", "Tanaka", "Mensah", "Larsen", "Costa", "Haddad", "Berg", "Ortiz", "Kim"}
)

// demoPolicyName names the policy `up` releases and distributes.
const demoPolicyName = "Demo policy"

// demoPolicyContent is the demo policy's content (checked against the
// policy schema by policy.Service.Create).
const demoPolicyContent = `{"screenshots": {"enabled": true, "interval_seconds": 300, "quality": 60},
 "activity": {"track_windows": true, "track_sites": true, "idle_seconds": 300, "upload_interval_seconds": 30},
 "blocked_sites": ["games.example"]}`

// demoAgentSID is the Windows SID the simulated agent number i (from 0)
// reports as its user's: agentsim's choice (newAgent), repeated here so
// that each agent's activity maps to an employee through a windows_sid
// identity. TestUpShowsTheSystemAlive checks that the stored events' SIDs
// are these employees'.
func demoAgentSID(i int) string {
	return fmt.Sprintf("S-1-5-21-1004336348-1177238915-682003330-%d", 1000+i)
}

// demoAgentNumber is the employee number of simulated agent i's employee.
func demoAgentNumber(i int) string { return fmt.Sprintf("A-%04d", i+1) }

// demoDirectory is what ensureDemoDirectory created or found.
type demoDirectory struct {
	departments int // departments of the demo's list present
	created     int // employees created by this run
	reused      int // employees a previous run created
}

// ensureDemoDirectory creates the demo departments and one employee per
// simulated agent (agents of them), each in a department in turn with the
// agent's Windows SID as an identity; what a previous run created is
// reused.
func ensureDemoDirectory(ctx context.Context, pool *pgxpool.Pool, tenant postgres.Tenant, agents int) (demoDirectory, error) {
	var out demoDirectory
	dir := directory.New()
	tree, err := dir.DepartmentTree(ctx, pool, tenant)
	if err != nil {
		return out, fmt.Errorf("demo departments: %w", err)
	}
	ids := map[string]int64{}
	for _, n := range tree {
		// An ADMIN context sees every organisation's departments.
		if n.OrganizationID == tenant.OrganizationID {
			ids[n.Name] = n.ID
		}
	}
	depts := make([]int64, len(demoDepartments))
	for i, name := range demoDepartments {
		if id, ok := ids[name]; ok {
			depts[i] = id
			continue
		}
		d, err := dir.CreateDepartment(ctx, pool, tenant, directory.DepartmentInput{Name: name})
		if err != nil {
			return out, fmt.Errorf("demo department %s: %w", name, err)
		}
		depts[i] = d.ID
	}
	out.departments = len(depts)
	for i := range agents {
		dept := depts[i%len(depts)]
		in := directory.EmployeeInput{DepartmentID: &dept, EmployeeNumber: demoAgentNumber(i),
			FirstName: demoFirstNames[i%len(demoFirstNames)], LastName: demoLastNames[(i/len(demoFirstNames)+i)%len(demoLastNames)],
			Identities: []directory.IdentityInput{
				{Kind: directory.KindWindowsSID, Value: demoAgentSID(i)},
				{Kind: directory.KindEmployeeNumber, Value: demoAgentNumber(i)},
			}}
		_, err := dir.CreateEmployee(ctx, pool, tenant, in)
		if e := apperr.As(err); e != nil && e.Code == apperr.Conflict {
			out.reused++ // a previous run's
			continue
		}
		if err != nil {
			return out, fmt.Errorf("demo employee %s: %w", in.EmployeeNumber, err)
		}
		out.created++
	}
	return out, nil
}

// demoRelease is the demo policy's version distributed to this run's
// gateway.
type demoRelease struct {
	policyID     int64
	version      string
	distribution uuid.UUID
}

// releaseDemoPolicy creates the demo policy and releases it (or takes the
// released version of a previous run's) and distributes that version to
// the run's gateway alone: its policy_update waits in the gateway's
// command queue until the gateway is provisioned and connects.
func releaseDemoPolicy(ctx context.Context, pool *pgxpool.Pool, tenant postgres.Tenant, gateway uuid.UUID) (demoRelease, error) {
	actor := accounts.Actor{Name: "staffctl up", Tenant: tenant}
	svc, err := policy.New(pool)
	if err != nil {
		return demoRelease{}, err
	}
	p, err := findPolicy(ctx, svc, actor, demoPolicyName)
	if errors.Is(err, policy.ErrNotFound) {
		p, err = svc.Create(ctx, actor, demoPolicyName, []byte(demoPolicyContent))
	}
	if err != nil {
		return demoRelease{}, fmt.Errorf("demo policy: %w", err)
	}
	r := demoRelease{policyID: p.ID, version: p.CurrentVersion}
	if r.version == "" {
		v, err := svc.Release(ctx, actor, p.ID, false)
		if err != nil {
			return demoRelease{}, fmt.Errorf("release the demo policy: %w", err)
		}
		r.version = v.Version
	}
	q, err := commandQueue(pool)
	if err != nil {
		return demoRelease{}, err
	}
	if r.distribution, err = policy.NewDistributor(pool, q).Distribute(ctx, actor, p.ID, r.version, []uuid.UUID{gateway}, 0); err != nil {
		return demoRelease{}, fmt.Errorf("distribute the demo policy: %w", err)
	}
	return r, nil
}

// findPolicy returns the organisation's policy named name, or
// policy.ErrNotFound.
func findPolicy(ctx context.Context, svc *policy.Service, actor accounts.Actor, name string) (policy.Policy, error) {
	after := int64(0)
	for {
		ps, err := svc.List(ctx, actor, after, 100)
		if err != nil {
			return policy.Policy{}, err
		}
		for _, p := range ps {
			if p.Name == name && p.OrganizationID == actor.Tenant.OrganizationID {
				return p, nil
			}
		}
		if len(ps) < 100 {
			return policy.Policy{}, policy.ErrNotFound
		}
		after = ps[len(ps)-1].ID
	}
}
