package dataset

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/staffcontrol/staffcontrol/internal/cloud/accounts"
	"github.com/staffcontrol/staffcontrol/internal/cloud/auth"
	"github.com/staffcontrol/staffcontrol/internal/cloud/dataset/datasetdb"
	"github.com/staffcontrol/staffcontrol/internal/cloud/directory"
	"github.com/staffcontrol/staffcontrol/internal/cloud/policy"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
)

// The relational part, written through the services that own it (their
// validation, audit rows and live events included).

// actorName is who the audit rows name.
const actorName = "staffctl generate"

// people draws the employees (no database): the first len(departments)
// lead a department each, the rest are spread by the departments' weights.
func (g *generator) people(n int) (deptOf []int) {
	r := newRNG(g.seed, streamPeople)
	domain := fmt.Sprintf("S-1-5-21-%d-%d-%d", 1_000_000_000+r.intn(3_000_000_000), 1_000_000_000+r.intn(3_000_000_000), 1_000_000_000+r.intn(3_000_000_000))
	cardBase := r.intn(1_000_000_000)
	var byWeight []int
	for i, d := range departments {
		byWeight = append(byWeight, i, d.weight)
	}
	pick := newWeighted(byWeight...)
	g.emps = make([]employee, n)
	deptOf = make([]int, n)
	for i := range g.emps {
		er := newRNG(g.seed, streamPeople, uint64(i))
		d := i
		if i >= len(departments) {
			d = pick.pick(&er)
		}
		deptOf[i] = d
		e := employee{
			index:     i,
			number:    fmt.Sprintf("E%05d", i+1),
			card:      fmt.Sprintf("3%09d", (cardBase+i*7919)%1_000_000_000),
			sids:      []string{fmt.Sprintf("%s-%d", domain, 1100+i)},
			computers: []string{fmt.Sprintf("WS-%05d", i+1)},
			profile:   departments[d].profile,
			zk:        er.chance(0.25),
		}
		// About 5 % have a laptop with its own account (and at least one
		// employee does, so that small datasets have the case too).
		if er.chance(0.05) || i == len(departments)+1 || (n <= len(departments)+1 && i == n-1) {
			e.sids = append(e.sids, fmt.Sprintf("%s-%d", domain, 500_000+i))
			e.computers = append(e.computers, fmt.Sprintf("LT-%05d", i+1))
		}
		for _, c := range e.computers {
			e.agents = append(e.agents, "agent-"+strings.ToLower(c))
		}
		g.emps[i] = e
	}
	return deptOf
}

// setup creates the organisation, its departments, employees, report
// policy, gateway and demo users.
func (g *generator) setup(ctx context.Context, deps Deps, cfg Config, res *Result) error {
	acc := accounts.New(deps.Platform, deps.Now)
	admin := accounts.Actor{Name: actorName, Tenant: postgres.Tenant{Role: postgres.AppAdmin, Actor: actorName}}
	org, err := acc.CreateOrganization(ctx, admin, cfg.OrgName, cfg.OrgSlug)
	if err != nil {
		return fmt.Errorf("dataset: organisation: %w", err)
	}
	g.org, res.OrganizationID = org.ID, org.ID
	inOrg := accounts.Actor{Name: actorName, Tenant: postgres.Tenant{OrganizationID: org.ID, Role: postgres.AppAdmin, Actor: actorName}}

	dir := directory.New()
	deptIDs := make([]int64, len(departments))
	for i, d := range departments {
		in := directory.DepartmentInput{Name: d.name}
		if d.parent >= 0 {
			in.ParentID = &deptIDs[d.parent]
		}
		created, err := dir.CreateDepartment(ctx, deps.Platform, inOrg.Tenant, in)
		if err != nil {
			return fmt.Errorf("dataset: department %s: %w", d.name, err)
		}
		deptIDs[i] = created.ID
	}
	res.Departments = len(departments)

	deptOf := g.people(cfg.Employees)
	empIDs, err := g.createEmployees(ctx, dir, deps, inOrg.Tenant, cfg, deptOf, deptIDs)
	if err != nil {
		return err
	}
	res.Employees = len(g.emps)

	pol, err := policy.New(deps.Platform)
	if err != nil {
		return fmt.Errorf("dataset: policy service: %w", err)
	}
	p, err := pol.Create(ctx, inOrg, PolicyName, policyContent())
	if err != nil {
		return fmt.Errorf("dataset: report policy: %w", err)
	}
	if _, err := pol.Release(ctx, inOrg, p.ID, false); err != nil {
		return fmt.Errorf("dataset: release the report policy: %w", err)
	}
	res.PolicyID = p.ID
	err = postgres.InTenant(ctx, deps.Platform, inOrg.Tenant, func(tx pgx.Tx) error {
		_, err := datasetdb.New(tx).SetReportSettings(ctx, datasetdb.SetReportSettingsParams{ID: org.ID, TimeZone: cfg.TimeZone, ReportPolicyID: &p.ID})
		return err
	})
	if err != nil {
		return fmt.Errorf("dataset: the organisation's time zone and report policy: %w", err)
	}

	gw, err := acc.RegisterGateway(ctx, admin, org.ID, "GEN-GW-1", "Head office", 24*time.Hour)
	if err != nil {
		return fmt.Errorf("dataset: gateway: %w", err)
	}
	g.gateway, res.GatewayID = gw.GatewayID, gw.GatewayID

	return g.users(ctx, acc, admin, cfg, org, deptIDs, empIDs, res)
}

