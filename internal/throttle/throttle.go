// Package throttle limits FAILED credential attempts (API keys,
// provisioning tokens, enrolment secrets, logins) in process. Failures are
// counted under two keys at once — the source address (an IPv6 address
// counts by its /64) and the credential prefix (the non-secret part that
// says which credential a guess is aimed at) — and each key is locked for
// a time that doubles with every failure past a free allowance, up to a
// cap. Failures are forgiven one per decay interval of quiet time after the
// last failure or lockout. Successful attempts are never counted and reset
// nothing: penalties only decay.
//
// A valid credential is never locked out by someone else's failures: a
// credential verified in this process recently (remembered by its digest,
// never the secret) passes both limits, and a source with no failures of
// its own passes a locked prefix (so guesses spread over many addresses
// cost one check per address while the prefix is locked, and the rightful
// holder's clean address still gets through). The caller verifies every
// attempt the limiter lets through exactly as before, so a revoked
// credential stays refused.
//
// Memory is bounded: at most MaxEntries sources and prefixes and as many
// verified credentials are held; beyond that the least recently failed
// entry is evicted.
package throttle

import (
	"container/list"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Which limit refused an attempt (Decision.By, the "by" metric label).
const (
	BySource = "source"
	ByPrefix = "prefix"
)

// Config is the limiter's policy. A zero field takes its default.
type Config struct {
	// FreeFailures is how many failures a source or a prefix may have
	// before it is locked (default 5).
	FreeFailures int
	// BaseLockout is the lockout after the first failure past the free
	// ones; each further failure doubles it (default 1 s).
	BaseLockout time.Duration
	// MaxLockout caps a lockout (default 15 min).
	MaxLockout time.Duration
	// Decay forgives one failure per interval of quiet time after the
	// last failure or the end of its lockout (default 1 min).
	Decay time.Duration
	// MaxEntries bounds the sources and prefixes held, and separately the
	// verified credentials held (default 100,000 each).
	MaxEntries int
	// VerifiedTTL is how long a verified credential passes the limits
	// after its last success (default 24 h).
	VerifiedTTL time.Duration
}

// Defaults of Config.
const (
	DefaultFreeFailures = 5
	DefaultBaseLockout  = time.Second
	DefaultMaxLockout   = 15 * time.Minute
	DefaultDecay        = time.Minute
	DefaultMaxEntries   = 100_000
	DefaultVerifiedTTL  = 24 * time.Hour
)

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.FreeFailures <= 0 {
		c.FreeFailures = DefaultFreeFailures
	}
	if c.BaseLockout <= 0 {
		c.BaseLockout = DefaultBaseLockout
	}
	if c.MaxLockout <= 0 {
		c.MaxLockout = DefaultMaxLockout
	}
	if c.Decay <= 0 {
		c.Decay = DefaultDecay
	}
	if c.MaxEntries <= 0 {
		c.MaxEntries = DefaultMaxEntries
	}
	if c.VerifiedTTL <= 0 {
		c.VerifiedTTL = DefaultVerifiedTTL
	}
	return c
}

// Deps are the limiter's dependencies; every one is optional.
type Deps struct {
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger receives a warning when a source or prefix is locked, at
	// most one line per 10 s (default: no log).
	Logger *slog.Logger
	// Registerer receives auth_failures_total{kind,reason},
	// auth_throttled_total{kind,by} and auth_throttle_evictions_total
	// (default: not registered).
	Registerer prometheus.Registerer
}

// Attempt is one presented credential.
type Attempt struct {
	// Kind is the credential kind, e.g. "api_key" (a metric label: use a
	// constant).
	Kind string
	// Source is the client's address; an IPv6 address counts by its /64.
	Source netip.Addr
	// Prefix is the non-secret part of the credential that identifies
	// which one it claims to be; "" when there is none (then only the
	// source is limited).
	Prefix string
	// Credential is a digest of the presented credential (e.g. its
	// SHA-256), never the secret itself. It lets a verified credential
	// pass the limits and bounds how many guesses a source has in flight
	// at once; nil opts out of both.
	Credential []byte
}

