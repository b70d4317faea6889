package dashboard

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/cloud/commandqueue"
	"github.com/staffcontrol/staffcontrol/internal/cloud/dashboard/dashboarddb"
	"github.com/staffcontrol/staffcontrol/internal/cloud/policy"
)

// Policies (through the policy service staffctl policy uses too: create,
// update, release, versions, compare, rollback, distribution) and the
// retention rules.

// policyServices are the policy service and distributor bound to each
// pool: the dashboard role's and, when configured, the admin role's.
type policyServices struct {
	svc, adminSvc *policy.Service
	dist, adminD  *policy.Distributor
}

// newPolicyServices builds the policy services over d's pools. The
// command queue q only enqueues inside the caller's transaction, so it
// serves both.
func newPolicyServices(d Deps, q *commandqueue.Queue) (*policyServices, error) {
	p := &policyServices{}
	var err error
	if p.svc, err = policy.New(d.DB); err != nil {
		return nil, err
	}
	p.dist = policy.NewDistributor(d.DB, q)
	if d.AdminDB != nil {
		if p.adminSvc, err = policy.New(d.AdminDB); err != nil {
			return nil, err
		}
		p.adminD = policy.NewDistributor(d.AdminDB, q)
	}
	return p, nil
}

// policy is the policy service over the caller's pool.
func (a *api) policy(c *caller) *policy.Service {
	if c.db == a.adminDB && a.pol.adminSvc != nil {
		return a.pol.adminSvc
	}
	return a.pol.svc
}

// distributor is the distributor over the caller's pool.
func (a *api) distributor(c *caller) *policy.Distributor {
	if c.db == a.adminDB && a.pol.adminD != nil {
		return a.pol.adminD
	}
	return a.pol.dist
}

// policyReaders may read policies, their versions and distributions.
var policyReaders = peopleAdmins

// policyRoutes registers the policy and retention routes.
func (a *api) policyRoutes() {
	a.handle("GET", "/api/v2/policies", policyReaders, a.listPolicies)
	a.handle("POST", "/api/v2/policies", orgManagers, a.createPolicy)
	a.handle("GET", "/api/v2/policies/{id}", policyReaders, a.getPolicy)
	a.handle("PUT", "/api/v2/policies/{id}", orgManagers, a.updatePolicy)
	a.handle("POST", "/api/v2/policies/{id}/release", orgManagers, a.releasePolicy)
	a.handle("POST", "/api/v2/policies/{id}/rollback", orgManagers, a.rollbackPolicy)
	a.handle("GET", "/api/v2/policies/{id}/versions", policyReaders, a.listPolicyVersions)
	a.handle("GET", "/api/v2/policies/{id}/versions/{version}", policyReaders, a.getPolicyVersion)
	a.handle("GET", "/api/v2/policies/{id}/compare", policyReaders, a.comparePolicyVersions)
	a.handle("POST", "/api/v2/policies/{id}/distributions", orgManagers, a.distributePolicy)
	a.handle("GET", "/api/v2/policies/{id}/distributions/{distribution_id}", policyReaders, a.getPolicyDistribution)
	a.handle("GET", "/api/v2/retention-policies", orgManagers, a.listRetentionPolicies)
	a.handle("GET", "/api/v2/retention-policies/{id}", orgManagers, a.getRetentionPolicy)
	a.handle("PATCH", "/api/v2/retention-policies/{id}", orgManagers, a.updateRetentionPolicy)
}

// policyNotFound maps the policy service's not-found to a 404.
func policyNotFound(err error, what string) error {
	if errors.Is(err, policy.ErrNotFound) {
		return apperr.New(apperr.NotFound, "", "no such %s", what)
	}
	return err
}

// policyOut is a policy on the wire.
type policyOut struct {
	ID             int64           `json:"id"`
	OrganizationID int64           `json:"organization_id"`
	Name           string          `json:"name"`
	Content        json.RawMessage `json:"content"`
	CurrentVersion *string         `json:"current_version"`
	CreatedAt      time.Time       `json:"created_at"`
	UpdatedAt      time.Time       `json:"updated_at"`
}

func policyOutOf(p policy.Policy) policyOut {
	o := policyOut{ID: p.ID, OrganizationID: p.OrganizationID, Name: p.Name, Content: p.Content, CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt}
	if p.CurrentVersion != "" {
		o.CurrentVersion = &p.CurrentVersion
	}
	return o
}

