package collector

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/edge/buffer"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// TestAcceptEventsStoresEachEventsJSON checks that the payloads encoded one
// after the other into one buffer are, each, exactly the event's own JSON
// (what json.Marshal gives for the validated event), in order, whatever
// their sizes.
func TestAcceptEventsStoresEachEventsJSON(t *testing.T) {
	f := newFixture(t, 0)
	ctx := context.Background()
	now := time.Now().UTC()
	d := int64(7)
	batch := &protocol.EventBatch{AgentUID: "agent-1", ComputerName: "PC-1"}
	titles := []string{"", "a", "Budget <2026> & \"plans\".xlsx", strings.Repeat("x", 500), "ü"}
	for i, title := range titles {
		batch.Events = append(batch.Events, protocol.Event{Type: protocol.TypeActiveWindow, UserSID: "S-1-5-21-1",
			Datetime: now.Add(-time.Duration(i) * time.Second), DurationSeconds: &d, ProcessName: "excel.exe", WindowTitle: title})
	}
	resp, err := f.c.AcceptEvents(ctx, "agent-1", batch)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Accepted != len(titles) {
		t.Fatalf("accepted %d, want %d", resp.Accepted, len(titles))
	}
	bt, err := f.buf.Claim(ctx, buffer.StreamLogs, 100, 1<<30, false)
	if err != nil || bt == nil {
		t.Fatalf("claim: %v %v", bt, err)
	}
	if len(bt.Events) != len(titles) {
		t.Fatalf("stored %d events, want %d", len(bt.Events), len(titles))
	}
	for i, e := range bt.Events {
		want, err := json.Marshal(&batch.Events[i])
		if err != nil {
			t.Fatal(err)
		}
		if string(e.Payload) != string(want) {
			t.Fatalf("event %d stored\n%s\nwant\n%s", i, e.Payload, want)
		}
		var back protocol.Event
		if err := json.Unmarshal(e.Payload, &back); err != nil || back.WindowTitle != titles[i] || back.EventID != resp.Events[i].EventID {
			t.Fatalf("event %d does not decode to itself: %+v %v", i, back, err)
		}
	}
}
