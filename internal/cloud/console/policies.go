package console

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
)

// The policies' pages: the list, a policy (its editor, its released
// versions, release, rollback, distribution), a version, the comparison
// of two versions and a distribution's progress, polled by htmx until
// every gateway has answered. All of it through the API's own policy
// routes (the policy service, its JSON Schema validation whose errors
// name the field as a JSON Pointer, its diff and its distributor).

// versionsShown is how many of a policy's latest versions its page lists.
const versionsShown = 20

// policyRow is a policy as the API answers it.
type policyRow struct {
	ID             int64           `json:"id"`
	Name           string          `json:"name"`
	Content        json.RawMessage `json:"content"`
	CurrentVersion *string         `json:"current_version"`
	UpdatedAt      time.Time       `json:"updated_at"`
}

// versionRow is a released version as the API answers it.
type versionRow struct {
	Version         string          `json:"version"`
	Content         json.RawMessage `json:"content"`
	Checksum        string          `json:"checksum"`
	RequiresRestart bool            `json:"requires_restart"`
	ReleasedAt      time.Time       `json:"released_at"`
}

// pretty is JSON indented for reading (as it is when it cannot be).
func pretty(raw json.RawMessage) string {
	var b bytes.Buffer
	if err := json.Indent(&b, raw, "", "  "); err != nil {
		return string(raw)
	}
	return b.String()
}

// policies lists the policies (GET /api/v2/policies).
func (c *Console) policies(w http.ResponseWriter, r *http.Request, p Principal) error {
	d := listData[policyRow]{Filter: url.Values{}, Paged: r.URL.Query().Get("cursor") != "", Base: Prefix + "policies"}
	var l apiList[policyRow]
	if err := c.callAPI(r, p, http.MethodGet, "/api/v2/policies", pageQuery(r, d.Filter, fleetLimit), nil, &l); err != nil {
		return err
	}
	loc, err := c.zone(r, p)
	if err != nil {
		return err
	}
	d.Items, d.Next = l.Items, l.NextCursor
	v := c.newView(w, r, &p, "policies.title")
	v.Loc, v.Data = loc, d
	c.render(w, r, http.StatusOK, "policies", v, nil)
	return nil
}

// policyData is a policy's page's data.
type policyData struct {
	Policy   policyRow
	ETag     string
	Content  string
	Versions []versionRow
	// Field and FieldErr are the refused save's field (a JSON Pointer into
	// the content) and message.
	Field, FieldErr string
	// Saved and Released name what was just done (empty: nothing).
	Saved, Released string
}

// policyPath is the API path of policy id.
func policyPath(id int64) string { return "/api/v2/policies/" + strconv.FormatInt(id, 10) }

// policyID reads the policy id of the path (404 when it cannot be one).
func policyID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, apperr.New(apperr.NotFound, "", "no such policy")
	}
	return id, nil
}

// loadPolicy reads a policy, its ETag and its latest versions.
func (c *Console) loadPolicy(r *http.Request, p Principal, id int64) (policyData, error) {
	var d policyData
	h, err := c.callAPIHeader(r, p, http.MethodGet, policyPath(id), nil, nil, &d.Policy, nil)
	if err != nil {
		return d, err
	}
	d.ETag = h.Get("ETag")
	d.Content = pretty(d.Policy.Content)
	var vs apiList[versionRow]
	if err := c.callAPI(r, p, http.MethodGet, policyPath(id)+"/versions", url.Values{"limit": {strconv.Itoa(versionsShown)}}, nil, &vs); err != nil {
		return d, err
	}
	d.Versions = vs.Items
	return d, nil
}

// policy shows a policy: its content (an editor for those who may
// change it), its versions and their actions.
func (c *Console) policy(w http.ResponseWriter, r *http.Request, p Principal) error {
	id, err := policyID(r)
	if err != nil {
		return err
	}
	d, err := c.loadPolicy(r, p, id)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	d.Saved, d.Released = q.Get("saved"), q.Get("released")
	return c.renderPolicy(w, r, p, d, http.StatusOK, nil)
}

