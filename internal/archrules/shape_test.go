package archrules

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// source is one non-test, non-generated Go file of the module.
type source struct {
	rel  string // path from the module root, e.g. internal/edge/uplink/uplink.go
	dir  string // its package directory, e.g. internal/edge/uplink
	file *ast.File
}

// parseSources parses every non-test, hand-written .go file under cmd and
// internal.
func parseSources(t *testing.T) []source {
	t.Helper()
	var out []source
	fset := token.NewFileSet()
	for _, root := range []string{"cmd", "internal"} {
		err := filepath.WalkDir(filepath.Join("../..", root), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && d.Name() == "testdata" {
				return filepath.SkipDir
			}
			if d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
				return nil
			}
			f, err := parser.ParseFile(fset, p, nil, parser.ParseComments|parser.SkipObjectResolution)
			if err != nil {
				return err
			}
			if ast.IsGenerated(f) {
				return nil
			}
			rel, _ := filepath.Rel("../..", p)
			rel = filepath.ToSlash(rel)
			out = append(out, source{rel: rel, dir: pathDir(rel), file: f})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(out) < 100 {
		t.Fatalf("parsed only %d files; the layout changed?", len(out))
	}
	return out
}

func pathDir(rel string) string {
	if i := strings.LastIndex(rel, "/"); i >= 0 {
		return rel[:i]
	}
	return "."
}

// importName is the name a file uses for an import path ("" if it does not
// import it).
func importName(f *ast.File, path string) string {
	for _, imp := range f.Imports {
		if p, _ := strconv.Unquote(imp.Path.Value); p == path {
			if imp.Name != nil {
				return imp.Name.Name
			}
			return path[strings.LastIndex(path, "/")+1:]
		}
	}
	return ""
}

// selectorsOf reports every pkg.Name selector of a file where pkg is the
// file's name for importPath.
func selectorsOf(f *ast.File, importPath string, visit func(name string, pos token.Pos)) {
	pkg := importName(f, importPath)
	if pkg == "" {
		return
	}
	ast.Inspect(f, func(n ast.Node) bool {
		if sel, ok := n.(*ast.SelectorExpr); ok {
			if id, ok := sel.X.(*ast.Ident); ok && id.Name == pkg {
				visit(sel.Sel.Name, sel.Pos())
			}
		}
		return true
	})
}

// TestOneShapeRules checks the shapes docs/architecture.md promises (issue
// 13) so that a repetition it removed cannot come back unnoticed: one
// FieldError and one edge status error; ticker loops only through the
// lifecycle package (per-connection timers excepted, each with its reason);
// JSON decode errors turned into field paths only in jsondecode; command
// types spelt only in protocol; requests to the cloud built only in the
// edge's cloudclient; random jitter only in backoff (and the simulators'
// synthetic data); no HTTP in the cloud's storage packages, so a status is
// chosen by a server, never inside a transaction.
func TestOneShapeRules(t *testing.T) {
	srcs := parseSources(t)

	// Per-connection or per-agent timers: their interval is state of one
	// connection, not a service of the process.
	tickerAllowed := map[string]string{
		"internal/lifecycle":       "the one helper (Every, EveryOrWake)",
		"internal/edge/control":    "heartbeats inside one WebSocket session, at the interval that session's welcome set",
		"internal/cloud/control":   "pings on one gateway's socket, per connection",
		"internal/sim/agentsim":    "one simulated agent's policy and heartbeat timers",
		"internal/cloud/dashboard": "the session check of one live-event stream, per connection",
	}
	cmdTypes := commandTypes(t)
	cloudStorage := []string{"internal/cloud/postgres", "internal/cloud/commandqueue", "internal/cloud/accounts",
		"internal/cloud/policy", "internal/cloud/timeseries", "internal/cloud/enrolment", "internal/cloud/storage",
		"internal/cloud/sqlfile"}

	for _, s := range srcs {
		// One FieldError, one status error at the edge.
		for _, d := range s.file.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.TYPE {
				continue
			}
			for _, spec := range g.Specs {
				name := spec.(*ast.TypeSpec).Name.Name
				if strings.HasSuffix(name, "FieldError") && s.dir != "internal/apperr" {
					t.Errorf("%s declares %s: apperr.FieldError is the one field error", s.rel, name)
				}
				if strings.HasSuffix(name, "StatusError") && s.dir != "internal/edge/cloudclient" && !strings.HasPrefix(s.dir, "internal/sim/") {
					t.Errorf("%s declares %s: cloudclient.StatusError is the edge's one status error; servers map apperr codes", s.rel, name)
				}
			}
		}
		// Ticker loops.
		selectorsOf(s.file, "time", func(name string, _ token.Pos) {
			if (name == "NewTicker" || name == "Tick") && tickerAllowed[s.dir] == "" {
				t.Errorf("%s calls time.%s: periodic work runs under lifecycle.Every (or add a per-connection reason to tickerAllowed)", s.rel, name)
			}
		})
		// Decode errors to field paths: only jsondecode.
		if s.dir != "internal/jsondecode" {
			for _, p := range []string{"encoding/json", "github.com/go-json-experiment/json", "github.com/go-json-experiment/json/jsontext"} {
				selectorsOf(s.file, p, func(name string, _ token.Pos) {
					if name == "SemanticError" || name == "SyntaxError" || name == "UnmarshalTypeError" {
						t.Errorf("%s inspects %s: decode errors become field paths in internal/jsondecode only", s.rel, name)
					}
				})
			}
		}
		// Command types spelt once.
		if s.dir != "internal/protocol" {
			ast.Inspect(s.file, func(n ast.Node) bool {
				if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
					if v, err := strconv.Unquote(lit.Value); err == nil && cmdTypes[v] {
						t.Errorf("%s spells the command type %q: use its protocol.Command* constant", s.rel, v)
					}
				}
				return true
			})
		}
		// Requests to the cloud: only cloudclient builds them at the edge.
		if strings.HasPrefix(s.dir, "internal/edge/") && s.dir != "internal/edge/cloudclient" {
			selectorsOf(s.file, "net/http", func(name string, _ token.Pos) {
				if name == "NewRequest" || name == "NewRequestWithContext" || name == "Post" || name == "Get" {
					t.Errorf("%s calls http.%s: the gateway reaches the cloud through cloudclient", s.rel, name)
				}
			})
		}
		// Jitter in one place.
		if importName(s.file, "math/rand/v2") != "" || importName(s.file, "math/rand") != "" {
			if s.dir != "internal/backoff" && !strings.HasPrefix(s.dir, "internal/sim/") {
				t.Errorf("%s imports math/rand: retry pacing is backoff.Policy's (full jitter in one place)", s.rel)
			}
		}
		// No HTTP in the cloud's storage packages.
		for _, p := range cloudStorage {
			// storagetest fetches signed URLs as a client; it chooses no status.
			if (s.dir == p || strings.HasPrefix(s.dir, p+"/")) && s.dir != "internal/cloud/storage/storagetest" {
				if importName(s.file, "net/http") != "" {
					t.Errorf("%s imports net/http: storage code returns apperr codes; each server maps them to a status once", s.rel)
				}
			}
		}
	}
}

// commandTypes reads the values of protocol's Command* string constants.
func commandTypes(t *testing.T) map[string]bool {
	t.Helper()
	src, err := os.ReadFile("../../internal/protocol/commands.go")
	if err != nil {
		t.Fatal(err)
	}
	f, err := parser.ParseFile(token.NewFileSet(), "commands.go", src, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, spec := range g.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, n := range vs.Names {
				if !strings.HasPrefix(n.Name, "Command") || i >= len(vs.Values) {
					continue
				}
				if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
					v, _ := strconv.Unquote(lit.Value)
					out[v] = true
				}
			}
		}
	}
	if len(out) < 6 || !out["policy_update"] {
		t.Fatalf("read %d command types from protocol/commands.go; the file changed?", len(out))
	}
	return out
}
