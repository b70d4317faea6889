package console

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
)

// The administration's pages: a gateway's command queue, the audit log
// and the users and their roles, each a keyset page of the Dashboard
// API's own list (its filters, its cursor), and the user changes the API
// offers (create, disable, enable) through its routes.

// maxGatewayChoices bounds the commands page's gateway chooser.
const maxGatewayChoices = 200

// commandsData is the commands page's data: a gateway's commands.
type commandsData struct {
	listData[commandRow]
	Gateways []gatewayRow
	Gateway  string
}

// commands lists a gateway's commands (GET /api/v2/gateways/{id}/
// commands), filtered by status, newest first; the gateway is chosen
// among those the caller sees (the first one by default).
func (c *Console) commands(w http.ResponseWriter, r *http.Request, p Principal) error {
	d := commandsData{listData: listData[commandRow]{Filter: copyFilter(r, "gateway_id", "status"),
		Paged: r.URL.Query().Get("cursor") != "", Base: Prefix + "commands"}}
	var gws apiList[gatewayRow]
	if err := c.callAPI(r, p, http.MethodGet, "/api/v2/gateways", url.Values{"limit": {strconv.Itoa(maxGatewayChoices)}}, nil, &gws); err != nil {
		return err
	}
	d.Gateways = gws.Items
	d.Gateway = d.Filter.Get("gateway_id")
	if d.Gateway == "" && len(d.Gateways) > 0 {
		d.Gateway = d.Gateways[0].ID.String()
	}
	if d.Gateway != "" {
		id, err := uuid.Parse(d.Gateway)
		if err != nil {
			return apperr.New(apperr.Invalid, "gateway_id", "gateway_id: must be a gateway's id")
		}
		q := pageQuery(r, copyFilter(r, "status"), fleetLimit)
		var l apiList[commandRow]
		if err := c.callAPI(r, p, http.MethodGet, "/api/v2/gateways/"+id.String()+"/commands", q, nil, &l); err != nil {
			return err
		}
		d.Items, d.Next = l.Items, l.NextCursor
	}
	loc, err := c.zone(r, p)
	if err != nil {
		return err
	}
	v := c.newView(w, r, &p, "commands.title")
	v.Loc, v.Data = loc, d
	c.render(w, r, http.StatusOK, "commands", v, nil)
	return nil
}

// auditRow is an audit log entry as the API answers it.
type auditRow struct {
	ID           int64           `json:"id"`
	ActorUserID  *int64          `json:"actor_user_id"`
	Actor        string          `json:"actor"`
	Action       string          `json:"action"`
	ResourceType string          `json:"resource_type"`
	ResourceID   *string         `json:"resource_id"`
	Outcome      string          `json:"outcome"`
	Details      json.RawMessage `json:"details"`
	CreatedAt    time.Time       `json:"created_at"`
}

// DetailsText is the entry's details as compact JSON text (shown
// escaped, cut at 300 bytes).
func (a auditRow) DetailsText() string {
	s := string(a.Details)
	if s == "null" {
		return ""
	}
	if len(s) > 300 {
		s = strings.ToValidUTF8(s[:300], "") + "…"
	}
	return s
}

// auditLog lists the audit log (GET /api/v2/audit-log), newest first,
// filtered by outcome, actor, action and resource type.
func (c *Console) auditLog(w http.ResponseWriter, r *http.Request, p Principal) error {
	d := listData[auditRow]{Filter: copyFilter(r, "outcome", "actor_user_id", "action", "resource_type"),
		Paged: r.URL.Query().Get("cursor") != "", Base: Prefix + "audit-log"}
	var l apiList[auditRow]
	if err := c.callAPI(r, p, http.MethodGet, "/api/v2/audit-log", pageQuery(r, d.Filter, fleetLimit), nil, &l); err != nil {
		return err
	}
	loc, err := c.zone(r, p)
	if err != nil {
		return err
	}
	d.Items, d.Next = l.Items, l.NextCursor
	v := c.newView(w, r, &p, "audit.title")
	v.Loc, v.Data = loc, d
	c.render(w, r, http.StatusOK, "audit", v, nil)
	return nil
}

