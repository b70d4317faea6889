package dashboard

import "testing"

// TestJSONPointer: the services' field spellings become JSON Pointers.
func TestJSONPointer(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"email", "/email"},
		{"identities[2].value", "/identities/2/value"},
		{"identities/2/value", "/identities/2/value"},
		{"events.3.user_sid", "/events/3/user_sid"},
		{"config[0][1]", "/config/0/1"},
		{"/already/pointer", "/already/pointer"},
		{"a~b", "/a~0b"},
	} {
		if got := jsonPointer(tc.in); got != tc.want {
			t.Errorf("jsonPointer(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
