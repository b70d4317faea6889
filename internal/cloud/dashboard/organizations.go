package dashboard

import (
	"errors"
	"net/http"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/cloud/accounts"
)

// The caller and the organisations: GET /api/v2/me, and organisations
// through the accounts service staffctl uses too.

// me is who the access token speaks for.
type me struct {
	UserID         int64     `json:"user_id"`
	OrganizationID *int64    `json:"organization_id"`
	Role           string    `json:"role"`
	DepartmentID   *int64    `json:"department_id,omitempty"`
	EmployeeID     *int64    `json:"employee_id,omitempty"`
	ExpiresAt      time.Time `json:"expires_at"`
}

func (a *api) getMe(w http.ResponseWriter, r *http.Request, c *caller) error {
	writeJSON(w, http.StatusOK, me{UserID: c.claims.UserID, OrganizationID: nonZero(c.claims.OrganizationID), Role: c.claims.Role,
		DepartmentID: nonZero(c.claims.DepartmentID), EmployeeID: nonZero(c.claims.EmployeeID), ExpiresAt: c.claims.ExpiresAt})
	return nil
}

// organization is an organisation on the wire.
type organization struct {
	ID        int64     `json:"id"`
	Name      string    `json:"name"`
	Slug      string    `json:"slug"`
	Version   int64     `json:"version"`
	CreatedAt time.Time `json:"created_at"`
}

func organizationOf(o accounts.Organization) organization {
	return organization{ID: o.ID, Name: o.Name, Slug: o.Slug, Version: o.RowVersion, CreatedAt: o.CreatedAt}
}

// actor is the caller as the accounts service's actor.
func (c *caller) actor() accounts.Actor {
	return accounts.Actor{Name: c.tenant.Actor, UserID: c.tenant.UserID, Tenant: c.tenant}
}

// accounts is the accounts service over the caller's pool.
func (a *api) accounts(c *caller) *accounts.Service { return accounts.New(c.db, time.Now) }

// organizations lists the organisations the caller sees (v1 and v2).
func (a *api) organizations(r *http.Request, c *caller) ([]organization, error) {
	orgs, err := a.accounts(c).ListOrganizations(r.Context(), c.actor())
	if err != nil {
		return nil, err
	}
	out := make([]organization, 0, len(orgs))
	for _, o := range orgs {
		out = append(out, organizationOf(o))
	}
	return out, nil
}

func (a *api) listOrganizations(w http.ResponseWriter, r *http.Request, c *caller) error {
	out, err := a.organizations(r, c)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, newList(out, ""))
	return nil
}

func (a *api) getOrganization(w http.ResponseWriter, r *http.Request, c *caller) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	o, err := a.accounts(c).OrganizationByID(r.Context(), c.actor(), id)
	if errors.Is(err, accounts.ErrNotFound) {
		return apperr.New(apperr.NotFound, "", "no such organisation")
	}
	if err != nil {
		return err
	}
	writeVersioned(w, http.StatusOK, o.RowVersion, organizationOf(o))
	return nil
}

// organizationChange is the body of PATCH /api/v2/organizations/{id}.
type organizationChange struct {
	Name string `json:"name"`
}

// renameOrganization renames an organisation (its slug, which gateways
// and scripts name it by, stays).
func (a *api) renameOrganization(w http.ResponseWriter, r *http.Request, c *caller) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	version, err := ifMatch(r)
	if err != nil {
		return err
	}
	var in organizationChange
	if err := a.decode(r, &in); err != nil {
		return err
	}
	o, err := a.accounts(c).RenameOrganization(r.Context(), c.actor(), id, in.Name, version)
	switch {
	case errors.Is(err, accounts.ErrNotFound):
		return apperr.New(apperr.NotFound, "", "no such organisation")
	case errors.Is(err, accounts.ErrStale):
		return stale("organisation")
	case err != nil:
		return err
	}
	writeVersioned(w, http.StatusOK, o.RowVersion, organizationOf(o))
	return nil
}

// newOrganization is the body of POST /api/v2/organizations.
type newOrganization struct {
	Name string `json:"name"`
	Slug string `json:"slug,omitempty"`
}

func (a *api) createOrganization(w http.ResponseWriter, r *http.Request, c *caller) error {
	var in newOrganization
	if err := a.decode(r, &in); err != nil {
		return err
	}
	o, err := a.accounts(c).CreateOrganization(r.Context(), c.actor(), in.Name, in.Slug)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v2/organizations/"+itoa(o.ID))
	writeVersioned(w, http.StatusCreated, o.RowVersion, organizationOf(o))
	return nil
}
