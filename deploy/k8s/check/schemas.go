// Package check validates deploy/k8s against the Kubernetes API schemas
// with kubeconform, offline: kubeconform normally downloads JSON schemas
// from GitHub at run time, which CI cannot rely on, so Generate converts the
// OpenAPI (Swagger 2.0) document Kubernetes publishes in its Go module
// (k8s.io/kubernetes, api/openapi-spec/swagger.json, fetched through the Go
// module proxy) into the standalone, strict JSON schemas kubeconform reads
// from a local -schema-location, as yannh/kubernetes-json-schema's
// openapi2jsonschema does.
//
// Its tests also load deploy/compose/compose.yml with compose-go, the
// loader docker compose itself uses, as `docker compose config -q` would
// (schema, interpolation, consistency), where no docker engine is needed.
//
// It is its own Go module so that kubeconform, compose-go and the
// Kubernetes spec never become dependencies of the services.
package check

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// KubernetesVersion is the Kubernetes release whose API schemas the
// manifests are validated against (the k8s.io/kubernetes module version
// whose api/openapi-spec/swagger.json is converted).
const KubernetesVersion = "v1.37.2"

// DownloadSpec returns the path of KubernetesVersion's OpenAPI document,
// downloading the k8s.io/kubernetes module through the Go module proxy
// when the module cache lacks it (`go mod download`: checked against the
// checksum database like any module; a 21 MB zip).
func DownloadSpec(ctx context.Context) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", "k8s.io/kubernetes@"+KubernetesVersion)
	cmd.Dir = os.TempDir() // outside any module: only the download
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var info struct{ Dir, Error string }
	if jerr := json.Unmarshal(out, &info); jerr == nil && info.Error != "" {
		return "", fmt.Errorf("go mod download: %s", info.Error)
	}
	if err != nil {
		return "", fmt.Errorf("go mod download k8s.io/kubernetes@%s: %v: %s", KubernetesVersion, err, stderr.Bytes())
	}
	if info.Dir == "" {
		return "", fmt.Errorf("go mod download: no directory in %q", out)
	}
	return filepath.Join(info.Dir, "api", "openapi-spec", "swagger.json"), nil
}

// SchemaLocation is kubeconform's -schema-location template for the files
// Generate writes into dir.
func SchemaLocation(dir string) string {
	return filepath.Join(dir, "{{ .ResourceKind }}{{ .KindSuffix }}.json")
}

// gvk is one entry of a definition's x-kubernetes-group-version-kind.
type gvk struct {
	Group   string `json:"group"`
	Version string `json:"version"`
	Kind    string `json:"kind"`
}

// apiVersion is the manifest's apiVersion for the group and version.
func (g gvk) apiVersion() string {
	if g.Group == "" {
		return g.Version
	}
	return g.Group + "/" + g.Version
}

// fileName is kubeconform's name for the schema of g: the kind, the first
// label of the group (if any) and the version, lower case
// ("deployment-apps-v1.json", "service-v1.json").
func (g gvk) fileName() string {
	suffix := ""
	if g.Group != "" {
		suffix = "-" + strings.Split(g.Group, ".")[0]
	}
	return strings.ToLower(g.Kind + suffix + "-" + g.Version + ".json")
}