// Decision is Check's answer.
type Decision struct {
	// OK lets the attempt be verified.
	OK bool
	// Verified means OK because the credential was verified recently.
	Verified bool
	// By is the limit that refused (BySource or ByPrefix).
	By string
	// RetryAfter is how long the refusing lock lasts (≥ 1 s when refused).
	RetryAfter time.Duration
}

// logEvery is the least time between two lock warnings.
const logEvery = 10 * time.Second

// maxPrefix bounds the length of a prefix kept in memory.
const maxPrefix = 64

// Limiter is the in-process limiter. Its methods are safe for concurrent use.
type Limiter struct {
	cfg    Config
	now    func() time.Time
	logger *slog.Logger

	mu       sync.Mutex
	entries  map[string]*list.Element // of *entry
	lru      *list.List               // front: most recently failed
	verified map[string]*list.Element // of *verifiedCred
	vlru     *list.List
	lastLog  time.Time
	unlogged int // locks not logged since the last line

	failures  *prometheus.CounterVec
	throttled *prometheus.CounterVec
	evictions prometheus.Counter
}

type entry struct {
	key, kind, by, id string
	failures          int       // as of ref
	ref               time.Time // decay counts from here: the last failure or lockout end
	lockedUntil       time.Time
	flights           map[string]*flight // a source's credentials being verified
}

type verifiedCred struct {
	key     string
	expires time.Time
}

// New returns a Limiter with cfg (zero fields take their defaults).
func New(cfg Config, d Deps) (*Limiter, error) {
	cfg = cfg.WithDefaults()
	if cfg.MaxLockout < cfg.BaseLockout {
		return nil, fmt.Errorf("throttle: MaxLockout %v is below BaseLockout %v", cfg.MaxLockout, cfg.BaseLockout)
	}
	l := &Limiter{cfg: cfg, now: d.Now, logger: d.Logger,
		entries: map[string]*list.Element{}, lru: list.New(), verified: map[string]*list.Element{}, vlru: list.New(),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "auth_failures_total",
			Help: "Failed credential attempts, by credential kind and reason."}, []string{"kind", "reason"}),
		throttled: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "auth_throttled_total",
			Help: "Credential attempts refused (429) before verification, by kind and by the limit that refused (source or prefix)."}, []string{"kind", "by"}),
		evictions: prometheus.NewCounter(prometheus.CounterOpts{Name: "auth_throttle_evictions_total",
			Help: "Throttle entries evicted because the limiter was full (a spray of addresses or prefixes)."}),
	}
	if l.now == nil {
		l.now = time.Now
	}
	if d.Registerer != nil {
		for _, c := range []prometheus.Collector{l.failures, l.throttled, l.evictions} {
			if err := d.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("throttle: register metrics: %w", err)
			}
		}
	}
	return l, nil
}

// SourceGroup is the unit a source address is counted by: the address
// itself for IPv4 (and IPv4-mapped IPv6), its /64 for IPv6.
func SourceGroup(a netip.Addr) string {
	if !a.IsValid() {
		return "invalid"
	}
	a = a.Unmap()
	if a.Is4() {
		return a.String()
	}
	p, _ := a.WithZone("").Prefix(64)
	return p.String()
}

func sourceKey(a Attempt) string { return a.Kind + "\x00s\x00" + SourceGroup(a.Source) }

func prefixKey(a Attempt) string {
	p := a.Prefix
	if len(p) > maxPrefix {
		p = p[:maxPrefix]
	}
	return a.Kind + "\x00p\x00" + p
}

func verifiedKey(a Attempt) string { return a.Kind + "\x00" + string(a.Credential) }

