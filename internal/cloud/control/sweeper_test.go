package control_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/staffcontrol/staffcontrol/internal/cloud/commandqueue"
	"github.com/staffcontrol/staffcontrol/internal/cloud/control"
	"github.com/staffcontrol/staffcontrol/internal/cloud/service"
	"github.com/staffcontrol/staffcontrol/internal/lifecycle"
	"github.com/staffcontrol/staffcontrol/internal/lifecycle/lifecycletest"
	"github.com/staffcontrol/staffcontrol/internal/logtest"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

func TestSweeperConformance(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	lifecycletest.Conformance(t, func(t *testing.T) lifecycle.Service {
		q, err := commandqueue.New(w.ingest, commandqueue.Options{}, service.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		s, err := control.NewSweeper(w.ingest, q, logtest.New(t), nil, control.Options{SweepInterval: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestSweeperAloneMarksOfflineAndRedelivers: with no hub running, the
// Sweeper marks a silent gateway offline and puts an unacknowledged
// delivery back to pending — the sweep is no longer the hub's.
func TestSweeperAloneMarksOfflineAndRedelivers(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := context.Background()
	q, err := commandqueue.New(w.ingest, commandqueue.Options{AckTimeout: time.Millisecond, Backoff: time.Millisecond}, service.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	cmd := w.enq(w.a, protocol.CommandRestartAgent, 0)
	if _, err := w.admin.Exec(ctx, `UPDATE gateway_instances SET status = 'online', last_seen_at = now() - interval '31 seconds' WHERE id = $1`, w.a.id); err != nil {
		t.Fatal(err)
	}
	if _, err := w.admin.Exec(ctx, `UPDATE gateway_commands SET status = 'delivered', attempts = 1, delivered_at = now(), ack_deadline = now() - interval '1 second' WHERE id = $1`, cmd.ID); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	s, err := control.NewSweeper(w.ingest, q, logtest.New(t), reg, control.Options{HeartbeatInterval: 100 * time.Millisecond, SweepInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Stop(ctx)
	var gwStatus, cmdStatus string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		_ = w.admin.QueryRow(ctx, `SELECT status FROM gateway_instances WHERE id = $1`, w.a.id).Scan(&gwStatus)
		_ = w.admin.QueryRow(ctx, `SELECT status FROM gateway_commands WHERE id = $1`, cmd.ID).Scan(&cmdStatus)
		if gwStatus == "offline" && cmdStatus == "pending" {
			break
		}
	}
	if gwStatus != "offline" || cmdStatus != "pending" {
		t.Fatalf("gateway %s, command %s; want offline and pending", gwStatus, cmdStatus)
	}
	// The one gateway marked offline is counted once, however many sweeps
	// ran after it.
	time.Sleep(150 * time.Millisecond)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var marked float64 = -1
	for _, mf := range mfs {
		if mf.GetName() == "control_gateways_marked_offline_total" {
			marked = mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	if marked != 1 {
		t.Fatalf("control_gateways_marked_offline_total = %v, want 1", marked)
	}
}
