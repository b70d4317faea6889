package scenario

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Outcome is what one iteration reports.
type Outcome struct {
	// Latency is the request's duration, measured by the client.
	Latency time.Duration
	// Failed is a network error or an answer of 400 or more (k6's
	// http_req_failed).
	Failed bool
	// Events is the events the iteration carried (stored or not).
	Events int
	// Interrupted is an iteration cut by the end of the run (its context
	// cancelled after gracefulStop): counted apart, neither a request nor
	// a failure (k6's interrupted iterations).
	Interrupted bool
}

// Iteration is one unit of work run by virtual user vu (0-based; a user
// runs one iteration at a time, so per-user state needs no lock).
type Iteration func(ctx context.Context, vu int) Outcome

// bucket is one second of a recorder.
type bucket struct {
	requests, failures, events, dropped int
	interrupted                         int
	vus                                 int
	latencies                           []float64 // milliseconds
}

// Recorder gathers iteration outcomes by the second of their completion.
type Recorder struct {
	start   time.Time
	mu      sync.Mutex
	buckets []bucket
	active  atomic.Int64
}

// NewRecorder starts a recorder's clock at start.
func NewRecorder(start time.Time) *Recorder { return &Recorder{start: start} }

func (r *Recorder) at(t time.Time) *bucket {
	i := max(int(t.Sub(r.start)/time.Second), 0)
	for len(r.buckets) <= i {
		r.buckets = append(r.buckets, bucket{})
	}
	return &r.buckets[i]
}

// Record adds one iteration's outcome at the current second.
func (r *Recorder) Record(o Outcome) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.at(time.Now())
	if o.Interrupted {
		b.interrupted++
		return
	}
	b.requests++
	if o.Failed {
		b.failures++
	}
	b.events += o.Events
	b.latencies = append(b.latencies, float64(o.Latency)/float64(time.Millisecond))
	b.vus = max(b.vus, int(r.active.Load()))
}

// dropped counts an iteration an arrival-rate executor could not start.
func (r *Recorder) dropped() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.at(time.Now()).dropped++
}

// busy marks a virtual user busy (+1) or done (-1) and keeps the second's
// peak.
func (r *Recorder) busy(d int64) {
	n := r.active.Add(d)
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.at(time.Now())
	b.vus = max(b.vus, int(n))
}

// users records the virtual users a ramping-vus executor has started and
// not stopped (busy or thinking): k6's vus for that executor.
func (r *Recorder) users(n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.at(time.Now())
	b.vus = max(b.vus, n)
}

// second returns a copy of second i (empty past the end).
func (r *Recorder) second(i int) bucket {
	r.mu.Lock()
	defer r.mu.Unlock()
	if i < 0 || i >= len(r.buckets) {
		return bucket{}
	}
	b := r.buckets[i]
	b.latencies = append([]float64(nil), b.latencies...)
	return b
}

// gracefulStop is how long in-flight iterations may finish after the last
// stage before their context is cancelled (k6's default gracefulStop).
const gracefulStop = 30 * time.Second

// tick is the executors' scheduling granularity.
const tick = 2 * time.Millisecond

// rampValue is the stages' value at offset t: linear from the previous
// target (start at first) to each stage's target.
func rampValue(start int, stages []Stage, t time.Duration) float64 {
	from := float64(start)
	for _, st := range stages {
		if t < st.Duration {
			return from + (float64(st.Target)-from)*float64(t)/float64(st.Duration)
		}
		t -= st.Duration
		from = float64(st.Target)
	}
	return from
}

// rampIntegral is the integral of rampValue from 0 to t (iterations due by
// t when the value is a rate per second).
func rampIntegral(start int, stages []Stage, t time.Duration) float64 {
	from, sum := float64(start), 0.0
	for _, st := range stages {
		d := min(t, st.Duration)
		ds, full := d.Seconds(), st.Duration.Seconds()
		sum += from*ds + (float64(st.Target)-from)*ds*ds/(2*full)
		if t <= st.Duration {
			return sum
		}
		t -= st.Duration
		from = float64(st.Target)
	}
	return sum
}

