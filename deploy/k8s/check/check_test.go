package check

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/yannh/kubeconform/pkg/validator"
)

// manifestDir holds the manifests under test.
const manifestDir = ".."

// requireEnv makes a missing spec a failure instead of a skip (CI sets it).
const requireEnv = "KUBECONFORM_REQUIRE"

var (
	schemasOnce sync.Once
	schemasDir  string
	schemasErr  error
	schemasN    int
)

// schemas converts the Kubernetes OpenAPI document once per test binary.
// The document comes from K8S_OPENAPI_SPEC (a swagger.json path) or from
// the k8s.io/kubernetes module, downloaded through the Go module proxy
// (checked against the checksum database like any module).
func schemas(t *testing.T) string {
	t.Helper()
	schemasOnce.Do(func() {
		path := os.Getenv("K8S_OPENAPI_SPEC")
		if path == "" {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			path, schemasErr = DownloadSpec(ctx)
			if schemasErr != nil {
				return
			}
		}
		spec, err := os.ReadFile(path)
		if err != nil {
			schemasErr = err
			return
		}
		dir, err := os.MkdirTemp("", "k8s-schemas-")
		if err != nil {
			schemasErr = err
			return
		}
		schemasDir = dir
		schemasN, schemasErr = Generate(spec, dir)
	})
	if schemasErr != nil {
		msg := fmt.Sprintf("Kubernetes %s OpenAPI spec: %v", KubernetesVersion, schemasErr)
		if os.Getenv(requireEnv) == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg + " (set " + requireEnv + "=1 to make this a failure)")
	}
	return schemasDir
}

// TestMain removes the generated schemas.
func TestMain(m *testing.M) {
	code := m.Run()
	if schemasDir != "" {
		os.RemoveAll(schemasDir)
	}
	os.Exit(code)
}

