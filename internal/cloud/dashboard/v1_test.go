package dashboard_test

import (
	"net/http"
	"testing"
)

// TestV1SmokePaths: the seed's smoke test — GET /api/health,
// /api/auth/login, /api/organizations and /api/employees answer 200 for a
// signed-in client, with the caller's organisation's rows only.
func TestV1SmokePaths(t *testing.T) {
	e := newAPIEnv(t, withSignIn(signInPolicy))
	e.addUser(e.orgA.OrganizationID, "smoke@acme.test", "ORG_ADMIN", "correct horse battery", 0, 0)
	s := e.login("smoke@acme.test", "correct horse battery")
	// The v1 names of the tokens.
	a := e.call("POST", "/api/auth/login", "", map[string]string{"email": "smoke@acme.test", "password": "correct horse battery"})
	var v1 struct {
		AccessToken  string `json:"accessToken"`
		RefreshToken string `json:"refreshToken"`
	}
	a.JSON(t, &v1)
	if v1.AccessToken == "" || v1.RefreshToken == "" {
		t.Fatalf("v1 token names: %s", a.Body)
	}
	for _, p := range []string{"/api/health", "/api/auth/login", "/api/organizations", "/api/employees"} {
		if a := e.call("GET", p, s.AccessToken, nil); a.Status != http.StatusOK {
			t.Errorf("GET %s: %d %s", p, a.Status, a.Body)
		}
	}
	var orgs []struct{ ID int64 }
	e.call("GET", "/api/organizations", s.AccessToken, nil).JSON(t, &orgs)
	if len(orgs) != 1 || orgs[0].ID != e.orgA.OrganizationID {
		t.Fatalf("v1 organisations: %+v", orgs)
	}
	var emps []struct {
		ID             int64
		OrganizationID int64 `json:"organization_id"`
	}
	e.call("GET", "/api/employees", s.AccessToken, nil).JSON(t, &emps)
	if len(emps) != 1 || emps[0].ID != e.orgA.EmployeeID {
		t.Fatalf("v1 employees: %+v", emps)
	}
	if a := e.call("GET", "/api/employees", "", nil); a.Status != http.StatusUnauthorized {
		t.Fatalf("v1 employees without a token: %d", a.Status)
	}
}
