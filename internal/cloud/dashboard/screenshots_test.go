package dashboard_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/staffcontrol/staffcontrol/internal/cloud/accesstoken"
	"github.com/staffcontrol/staffcontrol/internal/cloud/storage"
	"github.com/staffcontrol/staffcontrol/internal/cloud/storage/storagetest"
)

// shotItem is a screenshot of a page of GET /api/v2/screenshots.
type shotItem struct {
	ID             string
	OrganizationID int64     `json:"organization_id"`
	Datetime       time.Time `json:"datetime"`
	EmployeeID     *int64    `json:"employee_id"`
	UserSID        string    `json:"user_sid"`
	FileSize       *int64    `json:"file_size"`
}

// shotPage is a page of GET /api/v2/screenshots.
type shotPage struct {
	Items      []shotItem
	NextCursor string `json:"next_cursor"`
}

// shotFixture is the organisations' screenshots: acme's seeded one (Ann,
// the seeded employee of the lead's department), one of an employee in a
// child department, one of an employee in a sibling department and one
// whose SID no employee holds; globex's seeded one.
type shotFixture struct {
	seeded, child, sibling, unknown, globex string
	childEmp, siblingEmp                    int64
	image                                   []byte
}

func newShotFixture(t *testing.T, e *apiEnv) shotFixture {
	t.Helper()
	a := e.orgA
	var f shotFixture
	var child, sibling int64
	e.scan(&child, `INSERT INTO departments (organization_id, parent_id, name) VALUES ($1, $2, 'Backend') RETURNING id`, a.OrganizationID, a.DepartmentID)
	e.scan(&sibling, `INSERT INTO departments (organization_id, name) VALUES ($1, 'Sales') RETURNING id`, a.OrganizationID)
	e.scan(&f.childEmp, `INSERT INTO employees (organization_id, department_id, employee_number, first_name, last_name) VALUES ($1, $2, 'E-2', 'Bo', 'Child') RETURNING id`, a.OrganizationID, child)
	e.scan(&f.siblingEmp, `INSERT INTO employees (organization_id, department_id, employee_number, first_name, last_name) VALUES ($1, $2, 'E-3', 'Cy', 'Sibling') RETURNING id`, a.OrganizationID, sibling)
	e.exec(`INSERT INTO employee_identities (organization_id, employee_id, kind, value) VALUES ($1, $2, 'windows_sid', 'S-1-5-21-2'), ($1, $3, 'windows_sid', 'S-1-5-21-3')`,
		a.OrganizationID, f.childEmp, f.siblingEmp)
	e.scan(&f.seeded, `SELECT id::text FROM monitoring.screenshots WHERE organization_id = $1`, a.OrganizationID)
	e.scan(&f.globex, `SELECT id::text FROM monitoring.screenshots WHERE organization_id = $1`, e.orgB.OrganizationID)
	f.image = bytes.Repeat([]byte("\x89PNG\r\n\x1a\n-child-"), 500)
	now := time.Now().UTC()
	for i, s := range []struct {
		dst *string
		sid string
	}{{&f.child, "S-1-5-21-2"}, {&f.sibling, "S-1-5-21-3"}, {&f.unknown, "S-1-5-21-9"}} {
		id := uuid.Must(uuid.NewV7()).String()
		key := fmt.Sprintf("screenshots/%d/%s.png", a.OrganizationID, id)
		e.exec(`INSERT INTO monitoring.screenshots (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, file_path, file_size, sha256, datetime)
			VALUES ($1, $2, $3, $4, 'agent-1', 'PC-1', $5, $6, $7, repeat('a', 64), $8)`,
			id, a.OrganizationID, a.GatewayID, 10+i, s.sid, key, len(f.image), now.Add(-time.Duration(i+1)*time.Minute))
		if err := e.files.Create(context.Background(), key, bytes.NewReader(f.image)); err != nil {
			t.Fatal(err)
		}
		*s.dst = id
	}
	return f
}

// shotIDs lists every screenshot tok sees (following the cursor), sorted.
func (e *apiEnv) shotIDs(tok, query string) []string {
	e.t.Helper()
	var out []string
	cursor := ""
	for range 20 {
		q := query
		if cursor != "" {
			q += "&cursor=" + url.QueryEscape(cursor)
		}
		ans := e.call("GET", "/api/v2/screenshots?"+q, tok, nil)
		if ans.Status != http.StatusOK {
			e.t.Fatalf("GET /api/v2/screenshots?%s: %d %s", q, ans.Status, ans.Body)
		}
		var p shotPage
		ans.JSON(e.t, &p)
		for _, it := range p.Items {
			out = append(out, it.ID)
		}
		if cursor = p.NextCursor; cursor == "" {
			break
		}
	}
	slices.Sort(out)
	return out
}

