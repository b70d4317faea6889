package signin_test

import (
	"strings"
	"testing"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/cloud/signin"
)

// TestNormalizeEmail: trimmed and lower-cased; anything but one bare
// address of at most 255 bytes is refused naming "email".
func TestNormalizeEmail(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"hr@alpha.test", "hr@alpha.test"},
		{"  HR@Alpha.Test\t", "hr@alpha.test"},
		{"first.last+tag@sub.example.org", "first.last+tag@sub.example.org"},
		{"", ""},
		{"hr", ""},
		{"hr@", ""},
		{"@alpha.test", ""},
		{"HR <hr@alpha.test>", ""},
		{"<hr@alpha.test>", ""},
		{"a@b.test, c@d.test", ""},
		{"hr@alpha.test\x00", ""},
		{strings.Repeat("a", 244) + "@alpha.test", strings.Repeat("a", 244) + "@alpha.test"},
		{strings.Repeat("a", 245) + "@alpha.test", ""},
	}
	for _, tc := range tests {
		got, err := signin.NormalizeEmail(tc.in)
		if tc.want == "" {
			if fe := apperr.As(err); fe == nil || fe.Code != apperr.Invalid || fe.Field != "email" {
				t.Errorf("%q: (%q, %v), want an invalid email", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: (%q, %v), want %q", tc.in, got, err, tc.want)
		}
	}
}

// FuzzNormalizeEmail: any input is either refused naming "email" or
// normalised to a trimmed, lower-case address of at most 255 bytes that
// normalises to itself.
func FuzzNormalizeEmail(f *testing.F) {
	for _, s := range []string{"hr@alpha.test", " A@B.C ", "x <y@z>", "\"q uoted\"@x.test", "a@[127.0.0.1]", "\u212a@x.test"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := signin.NormalizeEmail(s)
		if err != nil {
			if fe := apperr.As(err); fe == nil || fe.Code != apperr.Invalid || fe.Field != "email" {
				t.Fatalf("%q: %v", s, err)
			}
			return
		}
		if got == "" || len(got) > signin.MaxEmailBytes || got != strings.TrimSpace(got) || !strings.Contains(got, "@") {
			t.Fatalf("%q → %q", s, got)
		}
		again, err := signin.NormalizeEmail(got)
		if err != nil || again != got {
			t.Fatalf("%q → %q → (%q, %v)", s, got, again, err)
		}
	})
}
