package service

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/throttle"
)

func TestThrottleFromEnv(t *testing.T) {
	t.Parallel()
	defaults := throttle.Config{}.WithDefaults()
	for _, tt := range []struct {
		name    string
		env     map[string]string
		wantErr string // substring naming the key; empty = valid
		want    ThrottleConfig
	}{
		{"defaults", nil, "", ThrottleConfig{Limits: defaults}},
		{"overrides", map[string]string{"THROTTLE_FREE_FAILURES": "10", "THROTTLE_BASE_LOCKOUT": "2s", "THROTTLE_MAX_LOCKOUT": "1h",
			"THROTTLE_DECAY": "30s", "THROTTLE_MAX_ENTRIES": "5000", "THROTTLE_VERIFIED_TTL": "1h", "TRUSTED_PROXIES": "10.0.0.0/8, 192.0.2.7"}, "",
			ThrottleConfig{Limits: throttle.Config{FreeFailures: 10, BaseLockout: 2 * time.Second, MaxLockout: time.Hour, Decay: 30 * time.Second,
				MaxEntries: 5000, VerifiedTTL: time.Hour}, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.7/32")}}},
		{"bad free failures", map[string]string{"THROTTLE_FREE_FAILURES": "five"}, "THROTTLE_FREE_FAILURES", ThrottleConfig{}},
		{"zero free failures", map[string]string{"THROTTLE_FREE_FAILURES": "0"}, "THROTTLE_FREE_FAILURES", ThrottleConfig{}},
		{"bad base lockout", map[string]string{"THROTTLE_BASE_LOCKOUT": "1"}, "THROTTLE_BASE_LOCKOUT", ThrottleConfig{}},
		{"negative max lockout", map[string]string{"THROTTLE_MAX_LOCKOUT": "-1m"}, "THROTTLE_MAX_LOCKOUT", ThrottleConfig{}},
		{"cap below base", map[string]string{"THROTTLE_BASE_LOCKOUT": "1m", "THROTTLE_MAX_LOCKOUT": "30s"}, "THROTTLE_MAX_LOCKOUT=30s is below THROTTLE_BASE_LOCKOUT", ThrottleConfig{}},
		{"bad decay", map[string]string{"THROTTLE_DECAY": "often"}, "THROTTLE_DECAY", ThrottleConfig{}},
		{"bad max entries", map[string]string{"THROTTLE_MAX_ENTRIES": "-5"}, "THROTTLE_MAX_ENTRIES", ThrottleConfig{}},
		{"bad verified ttl", map[string]string{"THROTTLE_VERIFIED_TTL": "0s"}, "THROTTLE_VERIFIED_TTL", ThrottleConfig{}},
		{"bad proxy", map[string]string{"TRUSTED_PROXIES": "10.0.0.0/8, proxy.example"}, "TRUSTED_PROXIES", ThrottleConfig{}},
	} {
		got, err := ThrottleFromEnv(func(k string) string { return tt.env[k] })
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: err = %v, want it to name %s", tt.name, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: %+v, %v; want %+v", tt.name, got, err, tt.want)
		}
	}
}
