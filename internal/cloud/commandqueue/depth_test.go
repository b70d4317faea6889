package commandqueue_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/staffcontrol/staffcontrol/internal/cloud/commandqueue"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// TestDepthSamplerCountsEveryOrganisationsQueue: commands enqueued in two
// organisations, some delivered, are counted together by status and type
// in command_queue_depth, the oldest's age in command_queue_oldest_seconds;
// once they are done the groups read 0 (not gone); the dashboard role
// cannot sample.
func TestDepthSamplerCountsEveryOrganisationsQueue(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, commandqueue.Options{})
	enqueue := func(gw uuid.UUID, typ string) uuid.UUID {
		t.Helper()
		ten := f.ta
		if gw == f.b.GatewayID {
			ten = f.tb
		}
		payload := `{"agent":"all"}`
		if typ == protocol.CommandRotateAPIKey {
			payload = `{}`
		}
		c, err := f.enq.Enqueue(ctx, ten, commandqueue.NewCommand{GatewayID: gw, Type: typ, Payload: json.RawMessage(payload)})
		if err != nil {
			t.Fatal(err)
		}
		return c.ID
	}
	restartA := enqueue(f.a.GatewayID, protocol.CommandRestartAgent)
	enqueue(f.a.GatewayID, protocol.CommandRestartAgent)
	restartB := enqueue(f.b.GatewayID, protocol.CommandRestartAgent)
	enqueue(f.b.GatewayID, protocol.CommandRotateAPIKey)
	// B's restart is delivered; A's first restart made an hour old.
	if got, err := f.q.Claim(ctx, f.tb, f.b.GatewayID, 1); err != nil || len(got) != 1 || got[0].ID != restartB {
		t.Fatalf("claim B: %v %v, want its restart", got, err)
	}
	if _, err := f.admin.Exec(ctx, `UPDATE gateway_commands SET created_at = now() - interval '1 hour' WHERE id = $1`, restartA); err != nil {
		t.Fatal(err)
	}

	reg := prometheus.NewRegistry()
	clock := time.Now().Add(time.Minute) // the server's now() a minute ago
	s := commandqueue.NewDepthSampler(f.ingest, reg, func() time.Time { return clock })
	got, err := s.Sample(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var groups []string
	for _, d := range got {
		groups = append(groups, d.Status+" "+d.Type+" "+itoa(int(d.Commands)))
	}
	want := "delivered restart_agent 1, pending restart_agent 2, pending rotate_api_key 1"
	if strings.Join(groups, ", ") != want {
		t.Fatalf("depth %v, want %s", groups, want)
	}
	gauge := func(name string, labels ...string) float64 {
		t.Helper()
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, fam := range families {
			if fam.GetName() != name {
				continue
			}
		metrics:
			for _, m := range fam.GetMetric() {
				for i, l := range m.GetLabel() {
					if l.GetValue() != labels[i] {
						continue metrics
					}
				}
				return m.GetGauge().GetValue()
			}
		}
		t.Fatalf("%s%v not exported", name, labels)
		return 0
	}
	for _, c := range []struct {
		status, typ string
		want        float64
	}{{"pending", "restart_agent", 2}, {"pending", "rotate_api_key", 1}, {"delivered", "restart_agent", 1}} {
		if v := gauge("command_queue_depth", c.status, c.typ); v != c.want {
			t.Errorf("%s %s = %v, want %v", c.status, c.typ, v, c.want)
		}
	}
	if v := gauge("command_queue_depth", "pending", "devices_update"); v != 0 {
		t.Errorf("pending devices_update = %v, want 0", v)
	}
	if v := gauge("command_queue_oldest_seconds", "pending"); v < 3600 || v > 3600+300 {
		t.Errorf("oldest pending %v s, want about 3660", v)
	}
	if v := gauge("command_queue_oldest_seconds", "delivered"); v < 30 || v > 300 {
		t.Errorf("oldest delivered %v s, want about 60", v)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, fam := range families {
		// Every status and type the table allows, zeros included.
		if fam.GetName() == "command_queue_depth" && len(fam.GetMetric()) != 2*7 {
			t.Errorf("%d command_queue_depth series, want 14", len(fam.GetMetric()))
		}
	}

	// Done: the groups read 0 rather than vanish, the ages 0.
	if err := f.q.Finish(ctx, f.tb, f.b.GatewayID, restartB, true, json.RawMessage(`{}`), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := f.admin.Exec(ctx, `UPDATE gateway_commands SET status = 'cancelled' WHERE status = 'pending'`); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Sample(ctx); err != nil || len(got) != 0 {
		t.Fatalf("after the queue emptied: %v %v", got, err)
	}
	for _, l := range [][]string{{"pending", "restart_agent"}, {"pending", "rotate_api_key"}, {"delivered", "restart_agent"}} {
		if v := gauge("command_queue_depth", l...); v != 0 {
			t.Errorf("%v = %v after the queue emptied, want 0", l, v)
		}
	}
	if v := gauge("command_queue_oldest_seconds", "pending"); v != 0 {
		t.Errorf("oldest pending %v s with none pending, want 0", v)
	}

	// The dashboard role may not read the platform's figures.
	if _, err := commandqueue.NewDepthSampler(f.dash, prometheus.NewRegistry(), nil).Sample(ctx); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("sampled as the dashboard role: %v, want permission denied", err)
	}
}
