package commandqueue

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/staffcontrol/staffcontrol/internal/cloud/commandqueue/commandqueuedb"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// Depth is one group of the queue: the commands of one status (pending or
// delivered) and type, over every organisation, and the oldest one's
// creation.
type Depth struct {
	Status   string
	Type     string
	Commands int64
	Oldest   time.Time
}

// commandTypes are the command types gateway_commands allows (its CHECK).
func commandTypes() []string {
	return []string{protocol.CommandPolicyUpdate, protocol.CommandRestartAgent, protocol.CommandDeviceCommand,
		protocol.CommandRotateAPIKey, protocol.CommandReplayDeadLetters, protocol.CommandRevokeAgent, protocol.CommandDevicesUpdate}
}

// DepthSampler reads the queue's depth (gateway_commands_depth, 00042:
// counts only, every organisation's) into the gauges
// command_queue_depth{status,type} and command_queue_oldest_seconds{status}.
// The Agent API runs Sample periodically; every replica reports the same
// platform figures, so rules and panels take their max.
type DepthSampler struct {
	q      *commandqueuedb.Queries
	now    func() time.Time
	depth  *prometheus.GaugeVec
	oldest *prometheus.GaugeVec
	seen   map[[2]string]bool
}

// NewDepthSampler returns a sampler reading through db (the ingest role,
// the only one that may call the function) and registers its gauges on reg.
// now is the clock the oldest command's age is measured against (time.Now
// when nil).
func NewDepthSampler(db *pgxpool.Pool, reg prometheus.Registerer, now func() time.Time) *DepthSampler {
	if now == nil {
		now = time.Now
	}
	s := &DepthSampler{q: commandqueuedb.New(db), now: now, seen: map[[2]string]bool{},
		depth: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "command_queue_depth",
			Help: "Commands waiting in the queue over every organisation, by status (pending: not yet delivered or due for redelivery; delivered: sent, no outcome yet) and type, at the last sample."}, []string{"status", "type"}),
		oldest: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "command_queue_oldest_seconds",
			Help: "Age of the oldest command of the status still in the queue at the last sample (0: none)."}, []string{"status"}),
	}
	// Every known group reads 0 until it has commands (a panel or a rule
	// sees an empty queue, not no data); a type added later appears when
	// it is first sampled.
	for _, st := range []string{StatusPending, StatusDelivered} {
		s.oldest.WithLabelValues(st).Set(0)
		for _, typ := range commandTypes() {
			s.depth.WithLabelValues(st, typ).Set(0)
			s.seen[[2]string{st, typ}] = true
		}
	}
	reg.MustRegister(s.depth, s.oldest)
	return s
}

// Sample reads the depth and sets the gauges: a group that emptied since
// the last sample reads 0 rather than vanishing. Not safe for concurrent
// use (one loop calls it).
func (s *DepthSampler) Sample(ctx context.Context) ([]Depth, error) {
	rows, err := s.q.Depth(ctx)
	if err != nil {
		return nil, fmt.Errorf("commandqueue: sample the depth: %w", err)
	}
	now := s.now()
	out := make([]Depth, len(rows))
	present := map[[2]string]bool{}
	oldest := map[string]float64{StatusPending: 0, StatusDelivered: 0}
	for i, r := range rows {
		out[i] = Depth{Status: r.Status, Type: r.Type, Commands: r.Commands, Oldest: r.Oldest}
		key := [2]string{r.Status, r.Type}
		present[key], s.seen[key] = true, true
		s.depth.WithLabelValues(r.Status, r.Type).Set(float64(r.Commands))
		if age := max(now.Sub(r.Oldest).Seconds(), 0); age > oldest[r.Status] {
			oldest[r.Status] = age
		}
	}
	for key := range s.seen {
		if !present[key] {
			s.depth.WithLabelValues(key[0], key[1]).Set(0)
		}
	}
	for st, age := range oldest {
		s.oldest.WithLabelValues(st).Set(age)
	}
	return out, nil
}
