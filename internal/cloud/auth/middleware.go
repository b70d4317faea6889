package auth

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/cloud/service"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
	"github.com/staffcontrol/staffcontrol/internal/throttle"
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

// Credential kinds, as the throttle counts them (the "kind" metric label).
const (
	KindAPIKey            = "api_key"
	KindProvisioningToken = "provisioning_token"
)

// Failure reasons (the "reason" label of auth_failures_total).
const (
	// ReasonMalformed: not of the credential's shape; refused without a
	// database lookup.
	ReasonMalformed = "malformed"
	// ReasonUnknown: unknown, revoked, expired or spent.
	ReasonUnknown = "unknown"
	// ReasonCertificate: a valid key presented with another gateway's
	// client certificate.
	ReasonCertificate = "certificate"
)

// APIKeyAttempt is the throttle's view of an API key presented from
// source: its prefix (KeyPrefix: the type prefix and four characters, ""
// for a key of the wrong shape) and its SHA-256.
func APIKeyAttempt(source netip.Addr, key string) throttle.Attempt {
	a := throttle.Attempt{Kind: KindAPIKey, Source: source}
	if wellFormedKey(key) {
		a.Prefix, a.Credential = KeyPrefix(key), HashSecret(key)
	}
	return a
}

func wellFormedKey(key string) bool { return strings.HasPrefix(key, PrefixAPIKey) && len(key) <= 128 }

// RequireGateway authenticates the X-API-Key header on every request and
// answers 401 for a missing, unknown or revoked key. Failed keys are
// counted by lim (per source address, as proxies let it be known, and per
// key prefix), and an attempt lim refuses is answered 429 with
// Retry-After before any database lookup.
func RequireGateway(g *Gateways, lim *throttle.Limiter, proxies []netip.Prefix, logger *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get(protocol.HeaderAPIKey)
		if key == "" {
			writeUnauthorized(w, "the "+protocol.HeaderAPIKey+" header is required")
			return
		}
		att := APIKeyAttempt(throttle.Source(r, proxies), key)
		if d := lim.Check(att); !d.OK {
			throttle.WriteRefusal(w, d, protocol.HeaderAPIKey)
			return
		}
		if !wellFormedKey(key) {
			lim.Fail(att, ReasonMalformed)
			writeUnauthorized(w, "unknown or revoked API key")
			return
		}
		gw, err := g.Authenticate(r.Context(), key)
		if errors.Is(err, ErrUnauthorized) {
			lim.Fail(att, ReasonUnknown)
			writeUnauthorized(w, "unknown or revoked API key")
			return
		}
		// With mutual TLS, the client certificate (verified against the
		// configured CA by the TLS layer) is bound to one gateway: its
		// Common Name is the gateway id. A key presented with another
		// gateway's certificate is refused.
		if err == nil && r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			if cn := r.TLS.PeerCertificates[0].Subject.CommonName; !strings.EqualFold(cn, gw.ID.String()) {
				lim.Fail(att, ReasonCertificate)
				writeUnauthorized(w, "the client certificate belongs to another gateway")
				return
			}
		}
		if err != nil {
			lim.Done(att)
			logger.ErrorContext(r.Context(), "gateway authentication failed", "err", err)
			service.WriteError(w, &apperr.Error{Code: apperr.Unavailable, Message: "authentication is temporarily unavailable", RetryAfter: 5 * time.Second, Err: err})
			return
		}
		lim.Succeed(att)
		next.ServeHTTP(w, r.WithContext(WithGateway(r.Context(), gw)))
	})
}

func writeUnauthorized(w http.ResponseWriter, msg string) {
	service.WriteError(w, apperr.New(apperr.Unauthenticated, protocol.HeaderAPIKey, "%s", msg))
}
