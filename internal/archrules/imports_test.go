package archrules

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/staffcontrol/staffcontrol"

// external maps a "May import" token of docs/architecture.md to the module
// path prefixes it allows. A token not here and not an internal package's
// last path element is an error in the document.
var external = map[string][]string{
	"pgx":                     {"github.com/jackc/pgx/v5"},
	"goose":                   {"github.com/pressly/goose/v3"},
	"x/crypto":                {"golang.org/x/crypto"},
	"prometheus":              {"github.com/prometheus/client_golang"},
	"expfmt":                  {"github.com/prometheus/common/expfmt", "github.com/prometheus/common/model", "github.com/prometheus/client_model/go"},
	"websocket":               {"github.com/gorilla/websocket"},
	"uuid":                    {"github.com/google/uuid"},
	"grpc":                    {"google.golang.org/grpc", "google.golang.org/genproto/googleapis/rpc"},
	"protobuf":                {"google.golang.org/protobuf"},
	"yaml":                    {"go.yaml.in/yaml/v3"},
	"sqlite":                  {"modernc.org/sqlite"},
	"minio-go":                {"github.com/minio/minio-go/v7"},
	"go-fuse":                 {"github.com/hanwen/go-fuse/v2"},
	"go-json-experiment/json": {"github.com/go-json-experiment/json"},
	"jsonschema":              {"github.com/santhosh-tekuri/jsonschema/v6"},
	"golang-jwt":              {"github.com/golang-jwt/jwt/v5"},
	"otel":                    {"go.opentelemetry.io/otel"},
	"otlp-proto":              {"go.opentelemetry.io/proto/otlp"},
}

// rule is one row of a package table: the package and what it may import.
type rule struct {
	pkg     string   // e.g. internal/cloud/postgres
	allowed []string // tokens of the "May import" column
}

var rowRE = regexp.MustCompile("^\\| `(internal/[a-z0-9/]+)` \\|.*\\| ([^|]+) \\|$")

// readRules parses the package tables of docs/architecture.md.
func readRules(t *testing.T) map[string]rule {
	t.Helper()
	f, err := os.Open("../../docs/architecture.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rules := map[string]rule{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		m := rowRE.FindStringSubmatch(strings.TrimSpace(sc.Text()))
		if m == nil {
			continue
		}
		var toks []string
		for _, tok := range strings.Split(m[2], ",") {
			if tok = strings.TrimSpace(tok); tok != "" {
				toks = append(toks, tok)
			}
		}
		rules[m[1]] = rule{pkg: m[1], allowed: toks}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return rules
}

// listed is one package as `go list` sees it (non-test imports only).
type listed struct {
	ImportPath string
	Imports    []string
}

func listPackages(t *testing.T) []listed {
	t.Helper()
	cmd := exec.Command("go", "list", "-json=ImportPath,Imports", "./...")
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []listed
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p listed
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// side tells where an internal package runs.
func side(p string) string {
	switch {
	case strings.HasPrefix(p, "internal/edge/"):
		return "edge"
	case strings.HasPrefix(p, "internal/cloud/"):
		return "cloud"
	}
	return ""
}

// TestImportsFollowArchitectureMD: every package's imports are among what its
// row in docs/architecture.md allows; edge and cloud never import each other;
// the shared leaf packages and the simulators import neither; nothing imports a cmd; every
// internal package has a row.
func TestImportsFollowArchitectureMD(t *testing.T) {
	rules := readRules(t)
	if len(rules) < 20 {
		t.Fatalf("found %d package rows in docs/architecture.md; the table format changed?", len(rules))
	}
	// Short names of internal packages: the last path element (control
	// names one package on each side: the token means the one on the row's
	// own side).
	short := map[string][]string{}
	pkgs := listPackages(t)
	for _, p := range pkgs {
		rel := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		short[path.Base(rel)] = append(short[path.Base(rel)], rel)
	}
	all := map[string]bool{}
	for _, p := range pkgs {
		all[strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")] = true
	}
	resolve := func(from, tok string) string {
		// A token with a slash names a package by its path under internal/
		// (edge/gateway, cloud/control): how a package of neither side
		// (internal/bench/...) names packages of both.
		if strings.Contains(tok, "/") {
			if all["internal/"+tok] {
				return "internal/" + tok
			}
			return ""
		}
		c := short[tok]
		for _, p := range c {
			if side(p) == side(from) {
				return p
			}
		}
		for _, p := range c {
			if side(p) == "" {
				return p
			}
		}
		return ""
	}
	for _, p := range pkgs {
		rel := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		if !strings.HasPrefix(rel, "internal/") {
			for _, imp := range p.Imports {
				if strings.HasPrefix(imp, module+"/cmd") {
					t.Errorf("%s imports %s: nothing imports a cmd", rel, imp)
				}
			}
			continue
		}
		if rel == "internal/e2e" || rel == "internal/archrules" {
			continue // test-only packages, see architecture.md
		}
		r, ok := rules[rel]
		if !ok {
			t.Errorf("%s has no row in docs/architecture.md's package tables", rel)
			continue
		}
		allowInternal := map[string]bool{}
		var allowExternal []string
		everyEdge := false
		for _, tok := range r.allowed {
			switch {
			case tok == "stdlib":
			case tok == "every edge package":
				everyEdge = true
			case external[tok] != nil:
				allowExternal = append(allowExternal, external[tok]...)
			case resolve(rel, tok) != "":
				allowInternal[resolve(rel, tok)] = true
			default:
				t.Errorf("docs/architecture.md, row %s: unknown token %q in \"May import\" (add it to archrules.external or fix the row)", rel, tok)
			}
		}
		for _, imp := range p.Imports {
			if !strings.Contains(strings.Split(imp, "/")[0], ".") {
				continue // standard library
			}
			if strings.HasPrefix(imp, module+"/") {
				dep := strings.TrimPrefix(imp, module+"/")
				if s, d := side(rel), side(dep); s != "" && d != "" && s != d {
					t.Errorf("%s imports %s: edge and cloud never import each other", rel, dep)
				}
				if slices.Contains([]string{"internal/slowbody", "internal/logtest", "internal/logscrub", "internal/logging", "internal/logging/planted", "internal/tracing", "internal/tracing/otlpreceiver", "internal/throttle", "internal/backoff", "internal/protocol", "internal/apperr", "internal/jsondecode"}, rel) && side(dep) != "" {
					t.Errorf("%s imports %s: a shared leaf package imports neither side", rel, dep)
				}
				if strings.HasPrefix(rel, "internal/sim/") && side(dep) != "" {
					t.Errorf("%s imports %s: a simulator or fake imports neither side", rel, dep)
				}
				if !allowInternal[dep] && !(everyEdge && side(dep) == "edge") {
					t.Errorf("%s imports %s, which its row in docs/architecture.md does not allow (May import: %s)", rel, dep, strings.Join(r.allowed, ", "))
				}
				continue
			}
			if !slices.ContainsFunc(allowExternal, func(prefix string) bool { return imp == prefix || strings.HasPrefix(imp, prefix+"/") }) {
				t.Errorf("%s imports %s, which its row in docs/architecture.md does not allow (May import: %s)", rel, imp, strings.Join(r.allowed, ", "))
			}
		}
	}
}