func newValidator(t *testing.T) validator.Validator {
	t.Helper()
	v, err := validator.New([]string{SchemaLocation(schemas(t))}, validator.Opts{Strict: true, KubernetesVersion: strings.TrimPrefix(KubernetesVersion, "v")})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// validate runs kubeconform over one stream and returns a line per
// resource that is not valid, and how many resources were valid.
func validate(v validator.Validator, name string, r io.Reader) (problems []string, valid int) {
	for _, res := range v.Validate(name, io.NopCloser(r)) {
		switch res.Status {
		case validator.Valid:
			valid++
		case validator.Empty:
		default:
			sig, _ := res.Resource.Signature()
			what := name
			if sig != nil {
				what = fmt.Sprintf("%s: %s %s", name, sig.Kind, sig.Name)
			}
			msg := fmt.Sprint(res.Err)
			for _, ve := range res.ValidationErrors {
				msg += fmt.Sprintf("; %s: %s", ve.Path, ve.Msg)
			}
			problems = append(problems, fmt.Sprintf("%s: status %d: %s", what, res.Status, msg))
		}
	}
	return problems, valid
}

// TestManifestValidation ("manifest validation"): every manifest of
// deploy/k8s, and the example Secrets, is valid against the Kubernetes API
// schemas, strictly (no unknown or duplicated fields).
func TestManifestValidation(t *testing.T) {
	v := newValidator(t)
	t.Logf("%d schemas of Kubernetes %s", schemasN, KubernetesVersion)
	files, err := filepath.Glob(filepath.Join(manifestDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, filepath.Join(manifestDir, "secrets.yaml.example"))
	total := 0
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue // kustomize's own file, not an API object
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		problems, valid := validate(v, f, bytes.NewReader(b))
		for _, p := range problems {
			t.Error(p)
		}
		if valid == 0 {
			t.Errorf("%s: no resource validated", f)
		}
		total += valid
	}
	// namespace 1, service accounts 3, network policies 4, job 1, two
	// services × (Deployment, Service, PDB, HPA) 8, example Secrets 3.
	if total < 20 {
		t.Errorf("%d resources validated, want at least 20: did the manifests lose some?", total)
	}
}

// TestManifestValidationCatchesErrors: kubeconform with these schemas
// refuses what the API server would, so that a passing validation means
// something.
func TestManifestValidationCatchesErrors(t *testing.T) {
	v := newValidator(t)
	deployment, err := os.ReadFile(filepath.Join(manifestDir, "agent-api.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(deployment)
	for _, tc := range []struct{ name, from, to, want string }{
		{"unknown field", "          readinessProbe:", "          readinesProbe:", "'readinesProbe' not allowed"},
		{"unknown field deep inside", "            readOnlyRootFilesystem: true", "            readOnlyRootFilesystem: true\n            readOnlyRoot: true", "'readOnlyRoot' not allowed"},
		{"wrong type", "  replicas: 2", "  replicas: two", "/spec/replicas': got string, want integer"},
		{"bool as string", "            allowPrivilegeEscalation: false", "            allowPrivilegeEscalation: \"no\"", "got string, want boolean"},
		{"missing required field", "        - name: agent-api\n          image:", "        - image:", "missing property 'name'"},
		{"removed API version", "apiVersion: autoscaling/v2", "apiVersion: autoscaling/v2beta1", "could not find schema for HorizontalPodAutoscaler"},
		{"kind of another group", "apiVersion: policy/v1\nkind: PodDisruptionBudget", "apiVersion: apps/v1\nkind: PodDisruptionBudget", "could not find schema for PodDisruptionBudget"},
		{"duplicate key", "  replicas: 2", "  replicas: 2\n  replicas: 3", "already set"},
		{"bad int-or-string", "      maxUnavailable: 0", "      maxUnavailable: [0]", "maxUnavailable': 'oneOf' failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := strings.Replace(doc, tc.from, tc.to, 1)
			if bad == doc {
				t.Fatalf("%q is not in agent-api.yaml: the test is out of date", tc.from)
			}
			problems, _ := validate(v, "agent-api.yaml", strings.NewReader(bad))
			if !strings.Contains(strings.Join(problems, "\n"), tc.want) {
				t.Errorf("want a problem containing %q, got %q", tc.want, problems)
			}
		})
	}
}

// TestGenerate: the conversion on a small document.
func TestGenerate(t *testing.T) {
	spec := `{"swagger": "2.0", "definitions": {
	  "a.Thing": {"type": "object", "required": ["spec"], "properties": {
	    "apiVersion": {"type": "string"}, "kind": {"type": "string"},
	    "spec": {"$ref": "#/definitions/a.Spec"}},
	    "x-kubernetes-group-version-kind": [{"group": "things.example.com", "version": "v1", "kind": "Thing"}]},
	  "a.Spec": {"type": "object", "properties": {"port": {"format": "int-or-string", "type": "string"},
	    "size": {"$ref": "#/definitions/io.k8s.apimachinery.pkg.api.resource.Quantity"},
	    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
	    "items": {"type": "array", "items": {"type": "object", "properties": {"n": {"type": "integer"}}}}}},
	  "io.k8s.apimachinery.pkg.api.resource.Quantity": {"type": "string"},
	  "a.Unused": {"type": "object", "properties": {}},
	  "a.Core": {"type": "object", "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"}},
	    "x-kubernetes-group-version-kind": [{"group": "", "version": "v1", "kind": "Core"}]}
	}}`
	dir := t.TempDir()
	n, err := Generate([]byte(spec), dir)
	if err != nil || n != 2 {
		t.Fatalf("Generate: %d, %v; want 2 files", n, err)
	}
	for _, f := range []string{"thing-things-v1.json", "core-v1.json"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "thing-things-v1.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s map[string]any
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	defs := s["definitions"].(map[string]any)
	if _, ok := defs["a.Unused"]; ok {
		t.Error("an unreachable definition was copied")
	}
	if s["additionalProperties"] != false || defs["a.Spec"].(map[string]any)["additionalProperties"] != false {
		t.Error("object schemas with properties must refuse other properties")
	}
	spec2 := defs["a.Spec"].(map[string]any)["properties"].(map[string]any)
	if _, ok := spec2["port"].(map[string]any)["oneOf"]; !ok {
		t.Errorf("int-or-string: %v", spec2["port"])
	}
	if spec2["labels"].(map[string]any)["additionalProperties"].(map[string]any)["type"] != "string" {
		t.Error("a map's additionalProperties schema must be kept")
	}
	if spec2["items"].(map[string]any)["items"].(map[string]any)["additionalProperties"] != false {
		t.Error("array items are strict too")
	}

	v, err := validator.New([]string{SchemaLocation(dir)}, validator.Opts{Strict: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		doc   string
		valid bool
	}{
		{"apiVersion: things.example.com/v1\nkind: Thing\nmetadata: {name: x}\nspec: {port: http, size: 1, items: [{n: 1}]}\n", false}, // metadata is not in a.Thing
		{"apiVersion: things.example.com/v1\nkind: Thing\nspec: {port: 8080, size: 1Gi, labels: {a: b}}\n", true},
		{"apiVersion: things.example.com/v1\nkind: Thing\nspec: {port: true}\n", false},
		{"apiVersion: things.example.com/v1\nkind: Thing\nspec: {items: [{n: 1, m: 2}]}\n", false},
		{"apiVersion: things.example.com/v1\nkind: Thing\n", false},
		{"apiVersion: v1\nkind: Core\n", true},
	} {
		problems, valid := validate(v, "doc", strings.NewReader(tc.doc))
		if got := valid == 1 && len(problems) == 0; got != tc.valid {
			t.Errorf("%q: valid %v, want %v (%q)", tc.doc, got, tc.valid, problems)
		}
	}

	for _, bad := range []string{`{}`, `{"swagger": "3.0", "definitions": {"a": {}}}`, `not json`,
		`{"swagger": "2.0", "definitions": {"a": {"properties": {"kind": {}, "apiVersion": {}, "x": {"$ref": "#/definitions/missing"}}, "x-kubernetes-group-version-kind": [{"version": "v1", "kind": "A"}]}}}`,
		`{"swagger": "2.0", "definitions": {"a": {"x-kubernetes-group-version-kind": [{"version": "v1", "kind": "../A"}]}}}`,
	} {
		if _, err := Generate([]byte(bad), t.TempDir()); err == nil {
			t.Errorf("Generate(%s): no error", bad)
		}
	}
}
