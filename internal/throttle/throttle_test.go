package throttle

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/staffcontrol/staffcontrol/internal/logtest"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// clock is a settable test clock.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newLimiter(t *testing.T, cfg Config) (*Limiter, *clock) {
	t.Helper()
	c := &clock{t: time.Date(2026, 12, 4, 6, 0, 0, 0, time.UTC)}
	l, err := New(cfg, Deps{Now: c.now, Logger: logtest.New(t), Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	return l, c
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func attempt(src, prefix string) Attempt {
	return Attempt{Kind: "api_key", Source: addr(src), Prefix: prefix}
}

// step is one action of a table test: wait, fail n times, then check
// (unless want is "").
type step struct {
	wait   time.Duration // advance the clock
	fail   int           // then record this many failures
	want   string        // then Check must answer "ok", or refuse "source" or "prefix"
	retry  time.Duration // … with this RetryAfter (0: do not compare)
	source string        // the attempt's source (default 192.0.2.1)
	prefix string        // and prefix (default scgw_AAAA)
}

func TestLockoutGrowsDecaysAndIsCapped(t *testing.T) {
	cfg := Config{FreeFailures: 3, BaseLockout: time.Second, MaxLockout: 10 * time.Second, Decay: time.Minute}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"the free failures lock nothing", []step{{fail: 3, want: "ok"}}},
		{"the first failure past the free ones locks for the base", []step{{fail: 4, want: BySource, retry: time.Second},
			{wait: 999 * time.Millisecond, want: BySource, retry: time.Second}, {wait: time.Millisecond, want: "ok"}}},
		{"each further failure doubles the lockout", []step{{fail: 4}, {wait: time.Second, fail: 1, want: BySource, retry: 2 * time.Second},
			{wait: 2 * time.Second, fail: 1, want: BySource, retry: 4 * time.Second}, {wait: 4 * time.Second, fail: 1, want: BySource, retry: 8 * time.Second}}},
		{"the lockout is capped", []step{{fail: 40, want: BySource, retry: 10 * time.Second},
			{wait: 10 * time.Second, fail: 1, want: BySource, retry: 10 * time.Second}, {wait: 10 * time.Second, want: "ok"}}},
		{"a failure while locked extends to the longer lockout", []step{{fail: 5, want: BySource, retry: 2 * time.Second}}},
		{"one failure is forgiven per decay interval of quiet time", []step{{fail: 3}, {wait: 59 * time.Second, fail: 1, want: BySource, retry: time.Second},
			// Without the minute's forgiveness this would be the 5th failure (2 s).
			{wait: time.Second + time.Minute, fail: 1, want: BySource, retry: time.Second}}},
		{"decay counts from the end of a lockout, not from the failure", []step{{fail: 7, want: BySource, retry: 8 * time.Second},
			// 8 s of lock, then 59 s of quiet: nothing forgiven; the next failure is the 8th.
			{wait: 8*time.Second + 59*time.Second, fail: 1, want: BySource, retry: 10 * time.Second}}},
		{"all failures forgiven after enough quiet", []step{{fail: 6, want: BySource, retry: 4 * time.Second},
			{wait: 4*time.Second + 6*time.Minute, fail: 3, want: "ok"}}},
		{"a prefix is locked by failures from many sources; a failing source is refused",
			[]step{{fail: 1, source: "192.0.2.10"}, {fail: 1, source: "192.0.2.11"}, {fail: 1, source: "192.0.2.12"}, {fail: 1, source: "192.0.2.13"},
				{source: "192.0.2.13", want: ByPrefix, retry: time.Second}, {source: "192.0.2.10", want: ByPrefix}}},
		{"a source with no failures passes a locked prefix", []step{{fail: 1, source: "192.0.2.10"}, {fail: 1, source: "192.0.2.11"},
			{fail: 1, source: "192.0.2.12"}, {fail: 1, source: "192.0.2.13"}, {source: "198.51.100.7", want: "ok"}}},
		{"another prefix is not locked by a prefix's failures", []step{{fail: 1, source: "192.0.2.10"}, {fail: 1, source: "192.0.2.11"},
			{fail: 1, source: "192.0.2.12"}, {fail: 1, source: "192.0.2.13"}, {source: "192.0.2.13", prefix: "scgw_BBBB", want: "ok"}}},
		{"IPv6 sources count by their /64", []step{{fail: 2, source: "2001:db8:1:2::1"}, {fail: 2, source: "2001:db8:1:2:ffff::9", prefix: "scgw_BBBB"},
			{source: "2001:db8:1:2:abcd::1", prefix: "scgw_CCCC", want: BySource}, {source: "2001:db8:1:3::1", prefix: "scgw_CCCC", want: "ok"}}},
		{"IPv4-mapped IPv6 counts as the IPv4 address", []step{{fail: 4, source: "::ffff:192.0.2.1"},
			{source: "192.0.2.1", prefix: "scgw_CCCC", want: BySource}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, c := newLimiter(t, cfg)
			for i, s := range tc.steps {
				a := attempt(or(s.source, "192.0.2.1"), or(s.prefix, "scgw_AAAA"))
				c.advance(s.wait)
				for range s.fail {
					l.Fail(a, "unknown")
				}
				if s.want == "" {
					continue
				}
				d := l.Check(a)
				if d.OK != (s.want == "ok") || (!d.OK && d.By != s.want) {
					t.Fatalf("step %d: %+v, want %s", i, d, s.want)
				}
				if !d.OK && s.retry != 0 && d.RetryAfter != s.retry {
					t.Fatalf("step %d: RetryAfter = %v, want %v", i, d.RetryAfter, s.retry)
				}
			}
		})
	}
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func TestSourceGroup(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1":             "192.0.2.1",
		"::ffff:192.0.2.1":      "192.0.2.1",
		"2001:db8:1:2:3:4:5:6":  "2001:db8:1:2::/64",
		"2001:db8:1:2::":        "2001:db8:1:2::/64",
		"fe80::1%eth0":          "fe80::/64",
		"2001:db8:1:3:ffff::ff": "2001:db8:1:3::/64",
	} {
		if got := SourceGroup(addr(in)); got != want {
			t.Errorf("SourceGroup(%s) = %s, want %s", in, got, want)
		}
	}
	if got := SourceGroup(netip.Addr{}); got != "invalid" {
		t.Errorf("SourceGroup(zero) = %s", got)
	}
}

