package e2e_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/staffcontrol/staffcontrol/internal/edge/buffer"
	"github.com/staffcontrol/staffcontrol/internal/edge/uplink"
	"github.com/staffcontrol/staffcontrol/internal/logtest"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// TestEventTheCloudRefusesIsIsolatedAndReported: the real Agent API answers
// 422 validation_failed for a batch holding one event it refuses (a window
// title longer than the schema allows, which reached the buffer without the
// collector's check). The uplink bisects, every other event is stored once,
// and the refused one is dropped, counted and reported — never retried forever.
func TestEventTheCloudRefusesIsIsolatedAndReported(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newControlWorld(t, controlOptionsDefault())
	b, err := buffer.Open(ctx, buffer.Options{Config: buffer.Config{Path: filepath.Join(t.TempDir(), "buffer.sqlite"), MaxBytes: 1 << 30}, Logger: logtest.New(t), FSUsage: func(string) (float64, error) { return 0, nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var recs []buffer.Record
	var good []string
	bad := ""
	for i := 0; i < 64; i++ {
		id := uuid.Must(uuid.NewV7()).String()
		d := int64(3)
		ev := protocol.Event{EventID: id, Type: protocol.TypeActiveWindow, AgentUID: "a1", ComputerName: "PC-1", UserSID: "S-1",
			Datetime: time.Now().UTC(), DurationSeconds: &d, ProcessName: "x.exe", WindowTitle: "ok"}
		if i == 37 {
			ev.WindowTitle = strings.Repeat("t", 600)
			bad = id
		} else {
			good = append(good, id)
		}
		p, _ := json.Marshal(ev)
		recs = append(recs, buffer.Record{Class: protocol.ClassLog, Type: ev.Type, EventID: id, Payload: p})
	}
	if _, err := b.Append(ctx, recs); err != nil {
		t.Fatal(err)
	}
	u, err := uplink.New(b, uplink.Options{ServerURL: w.api.URL, APIKey: w.key, GatewayID: w.gateway.String(), Logger: logtest.New(t),
		Config: uplink.Config{BatchMaxEvents: 64, FlushInterval: 20 * time.Millisecond, BackoffInitial: 5 * time.Millisecond, BackoffMax: 40 * time.Millisecond, AuthRetryInterval: 50 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); u.Run(rctx) }()
	defer func() { cancel(); wg.Wait() }()

	count := func(sql string, args ...any) int {
		var n int
		_ = w.admin.QueryRow(ctx, sql, args...).Scan(&n)
		return n
	}
	waitUntil(t, "the good events stored", 20*time.Second, func() bool {
		return count(`SELECT count(*) FROM monitoring.active_windows`) == len(good)
	})
	// The drop is reported with the next logs batch.
	more := uuid.Must(uuid.NewV7()).String()
	d := int64(1)
	p, _ := json.Marshal(protocol.Event{EventID: more, Type: protocol.TypeActiveWindow, AgentUID: "a1", ComputerName: "PC-1", UserSID: "S-1",
		Datetime: time.Now().UTC(), DurationSeconds: &d, ProcessName: "x.exe"})
	if _, err := b.Append(ctx, []buffer.Record{{Class: protocol.ClassLog, Type: protocol.TypeActiveWindow, EventID: more, Payload: p}}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the drop reported to the cloud", 20*time.Second, func() bool {
		return count(`SELECT coalesce(sum(count), 0)::int FROM gateway_drop_reports WHERE reason = 'rejected_by_cloud'`) == 1
	})
	waitUntil(t, "the later event stored", 20*time.Second, func() bool {
		return count(`SELECT count(*) FROM monitoring.active_windows WHERE id = $1`, more) == 1
	})
	for _, id := range append(good, more) {
		if n := count(`SELECT count(*) FROM monitoring.active_windows WHERE id = $1`, id); n != 1 {
			t.Errorf("event %s stored %d times", id, n)
		}
	}
	if n := count(`SELECT count(*) FROM monitoring.active_windows WHERE id = $1`, bad); n != 0 {
		t.Errorf("the refused event was stored")
	}
	if gap := count(`SELECT (max_seq - events_accepted - events_dropped)::int FROM gateway_ingest_stats`); gap != 0 {
		t.Errorf("sequence gap %d after the drop was reported, want 0", gap)
	}
}
