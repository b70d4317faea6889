// Package scenario runs the seed's load scenarios (issue 17, part 2) against
// the cloud side on one machine (internal/bench/stack): the scenarios as
// data (executor kind, stages), a small load engine (ramping virtual users,
// constant and ramping arrival rates, as k6 runs them), a per-second time
// series of what the run measured from real sources (client-side request
// latency and failures, the replicas' ingest write-duration histogram, the
// command queue's depth in PostgreSQL, a real gateway's buffer usage), the
// seed's thresholds checked, and the result written as JSON beside an HTML
// page of inline SVG charts.
package scenario

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Executor is how a scenario schedules its iterations (k6's names).
type Executor string

// The executors.
const (
	// RampingVUs runs a varying number of virtual users, each looping over
	// iterations (closed model: a slow answer slows that user).
	RampingVUs Executor = "ramping-vus"
	// ConstantArrivalRate starts iterations at a fixed rate whatever the
	// answers' latency (open model); with no free virtual user an
	// iteration is dropped and counted.
	ConstantArrivalRate Executor = "constant-arrival-rate"
	// RampingArrivalRate is the open model with a rate that follows the
	// stages.
	RampingArrivalRate Executor = "ramping-arrival-rate"
)

// Work is what one iteration does.
type Work string

// The kinds of work.
const (
	// IngestBatch POSTs one gzip logs batch to /v2/ingest/logs as a
	// virtual gateway (its own API key, Idempotency-Key, seq).
	IngestBatch Work = "ingest"
	// EnqueueCommand enqueues one command for a gateway of a simulated
	// fleet connected on the control channel.
	EnqueueCommand Work = "enqueue"
)

// Stage is one leg of a ramp: reach Target (virtual users, or iterations
// per second) linearly over Duration.
type Stage struct {
	Duration time.Duration `json:"duration_ns"`
	Target   int           `json:"target"`
}

// Scenario is one load scenario.
type Scenario struct {
	// Name is what `staffctl bench scenario NAME` takes.
	Name string `json:"name"`
	// Description says what runs, in a line.
	Description string `json:"description"`
	// Executor schedules the iterations.
	Executor Executor `json:"executor"`
	// Start is the virtual users (RampingVUs) or iterations per second
	// (arrival rates) at the beginning.
	Start int `json:"start"`
	// Stages are the ramp; a constant rate is one stage at Start.
	Stages []Stage `json:"stages"`
	// PreAllocatedVUs and MaxVUs bound an arrival-rate executor's
	// concurrency (MaxVUs defaults to PreAllocatedVUs, as in k6).
	PreAllocatedVUs int `json:"pre_allocated_vus,omitempty"`
	MaxVUs          int `json:"max_vus,omitempty"`
	// ThinkTime is a virtual user's pause after each iteration
	// (RampingVUs).
	ThinkTime time.Duration `json:"think_time_ns,omitempty"`
	// Work is what an iteration does.
	Work Work `json:"work"`
	// EventsPerBatch is the events of one ingest batch.
	EventsPerBatch int `json:"events_per_batch,omitempty"`
	// FleetGateways is the simulated fleet's size (EnqueueCommand).
	FleetGateways int `json:"fleet_gateways,omitempty"`
}

// Duration is the sum of the stages.
func (s Scenario) Duration() time.Duration {
	var d time.Duration
	for _, st := range s.Stages {
		d += st.Duration
	}
	return d
}

// VUs is the most virtual users the scenario can run at once: one virtual
// gateway each for the ingest work.
func (s Scenario) VUs() int {
	if s.Executor == RampingVUs {
		n := s.Start
		for _, st := range s.Stages {
			n = max(n, st.Target)
		}
		return n
	}
	return max(s.PreAllocatedVUs, s.MaxVUs)
}

// Scaled returns s with every stage's duration multiplied by f (at least
// 100 ms each).
func (s Scenario) Scaled(f float64) Scenario {
	out := s
	out.Stages = make([]Stage, len(s.Stages))
	for i, st := range s.Stages {
		st.Duration = max(time.Duration(float64(st.Duration)*f), 100*time.Millisecond)
		out.Stages[i] = st
	}
	return out
}

// Scenarios are the seed's three load scenarios (its "Load Testing
// (Performance Baseline Requirements)" k6 configuration), with the choices
// the seed leaves open written in docs/benchmarks.md.
func Scenarios() []Scenario {
	return []Scenario{
		{Name: "batch_ingestion", Description: "ramping virtual gateways 10 → 50 → 100 → 200 → 0, each POSTing 100-event gzip batches with its own API key and Idempotency-Key, 1 s think time",
			Executor: RampingVUs, Start: 10, ThinkTime: time.Second, Work: IngestBatch, EventsPerBatch: 100,
			Stages: []Stage{{2 * time.Minute, 50}, {5 * time.Minute, 100}, {10 * time.Minute, 200}, {2 * time.Minute, 0}}},
		{Name: "timescale_stress", Description: "a constant 1,000 ingest messages/s for 5 minutes (a message: one 10-event gzip batch of one of 50 virtual gateways), open model",
			Executor: ConstantArrivalRate, Start: 1000, PreAllocatedVUs: 50, Work: IngestBatch, EventsPerBatch: 10,
			Stages: []Stage{{5 * time.Minute, 1000}}},
		{Name: "queue_backlog", Description: "commands enqueued at 100 → 500 → 1,000 → 100 per second for 200 simulated gateways on the control channel, open model",
			Executor: RampingArrivalRate, Start: 100, PreAllocatedVUs: 50, MaxVUs: 200, Work: EnqueueCommand, FleetGateways: 200,
			Stages: []Stage{{2 * time.Minute, 500}, {5 * time.Minute, 1000}, {2 * time.Minute, 100}}},
	}
}

// Names lists the scenarios' names, sorted.
func Names() []string {
	var out []string
	for _, s := range Scenarios() {
		out = append(out, s.Name)
	}
	sort.Strings(out)
	return out
}

// Lookup finds a scenario by name; the error lists the names.
func Lookup(name string) (Scenario, error) {
	for _, s := range Scenarios() {
		if s.Name == name {
			return s, nil
		}
	}
	return Scenario{}, fmt.Errorf("scenario: no scenario %q (one of %s)", name, strings.Join(Names(), ", "))
}
