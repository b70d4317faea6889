package service

import (
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/throttle"
)

// ThrottleConfig is how a service limits failed credential attempts
// (THROTTLE_*) and whose proxy headers it believes (TRUSTED_PROXIES).
type ThrottleConfig struct {
	// Limits is the limiter's policy; zero fields take their defaults.
	Limits throttle.Config
	// TrustedProxies are the peers whose X-Forwarded-For names the client
	// (TRUSTED_PROXIES, comma-separated addresses and CIDR prefixes;
	// default none: the TCP peer is the source).
	TrustedProxies []netip.Prefix
}

// Throttle configuration keys.
const (
	KeyThrottleFreeFailures = "THROTTLE_FREE_FAILURES"
	KeyThrottleBaseLockout  = "THROTTLE_BASE_LOCKOUT"
	KeyThrottleMaxLockout   = "THROTTLE_MAX_LOCKOUT"
	KeyThrottleDecay        = "THROTTLE_DECAY"
	KeyThrottleMaxEntries   = "THROTTLE_MAX_ENTRIES"
	KeyThrottleVerifiedTTL  = "THROTTLE_VERIFIED_TTL"
	KeyTrustedProxies       = "TRUSTED_PROXIES"
)

// ThrottleFromEnv reads a ThrottleConfig; absent keys take their defaults,
// and errors name the key.
func ThrottleFromEnv(getenv func(string) string) (ThrottleConfig, error) {
	var c ThrottleConfig
	for _, d := range []struct {
		key string
		dst *time.Duration
	}{{KeyThrottleBaseLockout, &c.Limits.BaseLockout}, {KeyThrottleMaxLockout, &c.Limits.MaxLockout},
		{KeyThrottleDecay, &c.Limits.Decay}, {KeyThrottleVerifiedTTL, &c.Limits.VerifiedTTL}} {
		v := getenv(d.key)
		if v == "" {
			continue
		}
		x, err := time.ParseDuration(v)
		if err != nil || x <= 0 {
			return c, fmt.Errorf("%s=%q: want a positive duration such as 30s", d.key, v)
		}
		*d.dst = x
	}
	for _, d := range []struct {
		key     string
		dst     *int
		example string
	}{{KeyThrottleFreeFailures, &c.Limits.FreeFailures, "5"}, {KeyThrottleMaxEntries, &c.Limits.MaxEntries, "100000"}} {
		v := getenv(d.key)
		if v == "" {
			continue
		}
		x, err := strconv.Atoi(v)
		if err != nil || x <= 0 {
			return c, fmt.Errorf("%s=%q: want a positive whole number such as %s", d.key, v, d.example)
		}
		*d.dst = x
	}
	c.Limits = c.Limits.WithDefaults()
	if c.Limits.MaxLockout < c.Limits.BaseLockout {
		return c, fmt.Errorf("%s=%v is below %s=%v", KeyThrottleMaxLockout, c.Limits.MaxLockout, KeyThrottleBaseLockout, c.Limits.BaseLockout)
	}
	var err error
	if c.TrustedProxies, err = throttle.ParseTrustedProxies(getenv(KeyTrustedProxies)); err != nil {
		return c, fmt.Errorf("%s: %w", KeyTrustedProxies, err)
	}
	return c, nil
}