// TestAVerifiedCredentialPassesEveryLock is the rightful holder's
// guarantee: once its credential was verified, neither its prefix's lock
// nor its own source's lock refuses it, and no success resets anyone's
// penalty.
func TestAVerifiedCredentialPassesEveryLock(t *testing.T) {
	l, c := newLimiter(t, Config{FreeFailures: 2})
	good := Attempt{Kind: "api_key", Source: addr("198.51.100.1"), Prefix: "scgw_AAAA", Credential: []byte("digest-of-the-right-key")}
	if !l.Check(good).OK {
		t.Fatal("a fresh limiter refused")
	}
	l.Succeed(good)
	// An attacker at another address, and one at the holder's own address,
	// guessing keys with the holder's prefix.
	for i := range 50 {
		src := "203.0.113.9"
		if i%2 == 1 {
			src = "198.51.100.1"
		}
		l.Fail(Attempt{Kind: "api_key", Source: addr(src), Prefix: "scgw_AAAA", Credential: []byte(fmt.Sprint("guess", i))}, "unknown")
	}
	for _, src := range []string{"198.51.100.1", "203.0.113.9", "192.0.2.77"} {
		a := good
		a.Source = addr(src)
		if d := l.Check(a); !d.OK || !d.Verified {
			t.Fatalf("the verified key from %s was refused: %+v", src, d)
		}
	}
	// Its success reset nothing: the guessers stay locked.
	l.Succeed(good)
	if d := l.Check(attempt("203.0.113.9", "scgw_ZZZZ")); d.OK || d.By != BySource {
		t.Fatalf("the guessing source was let through after the holder's success: %+v", d)
	}
	if d := l.Check(attempt("198.51.100.1", "scgw_AAAA")); d.OK {
		t.Fatalf("an unverified key from the shared address passed: %+v", d)
	}
	// A failure of the verified credential itself (it was revoked) forgets it.
	l.Fail(good, "unknown")
	if d := l.Check(good); d.OK {
		t.Fatalf("a credential that failed still passes: %+v", d)
	}
	// And the memory of a success ends VerifiedTTL after it.
	other := Attempt{Kind: "api_key", Source: addr("203.0.113.9"), Prefix: "scgw_AAAA", Credential: []byte("another-right-key")}
	l.Succeed(other)
	c.advance(DefaultVerifiedTTL - time.Second)
	if !l.Check(other).OK {
		t.Fatal("forgotten before its TTL")
	}
	c.advance(2 * time.Second)
	if d := l.Check(other); d.Verified {
		t.Fatalf("remembered after its TTL: %+v", d)
	}
	// Kinds are apart: a verified API key digest does not pass as a token.
	tok := good
	tok.Kind, tok.Credential = "provisioning_token", []byte("x")
	l.Succeed(tok)
	tok.Kind = "api_key"
	if d := l.Check(tok); d.Verified {
		t.Fatal("a provisioning token's success let an API key through")
	}
}

