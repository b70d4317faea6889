package dashboard

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"sort"

	"go.yaml.in/yaml/v3"
)

// The OpenAPI 3.1 document is written by hand, one YAML file per group of
// routes beside the code that serves them (openapi/base.yaml holds the
// info, the security scheme and the shared components), and merged here
// into the JSON served at /api/openapi.json. The conformance test compares
// it with the routes table both ways and validates every test request and
// answer against it.
//
//go:embed openapi/*.yaml
var openapiFS embed.FS

// OpenAPI returns the Dashboard API's OpenAPI 3.1 document as JSON.
func OpenAPI() ([]byte, error) {
	doc, err := mergeOpenAPI(openapiFS)
	if err != nil {
		return nil, err
	}
	return json.MarshalIndent(doc, "", "  ")
}

// mergeOpenAPI merges the fragments of fsys: base.yaml first, then every
// other file's paths (operations of one path may come from several files)
// and components (a name defined twice is an error).
func mergeOpenAPI(fsys fs.FS) (map[string]any, error) {
	names, err := fs.Glob(fsys, "openapi/*.yaml")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	read := func(name string) (map[string]any, error) {
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		var m map[string]any
		if err := yaml.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("openapi: %s: %w", name, err)
		}
		return m, nil
	}
	doc, err := read("openapi/base.yaml")
	if err != nil {
		return nil, err
	}
	paths := child(doc, "paths")
	components := child(doc, "components")
	for _, name := range names {
		if path.Base(name) == "base.yaml" {
			continue
		}
		frag, err := read(name)
		if err != nil {
			return nil, err
		}
		for k := range frag {
			if k != "paths" && k != "components" {
				return nil, fmt.Errorf("openapi: %s: unexpected top-level key %q (fragments hold paths and components)", name, k)
			}
		}
		for p, ops := range child(frag, "paths") {
			opsMap, ok := ops.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("openapi: %s: path %s is not a map", name, p)
			}
			dst := child(paths, p)
			for method, op := range opsMap {
				if _, dup := dst[method]; dup {
					return nil, fmt.Errorf("openapi: %s: %s %s is defined twice", name, method, p)
				}
				dst[method] = op
			}
		}
		for kind, defs := range child(frag, "components") {
			defsMap, ok := defs.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("openapi: %s: components.%s is not a map", name, kind)
			}
			dst := child(components, kind)
			for n, def := range defsMap {
				if _, dup := dst[n]; dup {
					return nil, fmt.Errorf("openapi: %s: components.%s.%s is defined twice", name, kind, n)
				}
				dst[n] = def
			}
		}
	}
	return doc, nil
}

// child returns m[key] as a map, creating it when absent.
func child(m map[string]any, key string) map[string]any {
	if c, ok := m[key].(map[string]any); ok {
		return c
	}
	c := map[string]any{}
	m[key] = c
	return c
}

// serveOpenAPI answers GET /api/openapi.json with doc.
func serveOpenAPI(doc []byte) func(w http.ResponseWriter, r *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-cache")
		_, err := w.Write(doc)
		return err
	}
}
