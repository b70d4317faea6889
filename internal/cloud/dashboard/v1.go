package dashboard

import (
	"context"
	"net/http"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/cloud/directory"
)

// The v1 paths the seed's smoke test calls and promises to keep:
// GET /api/health, /api/auth/login (auth.go), GET /api/organizations and
// GET /api/employees. The seed shows their paths, not their shapes; the
// shapes here are inferred (docs/protocol.md, "v1 paths"): a list is a
// bare JSON array of the v2 items, one page of at most 200, with the next
// page's cursor in X-Next-Cursor.

func (a *api) v1Routes() {
	a.handlePublic("GET", "/api/health", a.v1Health)
	a.handle("GET", "/api/organizations", everyone, a.v1Organizations)
	a.handle("GET", "/api/employees", everyone, a.v1Employees)
}

// v1Health answers 200 {"status":"ok"} when the database answers, 503
// {"status":"unavailable"} otherwise.
func (a *api) v1Health(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if a.db == nil || a.db.Ping(ctx) != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "database": "unavailable"})
		return nil
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "database": "ok"})
	return nil
}

func (a *api) v1Organizations(w http.ResponseWriter, r *http.Request, c *caller) error {
	out, err := a.organizations(r, c)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (a *api) v1Employees(w http.ResponseWriter, r *http.Request, c *caller) error {
	p, err := pageOf(r)
	if err != nil {
		return err
	}
	es, next, err := directory.New().ListEmployees(r.Context(), c.db, c.tenant, directory.EmployeeFilter{},
		directory.Page{Limit: p.Limit, Cursor: p.Cursor})
	if err != nil {
		return listParams(err)
	}
	out := make([]employee, 0, len(es))
	for _, e := range es {
		out = append(out, employeeOf(e))
	}
	if next != "" {
		w.Header().Set("X-Next-Cursor", next)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