// Generate writes one JSON schema file per group, version and kind of the
// Swagger 2.0 document spec into dir and returns how many it wrote. Each
// file is standalone (the definitions it reaches are copied under its own
// "definitions", so the $refs resolve inside it) and strict: an object
// schema with properties rejects any other property, as the API server's
// field validation does. IntOrString becomes string-or-integer and
// Quantity string-or-number, as the API accepts them, and kind and
// apiVersion must name the schema's own.
func Generate(spec []byte, dir string) (int, error) {
	var doc struct {
		Swagger     string                     `json:"swagger"`
		Definitions map[string]json.RawMessage `json:"definitions"`
	}
	if err := json.Unmarshal(spec, &doc); err != nil {
		return 0, fmt.Errorf("openapi spec: %w", err)
	}
	if doc.Swagger != "2.0" || len(doc.Definitions) == 0 {
		return 0, fmt.Errorf("openapi spec: want a Swagger 2.0 document with definitions (swagger %q, %d definitions)", doc.Swagger, len(doc.Definitions))
	}
	defs := map[string]map[string]any{}
	for name, raw := range doc.Definitions {
		var d map[string]any
		if err := json.Unmarshal(raw, &d); err != nil {
			return 0, fmt.Errorf("openapi spec: definition %s: %w", name, err)
		}
		defs[name] = d
	}
	for name, d := range defs {
		defs[name] = strict(d).(map[string]any)
	}
	// As the API accepts them (the Swagger document says only "string").
	if _, ok := defs[intOrString]; ok {
		defs[intOrString] = map[string]any{"oneOf": []any{map[string]any{"type": "string"}, map[string]any{"type": "integer"}}}
	}
	if _, ok := defs[quantity]; ok {
		defs[quantity] = map[string]any{"oneOf": []any{map[string]any{"type": "string"}, map[string]any{"type": "number"}}}
	}
	names := make([]string, 0, len(defs))
	for n := range defs {
		names = append(names, n)
	}
	sort.Strings(names)
	written := 0
	seen := map[string]string{}
	for _, name := range names {
		d := defs[name]
		kinds, err := groupVersionKinds(d)
		if err != nil {
			return written, fmt.Errorf("openapi spec: definition %s: %w", name, err)
		}
		for _, g := range kinds {
			props, _ := d["properties"].(map[string]any)
			if props["kind"] == nil || props["apiVersion"] == nil {
				continue // DeleteOptions, WatchEvent: listed under many kinds, not resources
			}
			if other, dup := seen[g.fileName()]; dup {
				return written, fmt.Errorf("openapi spec: %s and %s both map to %s", other, name, g.fileName())
			}
			seen[g.fileName()] = name
			root := map[string]any{}
			for k, v := range d {
				root[k] = v
			}
			p := map[string]any{}
			for k, v := range props {
				p[k] = v
			}
			p["kind"] = map[string]any{"type": "string", "enum": []any{g.Kind}}
			p["apiVersion"] = map[string]any{"type": "string", "enum": []any{g.apiVersion()}}
			root["properties"] = p
			root["$schema"] = "http://json-schema.org/draft-04/schema#"
			reach := map[string]any{}
			if err := reachable(root, defs, reach); err != nil {
				return written, fmt.Errorf("openapi spec: definition %s: %w", name, err)
			}
			root["definitions"] = reach
			out, err := json.MarshalIndent(root, "", "  ")
			if err != nil {
				return written, err
			}
			if err := os.WriteFile(filepath.Join(dir, g.fileName()), out, 0o644); err != nil {
				return written, err
			}
			written++
		}
	}
	if written == 0 {
		return 0, fmt.Errorf("openapi spec: no definition names a group, version and kind")
	}
	return written, nil
}

const (
	intOrString = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
	quantity    = "io.k8s.apimachinery.pkg.api.resource.Quantity"
	refPrefix   = "#/definitions/"
)

func groupVersionKinds(d map[string]any) ([]gvk, error) {
	raw, ok := d["x-kubernetes-group-version-kind"]
	if !ok {
		return nil, nil
	}
	b, err := json.Marshal(raw)
	if err != nil {
		return nil, err
	}
	var kinds []gvk
	if err := json.Unmarshal(b, &kinds); err != nil {
		return nil, fmt.Errorf("x-kubernetes-group-version-kind: %w", err)
	}
	for _, g := range kinds {
		if g.Kind == "" || g.Version == "" || strings.ContainsAny(g.Kind+g.Group+g.Version, `/\`) {
			return nil, fmt.Errorf("x-kubernetes-group-version-kind: bad entry %+v", g)
		}
	}
	return kinds, nil
}

// strict walks a schema and every schema inside it (properties, items,
// additionalProperties, allOf/anyOf/oneOf): an object schema with
// properties and no additionalProperties gets additionalProperties false;
// a property of format int-or-string becomes string-or-integer.
func strict(s any) any {
	m, ok := s.(map[string]any)
	if !ok {
		return s
	}
	if m["format"] == "int-or-string" {
		return map[string]any{"oneOf": []any{map[string]any{"type": "string"}, map[string]any{"type": "integer"}}}
	}
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	if props, ok := m["properties"].(map[string]any); ok {
		p := map[string]any{}
		for name, sub := range props {
			p[name] = strict(sub)
		}
		out["properties"] = p
		if _, set := m["additionalProperties"]; !set {
			out["additionalProperties"] = false
		}
	}
	for _, k := range []string{"items", "additionalProperties", "not"} {
		if sub, ok := m[k].(map[string]any); ok {
			out[k] = strict(sub)
		}
	}
	for _, k := range []string{"allOf", "anyOf", "oneOf"} {
		if l, ok := m[k].([]any); ok {
			n := make([]any, len(l))
			for i, sub := range l {
				n[i] = strict(sub)
			}
			out[k] = n
		}
	}
	return out
}

// reachable adds to reach every definition s refers to, transitively.
func reachable(s any, defs map[string]map[string]any, reach map[string]any) error {
	switch x := s.(type) {
	case map[string]any:
		for k, v := range x {
			if ref, isRef := v.(string); k == "$ref" && isRef {
				name, ok := strings.CutPrefix(ref, refPrefix)
				if !ok {
					return fmt.Errorf("$ref %q: only %s… refs are supported", ref, refPrefix)
				}
				d, ok := defs[name]
				if !ok {
					return fmt.Errorf("$ref %q: no such definition", ref)
				}
				if _, done := reach[name]; done {
					continue
				}
				reach[name] = d
				if err := reachable(d, defs, reach); err != nil {
					return err
				}
				continue
			}
			if err := reachable(v, defs, reach); err != nil {
				return err
			}
		}
	case []any:
		for _, v := range x {
			if err := reachable(v, defs, reach); err != nil {
				return err
			}
		}
	}
	return nil
}