// policyVersionOut is a released version on the wire.
type policyVersionOut struct {
	ID              uuid.UUID       `json:"id"`
	PolicyID        int64           `json:"policy_id"`
	Version         string          `json:"version"`
	Content         json.RawMessage `json:"content"`
	Checksum        string          `json:"checksum"`
	RequiresRestart bool            `json:"requires_restart"`
	ReleasedAt      time.Time       `json:"released_at"`
	ReleasedBy      *int64          `json:"released_by"`
}

func policyVersionOf(v policy.Version) policyVersionOut { return policyVersionOut(v) }

func (a *api) listPolicies(w http.ResponseWriter, r *http.Request, c *caller) error {
	pg, err := pageOf(r)
	if err != nil {
		return err
	}
	var after struct {
		ID int64 `json:"id"`
	}
	if err := decodeCursor(pg.Cursor, &after); err != nil {
		return err
	}
	ps, err := a.policy(c).List(r.Context(), c.actor(), after.ID, pg.Limit+1)
	if err != nil {
		return err
	}
	next := ""
	if len(ps) > pg.Limit {
		ps = ps[:pg.Limit]
		next = encodeCursor(map[string]int64{"id": ps[len(ps)-1].ID})
	}
	out := make([]policyOut, 0, len(ps))
	for _, p := range ps {
		out = append(out, policyOutOf(p))
	}
	writeJSON(w, http.StatusOK, newList(out, next))
	return nil
}

// newPolicy is the body of POST /api/v2/policies.
type newPolicy struct {
	Name    string          `json:"name"`
	Content json.RawMessage `json:"content"`
}

func (a *api) createPolicy(w http.ResponseWriter, r *http.Request, c *caller) error {
	var in newPolicy
	if err := a.decode(r, &in); err != nil {
		return err
	}
	if len(in.Content) == 0 {
		return apperr.New(apperr.Invalid, "content", "content is required (the policy as a JSON object)")
	}
	if c.tenant.OrganizationID == 0 {
		return apperr.New(apperr.Forbidden, "", "a platform ADMIN belongs to no organisation: an organisation's administrator creates its policies")
	}
	p, err := a.policy(c).Create(r.Context(), c.actor(), in.Name, in.Content)
	if err != nil {
		return err
	}
	p, err = a.policy(c).Get(r.Context(), c.actor(), p.ID)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v2/policies/"+itoa(p.ID))
	writeVersioned(w, http.StatusCreated, p.Version(), policyOutOf(p))
	return nil
}

func (a *api) getPolicy(w http.ResponseWriter, r *http.Request, c *caller) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	p, err := a.policy(c).Get(r.Context(), c.actor(), id)
	if err != nil {
		return policyNotFound(err, "policy")
	}
	writeVersioned(w, http.StatusOK, p.Version(), policyOutOf(p))
	return nil
}

// policyUpdate is the body of PUT /api/v2/policies/{id}: the new draft.
type policyUpdate struct {
	Content json.RawMessage `json:"content"`
}

func (a *api) updatePolicy(w http.ResponseWriter, r *http.Request, c *caller) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	version, err := ifMatch(r)
	if err != nil {
		return err
	}
	var in policyUpdate
	if err := a.decode(r, &in); err != nil {
		return err
	}
	if len(in.Content) == 0 {
		return apperr.New(apperr.Invalid, "content", "content is required (the policy as a JSON object)")
	}
	p, err := a.policy(c).UpdateVersion(r.Context(), c.actor(), id, in.Content, version)
	if errors.Is(err, policy.ErrStale) {
		return stale("policy")
	}
	if err != nil {
		return policyNotFound(err, "policy")
	}
	writeVersioned(w, http.StatusOK, p.Version(), policyOutOf(p))
	return nil
}

// releaseRequest is the body of POST /api/v2/policies/{id}/release.
type releaseRequest struct {
	RequiresRestart bool `json:"requires_restart"`
}

func (a *api) releasePolicy(w http.ResponseWriter, r *http.Request, c *caller) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	var in releaseRequest
	if err := a.decode(r, &in); err != nil {
		return err
	}
	v, err := a.policy(c).Release(r.Context(), c.actor(), id, in.RequiresRestart)
	if err != nil {
		return policyNotFound(err, "policy")
	}
	w.Header().Set("Location", "/api/v2/policies/"+itoa(id)+"/versions/"+v.Version)
	writeJSON(w, http.StatusCreated, policyVersionOf(v))
	return nil
}

// rollbackRequest is the body of POST /api/v2/policies/{id}/rollback.
type rollbackRequest struct {
	Version         string `json:"version"`
	RequiresRestart bool   `json:"requires_restart"`
}