// renderPolicy renders a policy's page with status and err's message.
func (c *Console) renderPolicy(w http.ResponseWriter, r *http.Request, p Principal, d policyData, status int, err error) error {
	loc, zerr := c.zone(r, p)
	if zerr != nil {
		return zerr
	}
	v := c.newView(w, r, &p, "policy.title")
	v.Loc, v.Data = loc, d
	c.render(w, r, status, "policy", v, err)
	return nil
}

// savePolicy saves the editor's content (PUT /api/v2/policies/{id} with
// the ETag read, so a change made meanwhile is not overwritten); a
// refusal re-shows the editor with the content as typed and the API's
// message at the field it names.
func (c *Console) savePolicy(w http.ResponseWriter, r *http.Request, p Principal) error {
	id, err := policyID(r)
	if err != nil {
		return err
	}
	content := strings.TrimSpace(r.PostFormValue("content"))
	var saveErr error
	if !json.Valid([]byte(content)) {
		saveErr = apperr.New(apperr.Invalid, "/content", "the content is not JSON")
	} else {
		_, saveErr = c.callAPIHeader(r, p, http.MethodPut, policyPath(id), nil, map[string]json.RawMessage{"content": json.RawMessage(content)}, nil,
			http.Header{"If-Match": {r.PostFormValue("etag")}})
	}
	if saveErr == nil {
		http.Redirect(w, r, fmt.Sprintf("%spolicies/%d?saved=1", Prefix, id), http.StatusSeeOther)
		return nil
	}
	code := apperr.CodeOf(saveErr)
	if code != apperr.Invalid && code != apperr.Conflict && code != apperr.Malformed {
		return saveErr
	}
	d, err := c.loadPolicy(r, p, id)
	if err != nil {
		return err
	}
	d.Content = content
	if ae := apperr.As(saveErr); ae != nil {
		d.Field, d.FieldErr = strings.TrimPrefix(ae.Field, "/content"), ae.Message
		if d.Field == "" {
			d.Field = "/"
		}
	}
	if code == apperr.Conflict {
		d.Field, d.FieldErr = "", ""
	}
	return c.renderPolicy(w, r, p, d, http.StatusUnprocessableEntity, saveErr)
}

// releasePolicy releases the saved content as a new version (POST
// /api/v2/policies/{id}/release), or, given a version, releases that
// version's content again (POST …/rollback).
func (c *Console) releasePolicy(w http.ResponseWriter, r *http.Request, p Principal) error {
	id, err := policyID(r)
	if err != nil {
		return err
	}
	restart := r.PostFormValue("requires_restart") == "on"
	var v versionRow
	if from := r.PostFormValue("rollback_to"); from != "" {
		err = c.callAPI(r, p, http.MethodPost, policyPath(id)+"/rollback", nil, map[string]any{"version": from, "requires_restart": restart}, &v)
	} else {
		err = c.callAPI(r, p, http.MethodPost, policyPath(id)+"/release", nil, map[string]any{"requires_restart": restart}, &v)
	}
	if err != nil {
		return err
	}
	http.Redirect(w, r, fmt.Sprintf("%spolicies/%d?released=%s", Prefix, id, url.QueryEscape(v.Version)), http.StatusSeeOther)
	return nil
}

// policyVersion shows a released version's content.
func (c *Console) policyVersion(w http.ResponseWriter, r *http.Request, p Principal) error {
	id, err := policyID(r)
	if err != nil {
		return err
	}
	var d struct {
		PolicyID int64
		Version  versionRow
		Content  string
	}
	d.PolicyID = id
	if err := c.callAPI(r, p, http.MethodGet, policyPath(id)+"/versions/"+url.PathEscape(r.PathValue("version")), nil, nil, &d.Version); err != nil {
		return err
	}
	d.Content = pretty(d.Version.Content)
	loc, err := c.zone(r, p)
	if err != nil {
		return err
	}
	v := c.newView(w, r, &p, "policy.version")
	v.Loc, v.Data = loc, d
	c.render(w, r, http.StatusOK, "policyversion", v, nil)
	return nil
}