func sortedStrings(v ...string) []string { slices.Sort(v); return v }

// TestScreenshotScopes: HR sees all of its organisation's screenshots and
// none of the other's, a department lead their subtree's, an employee
// their own; another organisation's id (or one out of scope) is 404; the
// employee filter goes through the employee's windows_sid identities.
func TestScreenshotScopes(t *testing.T) {
	e := newAPIEnv(t)
	f := newShotFixture(t, e)
	a := e.orgA
	hr := e.token(accesstoken.Claims{UserID: a.UserID, OrganizationID: a.OrganizationID, Role: "HR"})
	lead := e.token(accesstoken.Claims{UserID: a.UserID, OrganizationID: a.OrganizationID, Role: "DEPARTMENT_LEAD", DepartmentID: a.DepartmentID})
	emp := e.token(accesstoken.Claims{UserID: a.UserID, OrganizationID: a.OrganizationID, Role: "EMPLOYEE", EmployeeID: a.EmployeeID})
	globexHR := e.token(accesstoken.Claims{UserID: e.orgB.UserID, OrganizationID: e.orgB.OrganizationID, Role: "HR"})
	for _, tc := range []struct {
		who, tok, query string
		want            []string
	}{
		{"HR", hr, "", sortedStrings(f.seeded, f.child, f.sibling, f.unknown)},
		{"HR, pages of 1", hr, "limit=1", sortedStrings(f.seeded, f.child, f.sibling, f.unknown)},
		{"globex HR", globexHR, "", []string{f.globex}},
		{"lead", lead, "limit=1", sortedStrings(f.seeded, f.child)},
		{"employee", emp, "", []string{f.seeded}},
		{"HR, one employee", hr, fmt.Sprintf("employee_id=%d", f.childEmp), []string{f.child}},
		{"HR, globex's employee", hr, fmt.Sprintf("employee_id=%d", e.orgB.EmployeeID), nil},
		{"lead, a sibling department's employee", lead, fmt.Sprintf("employee_id=%d", f.siblingEmp), nil},
		{"employee, a colleague", emp, fmt.Sprintf("employee_id=%d", f.childEmp), nil},
		{"HR, a time range", hr, "from=" + url.QueryEscape(time.Now().Add(-150*time.Second).UTC().Format(time.RFC3339)) +
			"&to=" + url.QueryEscape(time.Now().Add(-90*time.Second).UTC().Format(time.RFC3339)), []string{f.sibling}},
	} {
		if got := e.shotIDs(tc.tok, tc.query); !slices.Equal(got, tc.want) {
			t.Errorf("%s (%s) sees %v, want %v", tc.who, tc.query, got, tc.want)
		}
	}

	// Newest first, with the employees resolved (null for an unknown SID).
	ans := e.call("GET", "/api/v2/screenshots", hr, nil)
	var p shotPage
	ans.JSON(t, &p)
	if len(p.Items) != 4 || !slices.IsSortedFunc(p.Items, func(x, y shotItem) int { return y.Datetime.Compare(x.Datetime) }) {
		t.Fatalf("HR's page is not 4 screenshots newest first: %s", ans.Body)
	}
	wantEmp := map[string]int64{f.seeded: a.EmployeeID, f.child: f.childEmp, f.sibling: f.siblingEmp, f.unknown: 0}
	for _, it := range p.Items {
		got := int64(0)
		if it.EmployeeID != nil {
			got = *it.EmployeeID
		}
		if got != wantEmp[it.ID] {
			t.Errorf("screenshot %s (%s): employee_id %d, want %d", it.ID, it.UserSID, got, wantEmp[it.ID])
		}
	}

	// One screenshot: 404 for another organisation's id and out of scope.
	for _, tc := range []struct {
		who, tok, id string
		want         int
	}{
		{"HR", hr, f.child, http.StatusOK},
		{"HR, globex's id", hr, f.globex, http.StatusNotFound},
		{"globex HR, acme's id", globexHR, f.child, http.StatusNotFound},
		{"lead", lead, f.child, http.StatusOK},
		{"lead, a sibling department's", lead, f.sibling, http.StatusNotFound},
		{"employee, a colleague's", emp, f.child, http.StatusNotFound},
		{"HR, no such id", hr, uuid.NewString(), http.StatusNotFound},
		{"HR, not an id", hr, "nope", http.StatusNotFound},
	} {
		for _, suffix := range []string{"", "/download"} {
			ans := e.get(tc.tok, "/api/v2/screenshots/"+tc.id+suffix)
			want := tc.want
			if want == http.StatusOK && suffix != "" {
				want = http.StatusFound
			}
			if ans.Status != want {
				t.Errorf("%s GET %s%s: %d, want %d: %s", tc.who, tc.id, suffix, ans.Status, want, ans.Body)
			}
		}
	}

	// Bad parameters name the parameter.
	for q, field := range map[string]string{"from=yesterday": "from", "to=2026-13-01T00:00:00Z": "to", "employee_id=x": "employee_id",
		"from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z": "to", "cursor=!!": "cursor", "limit=0": "limit"} {
		ans := e.call("GET", "/api/v2/screenshots?"+q, hr, nil)
		if code, got := ans.errorCode(t); ans.Status != http.StatusUnprocessableEntity || got != field {
			t.Errorf("?%s: %d %s field %q, want 422 naming %s", q, ans.Status, code, got, field)
		}
	}
}