func (a *api) rollbackPolicy(w http.ResponseWriter, r *http.Request, c *caller) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	var in rollbackRequest
	if err := a.decode(r, &in); err != nil {
		return err
	}
	if in.Version == "" {
		return apperr.New(apperr.Invalid, "version", "version is required: the released version whose content to release again")
	}
	if _, err := a.policy(c).Get(r.Context(), c.actor(), id); err != nil {
		return policyNotFound(err, "policy")
	}
	v, err := a.policy(c).Rollback(r.Context(), c.actor(), id, in.Version, in.RequiresRestart)
	if errors.Is(err, policy.ErrNotFound) {
		return apperr.New(apperr.Invalid, "version", "policy %d has no released version %q", id, in.Version)
	}
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v2/policies/"+itoa(id)+"/versions/"+v.Version)
	writeJSON(w, http.StatusCreated, policyVersionOf(v))
	return nil
}

// versionCursor is the cursor of a page of versions.
type versionCursor struct {
	ReleasedAt time.Time `json:"t"`
	ID         uuid.UUID `json:"id"`
}

func (a *api) listPolicyVersions(w http.ResponseWriter, r *http.Request, c *caller) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	pg, err := pageOf(r)
	if err != nil {
		return err
	}
	var after versionCursor
	if err := decodeCursor(pg.Cursor, &after); err != nil {
		return err
	}
	vs, err := a.policy(c).Versions(r.Context(), c.actor(), id, policy.VersionCursor(after), pg.Limit+1)
	if err != nil {
		return policyNotFound(err, "policy")
	}
	next := ""
	if len(vs) > pg.Limit {
		vs = vs[:pg.Limit]
		last := vs[len(vs)-1]
		next = encodeCursor(versionCursor{ReleasedAt: last.ReleasedAt, ID: last.ID})
	}
	out := make([]policyVersionOut, 0, len(vs))
	for _, v := range vs {
		out = append(out, policyVersionOf(v))
	}
	writeJSON(w, http.StatusOK, newList(out, next))
	return nil
}

func (a *api) getPolicyVersion(w http.ResponseWriter, r *http.Request, c *caller) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	v, err := a.policy(c).Version(r.Context(), c.actor(), id, r.PathValue("version"))
	if err != nil {
		return policyNotFound(err, "policy version")
	}
	writeJSON(w, http.StatusOK, policyVersionOf(v))
	return nil
}

// comparison is the answer of GET /api/v2/policies/{id}/compare.
type comparison struct {
	From    string          `json:"from"`
	To      string          `json:"to"`
	Changes []policy.Change `json:"changes"`
}

func (a *api) comparePolicyVersions(w http.ResponseWriter, r *http.Request, c *caller) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	q := r.URL.Query()
	from, to := q.Get("from"), q.Get("to")
	for name, v := range map[string]string{"from": from, "to": to} {
		if v == "" {
			return inParams(apperr.New(apperr.Invalid, name, "%s is required: a released version of the policy", name))
		}
	}
	if _, err := a.policy(c).Get(r.Context(), c.actor(), id); err != nil {
		return policyNotFound(err, "policy")
	}
	for name, v := range map[string]string{"from": from, "to": to} {
		if _, err := a.policy(c).Version(r.Context(), c.actor(), id, v); errors.Is(err, policy.ErrNotFound) {
			return inParams(apperr.New(apperr.Invalid, name, "policy %d has no released version %q", id, v))
		} else if err != nil {
			return err
		}
	}
	changes, err := a.policy(c).Compare(r.Context(), c.actor(), id, from, to)
	if err != nil {
		return policyNotFound(err, "policy version")
	}
	if changes == nil {
		changes = []policy.Change{}
	}
	writeJSON(w, http.StatusOK, comparison{From: from, To: to, Changes: changes})
	return nil
}

// distributeRequest is the body of POST /api/v2/policies/{id}/distributions.
type distributeRequest struct {
	Version       string      `json:"version"`
	Gateways      []uuid.UUID `json:"gateways"`
	CanaryPercent int         `json:"canary_percent"`
}

// distributionOut is a distribution's progress on the wire.
type distributionOut struct {
	ID            uuid.UUID         `json:"id"`
	PolicyID      int64             `json:"policy_id"`
	Version       string            `json:"version"`
	Stage         string            `json:"stage"`
	CanaryPercent int               `json:"canary_percent"`
	CreatedAt     time.Time         `json:"created_at"`
	Total         int               `json:"total"`
	Waiting       int               `json:"waiting"`
	Pending       int               `json:"pending"`
	Delivered     int               `json:"delivered"`
	Applied       int               `json:"applied"`
	Failed        int               `json:"failed"`
	Gateways      []distributionGwy `json:"gateways"`
}