// userRow is a dashboard user as the API answers it.
type userRow struct {
	ID           int64      `json:"id"`
	Email        string     `json:"email"`
	Role         string     `json:"role"`
	DepartmentID *int64     `json:"department_id"`
	EmployeeID   *int64     `json:"employee_id"`
	Active       bool       `json:"active"`
	LastLoginAt  *time.Time `json:"last_login_at"`
	CreatedAt    time.Time  `json:"created_at"`
}

// usersData is the users page's data.
type usersData struct {
	listData[userRow]
	// Created is the user just created and its initial password, shown
	// this once (nil: none).
	Created *createdUser
	// Form is what the create form was filled with when it was refused.
	Form url.Values
	// Field is the form field the refusal names (empty: none).
	Field string
}

// createdUser is the API's answer to a created user.
type createdUser struct {
	userRow
	InitialPassword string `json:"initial_password"`
}

// roles are the roles the create form offers.
var roles = []string{"ORG_ADMIN", "HR", "DEPARTMENT_LEAD", "EMPLOYEE"}

// Roles are the roles the create form offers.
func (usersData) Roles() []string { return roles }

// users lists the users (GET /api/v2/users) by role and activity.
func (c *Console) users(w http.ResponseWriter, r *http.Request, p Principal) error {
	return c.renderUsers(w, r, p, usersData{}, nil)
}

// renderUsers renders the users page with d's create outcome (or err,
// the create's refusal).
func (c *Console) renderUsers(w http.ResponseWriter, r *http.Request, p Principal, d usersData, refused error) error {
	d.listData = listData[userRow]{Filter: copyFilter(r, "role", "active"), Paged: r.URL.Query().Get("cursor") != "", Base: Prefix + "users", Flash: d.Flash}
	var l apiList[userRow]
	if err := c.callAPI(r, p, http.MethodGet, "/api/v2/users", pageQuery(r, d.Filter, fleetLimit), nil, &l); err != nil {
		return err
	}
	loc, err := c.zone(r, p)
	if err != nil {
		return err
	}
	d.Items, d.Next = l.Items, l.NextCursor
	status := http.StatusOK
	v := c.newView(w, r, &p, "users.title")
	v.Loc = loc
	if refused != nil {
		status = http.StatusUnprocessableEntity
		if ae := apperr.As(refused); ae != nil {
			d.Field = strings.TrimPrefix(ae.Field, "/")
		}
	}
	v.Data = d
	c.render(w, r, status, "users", v, refused)
	return nil
}

// createUser creates a user through the API (POST /api/v2/users) and
// shows the generated initial password once; a refusal re-shows the form
// with the API's message at its field.
func (c *Console) createUser(w http.ResponseWriter, r *http.Request, p Principal) error {
	in := map[string]any{"email": strings.TrimSpace(r.PostFormValue("email")), "role": r.PostFormValue("role")}
	for _, name := range []string{"department_id", "employee_id"} {
		if s := strings.TrimSpace(r.PostFormValue(name)); s != "" {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil || n <= 0 {
				return c.renderUsers(w, r, p, usersData{Form: r.PostForm}, apperr.New(apperr.Invalid, "/"+name, "%s: must be a positive whole number", name))
			}
			in[name] = n
		}
	}
	var out createdUser
	if err := c.callAPI(r, p, http.MethodPost, "/api/v2/users", nil, in, &out); err != nil {
		if code := apperr.CodeOf(err); code == apperr.Invalid || code == apperr.Conflict || code == apperr.Malformed {
			return c.renderUsers(w, r, p, usersData{Form: r.PostForm}, err)
		}
		return err
	}
	return c.renderUsers(w, r, p, usersData{Created: &out}, nil)
}

// setUserActive disables or enables a user through the API (POST
// /api/v2/users/{id}/disable or /enable) and goes back to the list.
func (c *Console) setUserActive(w http.ResponseWriter, r *http.Request, p Principal) error {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return apperr.New(apperr.NotFound, "", "no such user")
	}
	action := "disable"
	if strings.HasSuffix(r.URL.Path, "/enable") {
		action = "enable"
	}
	if err := c.callAPI(r, p, http.MethodPost, "/api/v2/users/"+strconv.FormatInt(id, 10)+"/"+action, nil, nil, nil); err != nil {
		return err
	}
	http.Redirect(w, r, Prefix+"users", http.StatusSeeOther)
	return nil
}