// wait sleeps d or until ctx ends; false when ctx ended.
func wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// RunRampingVUs runs k6's ramping-vus: start virtual users, then linearly
// to each stage's target; each user loops iteration, think; a user above
// the target stops after its current iteration (a graceful ramp-down). It
// returns when the stages are over and the iterations finished (or
// gracefulStop passed, when their context is cancelled).
func RunRampingVUs(ctx context.Context, rec *Recorder, start int, stages []Stage, think time.Duration, iter Iteration) {
	iterCtx, cancelIters := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelIters()
	var wg sync.WaitGroup
	type user struct{ stop, done chan struct{} }
	var users []*user          // index = vu
	retired := map[int]*user{} // stopped, perhaps still in an iteration
	total := time.Duration(0)
	for _, st := range stages {
		total += st.Duration
	}
	begin := time.Now()
	for {
		el := time.Since(begin)
		target := int(math.Round(rampValue(start, stages, el)))
		if el >= total || ctx.Err() != nil {
			target = 0
		}
		for len(users) < target {
			vu := len(users)
			if old, ok := retired[vu]; ok {
				select {
				case <-old.done:
					delete(retired, vu)
				default:
					// Its iteration still runs: one user per index
					// at a time (per-user state); start it next tick.
				}
				if _, still := retired[vu]; still {
					break
				}
			}
			u := &user{stop: make(chan struct{}), done: make(chan struct{})}
			users = append(users, u)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer close(u.done)
				for {
					select {
					case <-u.stop:
						return
					default:
					}
					rec.busy(1)
					o := iter(iterCtx, vu)
					rec.busy(-1)
					rec.Record(o)
					if think > 0 {
						t := time.NewTimer(think)
						select {
						case <-u.stop:
							t.Stop()
							return
						case <-t.C:
						}
					}
				}
			}()
		}
		for len(users) > target {
			u := users[len(users)-1]
			close(u.stop)
			retired[len(users)-1] = u
			users = users[:len(users)-1]
		}
		rec.users(len(users))
		if el >= total || ctx.Err() != nil {
			break
		}
		if !wait(ctx, 50*time.Millisecond) {
			continue
		}
	}
	drain(&wg, cancelIters)
}

// drain waits for the iterations, cancelling them after gracefulStop.
func drain(wg *sync.WaitGroup, cancel context.CancelFunc) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	t := time.NewTimer(gracefulStop)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		cancel()
		<-done
	}
}

// RunArrivalRate runs k6's constant- and ramping-arrival-rate: iterations
// start at the stages' rate (per second, linear between targets, from
// start) whatever their latency; each needs a free virtual user, of which
// preAllocated exist and up to maxVUs are added when none is free; with
// all busy the iteration is dropped and counted. It returns when the
// stages are over and the iterations finished (or gracefulStop passed).
func RunArrivalRate(ctx context.Context, rec *Recorder, start int, stages []Stage, preAllocated, maxVUs int, iter Iteration) {
	preAllocated = max(preAllocated, 1)
	maxVUs = max(maxVUs, preAllocated)
	iterCtx, cancelIters := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelIters()
	free := make(chan int, maxVUs)
	for i := range preAllocated {
		free <- i
	}
	allocated := preAllocated
	var wg sync.WaitGroup
	total := time.Duration(0)
	for _, st := range stages {
		total += st.Duration
	}
	begin := time.Now()
	started := 0
	for ctx.Err() == nil {
		el := min(time.Since(begin), total)
		due := int(rampIntegral(start, stages, el))
		for ; started < due; started++ {
			var vu int
			select {
			case vu = <-free:
			default:
				if allocated >= maxVUs {
					rec.dropped()
					continue
				}
				vu = allocated
				allocated++
			}
			wg.Add(1)
			rec.busy(1)
			go func() {
				defer wg.Done()
				o := iter(iterCtx, vu)
				rec.busy(-1)
				rec.Record(o)
				free <- vu
			}()
		}
		if el >= total {
			break
		}
		wait(ctx, tick)
	}
	drain(&wg, cancelIters)
}
