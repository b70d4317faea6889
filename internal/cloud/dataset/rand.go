package dataset

import (
	"encoding/binary"
	"time"

	"github.com/google/uuid"
)

// The generator's randomness is a hash, not math/rand (the shape rules keep
// math/rand in backoff and the simulators): splitmix64 over the seed and
// the coordinates of what is drawn (employee, day, stream), so that every
// employee-day is the same whatever order or worker draws it.

const golden = 0x9e3779b97f4a7c15

// mix is splitmix64's finaliser: a bijective 64-bit hash.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// rng is a splitmix64 stream.
type rng struct{ s uint64 }

// newRNG starts the stream named by parts (seed first).
func newRNG(parts ...uint64) rng {
	s := uint64(golden)
	for _, p := range parts {
		s = mix(s ^ p + golden)
	}
	return rng{s: s}
}

func (r *rng) next() uint64 {
	r.s += golden
	return mix(r.s)
}

// intn is uniform in [0, n) (n > 0; the modulo bias is negligible here).
func (r *rng) intn(n int) int { return int(r.next() % uint64(n)) }

// between is uniform in [lo, hi).
func (r *rng) between(lo, hi int) int { return lo + r.intn(hi-lo) }

// chance is true with probability p.
func (r *rng) chance(p float64) bool { return float64(r.next()>>11)/(1<<53) < p }

// secs is a duration of between lo and hi seconds.
func (r *rng) secs(lo, hi int) time.Duration { return time.Duration(r.between(lo, hi)) * time.Second }

// mins is a duration of between lo and hi minutes.
func (r *rng) mins(lo, hi int) time.Duration { return time.Duration(r.between(lo, hi)) * time.Minute }

// uuid7 is a UUIDv7 (RFC 9562) for an event at t, its 74 random bits drawn
// from r: ids ascend with time, as the agents' do (index locality).
func (r *rng) uuid7(t time.Time) uuid.UUID {
	var u uuid.UUID
	ms := uint64(t.UnixMilli())
	binary.BigEndian.PutUint64(u[8:], r.next())
	binary.BigEndian.PutUint64(u[0:], ms<<16|r.next()&0xffff)
	u[6] = 0x70 | u[6]&0x0f // version 7
	u[8] = 0x80 | u[8]&0x3f // variant 10
	return u
}