// distributionGwy is one target gateway's state.
type distributionGwy struct {
	GatewayID uuid.UUID `json:"gateway_id"`
	Canary    bool      `json:"canary"`
	Status    string    `json:"status"`
	Error     string    `json:"error,omitempty"`
}

func distributionOf(p policy.Progress) distributionOut {
	o := distributionOut{ID: p.ID, PolicyID: p.PolicyID, Version: p.Version, Stage: p.Stage, CanaryPercent: p.CanaryPercent, CreatedAt: p.CreatedAt,
		Total: p.Total, Waiting: p.Waiting, Pending: p.Pending, Delivered: p.Delivered, Applied: p.Applied, Failed: p.Failed,
		Gateways: []distributionGwy{}}
	for _, g := range p.Gateways {
		o.Gateways = append(o.Gateways, distributionGwy{GatewayID: g.GatewayID, Canary: g.Canary, Status: g.Status, Error: g.Error})
	}
	return o
}

func (a *api) distributePolicy(w http.ResponseWriter, r *http.Request, c *caller) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	var in distributeRequest
	if err := a.decode(r, &in); err != nil {
		return err
	}
	if in.Version == "" {
		return apperr.New(apperr.Invalid, "version", "version is required: the released version to distribute")
	}
	if _, err := a.policy(c).Get(r.Context(), c.actor(), id); err != nil {
		return policyNotFound(err, "policy")
	}
	distID, err := a.distributor(c).Distribute(r.Context(), c.actor(), id, in.Version, in.Gateways, in.CanaryPercent)
	if errors.Is(err, policy.ErrNotFound) {
		return apperr.New(apperr.Invalid, "version", "policy %d has no released version %q", id, in.Version)
	}
	if err != nil {
		return err
	}
	p, err := a.distributor(c).Progress(r.Context(), c.tenant, distID)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v2/policies/"+itoa(id)+"/distributions/"+distID.String())
	writeJSON(w, http.StatusCreated, distributionOf(p))
	return nil
}

func (a *api) getPolicyDistribution(w http.ResponseWriter, r *http.Request, c *caller) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	distID, err := uuid.Parse(r.PathValue("distribution_id"))
	if err != nil {
		return apperr.New(apperr.NotFound, "", "no such distribution")
	}
	p, err := a.distributor(c).Progress(r.Context(), c.tenant, distID)
	if err != nil {
		return policyNotFound(err, "distribution")
	}
	if p.PolicyID != id {
		return apperr.New(apperr.NotFound, "", "no such distribution")
	}
	writeJSON(w, http.StatusOK, distributionOf(p))
	return nil
}

// retentionOut is a retention rule on the wire. A rule without an
// organisation is a platform default.
type retentionOut struct {
	ID             uuid.UUID `json:"id"`
	OrganizationID *int64    `json:"organization_id"`
	ResourceType   string    `json:"resource_type"`
	RetentionDays  int32     `json:"retention_days"`
	Action         string    `json:"action"`
	Active         bool      `json:"active"`
	CreatedAt      time.Time `json:"created_at"`
}

func retentionOf(p dashboarddb.RetentionPolicy) retentionOut {
	return retentionOut{ID: p.ID, OrganizationID: p.OrganizationID, ResourceType: p.ResourceType, RetentionDays: p.RetentionDays,
		Action: p.Action, Active: p.IsActive, CreatedAt: p.CreatedAt}
}

// retentionVersion is a rule's version for optimistic concurrency: its
// row_version, which the database moves on every update (00023).
func retentionVersion(p dashboarddb.RetentionPolicy) int64 { return p.RowVersion }

