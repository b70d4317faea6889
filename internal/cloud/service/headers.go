package service

import (
	"context"
	"net/http"

	"github.com/google/uuid"

	"github.com/staffcontrol/staffcontrol/internal/logging"
)

// HeaderRequestID carries a request's id: taken from the caller when it is
// well formed (a proxy's id joins the logs end to end), otherwise made
// here, and always echoed in the answer.
const HeaderRequestID = "X-Request-ID"

// RequestIDFrom returns the request id RequestID put in ctx ("" if none).
// It lives in logging's context key, so every record logged with the
// request's context carries it as request_id.
func RequestIDFrom(ctx context.Context) string { return logging.RequestIDFrom(ctx) }

// validRequestID accepts 1–64 characters of [A-Za-z0-9._-]: enough for
// UUIDs and proxies' ids, nothing that could forge a log line or a header.
func validRequestID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// RequestID gives every request an id (the caller's X-Request-ID when
// well formed, else a new UUIDv7), puts it in the request's context
// (RequestIDFrom) and sets it on the answer.
func RequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(HeaderRequestID)
		if !validRequestID(id) {
			v, err := uuid.NewV7()
			if err != nil {
				v = uuid.New()
			}
			id = v.String()
		}
		w.Header().Set(HeaderRequestID, id)
		next.ServeHTTP(w, r.WithContext(logging.WithRequestID(r.Context(), id)))
	})
}

// SecurityHeaders sets the headers an API answer carries whatever the
// route: no MIME sniffing, no framing, no referrer, a content security
// policy that allows nothing (an API serves no active content), no caching
// of answers that may hold personal data, and HSTS on TLS connections.
func SecurityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
		h.Set("Cache-Control", "no-store")
		if r.TLS != nil {
			h.Set("Strict-Transport-Security", "max-age=31536000")
		}
		next.ServeHTTP(w, r)
	})
}
