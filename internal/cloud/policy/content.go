package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// Canonical returns the canonical form of JSON content (the wire
// contract's protocol.CanonicalJSON): two contents with the same canonical
// form are the same policy, whatever their formatting.
func Canonical(content []byte) ([]byte, error) { return protocol.CanonicalJSON(content) }

// Checksum is the lower-case hex SHA-256 of the canonical form.
func Checksum(content []byte) (string, error) { return protocol.PolicyChecksum(content) }

func decode(content []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(content))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("content is not valid JSON: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("content holds more than one JSON value")
	}
	return v, nil
}

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
	va, err := decode(a)
	if err != nil {
		return nil, err
	}
	vb, err := decode(b)
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

// Bump returns the next semantic version after prev for the changes:
//
//   - major: a setting removed, a value changing JSON type, or the release
//     requires agents to restart — an agent on the old version may misread it;
//   - minor: a setting added (old agents ignore what they do not know);
//   - patch: only values changed.
//
// The first release is 1.0.0. No change at all is an error: there is
// nothing to release.
func Bump(prev string, changes []Change, requiresRestart bool) (string, error) {
	if prev == "" {
		return "1.0.0", nil
	}
	if len(changes) == 0 && !requiresRestart {
		return "", fmt.Errorf("nothing to release: the content equals version %s", prev)
	}
	major, minor, patch, err := parseSemver(prev)
	if err != nil {
		return "", err
	}
	level := 0 // 0 patch, 1 minor, 2 major
	if requiresRestart {
		level = 2
	}
	for _, c := range changes {
		switch {
		case c.Op == "remove", c.Op == "replace" && kind(c.Old) != kind(c.New):
			level = 2
		case c.Op == "add" && level < 1:
			level = 1
		}
	}
	switch level {
	case 2:
		return fmt.Sprintf("%d.0.0", major+1), nil
	case 1:
		return fmt.Sprintf("%d.%d.0", major, minor+1), nil
	}
	return fmt.Sprintf("%d.%d.%d", major, minor, patch+1), nil
}

func parseSemver(v string) (int, int, int, error) {
	parts := strings.Split(v, ".")
	if len(parts) != 3 {
		return 0, 0, 0, fmt.Errorf("version %q is not MAJOR.MINOR.PATCH", v)
	}
	var n [3]int
	for i, p := range parts {
		x, err := strconv.Atoi(p)
		if err != nil || x < 0 {
			return 0, 0, 0, fmt.Errorf("version %q is not MAJOR.MINOR.PATCH", v)
		}
		n[i] = x
	}
	return n[0], n[1], n[2], nil
}
