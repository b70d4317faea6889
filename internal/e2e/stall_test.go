package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/staffcontrol/staffcontrol/internal/cloud/commandqueue"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// The stall reproductions of issue 10, each with the real gateway (collector,
// buffer, uplink) and the real Agent API on PostgreSQL: one bad event, or a
// day whose partition the retention dropped, must never stop the stream, and
// an agent's resend must never leave a false sequence gap.

// stallAgent posts events to a gateway's collector as a desktop agent does.
type stallAgent struct {
	t    *testing.T
	base string
	cred string // agent-1's credential
}

// event returns an active_window event at t with a fresh UUIDv7.
func (a stallAgent) event(at time.Time, title string) protocol.Event {
	d := int64(5)
	return protocol.Event{EventID: uuid.Must(uuid.NewV7()).String(), Type: protocol.TypeActiveWindow, AgentUID: "agent-1",
		ComputerName: "PC-1", UserSID: "S-1-5-21-1", Datetime: at.UTC().Truncate(time.Millisecond), DurationSeconds: &d,
		ProcessName: "excel.exe", WindowTitle: title}
}

// post sends events in one request and returns the status code.
func (a stallAgent) post(events []protocol.Event) int {
	a.t.Helper()
	body, err := json.Marshal(protocol.EventBatch{AgentUID: "agent-1", ComputerName: "PC-1", Events: events})
	if err != nil {
		a.t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, a.base+protocol.PathAgentEvents, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(protocol.HeaderAuthorization, "Bearer "+a.cred)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	return resp.StatusCode
}

// stalledWorld is the real Agent API plus one in-process gateway that
// provisioned itself.
type stalledWorld struct {
	*gcWorld
	base  string
	agent stallAgent
}

func newStalledWorld(t *testing.T, setup func(w *gcWorld)) *stalledWorld {
	t.Helper()
	w := newGCWorld(t, commandqueue.Options{AckTimeout: time.Second, Backoff: 100 * time.Millisecond}, false)
	if setup != nil {
		setup(w)
	}
	_, base := startGCGateway(t, w, map[string]string{"STAFF_GATEWAY_ORGANIZATION_PROVISIONING_TOKEN": w.token})
	_, cred := enrolAt(t, base, w.secret, "agent-1")
	return &stalledWorld{gcWorld: w, base: base, agent: stallAgent{t: t, base: base, cred: cred}}
}

// count runs a counting query as the administrator.
func (w *stalledWorld) count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := w.admin.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// storedOnce waits until every id is stored, then checks each is stored
// exactly once in active_windows.
func (w *stalledWorld) storedOnce(t *testing.T, ids []string, within time.Duration) {
	t.Helper()
	waitUntil(t, fmt.Sprintf("%d events stored", len(ids)), within, func() bool {
		return w.count(t, `SELECT count(DISTINCT id)::int FROM monitoring.active_windows WHERE id = ANY($1::uuid[])`, ids) == len(ids)
	})
	rows, err := w.admin.Query(context.Background(),
		`SELECT id::text, count(*) FROM monitoring.active_windows WHERE id = ANY($1::uuid[]) GROUP BY id HAVING count(*) <> 1`, ids)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			t.Fatal(err)
		}
		t.Errorf("event %s stored %d times, want once", id, n)
	}
}

// gap is the cloud's sequence accounting for the gateway.
func (w *stalledWorld) gap(t *testing.T) int {
	return w.count(t, `SELECT coalesce(sum(max_seq - events_accepted - events_dropped), 0)::int FROM gateway_ingest_stats`)
}

// drained waits until the gateway holds nothing unsent.
func (w *stalledWorld) drained(t *testing.T, within time.Duration) {
	t.Helper()
	waitUntil(t, "the gateway drained", within, func() bool {
		d, err := gcDetails(w.base)
		return err == nil && d.Buffer.OldestUnsentAgeSeconds == 0
	})
}

func ids(es []protocol.Event) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.EventID
	}
	return out
}

// TestEventPastCloudRetentionIsSetAsideOthersFlow: the cloud keeps active
// windows for 3 days (an operator shortened the retention); an agent sends,
// among clean events, one 10 days old — valid for the gateway (within the
// 90-day protocol horizon) but past the cloud's retention, whose partition
// is gone. The cloud refuses that one event permanently (a 4xx naming it,
// never a 503 retried for ever), the gateway isolates it, reports it as a
// drop, and every other event arrives exactly once within the normal drain
// time — also the ones sent after it.
func TestEventPastCloudRetentionIsSetAsideOthersFlow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newStalledWorld(t, func(w *gcWorld) {
		if _, err := w.admin.Exec(ctx, `UPDATE monitoring.retention SET days = 3 WHERE table_name = 'active_windows'`); err != nil {
			t.Fatal(err)
		}
	})
	now := time.Now()
	var before, after []protocol.Event
	for i := range 200 {
		before = append(before, w.agent.event(now.Add(-time.Duration(i)*time.Second), "before"))
	}
	old := w.agent.event(now.AddDate(0, 0, -10), "past the cloud's retention")
	batch := append(append([]protocol.Event{}, before[:100]...), old)
	batch = append(batch, before[100:]...)
	if code := w.agent.post(batch); code != http.StatusOK {
		t.Fatalf("collector answered %d to a batch it should accept", code)
	}
	for i := range 300 {
		after = append(after, w.agent.event(now.Add(time.Duration(i)*time.Millisecond), "after"))
	}
	for i := 0; i < len(after); i += 50 {
		if code := w.agent.post(after[i : i+50]); code != http.StatusOK {
			t.Fatalf("collector answered %d", code)
		}
	}
	w.storedOnce(t, append(ids(before), ids(after)...), 30*time.Second)
	if n := w.count(t, `SELECT count(*)::int FROM monitoring.active_windows WHERE id = $1`, old.EventID); n != 0 {
		t.Errorf("the event past retention was stored (%d rows); it would be deleted at the next retention run", n)
	}
	// The drop is reported with a later batch: send one more event.
	last := w.agent.event(time.Now(), "last")
	if code := w.agent.post([]protocol.Event{last}); code != http.StatusOK {
		t.Fatalf("collector answered %d", code)
	}
	waitUntil(t, "the set-aside event reported to the cloud as a drop", 30*time.Second, func() bool {
		return w.count(t, `SELECT coalesce(sum(count), 0)::int FROM gateway_drop_reports WHERE class = 'log'`) == 1
	})
	w.storedOnce(t, []string{last.EventID}, 30*time.Second)
	w.drained(t, 30*time.Second)
	if g := w.gap(t); g != 0 {
		t.Errorf("sequence gap %d after the drop was reported, want 0", g)
	}
}