// get sends an authenticated GET without following a redirect, and
// checks the answer against the OpenAPI document.
func (e *apiEnv) get(tok, path string) answer {
	e.t.Helper()
	newReq := func() *http.Request {
		req, err := http.NewRequest("GET", e.srv.URL+path, nil)
		if err != nil {
			e.t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		return req
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(newReq())
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	a := answer{Status: resp.StatusCode, Header: resp.Header, Body: body}
	checkAgainstSpec(e.t, newReq(), a)
	return a
}

// fetch GETs a download URL without credentials.
func fetch(t *testing.T, u string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// TestScreenshotDownloads: the URL the API hands out (and the one its
// download route redirects to) downloads the exact bytes through the
// API's own handler of the local store, without an access token; a
// tampered URL and an expired one are refused with 403.
func TestScreenshotDownloads(t *testing.T) {
	e := newAPIEnv(t)
	f := newShotFixture(t, e)
	a := e.orgA
	lead := e.token(accesstoken.Claims{UserID: a.UserID, OrganizationID: a.OrganizationID, Role: "DEPARTMENT_LEAD", DepartmentID: a.DepartmentID})

	ans := e.call("GET", "/api/v2/screenshots/"+f.child, lead, nil)
	if ans.Status != http.StatusOK {
		t.Fatalf("GET: %d %s", ans.Status, ans.Body)
	}
	var got struct {
		ID           string    `json:"id"`
		EmployeeID   *int64    `json:"employee_id"`
		FileSize     int64     `json:"file_size"`
		URL          string    `json:"url"`
		URLExpiresAt time.Time `json:"url_expires_at"`
	}
	ans.JSON(t, &got)
	if got.ID != f.child || got.EmployeeID == nil || *got.EmployeeID != f.childEmp || got.FileSize != int64(len(f.image)) {
		t.Errorf("metadata: %s", ans.Body)
	}
	if d := time.Until(got.URLExpiresAt); d < 14*time.Minute || d > 15*time.Minute+time.Second {
		t.Errorf("url_expires_at %v is %v away, want the default 15 min", got.URLExpiresAt, d)
	}
	if !strings.HasPrefix(got.URL, e.srv.URL+"/files?") {
		t.Fatalf("url %q is not the API's own /files", got.URL)
	}
	if code, body := fetch(t, got.URL); code != http.StatusOK || !bytes.Equal(body, f.image) {
		t.Fatalf("download: %d, %d bytes, want 200 and the %d stored", code, len(body), len(f.image))
	}

	redirect := e.get(lead, "/api/v2/screenshots/"+f.child+"/download")
	loc := redirect.Header.Get("Location")
	if redirect.Status != http.StatusFound || !strings.HasPrefix(loc, e.srv.URL+"/files?") {
		t.Fatalf("download route: %d Location %q", redirect.Status, loc)
	}
	if code, body := fetch(t, loc); code != http.StatusOK || !bytes.Equal(body, f.image) {
		t.Fatalf("redirected download: %d, %d bytes", code, len(body))
	}

	// Tampered: the signature, the key (another organisation's file, the
	// sibling's file) or the expiry changed.
	u, err := url.Parse(got.URL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	var siblingKey string
	e.scan(&siblingKey, `SELECT file_path FROM monitoring.screenshots WHERE id = $1`, f.sibling)
	for name, edit := range map[string]func(url.Values){
		"signature": func(v url.Values) {
			s := []byte(v.Get("signature"))
			s[0] ^= 1
			v.Set("signature", string(s))
		},
		"key":          func(v url.Values) { v.Set("key", siblingKey) },
		"expires":      func(v url.Values) { v.Set("expires", fmt.Sprint(time.Now().Add(time.Hour).Unix())) },
		"no signature": func(v url.Values) { v.Del("signature") },
	} {
		v := url.Values{}
		for k, vs := range q {
			v[k] = slices.Clone(vs)
		}
		edit(v)
		t2 := *u
		t2.RawQuery = v.Encode()
		if code, body := fetch(t, t2.String()); code != http.StatusForbidden || bytes.Contains(body, f.image[:16]) {
			t.Errorf("tampered %s: %d, want 403", name, code)
		}
	}

	// Expired: the store's clock moves past the URL's expiry.
	e.skew.Store(int64(16 * time.Minute))
	if code, _ := fetch(t, got.URL); code != http.StatusForbidden {
		t.Errorf("expired URL: %d, want 403", code)
	}
	if code, _ := fetch(t, loc); code != http.StatusForbidden {
		t.Errorf("expired redirected URL: %d, want 403", code)
	}
	// A fresh one works again.
	again := e.get(lead, "/api/v2/screenshots/"+f.child+"/download")
	if code, body := fetch(t, again.Header.Get("Location")); code != http.StatusOK || !bytes.Equal(body, f.image) {
		t.Errorf("a fresh URL after the expiry: %d", code)
	}
}

// TestScreenshotsOverASeparateStore: with a separate time-series store
// (TIMESCALE_URL), screenshots are read from its view and from the main
// database's (the fallback rows), each in the caller's tenant context; an
// id in both (mid re-sync) is listed once, pages run across both, and the
// other organisation's rows stay out of both.
func TestScreenshotsOverASeparateStore(t *testing.T) {
	ts := pg.NewDatabase(t)
	e := newAPIEnv(t, withTimeseries(ts))
	a, b := e.orgA, e.orgB
	tsAdmin := pg.Pool(t, ts.AdminURL, 2)
	now := time.Now().UTC().Truncate(time.Microsecond)
	insert := func(exec func(string, ...any), table string, org int64, sid string, at time.Time, id string) string {
		t.Helper()
		if id == "" {
			id = uuid.Must(uuid.NewV7()).String()
		}
		key := fmt.Sprintf("screenshots/%d/%s.png", org, id)
		exec(`INSERT INTO `+table+` (id, organization_id, gateway_id, seq, agent_uid, computer_uid, user_sid, file_path, file_size, datetime)
			VALUES ($1, $2, $3, 1, 'agent-1', 'PC-1', $4, $5, 3, $6)`, id, org, a.GatewayID, sid, key, at)
		if org == a.OrganizationID {
			_ = e.files.Put(context.Background(), key, strings.NewReader(id[:3]))
		}
		return id
	}
	inTS := func(sql string, args ...any) {
		t.Helper()
		if _, err := tsAdmin.Exec(context.Background(), sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	// The seeded rows of the main database's monitoring.screenshots stand
	// for nothing here: clear them.
	e.exec(`DELETE FROM monitoring.screenshots`)
	stored := insert(inTS, "monitoring.screenshots", a.OrganizationID, "S-1-5-21-1", now.Add(-1*time.Minute), "")
	fallback := insert(e.exec, "monitoring_fallback.screenshots", a.OrganizationID, "S-1-5-21-1", now.Add(-2*time.Minute), "")
	both := insert(inTS, "monitoring.screenshots", a.OrganizationID, "S-1-5-21-1", now.Add(-3*time.Minute), "")
	insert(e.exec, "monitoring_fallback.screenshots", a.OrganizationID, "S-1-5-21-1", now.Add(-3*time.Minute), both)
	insert(inTS, "monitoring.screenshots", b.OrganizationID, "S-1-5-21-1", now.Add(-1*time.Minute), "")
	insert(e.exec, "monitoring_fallback.screenshots", b.OrganizationID, "S-1-5-21-1", now.Add(-2*time.Minute), "")

	hr := e.token(accesstoken.Claims{UserID: a.UserID, OrganizationID: a.OrganizationID, Role: "HR"})
	emp := e.token(accesstoken.Claims{UserID: a.UserID, OrganizationID: a.OrganizationID, Role: "EMPLOYEE", EmployeeID: a.EmployeeID})
	want := sortedStrings(stored, fallback, both)
	for _, q := range []string{"", "limit=1", "limit=2", fmt.Sprintf("employee_id=%d", a.EmployeeID)} {
		if got := e.shotIDs(hr, q); !slices.Equal(got, want) {
			t.Errorf("HR ?%s sees %v, want %v", q, got, want)
		}
	}
	// A narrowed role (lead, employee) sees no row of the separate store
	// yet: its view narrows through the store's own directory tables,
	// which hold nobody (a known gap of TIMESCALE_URL, not of this route);
	// it still sees its fallback rows in the main database.
	if got := e.shotIDs(emp, "limit=1"); !slices.Equal(got, sortedStrings(fallback, both)) {
		t.Errorf("the employee sees %v, want the main database's %v", got, sortedStrings(fallback, both))
	}
	for _, id := range []string{stored, fallback, both} {
		ans := e.call("GET", "/api/v2/screenshots/"+id, hr, nil)
		var got struct {
			URL        string `json:"url"`
			EmployeeID *int64 `json:"employee_id"`
		}
		ans.JSON(t, &got)
		if ans.Status != http.StatusOK || got.EmployeeID == nil || *got.EmployeeID != a.EmployeeID {
			t.Fatalf("GET %s: %d %s", id, ans.Status, ans.Body)
		}
		if code, body := fetch(t, got.URL); code != http.StatusOK || string(body) != id[:3] {
			t.Errorf("download %s: %d %q", id, code, body)
		}
	}
	var globexIDs []string
	if rows, err := tsAdmin.Query(context.Background(), `SELECT id::text FROM monitoring.screenshots WHERE organization_id = $1`, b.OrganizationID); err != nil {
		t.Fatal(err)
	} else {
		for rows.Next() {
			var id string
			_ = rows.Scan(&id)
			globexIDs = append(globexIDs, id)
		}
		rows.Close()
	}
	for _, id := range globexIDs {
		if ans := e.call("GET", "/api/v2/screenshots/"+id, hr, nil); ans.Status != http.StatusNotFound {
			t.Errorf("HR GET globex's %s: %d", id, ans.Status)
		}
	}
}

// TestScreenshotDownloadsFromS3: with the S3 driver (against SeaweedFS;
// skipped without weed like the storage package's S3 tests) the URL the
// API hands out is a presigned GET that downloads the exact bytes from
// the store, and a tampered one is refused.
func TestScreenshotDownloadsFromS3(t *testing.T) {
	var weed storagetest.Weed
	defer weed.Stop()
	store, err := storage.NewS3(context.Background(), weed.Config(t))
	if err != nil {
		t.Fatal(err)
	}
	e := newAPIEnv(t, withFiles(store))
	a := e.orgA
	var id, key string
	e.scan(&id, `SELECT id::text FROM monitoring.screenshots WHERE organization_id = $1`, a.OrganizationID)
	e.scan(&key, `SELECT file_path FROM monitoring.screenshots WHERE id = $1`, id)
	image := bytes.Repeat([]byte("\x89PNG-s3-"), 1000)
	if err := store.Create(context.Background(), key, bytes.NewReader(image)); err != nil {
		t.Fatal(err)
	}
	emp := e.token(accesstoken.Claims{UserID: a.UserID, OrganizationID: a.OrganizationID, Role: "EMPLOYEE", EmployeeID: a.EmployeeID})
	redirect := e.get(emp, "/api/v2/screenshots/"+id+"/download")
	loc := redirect.Header.Get("Location")
	if redirect.Status != http.StatusFound || !strings.Contains(loc, "X-Amz-Signature=") {
		t.Fatalf("download route: %d Location %q", redirect.Status, loc)
	}
	if code, body := fetch(t, loc); code != http.StatusOK || !bytes.Equal(body, image) {
		t.Fatalf("presigned download: %d, %d bytes, want 200 and the %d stored", code, len(body), len(image))
	}
	u, err := url.Parse(loc)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	sig := []byte(q.Get("X-Amz-Signature"))
	sig[0] = map[bool]byte{true: '1', false: '0'}[sig[0] == '0']
	q.Set("X-Amz-Signature", string(sig))
	u.RawQuery = q.Encode()
	if code, _ := fetch(t, u.String()); code != http.StatusForbidden {
		t.Errorf("tampered presigned URL: %d, want 403", code)
	}
}