// createEmployees creates the employees with their identities, on
// cfg.Writers connections at once; it returns their ids by index.
func (g *generator) createEmployees(ctx context.Context, dir *directory.Service, deps Deps, t postgres.Tenant, cfg Config, deptOf []int, deptIDs []int64) ([]int64, error) {
	ids := make([]int64, len(g.emps))
	next := make(chan int)
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range cfg.Writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				e := &g.emps[i]
				r := newRNG(g.seed, streamPeople, uint64(i), 1)
				d := departments[deptOf[i]]
				position := d.title
				if i < len(departments) {
					position = "Head of " + d.name
				}
				email := strings.ToLower(e.number) + "@" + cfg.OrgSlug + ".example"
				in := directory.EmployeeInput{DepartmentID: &deptIDs[deptOf[i]], EmployeeNumber: e.number,
					FirstName: firstNames[r.intn(len(firstNames))], LastName: lastNames[r.intn(len(lastNames))],
					Email: &email, Position: &position}
				for k := range e.sids {
					in.Identities = append(in.Identities, directory.IdentityInput{Kind: "windows_sid", Value: e.sids[k]},
						directory.IdentityInput{Kind: "computer", Value: e.computers[k]})
				}
				in.Identities = append(in.Identities, directory.IdentityInput{Kind: "card_number", Value: e.card})
				created, err := dir.CreateEmployee(ctx, deps.Platform, t, in)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = fmt.Errorf("dataset: employee %s: %w", e.number, err)
					cancel()
				}
				ids[i] = created.ID
				mu.Unlock()
			}
		}()
	}
feed:
	for i := range g.emps {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return ids, firstErr
}

// users creates the demo users: an organisation administrator, an HR user,
// an employee (linked to an employee who is not a lead) and a lead per
// department (linked to the department's head).
func (g *generator) users(ctx context.Context, acc *accounts.Service, admin accounts.Actor, cfg Config, org accounts.Organization,
	deptIDs, empIDs []int64, res *Result) error {
	domain := "@" + cfg.OrgSlug + ".example"
	type want struct {
		in   accounts.NewUser
		note string
	}
	ws := []want{
		{accounts.NewUser{Email: "admin" + domain, Role: string(postgres.AppOrgAdmin)}, "organisation administrator"},
		{accounts.NewUser{Email: "hr" + domain, Role: string(postgres.AppHR)}, "sees every employee"},
	}
	emp := min(len(departments), len(empIDs)-1)
	ws = append(ws, want{accounts.NewUser{Email: "employee" + domain, Role: string(postgres.AppEmployee), EmployeeID: empIDs[emp]},
		"employee " + g.emps[emp].number + " (own data)"})
	for i, d := range departments {
		if i >= len(empIDs) {
			break
		}
		ws = append(ws, want{accounts.NewUser{Email: fmt.Sprintf("lead-%s%s", slug(d.name), domain), Role: string(postgres.AppDepartmentLead),
			DepartmentID: deptIDs[i], EmployeeID: empIDs[i]}, "leads " + d.name})
	}
	for _, w := range ws {
		w.in.OrganizationID = org.ID
		w.in.Password = cfg.Password
		if w.in.Password == "" {
			pw, err := auth.NewPassword()
			if err != nil {
				return err
			}
			w.in.Password = pw
		}
		u, err := acc.CreateUser(ctx, admin, w.in)
		if err != nil {
			return fmt.Errorf("dataset: user %s: %w", w.in.Email, err)
		}
		res.Users = append(res.Users, Login{Email: u.Email, Role: string(u.Role), Password: w.in.Password, Note: w.note})
	}
	return nil
}

// slug is a department name for an e-mail address.
func slug(name string) string {
	return strings.ReplaceAll(strings.ToLower(name), " ", "-")
}