// Check says whether an attempt may be verified. It counts a refusal; it
// never counts a failure (refused attempts cost nothing and extend nothing).
//
// An attempt Check lets through with a Credential is in flight until Fail,
// Succeed or Done reports its outcome (or a minute passes). A source with
// failures may have only as many distinct credentials in flight as it has
// failures left before a lock (at least one), so once a guess has failed,
// concurrent guesses cost no more verifications than sequential ones.
// Concurrent requests with one credential count once. A source with no
// failures is not bounded: many rightful holders behind one address (a
// NAT, a proxy not listed as trusted) all start unverified at once, and
// must not be refused when nobody failed.
func (l *Limiter) Check(a Attempt) Decision {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if a.Credential != nil {
		if e, ok := l.verified[verifiedKey(a)]; ok {
			if now.Before(e.Value.(*verifiedCred).expires) {
				return Decision{OK: true, Verified: true}
			}
			l.vlru.Remove(e)
			delete(l.verified, verifiedKey(a))
		}
	}
	src := l.entry(sourceKey(a))
	if src != nil && now.Before(src.lockedUntil) {
		return l.refuse(a.Kind, BySource, src.lockedUntil.Sub(now))
	}
	failures := 0
	if src != nil {
		failures = src.effective(now, l.cfg.Decay)
	}
	budget, by := 0, BySource // 0: no bound on flights
	if failures > 0 {
		budget = max(l.cfg.FreeFailures-failures, 1)
	}
	if a.Prefix != "" {
		if pre := l.entry(prefixKey(a)); pre != nil && now.Before(pre.lockedUntil) {
			if failures > 0 {
				return l.refuse(a.Kind, ByPrefix, pre.lockedUntil.Sub(now))
			}
			// A source with no failures of its own passes a locked prefix,
			// one attempt at it at a time: its first failure makes it one
			// that does not.
			budget, by = 1, ByPrefix
		}
	}
	if a.Credential == nil {
		return Decision{OK: true}
	}
	if src == nil {
		src = l.add(now, sourceKey(a), a.Kind, BySource, SourceGroup(a.Source))
	}
	k := string(a.Credential)
	f := src.flights[k]
	if f == nil {
		scope := "" // all the source's flights
		if by == ByPrefix {
			scope = prefixKey(a) // only those at the locked prefix
		}
		if budget > 0 && src.inFlight(now, scope) >= budget {
			return l.refuse(a.Kind, by, time.Second)
		}
		if src.flights == nil {
			src.flights = map[string]*flight{}
		}
		f = &flight{prefix: prefixKey(a)}
		src.flights[k] = f
	}
	f.n++
	f.at = now
	return Decision{OK: true}
}

// flight is a credential being verified: how many attempts with it, and
// when the last began.
type flight struct {
	n      int
	at     time.Time
	prefix string // its prefixKey
}

// flightTTL is how long an attempt counts as in flight without an outcome.
const flightTTL = time.Minute

// inFlight counts the distinct credentials in flight (only those at the
// prefix key scope, unless it is ""), dropping stale ones.
func (e *entry) inFlight(now time.Time, scope string) int {
	n := 0
	for k, f := range e.flights {
		if now.Sub(f.at) >= flightTTL {
			delete(e.flights, k)
			continue
		}
		if scope == "" || f.prefix == scope {
			n++
		}
	}
	return n
}

// land ends one attempt in flight (under l.mu).
func (l *Limiter) land(a Attempt) {
	if a.Credential == nil {
		return
	}
	src := l.entry(sourceKey(a))
	if src == nil {
		return
	}
	k := string(a.Credential)
	if f := src.flights[k]; f != nil {
		if f.n--; f.n <= 0 {
			delete(src.flights, k)
		}
	}
}

// Done ends an attempt Check let through whose outcome is neither a
// failure nor a success (e.g. the database was unavailable).
func (l *Limiter) Done(a Attempt) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.land(a)
}

func (l *Limiter) refuse(kind, by string, d time.Duration) Decision {
	l.throttled.WithLabelValues(kind, by).Inc()
	if d < time.Second {
		d = time.Second
	}
	return Decision{By: by, RetryAfter: d}
}

func (l *Limiter) entry(key string) *entry {
	if e, ok := l.entries[key]; ok {
		return e.Value.(*entry)
	}
	return nil
}

// effective is the failure count at now, after decay.
func (e *entry) effective(now time.Time, decay time.Duration) int {
	if !now.After(e.ref) {
		return e.failures
	}
	n := e.failures - int(now.Sub(e.ref)/decay)
	if n < 0 {
		return 0
	}
	return n
}