// TestMemoryIsBounded sprays addresses and prefixes far past MaxEntries:
// the limiter never holds more, counts the evictions, keeps the most
// recent offenders, and drops forgotten entries before live ones.
func TestMemoryIsBounded(t *testing.T) {
	const max = 100
	for _, tc := range []struct {
		name   string
		spray  func(i int) Attempt
		verify bool
	}{
		{"addresses", func(i int) Attempt { return attempt(fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255), "") }, false},
		{"IPv6 /64s", func(i int) Attempt { return attempt(fmt.Sprintf("2001:db8:%x:%x::1", i>>16, i&0xffff), "") }, false},
		{"prefixes from one source", func(i int) Attempt { return attempt("192.0.2.1", fmt.Sprintf("scgw_%04d", i)) }, false},
		{"verified credentials", func(i int) Attempt {
			a := attempt("192.0.2.1", "scgw_AAAA")
			a.Credential = []byte(fmt.Sprint(i))
			return a
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, c := newLimiter(t, Config{MaxEntries: max})
			for i := range 10 * max {
				if tc.verify {
					l.Succeed(tc.spray(i))
				} else {
					l.Fail(tc.spray(i), "unknown")
				}
				c.advance(time.Millisecond)
				if len(l.entries) > max || l.lru.Len() != len(l.entries) || len(l.verified) > max || l.vlru.Len() != len(l.verified) {
					t.Fatalf("after %d: %d entries (list %d), %d verified (list %d); max %d", i+1, len(l.entries), l.lru.Len(), len(l.verified), l.vlru.Len(), max)
				}
			}
			if tc.verify {
				if !l.Check(tc.spray(10*max - 1)).Verified {
					t.Fatal("the newest verified credential was evicted")
				}
				return
			}
			if got := counterValue(t, l.evictions); got == 0 {
				t.Fatal("no eviction counted")
			}
		})
	}
	t.Run("forgotten entries go first", func(t *testing.T) {
		l, c := newLimiter(t, Config{MaxEntries: 4, FreeFailures: 1, Decay: time.Second})
		for _, s := range []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"} {
			l.Fail(attempt(s, ""), "unknown")
		}
		c.advance(2 * time.Second) // all three forgiven
		locked := attempt("10.0.0.4", "")
		l.Fail(locked, "unknown")
		l.Fail(locked, "unknown")
		for _, s := range []string{"10.0.0.5", "10.0.0.6", "10.0.0.7"} {
			l.Fail(attempt(s, ""), "unknown")
		}
		if d := l.Check(locked); d.OK {
			t.Fatal("a live lock was evicted while forgotten entries could go")
		}
		if got := counterValue(t, l.evictions); got != 0 {
			t.Fatalf("%v evictions counted; dropping forgotten entries is not an eviction", got)
		}
	})
}

