package dashboard_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi/datamodel"

	"github.com/staffcontrol/staffcontrol/internal/cloud/accesstoken"
	"github.com/staffcontrol/staffcontrol/internal/cloud/auth"
	"github.com/staffcontrol/staffcontrol/internal/cloud/dashboard"
	"github.com/staffcontrol/staffcontrol/internal/cloud/pgtest"
	"github.com/staffcontrol/staffcontrol/internal/cloud/signin"
	"github.com/staffcontrol/staffcontrol/internal/cloud/storage"
	"github.com/staffcontrol/staffcontrol/internal/logtest"
)

// The harness every API test uses: a migrated database with two
// identically seeded organisations, the API on a real loopback HTTP
// server, tokens for every role, and a client that validates every answer
// (and every request the API accepted) against the OpenAPI document.

// apiEnv is one test's running API.
type apiEnv struct {
	t      testing.TB
	db     *pgtest.Database
	admin  *pgxpool.Pool // the test server's administrator: fixtures and checks only
	srv    *httptest.Server
	api    *dashboard.API
	tokens *accesstoken.Issuer
	key    accesstoken.Key
	orgA   pgtest.Seeded
	orgB   pgtest.Seeded
	// files is the API's local file store, its signed URLs served by the
	// API at /files; its clock runs skew ahead of the real one.
	files *storage.Local
	skew  atomic.Int64
}

var (
	specOnce sync.Once
	specVal  validator.Validator
	specErr  error
)

// spec is the validator of the served OpenAPI document, built once.
func spec(t testing.TB) validator.Validator {
	t.Helper()
	specOnce.Do(func() {
		var raw []byte
		if raw, specErr = dashboard.OpenAPI(); specErr != nil {
			return
		}
		var doc libopenapi.Document
		// A department tree's children are departments: recursion through
		// an array, which ends at an empty one.
		cfg := &datamodel.DocumentConfiguration{IgnoreArrayCircularReferences: true}
		if doc, specErr = libopenapi.NewDocumentWithConfiguration(raw, cfg); specErr != nil {
			return
		}
		v, errs := validator.NewValidator(doc)
		if len(errs) > 0 {
			specErr = fmt.Errorf("openapi validator: %v", errs)
			return
		}
		if ok, verrs := v.ValidateDocument(); !ok {
			specErr = fmt.Errorf("the OpenAPI document is not valid: %v", verrs)
			return
		}
		specVal = v
	})
	if specErr != nil {
		t.Fatal(specErr)
	}
	return specVal
}

// envOption adjusts a test's API.
type envOption func(*envConfig)

type envConfig struct {
	signIn *signin.Config
	// ts, when set, is a separate time-series store (another migrated
	// database) the API reads beside the main one.
	ts *pgtest.Database
	// files, when set, replaces the local store the API hands out URLs
	// of (and serves at /files).
	files storage.Signer
}

// withFiles makes the API hand out download URLs of files instead of the
// harness's local store.
func withFiles(files storage.Signer) envOption {
	return func(c *envConfig) { c.files = files }
}

// withTimeseries gives the API a separate time-series store: ts, read as
// the dashboard and platform-admin roles.
func withTimeseries(ts *pgtest.Database) envOption {
	return func(c *envConfig) { c.ts = ts }
}

// withSignIn gives the API its sign-in service with cfg: tokens then need
// a live session (sign in through the API; e.token's sessions do not
// exist).
func withSignIn(cfg signin.Config) envOption {
	return func(c *envConfig) { c.signIn = &cfg }
}

