package dashboard_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/staffcontrol/staffcontrol/internal/cloud/accesstoken"
	"github.com/staffcontrol/staffcontrol/internal/cloud/dashboard"
)

// TestOpenAPIMatchesRoutes: every route of the routes table is in the
// OpenAPI document with the same authentication, and every documented
// operation is a route. The document itself is valid OpenAPI 3.1.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	spec(t) // a valid document
	raw, err := dashboard.OpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.1") {
		t.Fatalf("openapi %q, want 3.1.x", doc.OpenAPI)
	}
	documented := map[string]bool{} // "GET /path" → public
	for path, ops := range doc.Paths {
		for method, op := range ops {
			if method == "parameters" || method == "summary" || method == "description" {
				continue
			}
			var o struct {
				Security *[]map[string][]string `json:"security"`
			}
			if err := json.Unmarshal(op, &o); err != nil {
				t.Fatal(err)
			}
			documented[strings.ToUpper(method)+" "+path] = o.Security != nil && len(*o.Security) == 0
		}
	}
	key, _ := accesstoken.GenerateKey("k")
	tokens, _ := accesstoken.New(accesstoken.Config{Issuer: "t", Audience: "t", Keys: []accesstoken.Key{key}})
	api, err := dashboard.NewAPI(dashboard.Deps{Tokens: tokens})
	if err != nil {
		t.Fatal(err)
	}
	served := map[string]bool{}
	for _, r := range api.Routes() {
		k := r.Method + " " + r.Path
		if served[k] {
			t.Errorf("%s is in the routes table twice", k)
		}
		served[k] = true
		public, ok := documented[k]
		switch {
		case !ok:
			t.Errorf("%s is served but not documented in internal/cloud/dashboard/openapi/", k)
		case public != r.Public:
			t.Errorf("%s: served public=%v, documented public (security: []) =%v", k, r.Public, public)
		}
	}
	var missing []string
	for k := range documented {
		if !served[k] {
			missing = append(missing, k)
		}
	}
	sort.Strings(missing)
	for _, k := range missing {
		t.Errorf("%s is documented but not served", k)
	}
	if len(served) < 2 {
		t.Fatalf("only %d routes", len(served))
	}
}

// TestOpenAPIServed: GET /api/openapi.json is the document, without a
// token; an unknown route and a missing token answer in the one error
// shape with the request's id.
func TestOpenAPIServed(t *testing.T) {
	e := newAPIEnv(t)
	a := e.call("GET", "/api/openapi.json", "", nil)
	want, _ := dashboard.OpenAPI()
	if a.Status != http.StatusOK || !bytes.Equal(a.Body, want) {
		t.Fatalf("GET /api/openapi.json: %d, %d bytes (want %d)", a.Status, len(a.Body), len(want))
	}
	for _, r := range e.api.Routes() {
		if r.Public || r.Method != "GET" || strings.Contains(r.Path, "{") {
			continue
		}
		a := e.call("GET", r.Path, "", nil)
		if a.Status != http.StatusUnauthorized {
			t.Errorf("GET %s without a token: %d", r.Path, a.Status)
			continue
		}
		var body map[string]any
		a.JSON(t, &body)
		if body["code"] != "unauthorized" || body["request_id"] != a.Header.Get("X-Request-ID") || body["message"] == "" {
			t.Errorf("GET %s without a token: %s", r.Path, a.Body)
		}
		keys := make([]string, 0, len(body))
		for k := range body {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		if !slices.Equal(keys, []string{"code", "message", "request_id"}) {
			t.Errorf("error members %v", keys)
		}
		if a.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("GET %s: 401 without WWW-Authenticate", r.Path)
		}
	}
}