// Fail records a failed verification of an attempt Check let through.
// reason is a metric label (use a constant, e.g. "unknown", "malformed").
// The credential, if it was remembered as verified, is forgotten.
func (l *Limiter) Fail(a Attempt, reason string) {
	l.failures.WithLabelValues(a.Kind, reason).Inc()
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.land(a)
	if a.Credential != nil {
		if e, ok := l.verified[verifiedKey(a)]; ok {
			l.vlru.Remove(e)
			delete(l.verified, verifiedKey(a))
		}
	}
	l.fail(now, a.Kind, BySource, sourceKey(a), SourceGroup(a.Source))
	if a.Prefix != "" {
		p := a.Prefix
		if len(p) > maxPrefix {
			p = p[:maxPrefix]
		}
		l.fail(now, a.Kind, ByPrefix, prefixKey(a), p)
	}
}

func (l *Limiter) fail(now time.Time, kind, by, key, id string) {
	var e *entry
	if el, ok := l.entries[key]; ok {
		e = el.Value.(*entry)
		l.lru.MoveToFront(el)
	} else {
		e = l.add(now, key, kind, by, id)
	}
	wasLocked := now.Before(e.lockedUntil)
	e.failures = e.effective(now, l.cfg.Decay) + 1
	e.ref = now
	over := e.failures - l.cfg.FreeFailures
	if over <= 0 {
		if e.lockedUntil.After(e.ref) {
			e.ref = e.lockedUntil
		}
		return
	}
	d := l.cfg.MaxLockout
	if over <= 40 {
		if x := l.cfg.BaseLockout << (over - 1); x > 0 && x < d {
			d = x
		}
	}
	if until := now.Add(d); until.After(e.lockedUntil) {
		e.lockedUntil = until
	}
	e.ref = e.lockedUntil
	if !wasLocked {
		l.logLock(now, e, d)
	}
}

// add starts an entry, making room for it.
func (l *Limiter) add(now time.Time, key, kind, by, id string) *entry {
	l.makeRoom(now)
	e := &entry{key: key, kind: kind, by: by, id: id}
	l.entries[key] = l.lru.PushFront(e)
	return e
}

// makeRoom drops forgotten entries from the cold end and, when the limiter
// is still full, evicts the least recently failed one.
func (l *Limiter) makeRoom(now time.Time) {
	for i := 0; i < 4 && l.lru.Len() > 0; i++ {
		e := l.lru.Back().Value.(*entry)
		if e.effective(now, l.cfg.Decay) > 0 || now.Before(e.lockedUntil) || e.inFlight(now, "") > 0 {
			break
		}
		l.lru.Remove(l.lru.Back())
		delete(l.entries, e.key)
	}
	for l.lru.Len() >= l.cfg.MaxEntries {
		e := l.lru.Remove(l.lru.Back()).(*entry)
		delete(l.entries, e.key)
		l.evictions.Inc()
	}
}

func (l *Limiter) logLock(now time.Time, e *entry, d time.Duration) {
	if l.logger == nil {
		return
	}
	if !l.lastLog.IsZero() && now.Sub(l.lastLog) < logEvery {
		l.unlogged++
		return
	}
	l.logger.Warn("credential attempts locked after repeated failures", "kind", e.kind, "by", e.by, e.by, e.id,
		"failures", e.failures, "lockout_seconds", d.Seconds(), "other_locks_not_logged", l.unlogged)
	l.lastLog, l.unlogged = now, 0
}

// Succeed records a successful verification (ending the attempt in
// flight): the credential passes both
// limits from now until VerifiedTTL after its last success. It resets no
// penalty of any source or prefix.
func (l *Limiter) Succeed(a Attempt) {
	if a.Credential == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.land(a)
	k := verifiedKey(a)
	exp := l.now().Add(l.cfg.VerifiedTTL)
	if el, ok := l.verified[k]; ok {
		el.Value.(*verifiedCred).expires = exp
		l.vlru.MoveToFront(el)
		return
	}
	for l.vlru.Len() >= l.cfg.MaxEntries {
		v := l.vlru.Remove(l.vlru.Back()).(*verifiedCred)
		delete(l.verified, v.key)
	}
	l.verified[k] = l.vlru.PushFront(&verifiedCred{key: k, expires: exp})
}