// change is one change of a comparison as the API answers it.
type change struct {
	Op   string          `json:"op"`
	Path string          `json:"path"`
	Old  json.RawMessage `json:"old"`
	New  json.RawMessage `json:"new"`
}

// comparePolicy shows what changed from one version to another (GET
// /api/v2/policies/{id}/compare: the policy package's diff).
func (c *Console) comparePolicy(w http.ResponseWriter, r *http.Request, p Principal) error {
	id, err := policyID(r)
	if err != nil {
		return err
	}
	var d struct {
		PolicyID int64
		From     string   `json:"from"`
		To       string   `json:"to"`
		Changes  []change `json:"changes"`
	}
	if err := c.callAPI(r, p, http.MethodGet, policyPath(id)+"/compare", copyFilter(r, "from", "to"), nil, &d); err != nil {
		return err
	}
	d.PolicyID = id
	v := c.newView(w, r, &p, "policy.compare")
	v.Data = d
	c.render(w, r, http.StatusOK, "policydiff", v, nil)
	return nil
}

// distributionRow is a distribution's progress as the API answers it.
type distributionRow struct {
	ID        uuid.UUID `json:"id"`
	PolicyID  int64     `json:"policy_id"`
	Version   string    `json:"version"`
	Stage     string    `json:"stage"`
	Total     int       `json:"total"`
	Waiting   int       `json:"waiting"`
	Pending   int       `json:"pending"`
	Delivered int       `json:"delivered"`
	Applied   int       `json:"applied"`
	Failed    int       `json:"failed"`
	Gateways  []struct {
		GatewayID uuid.UUID `json:"gateway_id"`
		Canary    bool      `json:"canary"`
		Status    string    `json:"status"`
		Error     string    `json:"error"`
	} `json:"gateways"`
}

// Percent is the share of the gateways that have answered (applied or
// failed), 100 when there are none.
func (d distributionRow) Percent() int {
	if d.Total == 0 {
		return 100
	}
	return (d.Applied + d.Failed) * 100 / d.Total
}

// Done reports whether every gateway has answered.
func (d distributionRow) Done() bool { return d.Percent() >= 100 }

// distributePolicy distributes a released version to the organisation's
// gateways (POST /api/v2/policies/{id}/distributions) and goes to its
// progress.
func (c *Console) distributePolicy(w http.ResponseWriter, r *http.Request, p Principal) error {
	id, err := policyID(r)
	if err != nil {
		return err
	}
	canary := 0
	if s := r.PostFormValue("canary_percent"); s != "" {
		if canary, err = strconv.Atoi(s); err != nil {
			return apperr.New(apperr.Invalid, "canary_percent", "canary_percent: must be a whole number")
		}
	}
	var out distributionRow
	body := map[string]any{"version": r.PostFormValue("version"), "canary_percent": canary}
	if err := c.callAPI(r, p, http.MethodPost, policyPath(id)+"/distributions", nil, body, &out); err != nil {
		return err
	}
	http.Redirect(w, r, fmt.Sprintf("%spolicies/%d/distributions/%s", Prefix, id, out.ID), http.StatusSeeOther)
	return nil
}

// distribution shows a distribution's progress; its progress block is
// polled every second (the fragment route) until it reaches 100 %.
func (c *Console) distribution(w http.ResponseWriter, r *http.Request, p Principal) error {
	id, err := policyID(r)
	if err != nil {
		return err
	}
	did, err := uuid.Parse(r.PathValue("did"))
	if err != nil {
		return apperr.New(apperr.NotFound, "", "no such distribution")
	}
	var d distributionRow
	if err := c.callAPI(r, p, http.MethodGet, fmt.Sprintf("%s/distributions/%s", policyPath(id), did), nil, nil, &d); err != nil {
		return err
	}
	v := c.newView(w, r, &p, "policy.distribution")
	v.Data = d
	if strings.HasSuffix(r.URL.Path, "/progress") {
		c.renderFragment(w, "distribution", "progress", v)
		return nil
	}
	c.render(w, r, http.StatusOK, "distribution", v, nil)
	return nil
}