func (a *api) listRetentionPolicies(w http.ResponseWriter, r *http.Request, c *caller) error {
	pg, err := pageOf(r)
	if err != nil {
		return err
	}
	var after struct {
		ID *uuid.UUID `json:"id"`
	}
	if err := decodeCursor(pg.Cursor, &after); err != nil {
		return err
	}
	var rows []dashboarddb.RetentionPolicy
	err = c.inTenant(r.Context(), func(tx pgx.Tx) error {
		var err error
		rows, err = dashboarddb.New(tx).ListRetentionPolicies(r.Context(), dashboarddb.ListRetentionPoliciesParams{AfterID: after.ID,
			MaxRows: int32(pg.Limit + 1)})
		return err
	})
	if err != nil {
		return fmt.Errorf("list retention policies: %w", err)
	}
	next := ""
	if len(rows) > pg.Limit {
		rows = rows[:pg.Limit]
		next = encodeCursor(map[string]uuid.UUID{"id": rows[len(rows)-1].ID})
	}
	out := make([]retentionOut, 0, len(rows))
	for _, p := range rows {
		out = append(out, retentionOf(p))
	}
	writeJSON(w, http.StatusOK, newList(out, next))
	return nil
}

// retentionID reads a retention rule's id from the path (404 when it
// cannot name one).
func retentionID(r *http.Request) (uuid.UUID, error) {
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		return uuid.Nil, apperr.New(apperr.NotFound, "", "no such retention policy")
	}
	return id, nil
}

func (a *api) getRetentionPolicy(w http.ResponseWriter, r *http.Request, c *caller) error {
	id, err := retentionID(r)
	if err != nil {
		return err
	}
	var p dashboarddb.RetentionPolicy
	err = c.inTenant(r.Context(), func(tx pgx.Tx) error {
		var err error
		p, err = dashboarddb.New(tx).GetRetentionPolicy(r.Context(), id)
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return apperr.New(apperr.NotFound, "", "no such retention policy")
	}
	if err != nil {
		return fmt.Errorf("get retention policy: %w", err)
	}
	writeVersioned(w, http.StatusOK, retentionVersion(p), retentionOf(p))
	return nil
}

// retentionUpdate is the body of PATCH /api/v2/retention-policies/{id};
// absent members are left as they are.
type retentionUpdate struct {
	RetentionDays *int32  `json:"retention_days"`
	Action        *string `json:"action"`
	Active        *bool   `json:"active"`
}

func (a *api) updateRetentionPolicy(w http.ResponseWriter, r *http.Request, c *caller) error {
	id, err := retentionID(r)
	if err != nil {
		return err
	}
	version, err := ifMatch(r)
	if err != nil {
		return err
	}
	var in retentionUpdate
	if err := a.decode(r, &in); err != nil {
		return err
	}
	if in.RetentionDays != nil && (*in.RetentionDays < 1 || *in.RetentionDays > 36500) {
		return apperr.New(apperr.Invalid, "retention_days", "retention_days must be from 1 to 36500")
	}
	if in.Action != nil && *in.Action != "delete" && *in.Action != "archive" {
		return apperr.New(apperr.Invalid, "action", "action must be delete or archive")
	}
	var p dashboarddb.RetentionPolicy
	err = c.inTenant(r.Context(), func(tx pgx.Tx) error {
		q := dashboarddb.New(tx)
		old, err := q.LockRetentionPolicy(r.Context(), id)
		if errors.Is(err, pgx.ErrNoRows) {
			// Visible but not writable: a platform default.
			if _, err := q.GetRetentionPolicy(r.Context(), id); err == nil {
				return apperr.New(apperr.Forbidden, "", "this is a platform default: only a platform ADMIN changes it")
			}
			return apperr.New(apperr.NotFound, "", "no such retention policy")
		}
		if err != nil {
			return err
		}
		if retentionVersion(old) != version {
			return stale("retention policy")
		}
		p = old
		if in.RetentionDays != nil {
			p.RetentionDays = *in.RetentionDays
		}
		if in.Action != nil {
			p.Action = *in.Action
		}
		if in.Active != nil {
			p.IsActive = *in.Active
		}
		updated, err := q.UpdateRetentionPolicy(r.Context(), dashboarddb.UpdateRetentionPolicyParams{ID: id, RetentionDays: p.RetentionDays,
			Action: p.Action, IsActive: p.IsActive})
		if err != nil {
			return err
		}
		p = updated
		details, err := json.Marshal(map[string]any{
			"old": map[string]any{"retention_days": old.RetentionDays, "action": old.Action, "active": old.IsActive},
			"new": map[string]any{"retention_days": p.RetentionDays, "action": p.Action, "active": p.IsActive},
		})
		if err != nil {
			return err
		}
		return q.AuditRetentionChange(r.Context(), dashboarddb.AuditRetentionChangeParams{OrganizationID: p.OrganizationID,
			ResourceID: id.String(), Details: details})
	})
	if err != nil {
		return err
	}
	writeVersioned(w, http.StatusOK, retentionVersion(p), retentionOf(p))
	return nil
}