// newAPIEnv starts the API over a fresh database seeded with two
// organisations ("acme" and "globex").
func newAPIEnv(t testing.TB, opts ...envOption) *apiEnv {
	t.Helper()
	ctx := context.Background()
	db := pg.NewDatabase(t)
	e := &apiEnv{t: t, db: db, admin: pg.Pool(t, db.AdminURL, 2)}
	conn, err := pgx.Connect(ctx, db.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if e.orgA, err = pgtest.SeedOrganization(ctx, conn, "acme"); err != nil {
		t.Fatal(err)
	}
	if e.orgB, err = pgtest.SeedOrganization(ctx, conn, "globex"); err != nil {
		t.Fatal(err)
	}
	key, err := accesstoken.GenerateKey("test")
	if err != nil {
		t.Fatal(err)
	}
	e.key = key
	if e.tokens, err = accesstoken.New(accesstoken.Config{Issuer: "test", Audience: "test", Keys: []accesstoken.Key{key}}); err != nil {
		t.Fatal(err)
	}
	var cfg envConfig
	for _, o := range opts {
		o(&cfg)
	}
	deps := dashboard.Deps{
		DB:      pg.Pool(t, db.DashboardURL, 4),
		AdminDB: pg.Pool(t, db.PlatformAdminURL, 2),
		Tokens:  e.tokens,
		Logger:  logtest.New(t),
	}
	if cfg.ts != nil {
		deps.TimeseriesDB, deps.AdminTimeseriesDB = pg.Pool(t, cfg.ts.DashboardURL, 2), pg.Pool(t, cfg.ts.PlatformAdminURL, 2)
	}
	if cfg.signIn != nil {
		if deps.SignIn, err = signin.New(*cfg.signIn, signin.Deps{DB: deps.DB, Tokens: e.tokens, Logger: deps.Logger}); err != nil {
			t.Fatal(err)
		}
		deps.SessionRecheck = 200 * time.Millisecond
	}
	// The file store's URLs point at the API's own listener.
	e.srv = httptest.NewUnstartedServer(nil)
	secret := make([]byte, storage.MinURLSecret)
	_, _ = rand.Read(secret)
	e.files, err = storage.NewLocalSigned(t.TempDir(), storage.LocalURLConfig{BaseURL: "http://" + e.srv.Listener.Addr().String() + "/files",
		Secret: secret, Now: func() time.Time { return time.Now().Add(time.Duration(e.skew.Load())) }})
	if err != nil {
		t.Fatal(err)
	}
	deps.Files, deps.FilesMount = e.files, "/files"
	if cfg.files != nil {
		deps.Files, deps.FilesMount = cfg.files, ""
	}
	e.api, err = dashboard.NewAPI(deps)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.api.Events().Start(ctx); err != nil {
		t.Fatal(err)
	}
	e.srv.Config.Handler = e.api
	e.srv.Start()
	t.Cleanup(func() {
		_ = e.api.Events().Stop(context.Background())
		e.srv.Close()
	})
	return e
}

// exec runs sql as the test server's administrator (fixtures only).
func (e *apiEnv) exec(sql string, args ...any) {
	e.t.Helper()
	ctx := context.Background()
	conn := e.admin
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
}

// token mints an access token for claims (a session id is filled in).
func (e *apiEnv) token(c accesstoken.Claims) string {
	e.t.Helper()
	if c.SessionID == "" {
		c.SessionID = "test-session"
	}
	tok, _, err := e.tokens.Issue(c)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// orgAdmin is a token for an ORG_ADMIN of s's organisation.
func (e *apiEnv) orgAdmin(s pgtest.Seeded) string {
	return e.token(accesstoken.Claims{UserID: s.UserID, OrganizationID: s.OrganizationID, Role: "ORG_ADMIN"})
}

// answer is a response read whole.
type answer struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into v.
func (a answer) JSON(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(a.Body, v); err != nil {
		t.Fatalf("decode %s: %v", a.Body, err)
	}
}

// errorCode returns the body's error code and field.
func (a answer) errorCode(t testing.TB) (code, field string) {
	t.Helper()
	var e struct{ Code, Field, Message, RequestID string }
	a.JSON(t, &e)
	return e.Code, e.Field
}

// call sends a request with token (empty: none) and body (nil: none; a
// string or []byte is sent as it is, anything else as JSON) and headers
// as name, value pairs. The answer is validated against the OpenAPI
// document, and so is the request when the API accepted it (2xx).
func (e *apiEnv) call(method, path, token string, body any, headers ...string) answer {
	e.t.Helper()
	var raw []byte
	switch b := body.(type) {
	case nil:
	case string:
		raw = []byte(b)
	case []byte:
		raw = b
	default:
		var err error
		if raw, err = json.Marshal(b); err != nil {
			e.t.Fatal(err)
		}
	}
	newReq := func() *http.Request {
		var rd io.Reader
		if raw != nil {
			rd = bytes.NewReader(raw)
		}
		req, err := http.NewRequest(method, e.srv.URL+path, rd)
		if err != nil {
			e.t.Fatal(err)
		}
		if raw != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		return req
	}
	resp, err := e.srv.Client().Do(newReq())
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	a := answer{Status: resp.StatusCode, Header: resp.Header, Body: out}
	checkAgainstSpec(e.t, newReq(), a)
	return a
}

// checkAgainstSpec validates a request (when it was accepted) and its
// answer against the OpenAPI document. The document's server is "/", so
// the request is re-addressed to a relative URL first.
func checkAgainstSpec(t testing.TB, req *http.Request, a answer) {
	t.Helper()
	v := spec(t)
	if a.Status < 300 {
		if ok, errs := v.ValidateHttpRequestSync(req); !ok {
			t.Errorf("%s %s: the request does not match the OpenAPI document: %s", req.Method, req.URL.Path, describe(errs))
		}
	}
	resp := &http.Response{StatusCode: a.Status, Header: a.Header, Body: io.NopCloser(bytes.NewReader(a.Body)), Request: req}
	if ok, errs := v.ValidateHttpResponse(req, resp); !ok {
		t.Errorf("%s %s → %d: the answer does not match the OpenAPI document: %s\n%s", req.Method, req.URL.Path, a.Status, describe(errs), a.Body)
	}
}

func describe[E interface{ Error() string }](errs []E) string {
	var b strings.Builder
	for _, e := range errs {
		b.WriteString("\n  ")
		b.WriteString(e.Error())
	}
	return b.String()
}

// assertDenials checks that n denied accesses were audited.
func (e *apiEnv) assertDenials(n int) {
	e.t.Helper()
	ctx := context.Background()
	conn := e.admin
	var got int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM audit_log WHERE outcome = 'denied'`).Scan(&got); err != nil {
		e.t.Fatal(err)
	}
	if got != n {
		e.t.Errorf("%d denied accesses audited, want %d", got, n)
	}
}

// addUser creates a dashboard user with password in org (0: a platform
// ADMIN) and returns its id.
func (e *apiEnv) addUser(org int64, email, role, password string, department, employee int64) int64 {
	e.t.Helper()
	hash, err := auth.HashPassword(password)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx := context.Background()
	conn := e.admin
	nullable := func(v int64) *int64 {
		if v == 0 {
			return nil
		}
		return &v
	}
	var id int64
	if err := conn.QueryRow(ctx, `INSERT INTO users (organization_id, email, password_hash, role, department_id, employee_id)
		VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`, nullable(org), email, hash, role, nullable(department), nullable(employee)).Scan(&id); err != nil {
		e.t.Fatal(err)
	}
	return id
}

// signedIn is the answer of a sign-in.
type signedIn struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
}

// login signs in through the API and returns the tokens (failing the test
// unless it answers 200).
func (e *apiEnv) login(email, password string) signedIn {
	e.t.Helper()
	a := e.call("POST", "/api/auth/login", "", map[string]string{"email": email, "password": password})
	if a.Status != http.StatusOK {
		e.t.Fatalf("login %s: %d %s", email, a.Status, a.Body)
	}
	var s signedIn
	a.JSON(e.t, &s)
	return s
}

// assertAudit checks that n audit rows of action exist.
func (e *apiEnv) assertAudit(action string, n int) {
	e.t.Helper()
	ctx := context.Background()
	conn := e.admin
	var got int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM audit_log WHERE action = $1`, action).Scan(&got); err != nil {
		e.t.Fatal(err)
	}
	if got != n {
		e.t.Errorf("%d audit rows %s, want %d", got, action, n)
	}
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

// signWithTestKey signs tok with the test's token key (for tokens the
// issuer would not make: expired, odd claims).
func signWithTestKey(t testing.TB, e *apiEnv, tok *jwt.Token) string {
	t.Helper()
	s, err := tok.SignedString(e.key.Private)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func stringsReader(s string) io.Reader { return strings.NewReader(s) }

// scan runs a one-row, one-column query as the test server's
// administrator into dst (fixtures and checks only).
func (e *apiEnv) scan(dst any, sql string, args ...any) {
	e.t.Helper()
	ctx := context.Background()
	conn := e.admin
	if err := conn.QueryRow(ctx, sql, args...).Scan(dst); err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
}
