package policy

import "testing"

func TestCanonicalAndChecksumIgnoreFormatting(t *testing.T) {
	t.Parallel()
	a := []byte(`{"b": 1, "a": {"y": [1, 2], "x": true}}`)
	b := []byte("{\n  \"a\": {\"x\": true, \"y\": [1,2]},\n  \"b\": 1\n}")
	ca, err := Canonical(a)
	if err != nil {
		t.Fatal(err)
	}
	if string(ca) != `{"a":{"x":true,"y":[1,2]},"b":1}` {
		t.Fatalf("canonical = %s", ca)
	}
	sa, _ := Checksum(a)
	sb, _ := Checksum(b)
	if sa != sb || len(sa) != 64 {
		t.Fatalf("checksums differ: %s %s", sa, sb)
	}
	if _, err := Canonical([]byte(`{"a":`)); err == nil {
		t.Fatal("invalid JSON canonicalised")
	}
}

func TestDiffAndBump(t *testing.T) {
	t.Parallel()
	base := `{"screenshots":{"enabled":true,"interval_seconds":300},"blocked_sites":["a.com"]}`
	tests := []struct {
		name, next string
		restart    bool
		want       string
		changes    int
	}{
		{"value changed: patch", `{"screenshots":{"enabled":true,"interval_seconds":600},"blocked_sites":["a.com"]}`, false, "1.4.3", 1},
		{"array changed: patch", `{"screenshots":{"enabled":true,"interval_seconds":300},"blocked_sites":["a.com","b.com"]}`, false, "1.4.3", 1},
		{"key added: minor", `{"screenshots":{"enabled":true,"interval_seconds":300,"blur":true},"blocked_sites":["a.com"]}`, false, "1.5.0", 1},
		{"key removed: major", `{"screenshots":{"enabled":true},"blocked_sites":["a.com"]}`, false, "2.0.0", 1},
		{"type changed: major", `{"screenshots":{"enabled":"yes","interval_seconds":300},"blocked_sites":["a.com"]}`, false, "2.0.0", 1},
		{"restart required: major", `{"screenshots":{"enabled":true,"interval_seconds":301},"blocked_sites":["a.com"]}`, true, "2.0.0", 1},
	}
	for _, tt := range tests {
		ch, err := Diff([]byte(base), []byte(tt.next))
		if err != nil {
			t.Fatal(err)
		}
		if len(ch) != tt.changes {
			t.Errorf("%s: %d changes %+v, want %d", tt.name, len(ch), ch, tt.changes)
		}
		got, err := Bump("1.4.2", ch, tt.restart)
		if err != nil || got != tt.want {
			t.Errorf("%s: Bump = %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}
	if v, _ := Bump("", nil, false); v != "1.0.0" {
		t.Errorf("first release = %s", v)
	}
	if _, err := Bump("1.0.0", nil, false); err == nil {
		t.Error("releasing unchanged content succeeded")
	}
	if _, err := Bump("1.0", []Change{{Op: "add"}}, false); err == nil {
		t.Error("a malformed previous version was accepted")
	}
}
