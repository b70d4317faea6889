// Diff: the changes between two policy contents, as JSON Pointer paths
// (the audit row of every change and `staffctl policy compare`).

package policy

import (
	"bytes"
	"encoding/json"
	"sort"
	"strings"

	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// Change is one difference between two contents, at a JSON Pointer path.
type Change struct {
	Op   string `json:"op"` // add, remove, replace
	Path string `json:"path"`
	Old  any    `json:"old,omitempty"`
	New  any    `json:"new,omitempty"`
}

// Diff lists the changes from a to b, objects compared member by member,
// anything else (arrays included) as a whole value. Paths are sorted.
func Diff(a, b []byte) ([]Change, error) {
	va, err := protocol.DecodeJSONValue(a)
	if err != nil {
		return nil, err
	}
	vb, err := protocol.DecodeJSONValue(b)
	if err != nil {
		return nil, err
	}
	var out []Change
	diff("", va, vb, &out)
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

func diff(path string, a, b any, out *[]Change) {
	ma, aObj := a.(map[string]any)
	mb, bObj := b.(map[string]any)
	if aObj && bObj {
		for k, av := range ma {
			p := path + "/" + escape(k)
			if bv, ok := mb[k]; ok {
				diff(p, av, bv, out)
			} else {
				*out = append(*out, Change{Op: "remove", Path: p, Old: av})
			}
		}
		for k, bv := range mb {
			if _, ok := ma[k]; !ok {
				*out = append(*out, Change{Op: "add", Path: path + "/" + escape(k), New: bv})
			}
		}
		return
	}
	if !equal(a, b) {
		*out = append(*out, Change{Op: "replace", Path: path, Old: a, New: b})
	}
}

func escape(k string) string { return strings.NewReplacer("~", "~0", "/", "~1").Replace(k) }

func equal(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

// kind is the JSON type of a value, for the bump rules.
func kind(v any) string {
	switch v.(type) {
	case map[string]any:
		return "object"
	case []any:
		return "array"
	case string:
		return "string"
	case json.Number:
		return "number"
	case bool:
		return "boolean"
	}
	return "null"
}
