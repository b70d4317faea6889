// Package logscrub keeps secrets and personal data out of logs (issue 14):
// a slog.Handler wrapper that redacts attributes by name — passwords,
// tokens, API keys, secrets, authorisation headers, card numbers, e-mail
// addresses — at any group depth, and masks e-mail addresses and long
// digit runs (card numbers) inside any other string value and the message.
//
// It is a safety net under the rule that code does not log such values in
// the first place: a field added later under a telling name, or an error
// message quoting a user's input, is still scrubbed.
package logscrub

import (
	"context"
	"log/slog"
	"regexp"
	"strings"
)

// Redacted replaces a value that must not be logged.
const Redacted = "[redacted]"

// sensitive reports whether an attribute named key holds a secret or
// personal data. Names are compared case-insensitively with '-' and '_'
// ignored, by substring, so "X-API-Key", "api_key", "refreshToken",
// "new_password" and "cardNumber" all match.
func sensitive(key string) bool {
	k := strings.NewReplacer("-", "", "_", "", ".", "").Replace(strings.ToLower(key))
	for _, s := range []string{"password", "passwd", "secret", "token", "apikey", "authorization", "cookie",
		"cardnumber", "cardno", "email", "mail", "privatekey", "credential"} {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}

var (
	emailRE = regexp.MustCompile(`[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}`)
	// A card number: 12–19 digits, optionally grouped by spaces or dashes.
	cardRE = regexp.MustCompile(`\b(?:\d[ \-]?){11,18}\d\b`)
)

// Mask hides e-mail addresses and card-like digit runs inside s.
func Mask(s string) string {
	if strings.IndexByte(s, '@') >= 0 {
		s = emailRE.ReplaceAllString(s, "[email]")
	}
	if hasDigitRun(s, 12) {
		s = cardRE.ReplaceAllString(s, "[number]")
	}
	return s
}

// hasDigitRun is a cheap pre-check: at least n digits in s.
func hasDigitRun(s string, n int) bool {
	c := 0
	for i := 0; i < len(s); i++ {
		if s[i] >= '0' && s[i] <= '9' {
			if c++; c >= n {
				return true
			}
		}
	}
	return false
}

// Handler wraps another slog.Handler and scrubs every record it passes on.
type Handler struct {
	next slog.Handler
}

// New returns a Handler that scrubs records before next handles them.
func New(next slog.Handler) *Handler { return &Handler{next: next} }

// Enabled reports whether next handles level.
func (h *Handler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

// Handle scrubs r's message and attributes and passes it on.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, Mask(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(scrub(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

// WithAttrs scrubs attrs once and returns a Handler over next.WithAttrs.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	s := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		s[i] = scrub(a)
	}
	return &Handler{next: h.next.WithAttrs(s)}
}

// WithGroup returns a Handler over next.WithGroup.
func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{next: h.next.WithGroup(name)}
}

// scrub returns a with a sensitive value redacted, strings masked and
// groups scrubbed recursively.
func scrub(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	if v.Kind() == slog.KindGroup {
		g := v.Group()
		s := make([]slog.Attr, len(g))
		for i, m := range g {
			s[i] = scrub(m)
		}
		return slog.Attr{Key: a.Key, Value: slog.GroupValue(s...)}
	}
	if sensitive(a.Key) {
		return slog.String(a.Key, Redacted)
	}
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, Mask(v.String()))
	case slog.KindAny:
		if err, ok := v.Any().(error); ok {
			return slog.String(a.Key, Mask(err.Error()))
		}
		if s, ok := v.Any().(interface{ String() string }); ok {
			return slog.String(a.Key, Mask(s.String()))
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}
