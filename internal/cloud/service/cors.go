package service

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
)

// CORS headers of the Dashboard API: what a browser app on an allowed
// origin may send and read. Tokens travel in Authorization, never in
// cookies, so credentials mode is not allowed.
const (
	corsMethods = "GET, POST, PUT, PATCH, DELETE"
	corsHeaders = "Authorization, Content-Type, If-Match, If-None-Match, Last-Event-ID, X-Request-ID"
	corsExpose  = "ETag, Location, Retry-After, X-Request-ID"
	corsMaxAge  = "600"
)

// ParseOrigins reads a comma-separated list of origins
// ("https://console.example.com, http://localhost:5173") from the
// configuration key key; "" allows none. An error names the key and the
// entry.
func ParseOrigins(key, value string) ([]string, error) {
	var out []string
	for _, o := range strings.Split(value, ",") {
		o = strings.TrimSpace(o)
		if o == "" {
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
			(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return nil, fmt.Errorf("%s: %q is not an origin (want scheme://host[:port])", key, o)
		}
		out = append(out, u.Scheme+"://"+strings.ToLower(u.Host))
	}
	return out, nil
}

// CORS lets browser apps on the given origins call the API: a preflight
// from an allowed origin is answered 204 with the methods and headers the
// API takes; an actual request from one gets Allow-Origin and the headers
// it may read. Any other origin gets no CORS headers (the browser then
// refuses to hand over the answer) and its preflight a 403. Requests
// without an Origin (curl, staffctl, servers) pass untouched.
func CORS(origins []string) func(http.Handler) http.Handler {
	allowed := slices.Clone(origins)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			origin := r.Header.Get("Origin")
			if origin == "" {
				next.ServeHTTP(w, r)
				return
			}
			h := w.Header()
			h.Add("Vary", "Origin")
			ok := slices.Contains(allowed, strings.ToLower(origin))
			preflight := r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
			if preflight {
				if !ok {
					WriteError(w, apperr.New(apperr.Forbidden, "Origin", "origin %q is not allowed", origin))
					return
				}
				h.Set("Access-Control-Allow-Origin", origin)
				h.Set("Access-Control-Allow-Methods", corsMethods)
				h.Set("Access-Control-Allow-Headers", corsHeaders)
				h.Set("Access-Control-Max-Age", corsMaxAge)
				w.WriteHeader(http.StatusNoContent)
				return
			}
			if ok {
				h.Set("Access-Control-Allow-Origin", origin)
				h.Set("Access-Control-Expose-Headers", corsExpose)
			}
			next.ServeHTTP(w, r)
		})
	}
}
