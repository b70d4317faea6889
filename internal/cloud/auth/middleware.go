package auth

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

type gatewayKey struct{}

// GatewayFrom returns the gateway RequireGateway authenticated.
func GatewayFrom(ctx context.Context) (Gateway, bool) {
	g, ok := ctx.Value(gatewayKey{}).(Gateway)
	return g, ok
}

// WithGateway returns ctx carrying an authenticated gateway.
func WithGateway(ctx context.Context, g Gateway) context.Context {
	return context.WithValue(ctx, gatewayKey{}, g)
}

// RequireGateway authenticates the X-API-Key header on every request and
// answers 401 for a missing, unknown or revoked key.
func RequireGateway(g *Gateways, logger *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get(protocol.HeaderAPIKey)
		if key == "" {
			writeUnauthorized(w, "the "+protocol.HeaderAPIKey+" header is required")
			return
		}
		gw, err := g.Authenticate(r.Context(), key)
		if errors.Is(err, ErrUnauthorized) {
			writeUnauthorized(w, "unknown or revoked API key")
			return
		}
		// With mutual TLS, the client certificate (verified against the
		// configured CA by the TLS layer) is bound to one gateway: its
		// Common Name is the gateway id. A key presented with another
		// gateway's certificate is refused.
		if err == nil && r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			if cn := r.TLS.PeerCertificates[0].Subject.CommonName; !strings.EqualFold(cn, gw.ID.String()) {
				writeUnauthorized(w, "the client certificate belongs to another gateway")
				return
			}
		}
		if err != nil {
			logger.ErrorContext(r.Context(), "gateway authentication failed", "err", err)
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set(protocol.HeaderRetryAfter, "5")
			w.WriteHeader(http.StatusServiceUnavailable)
			_ = json.NewEncoder(w).Encode(protocol.ErrorResponse{Error: protocol.ErrCodeUnavailable, Message: "authentication is temporarily unavailable"})
			return
		}
		next.ServeHTTP(w, r.WithContext(WithGateway(r.Context(), gw)))
	})
}

func writeUnauthorized(w http.ResponseWriter, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusUnauthorized)
	_ = json.NewEncoder(w).Encode(protocol.ErrorResponse{Error: protocol.ErrCodeUnauthorized, Field: protocol.HeaderAPIKey, Message: msg})
}
