package service

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/uuid"
)

func TestRequestIDAndSecurityHeaders(t *testing.T) {
	var seen string
	h := RequestID(SecurityHeaders(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = RequestIDFrom(r.Context())
		w.WriteHeader(http.StatusNoContent)
	})))
	srv := httptest.NewServer(h)
	defer srv.Close()
	tests := []struct {
		name, sent string
		keep       bool
	}{
		{"none sent: a new UUIDv7", "", false},
		{"well formed: kept", "proxy-7f3a.42_x", true},
		{"too long: replaced", strings.Repeat("a", 65), false},
		{"header injection: replaced", "abc\tdef", false},
		{"log forging: replaced", `x" level=ERROR msg="forged`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
			if tc.sent != "" {
				req.Header.Set(HeaderRequestID, tc.sent)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			got := res.Header.Get(HeaderRequestID)
			if got != seen {
				t.Fatalf("answer's id %q, handler saw %q", got, seen)
			}
			if tc.keep {
				if got != tc.sent {
					t.Fatalf("id %q, want the caller's %q", got, tc.sent)
				}
			} else if u, err := uuid.Parse(got); err != nil || u.Version() != 7 {
				t.Fatalf("id %q, want a new UUIDv7", got)
			}
			for k, v := range map[string]string{"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
				"Referrer-Policy": "no-referrer", "Cache-Control": "no-store",
				"Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'"} {
				if res.Header.Get(k) != v {
					t.Errorf("%s = %q, want %q", k, res.Header.Get(k), v)
				}
			}
			if res.Header.Get("Strict-Transport-Security") != "" {
				t.Error("HSTS on a plain-HTTP answer")
			}
		})
	}
	tlsSrv := httptest.NewTLSServer(h)
	defer tlsSrv.Close()
	res, err := tlsSrv.Client().Get(tlsSrv.URL)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.Header.Get("Strict-Transport-Security") == "" {
		t.Error("no HSTS over TLS")
	}
}
