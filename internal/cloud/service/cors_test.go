package service

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestParseOrigins(t *testing.T) {
	got, err := ParseOrigins("DASHBOARD_CORS_ORIGINS", " https://Console.Example.com , http://localhost:5173/,")
	if err != nil || len(got) != 2 || got[0] != "https://console.example.com" || got[1] != "http://localhost:5173" {
		t.Fatalf("%v %v", got, err)
	}
	if got, err := ParseOrigins("K", ""); err != nil || len(got) != 0 {
		t.Fatalf("empty: %v %v", got, err)
	}
	for _, bad := range []string{"console.example.com", "ftp://x.example", "https://x.example/app", "https://x.example?a=1", "https://u:p@x.example", "*"} {
		_, err := ParseOrigins("DASHBOARD_CORS_ORIGINS", bad)
		if err == nil || !strings.Contains(err.Error(), "DASHBOARD_CORS_ORIGINS") {
			t.Errorf("%q: %v, want an error naming the key", bad, err)
		}
	}
}

func TestCORS(t *testing.T) {
	reached := 0
	h := CORS([]string{"https://console.example.com"})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached++
		w.WriteHeader(http.StatusOK)
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	do := func(method, origin, reqMethod string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+"/api/v2/employees", nil)
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		if reqMethod != "" {
			req.Header.Set("Access-Control-Request-Method", reqMethod)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res
	}
	tests := []struct {
		name, method, origin, reqMethod string
		status                          int
		allowOrigin                     string
		reaches                         bool
	}{
		{"no origin: untouched", "GET", "", "", 200, "", true},
		{"allowed origin", "GET", "https://console.example.com", "", 200, "https://console.example.com", true},
		{"other origin: no CORS headers", "GET", "https://evil.example", "", 200, "", true},
		{"preflight, allowed", "OPTIONS", "https://console.example.com", "PATCH", 204, "https://console.example.com", false},
		{"preflight, other origin", "OPTIONS", "https://evil.example", "DELETE", 403, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := reached
			res := do(tc.method, tc.origin, tc.reqMethod)
			if res.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", res.StatusCode, tc.status)
			}
			if got := res.Header.Get("Access-Control-Allow-Origin"); got != tc.allowOrigin {
				t.Fatalf("Allow-Origin %q, want %q", got, tc.allowOrigin)
			}
			if (reached > before) != tc.reaches {
				t.Fatalf("handler reached: %v, want %v", reached > before, tc.reaches)
			}
			if res.Header.Get("Access-Control-Allow-Credentials") != "" {
				t.Fatal("credentials mode allowed")
			}
			if tc.status == 204 && !strings.Contains(res.Header.Get("Access-Control-Allow-Methods"), tc.reqMethod) {
				t.Fatalf("Allow-Methods %q lacks %s", res.Header.Get("Access-Control-Allow-Methods"), tc.reqMethod)
			}
		})
	}
}