// TestLockWarningsAreRateLimited: one warning per lock, at most one line
// per 10 s, the next line counting those not logged.
func TestLockWarningsAreRateLimited(t *testing.T) {
	var buf bytes.Buffer
	c := &clock{t: time.Date(2026, 12, 4, 6, 0, 0, 0, time.UTC)}
	l, err := New(Config{FreeFailures: 1}, Deps{Now: c.now, Logger: slog.New(slog.NewJSONHandler(&buf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		a := attempt(fmt.Sprintf("10.0.0.%d", i), "")
		l.Fail(a, "unknown")
		l.Fail(a, "unknown") // locks
		l.Fail(a, "unknown") // already locked: no new warning
	}
	c.advance(10 * time.Second)
	a := attempt("10.0.1.1", "")
	l.Fail(a, "unknown")
	l.Fail(a, "unknown")
	logtest.Check(t, bytes.NewReader(buf.Bytes()))
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2:\n%s", len(lines), buf.String())
	}
	var first, second map[string]any
	_ = json.Unmarshal([]byte(lines[0]), &first)
	_ = json.Unmarshal([]byte(lines[1]), &second)
	if first["level"] != "WARN" || first["source"] != "10.0.0.0" || first["by"] != "source" || first["kind"] != "api_key" {
		t.Errorf("first line %v", first)
	}
	if second["other_locks_not_logged"] != float64(99) {
		t.Errorf("second line %v, want other_locks_not_logged 99", second)
	}
}

func TestMetrics(t *testing.T) {
	l, _ := newLimiter(t, Config{FreeFailures: 1})
	a := attempt("192.0.2.1", "scgw_AAAA")
	l.Fail(a, "unknown")
	l.Fail(a, "malformed")
	l.Check(a)
	l.Check(a)
	b := attempt("192.0.2.2", "scgw_AAAA")
	l.Fail(b, "unknown")
	l.Check(b)
	for _, c := range []struct {
		got  float64
		want float64
		name string
	}{
		{counterValue(t, l.failures.WithLabelValues("api_key", "unknown")), 2, "failures unknown"},
		{counterValue(t, l.failures.WithLabelValues("api_key", "malformed")), 1, "failures malformed"},
		{counterValue(t, l.throttled.WithLabelValues("api_key", BySource)), 2, "throttled by source"},
		{counterValue(t, l.throttled.WithLabelValues("api_key", ByPrefix)), 1, "throttled by prefix"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestNewRefusesACapBelowTheBase(t *testing.T) {
	if _, err := New(Config{BaseLockout: time.Minute, MaxLockout: time.Second}, Deps{}); err == nil || !strings.Contains(err.Error(), "MaxLockout") {
		t.Fatalf("err = %v", err)
	}
}

func TestSource(t *testing.T) {
	proxies, err := ParseTrustedProxies("10.0.0.0/8, 192.0.2.7 ,2001:db8::/32")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, remote, xff string
		proxies           []netip.Prefix
		want              string
	}{
		{"the TCP peer", "198.51.100.1:4000", "", proxies, "198.51.100.1"},
		{"no trusted proxies: the header is ignored", "10.1.1.1:4000", "203.0.113.5", nil, "10.1.1.1"},
		{"an untrusted peer's header is ignored", "198.51.100.1:4000", "203.0.113.5", proxies, "198.51.100.1"},
		{"a trusted proxy's client", "10.1.1.1:4000", "203.0.113.5", proxies, "203.0.113.5"},
		{"a spoofed hop left of the real client is ignored", "10.1.1.1:4000", "1.2.3.4, 203.0.113.5", proxies, "203.0.113.5"},
		{"trusted hops are skipped from the right", "192.0.2.7:4000", "203.0.113.5, 10.9.9.9", proxies, "203.0.113.5"},
		{"a garbage hop ends the walk", "10.1.1.1:4000", "203.0.113.5, bogus", proxies, "10.1.1.1"},
		{"an IPv6 peer", "[2001:db8::1]:4000", "", nil, "2001:db8::1"},
		{"an IPv6 proxy and client", "[2001:db8::1]:4000", "2a00:1450::5", proxies, "2a00:1450::5"},
		{"an IPv4-mapped peer", "[::ffff:198.51.100.1]:4000", "", nil, "198.51.100.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tc.remote
			if tc.xff != "" {
				r.Header.Set(HeaderForwardedFor, tc.xff)
			}
			if got := Source(r, tc.proxies); got != addr(tc.want) {
				t.Fatalf("Source = %v, want %s", got, tc.want)
			}
		})
	}
	for _, bad := range []string{"10.0.0.0/33", "example.com", "10.0.0.1/8/8"} {
		if _, err := ParseTrustedProxies(bad); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("ParseTrustedProxies(%q) err = %v", bad, err)
		}
	}
}

func TestWriteRefusal(t *testing.T) {
	for _, tc := range []struct {
		d         Decision
		retry     string
		inMessage string
	}{
		{Decision{By: BySource, RetryAfter: 1500 * time.Millisecond}, "2", "from this address"},
		{Decision{By: ByPrefix, RetryAfter: 10 * time.Millisecond}, "1", "for this credential"},
		{Decision{By: BySource, RetryAfter: 15 * time.Minute}, "900", "retry in 900 s"},
	} {
		w := httptest.NewRecorder()
		WriteRefusal(w, tc.d, protocol.HeaderAPIKey)
		var body protocol.ErrorResponse
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
			t.Fatal(err)
		}
		if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != tc.retry || body.Error != protocol.ErrCodeThrottled ||
			body.Field != protocol.HeaderAPIKey || !strings.Contains(body.Message, tc.inMessage) {
			t.Errorf("%+v: %d Retry-After %q %+v", tc.d, w.Code, w.Header().Get("Retry-After"), body)
		}
	}
}

// counterValue reads a counter.
func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// TestConcurrentGuessesAreBounded: once a source has failed, it has only
// as many distinct credentials in flight as failures left before its lock,
// so concurrent guesses reach verification no more often than sequential
// ones; a source that never failed is not bounded (many rightful holders
// behind one address start unverified at once); one credential used by
// many concurrent requests counts once.
func TestConcurrentGuessesAreBounded(t *testing.T) {
	l, c := newLimiter(t, Config{FreeFailures: 3})
	guess := func(src, cred string) Attempt {
		a := attempt(src, "scgw_"+cred[:4])
		a.Credential = []byte(cred)
		return a
	}
	// A clean address: a thousand distinct credentials at once all pass.
	for i := range 1000 {
		if d := l.Check(guess("192.0.2.9", fmt.Sprintf("%04d-holder", i))); !d.OK {
			t.Fatalf("holder %d behind a clean address refused: %+v", i, d)
		}
	}
	for i := range 1000 {
		l.Succeed(guess("192.0.2.9", fmt.Sprintf("%04d-holder", i)))
	}
	// A source that failed once: 2 failures left, so 2 in flight.
	l.Fail(guess("192.0.2.1", "zzzz0"), "unknown")
	for _, cred := range []string{"aaaa1", "bbbb2"} {
		if d := l.Check(guess("192.0.2.1", cred)); !d.OK {
			t.Fatalf("%s refused: %+v", cred, d)
		}
	}
	if d := l.Check(guess("192.0.2.1", "dddd4")); d.OK || d.By != BySource || d.RetryAfter != time.Second {
		t.Fatalf("a 3rd distinct credential in flight: %+v", d)
	}
	for range 10 {
		if d := l.Check(guess("192.0.2.1", "aaaa1")); !d.OK {
			t.Fatalf("the same credential again: %+v", d)
		}
	}
	if d := l.Check(guess("192.0.2.2", "dddd4")); !d.OK {
		t.Fatalf("another source was limited by this one's flights: %+v", d)
	}
	l.Fail(guess("192.0.2.1", "bbbb2"), "unknown") // 2 failures: 1 left; aaaa1 in flight
	if d := l.Check(guess("192.0.2.1", "dddd4")); d.OK {
		t.Fatalf("a failure freed a slot it should have used up: %+v", d)
	}
	for i := range 11 { // aaaa1's eleven requests end one by one
		if d := l.Check(guess("192.0.2.1", "dddd4")); d.OK {
			t.Fatalf("a slot freed with %d of aaaa1's requests still in flight", 11-i)
		}
		l.Done(guess("192.0.2.1", "aaaa1"))
	}
	if d := l.Check(guess("192.0.2.1", "dddd4")); !d.OK {
		t.Fatalf("Done did not free a slot: %+v", d)
	}
	c.advance(time.Minute) // dddd4 never reported: stale; and one failure forgiven: 2 left
	for _, cred := range []string{"eeee5", "ffff6"} {
		if d := l.Check(guess("192.0.2.1", cred)); !d.OK {
			t.Fatalf("%s refused after the flight went stale: %+v", cred, d)
		}
	}
	if d := l.Check(guess("192.0.2.1", "ffff7")); d.OK {
		t.Fatalf("three at once with two failures left: %+v", d)
	}
	// Past the free failures, one at a time (and the lock in between).
	l.Fail(guess("192.0.2.1", "eeee5"), "unknown")
	l.Fail(guess("192.0.2.1", "ffff6"), "unknown")
	l.Fail(guess("192.0.2.1", "gggg7"), "unknown") // the 4th: locked 1 s
	c.advance(time.Second)
	if d := l.Check(guess("192.0.2.1", "hhhh8")); !d.OK {
		t.Fatalf("after the lock: %+v", d)
	}
	if d := l.Check(guess("192.0.2.1", "iiii9")); d.OK {
		t.Fatalf("two at once past the free failures: %+v", d)
	}
	// A clean source passes a locked prefix one attempt at a time.
	for i := range 4 {
		l.Fail(guess(fmt.Sprintf("198.51.100.%d", i), "zzzz"+fmt.Sprint(i)), "unknown")
	}
	if d := l.Check(guess("203.0.113.1", "zzzzA")); !d.OK {
		t.Fatalf("a clean source at a locked prefix: %+v", d)
	}
	if d := l.Check(guess("203.0.113.1", "zzzzB")); d.OK || d.By != ByPrefix {
		t.Fatalf("a clean source's 2nd concurrent guess at a locked prefix: %+v", d)
	}
	// … while its attempts at other prefixes are not held back by that one.
	for _, cred := range []string{"yyyy1", "xxxx2"} {
		if d := l.Check(guess("203.0.113.1", cred)); !d.OK {
			t.Fatalf("a clean source's attempt at another prefix: %+v", d)
		}
	}
	if d := l.Check(guess("203.0.113.1", "zzzzC")); d.OK {
		t.Fatalf("other prefixes' flights freed the locked prefix's slot: %+v", d)
	}
	l.Done(guess("203.0.113.1", "zzzzA"))
	if d := l.Check(guess("203.0.113.1", "zzzzC")); !d.OK {
		t.Fatalf("other prefixes' flights hold back the locked prefix's one attempt: %+v", d)
	}
	// A verified credential is never held back by flights.
	v := guess("192.0.2.1", "vvvvV")
	l.Succeed(v)
	for range 20 {
		if d := l.Check(v); !d.OK || !d.Verified {
			t.Fatalf("verified: %+v", d)
		}
	}
}

// TestALongPrefixIsBounded: a prefix is kept to its first 64 bytes, so a
// caller passing attacker-chosen text cannot grow an entry.
func TestALongPrefixIsBounded(t *testing.T) {
	l, _ := newLimiter(t, Config{FreeFailures: 1})
	long := strings.Repeat("x", 10_000)
	for i := range 3 {
		l.Fail(attempt(fmt.Sprintf("192.0.2.%d", i), long+fmt.Sprint(i)), "unknown")
	}
	for k := range l.entries {
		if len(k) > 100 {
			t.Fatalf("an entry key of %d bytes", len(k))
		}
	}
	// The three share their first 64 bytes: one prefix, locked.
	if d := l.Check(attempt("192.0.2.0", long+"9")); d.OK || d.By != ByPrefix {
		t.Fatalf("%+v", d)
	}
}