// TestDayWhosePartitionWasDroppedStillIngests: events on a day are stored
// (the Agent API now knows that day's partition exists), then the day's
// partitions are dropped (as the retention job does when an operator
// shortens and restores the retention). The next event on that day, still
// within retention, must be stored — not refused with 503 on every try until
// the Agent API restarts. With TimescaleDB (TEST_DATABASE_URL on such a
// server) the day's chunk is dropped instead, and TimescaleDB makes a new
// one.
func TestDayWhosePartitionWasDroppedStillIngests(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	w := newStalledWorld(t, nil)
	day := time.Now().UTC().AddDate(0, 0, -2).Truncate(24 * time.Hour).Add(12 * time.Hour)
	first := []protocol.Event{w.agent.event(day, "first"), w.agent.event(day.Add(time.Minute), "first")}
	if code := w.agent.post(first); code != http.StatusOK {
		t.Fatalf("collector answered %d", code)
	}
	w.storedOnce(t, ids(first), 30*time.Second)

	part := "active_windows_p" + day.Format("20060102")
	drop := `DROP TABLE monitoring.` + part
	if w.count(t, `SELECT (monitoring.storage_kind() = 'timescaledb')::int`) == 1 {
		start := day.Truncate(24 * time.Hour)
		part = "the chunk of " + start.Format(time.DateOnly)
		drop = fmt.Sprintf(`SELECT drop_chunks('monitoring.active_windows', newer_than => '%s'::timestamptz, older_than => '%s'::timestamptz)`,
			start.Format(time.RFC3339), start.AddDate(0, 0, 1).Format(time.RFC3339))
	}
	if _, err := w.admin.Exec(ctx, drop); err != nil {
		t.Fatalf("drop %s: %v", part, err)
	}
	if n := w.count(t, `SELECT count(*)::int FROM monitoring.active_windows WHERE datetime >= $1 AND datetime < $2`,
		day.Add(-12*time.Hour), day.Add(12*time.Hour)); n != 0 {
		t.Fatalf("%d rows left on the day after dropping %s", n, part)
	}
	second := []protocol.Event{w.agent.event(day.Add(2*time.Minute), "second")}
	now := []protocol.Event{w.agent.event(time.Now(), "today")}
	if code := w.agent.post(append(second, now...)); code != http.StatusOK {
		t.Fatalf("collector answered %d", code)
	}
	w.storedOnce(t, append(ids(second), ids(now)...), 30*time.Second)
	w.drained(t, 30*time.Second)
}

// TestAgentResendAfterUploadLeavesNoSequenceGap is the chaos run's false
// "events lost" alert: an agent that did not see the gateway's answer (the
// gateway was killed after committing) sends the same events again after
// the gateway already uploaded and deleted them. The gateway gives them new
// sequence numbers; the cloud stores nothing new (per-id dedupe) but must
// account the new sequence numbers, so the gap returns to 0.
func TestAgentResendAfterUploadLeavesNoSequenceGap(t *testing.T) {
	t.Parallel()
	w := newStalledWorld(t, nil)
	var batch []protocol.Event
	for i := range 38 {
		batch = append(batch, w.agent.event(time.Now().Add(-time.Duration(i)*time.Second), "resent"))
	}
	if code := w.agent.post(batch); code != http.StatusOK {
		t.Fatalf("collector answered %d", code)
	}
	w.storedOnce(t, ids(batch), 30*time.Second)
	w.drained(t, 30*time.Second)
	if g := w.gap(t); g != 0 {
		t.Fatalf("gap %d before the resend, want 0", g)
	}
	// The resend, twice (the agent retried again), then fresh events.
	for range 2 {
		if code := w.agent.post(batch); code != http.StatusOK {
			t.Fatalf("collector answered %d to the resend", code)
		}
		w.drained(t, 30*time.Second)
	}
	fresh := []protocol.Event{w.agent.event(time.Now(), "fresh")}
	if code := w.agent.post(fresh); code != http.StatusOK {
		t.Fatalf("collector answered %d", code)
	}
	w.storedOnce(t, append(ids(batch), ids(fresh)...), 30*time.Second)
	w.drained(t, 30*time.Second)
	var maxSeq int
	waitUntil(t, "the cloud accounted every sequence number", 30*time.Second, func() bool {
		maxSeq = w.count(t, `SELECT coalesce(max(max_seq), 0)::int FROM gateway_ingest_stats`)
		return maxSeq >= 2*len(batch)+1
	})
	if g := w.gap(t); g != 0 {
		t.Errorf("sequence gap %d after the resends (max seq %d), want 0: a resend must not look like lost events", g, maxSeq)
	}
}
