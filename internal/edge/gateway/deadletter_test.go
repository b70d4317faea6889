package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/staffcontrol/staffcontrol/internal/edge/health"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
	"github.com/staffcontrol/staffcontrol/internal/sim/fakecloud"
)

// An event the cloud refuses (422) becomes a dead letter: /health/details
// shows it, readiness does not fail because of it, /metrics counts it, and
// the replay_dead_letters command (through the executor, as the control
// plane runs it) sends it again once the cloud accepts it.
func TestDeadLettersVisibleAndReplayedByCommand(t *testing.T) {
	cloud := newCloud(t)
	cloud.SetPoison(func(_ string, ev json.RawMessage) fakecloud.PoisonAnswer {
		if strings.Contains(string(ev), "S-POISON") {
			return fakecloud.PoisonAnswer{Code: http.StatusUnprocessableEntity, Field: "user_sid"}
		}
		return fakecloud.PoisonAnswer{}
	})
	cfg := testConfig(t, t.TempDir(), cloud.URL, map[string]string{"STAFF_GATEWAY_HEALTH_MAX_UNSENT_AGE": "1s"})
	g := start(t, cfg)
	defer stop(t, g)
	base := "http://" + g.Addr()

	now := time.Now().UTC().Format(time.RFC3339)
	var events []string
	for i := range 20 {
		sid := fmt.Sprintf("S-%d", i)
		if i == 7 {
			sid = "S-POISON"
		}
		events = append(events, `{"type":"user_session","user_sid":"`+sid+`","datetime":"`+now+`","session_type":"login"}`)
	}
	body := `{"agent_uid":"a1","computer_name":"PC-1","events":[` + strings.Join(events, ",") + `]}`
	resp := postAs(t, base+protocol.PathAgentEvents, enrolAgent(t, g, "a1"), body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("agent post: %d", resp.StatusCode)
	}
	var d health.Details
	waitFor(t, "the refused event in dead letters", func() bool {
		getJSON(t, base+"/health/details", &d)
		return d.DeadLetters.Count == 1
	})
	waitFor(t, "the other 19 delivered", func() bool { return len(cloud.Deliveries()) == 19 })
	dl := d.DeadLetters.Recent[0]
	if dl.Reason != protocol.DropRejected || !strings.Contains(dl.LastError, "422") || d.DeadLetters.ByReason[protocol.DropRejected].Count != 1 {
		t.Fatalf("dead letters %+v", d.DeadLetters)
	}
	// Older than health.max_unsent_age, and still ready: dead letters block nothing.
	time.Sleep(1200 * time.Millisecond)
	var ready struct {
		Ready   bool     `json:"ready"`
		Reasons []string `json:"reasons"`
	}
	if code := getJSON(t, base+"/health/ready", &ready); code != http.StatusOK || !ready.Ready {
		t.Fatalf("ready %d %+v with only a dead letter left", code, ready)
	}
	mresp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(mresp.Body)
	mresp.Body.Close()
	for _, want := range []string{"gateway_dead_letters 1", `gateway_dead_letters_moved_total{reason="rejected_by_cloud"} 1`,
		`gateway_events_dropped_total{class="log",reason="rejected_by_cloud"} 1`} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	ex := executorOf(g)
	if ex == nil {
		t.Fatal("no executor")
	}
	ctx := context.Background()
	if _, err := ex.Execute(ctx, protocol.Command{ID: uuid.NewString(), Type: protocol.CommandReplayDeadLetters,
		Payload: json.RawMessage(`{"event_ids":["nope"]}`)}); err == nil || !strings.Contains(err.Error(), "event_ids[0]") {
		t.Fatalf("bad payload: %v", err)
	}
	cloud.SetPoison(nil)
	res, err := ex.Execute(ctx, protocol.Command{ID: uuid.NewString(), Type: protocol.CommandReplayDeadLetters,
		Payload: json.RawMessage(`{"event_ids":["` + strings.ToUpper(dl.EventID) + `"]}`)})
	if err != nil || string(res) != `{"replayed":1}` {
		t.Fatalf("replay: %s %v", res, err)
	}
	waitFor(t, "the replayed event delivered", func() bool { return cloud.Deliveries()[dl.EventID] == 1 })
	getJSON(t, base+"/health/details", &d)
	if d.DeadLetters.Count != 0 {
		t.Fatalf("dead letters after replay %+v", d.DeadLetters)
	}
	// Empty payload: replay all (none left).
	if res, err := ex.Execute(ctx, protocol.Command{ID: uuid.NewString(), Type: protocol.CommandReplayDeadLetters}); err != nil || string(res) != `{"replayed":0}` {
		t.Fatalf("replay all: %s %v", res, err)
	}
}
