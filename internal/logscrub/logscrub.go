// Package logscrub keeps secrets and personal data out of logs (issue 14):
// a slog.Handler wrapper that redacts attributes by name — passwords,
// tokens, API keys, secrets, authorisation headers, card numbers, e-mail
// addresses — at any group depth, and masks secrets by their shape inside
// any other string value and the message: e-mail addresses, long digit runs
// (card numbers), the platform's API keys and tokens (scgw_, scpt_, sca_,
// sce_, scrt_ followed by their random part), bearer credentials, JWTs,
// passwords in URLs (user:password@host) and key=value pairs naming a
// secret. With a TitleSwitch turned on (the policy's
// privacy.mask_window_titles), attributes holding window titles or URLs are
// redacted too.
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
	"sync/atomic"
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
	// The platform's secrets (internal/cloud/auth, internal/protocol,
	// internal/cloud/signin): a type prefix and a random base64url part. A
	// key prefix as logged on purpose (the type and four characters) is
	// shorter than 12 characters after the underscore and kept.
	keyRE = regexp.MustCompile(`\bsc(?:gw|pt|rt|a|e)_[A-Za-z0-9_\-]{12,}`)
	// Bearer and Basic credentials as an Authorization header carries them.
	bearerRE = regexp.MustCompile(`(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=\-]{8,}`)
	// A JWT: three base64url parts, the first two JSON objects ("eyJ").
	jwtRE = regexp.MustCompile(`\beyJ[A-Za-z0-9_\-]{4,}\.eyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]*`)
	// A password in a URL's userinfo: scheme://user:password@host.
	userinfoRE = regexp.MustCompile(`(://[^/\s:@]*):[^/\s@]+@`)
	// key=value or key: value naming a secret, as in a DSN or a quoted form.
	pairRE = regexp.MustCompile(`(?i)\b((?:password|passwd|pwd|secret|token|api[_\-]?key|access[_\-]?key|client[_\-]?secret)\s*[=:]\s*)("[^"]*"|'[^']*'|[^\s&,;"']+)`)
)

// Mask hides e-mail addresses, card-like digit runs and secrets recognised by
// their shape inside s.
func Mask(s string) string {
	if strings.Contains(s, "://") {
		s = userinfoRE.ReplaceAllString(s, "$1:"+Redacted+"@")
	}
	if strings.IndexByte(s, '@') >= 0 {
		s = emailRE.ReplaceAllString(s, "[email]")
	}
	if hasDigitRun(s, 12) {
		s = cardRE.ReplaceAllString(s, "[number]")
	}
	if strings.Contains(s, "sc") {
		s = keyRE.ReplaceAllString(s, "[key]")
	}
	if strings.Contains(s, "eyJ") {
		s = jwtRE.ReplaceAllString(s, "[jwt]")
	}
	if strings.IndexByte(s, ' ') >= 0 || strings.IndexByte(s, '\t') >= 0 {
		s = bearerRE.ReplaceAllString(s, "$1 "+Redacted)
	}
	if strings.IndexByte(s, '=') >= 0 || strings.IndexByte(s, ':') >= 0 {
		s = pairRE.ReplaceAllString(s, "${1}"+Redacted)
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

// TitleSwitch says whether window titles (and URLs) are personal data to
// keep out of logs: the gateway turns it on when its policy's
// privacy.mask_window_titles is true. The zero value is off; safe for
// concurrent use.
type TitleSwitch struct{ on atomic.Bool }

// Set turns masking of titles on or off.
func (s *TitleSwitch) Set(on bool) { s.on.Store(on) }

// On reports whether titles are masked; a nil switch is off.
func (s *TitleSwitch) On() bool { return s != nil && s.on.Load() }

// Options configures a Handler.
type Options struct {
	// Titles, when on, redacts attributes named for a window title or a URL
	// (window_title, title, url, …). Nil means never.
	Titles *TitleSwitch
}

// Handler wraps another slog.Handler and scrubs every record it passes on.
type Handler struct {
	next slog.Handler
	opts Options
}

// New returns a Handler that scrubs records before next handles them.
func New(next slog.Handler) *Handler { return &Handler{next: next} }

// NewWithOptions returns a Handler configured by opts.
func NewWithOptions(next slog.Handler, opts Options) *Handler {
	return &Handler{next: next, opts: opts}
}

// Enabled reports whether next handles level.
func (h *Handler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

// Handle scrubs r's message and attributes and passes it on.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	titles := h.opts.Titles.On()
	out := slog.NewRecord(r.Time, r.Level, Mask(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(scrub(a, titles))
		return true
	})
	return h.next.Handle(ctx, out)
}

// WithAttrs scrubs attrs once and returns a Handler over next.WithAttrs.
// Attributes given here are scrubbed of titles as the switch stands now.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	titles := h.opts.Titles.On()
	s := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		s[i] = scrub(a, titles)
	}
	return &Handler{next: h.next.WithAttrs(s), opts: h.opts}
}

// WithGroup returns a Handler over next.WithGroup.
func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{next: h.next.WithGroup(name), opts: h.opts}
}

// titleKey reports whether an attribute named key holds a window title or
// a URL.
func titleKey(key string) bool {
	k := strings.NewReplacer("-", "", "_", "", ".", "").Replace(strings.ToLower(key))
	return strings.Contains(k, "title") || k == "url" || strings.HasSuffix(k, "url") && k != "baseurl"
}

// scrub returns a with a sensitive value redacted, strings masked and
// groups scrubbed recursively.
func scrub(a slog.Attr, titles bool) slog.Attr {
	v := a.Value.Resolve()
	if v.Kind() == slog.KindGroup {
		g := v.Group()
		s := make([]slog.Attr, len(g))
		for i, m := range g {
			s[i] = scrub(m, titles)
		}
		return slog.Attr{Key: a.Key, Value: slog.GroupValue(s...)}
	}
	if sensitive(a.Key) || titles && titleKey(a.Key) {
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
