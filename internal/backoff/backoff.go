// Package backoff paces retries: capped exponential backoff with full
// jitter, and the floor a server's Retry-After sets.
//
// Full jitter draws each delay at random from (0, cap], where the cap
// doubles per failed attempt up to a maximum, so that clients that failed
// together (a cloud restart drops every gateway at once) come back spread
// over the whole interval instead of in waves.
package backoff

import (
	"context"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Policy is a capped exponential backoff with full jitter. The zero
// Policy retries at once.
type Policy struct {
	// Initial is the cap of the first retry's delay (attempt 0); it
	// doubles with each further attempt.
	Initial time.Duration
	// Max caps every delay; a Max below Initial (or zero) caps at Initial.
	Max time.Duration
}

// Cap returns the longest delay of an attempt (counted from 0):
// min(Max, Initial·2^attempt).
func (p Policy) Cap(attempt int) time.Duration {
	if p.Initial <= 0 {
		return 0
	}
	limit := max(p.Max, p.Initial)
	attempt = max(attempt, 0)
	// Initial·2^attempt exceeds limit exactly when Initial exceeds
	// limit/2^attempt; testing it that way cannot overflow.
	if attempt >= 63 || p.Initial > limit>>attempt {
		return limit
	}
	return p.Initial << attempt
}

// Delay returns the delay before retry number attempt (from 0): a random
// duration in (0, Cap(attempt)].
func (p Policy) Delay(attempt int) time.Duration {
	return Jitter(p.Cap(attempt))
}

// Jitter returns a random duration in (0, d], or 0 when d is not positive.
func Jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(d))) + 1
}

// Floor returns d, or the server's retryAfter when that is longer, capped
// at limit (limit ≤ 0: no cap). A server that asks for a pause is never
// retried sooner, and a server cannot stall a client for longer than limit.
func Floor(d, retryAfter, limit time.Duration) time.Duration {
	if retryAfter <= d {
		return d
	}
	if limit > 0 && retryAfter > limit {
		return max(d, limit)
	}
	return retryAfter
}

// ParseRetryAfter reads a Retry-After header value: delay-seconds or an
// HTTP-date (RFC 9110 §10.2.3), relative to now. A missing, malformed or
// past value is 0.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		const longest = 365 * 24 * time.Hour // beyond it a Duration could overflow
		switch {
		case n <= 0:
			return 0
		case n > int64(longest/time.Second):
			return longest
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// Sleep waits d, or until ctx ends; it reports whether the whole delay
// passed.
func Sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
