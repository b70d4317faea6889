package buffer

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// TestGroupInsertSizes checks that the multi-row insert is prepared for
// every size, each with one parameter list per row.
func TestGroupInsertSizes(t *testing.T) {
	q, err := parseGroupInsert()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range groupInsertSizes() {
		text := q[n]
		if got := strings.Count(text, "?"); got != n*agentInsertColumns {
			t.Errorf("%d rows: %d parameters, want %d", n, got, n*agentInsertColumns)
		}
		if !strings.HasPrefix(text, "INSERT INTO agent_data_buffer") || !strings.Contains(text, "ON CONFLICT (event_id) DO NOTHING") {
			t.Errorf("%d rows: unexpected statement %.80q", n, text)
		}
	}
}

// TestGroupInsertOutcomes appends groups of every shape the fast path cuts
// (sizes that are not sums of one statement, duplicates against the file,
// inside one request and across requests of one group, device rows between
// agent rows) and checks each outcome, that the sequence stays gapless,
// and what a claim reads back.
func TestGroupInsertOutcomes(t *testing.T) {
	b := openTest(t, filepath.Join(t.TempDir(), "buffer.sqlite"), nil)
	ctx := context.Background()
	var ids []string // agent event ids in sequence order
	wantSeq := int64(1)
	check := func(name string, recs []Record, dup []bool) {
		t.Helper()
		out, err := b.Append(ctx, recs)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for i, o := range out {
			switch {
			case dup[i] && !o.Duplicate:
				t.Fatalf("%s: record %d (%s) not reported a duplicate: %+v", name, i, recs[i].EventID, o)
			case !dup[i] && (o.Duplicate || o.Seq != wantSeq):
				t.Fatalf("%s: record %d: %+v, want seq %d", name, i, o, wantSeq)
			case !dup[i]:
				wantSeq++
				if recs[i].Class != protocol.ClassDevice {
					ids = append(ids, recs[i].EventID)
				}
			}
		}
	}
	fresh := func(n int) ([]Record, []bool) {
		recs := make([]Record, n)
		for i := range recs {
			recs[i] = logRec(newID())
		}
		return recs, make([]bool, n)
	}
	for _, n := range []int{1, 3, 4, 5, 17, 255, 256, 257, 337, 1000} {
		recs, dup := fresh(n)
		check(fmt.Sprintf("%d fresh", n), recs, dup)
	}
	// One id already buffered, in the middle of 300 new ones.
	recs, dup := fresh(300)
	recs[150], dup[150] = logRec(ids[7]), true
	check("one buffered id", recs, dup)
	// One id twice in a request.
	recs, dup = fresh(70)
	recs[69], dup[69] = logRec(recs[3].EventID), true
	check("twice in a request", recs, dup)
	// Device rows between agent rows.
	recs, dup = fresh(40)
	for i := 0; i < 40; i += 5 {
		recs[i] = Record{Class: protocol.ClassDevice, Type: "door_opened", EventID: newID(), DeviceSerial: "D1",
			AdapterType: "zkteco", Payload: []byte(`{"kind":"door_opened"}`)}
	}
	check("device rows", recs, dup)

	bt, err := b.Claim(ctx, StreamLogs, 100_000, 1<<40, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(bt.Events) != len(ids) {
		t.Fatalf("claimed %d events, want %d", len(bt.Events), len(ids))
	}
	prev := int64(0)
	for i, e := range bt.Events {
		if e.EventID != ids[i] {
			t.Fatalf("claimed event %d is %s, want %s", i, e.EventID, ids[i])
		}
		if e.Seq <= prev {
			t.Fatalf("claimed event %d has seq %d after %d", i, e.Seq, prev)
		}
		if want := `{"event_id":"` + e.EventID + `","type":"active_window"}`; string(e.Payload) != want {
			t.Fatalf("claimed event %d payload %s", i, e.Payload)
		}
		prev = e.Seq
	}
	dev, err := b.Claim(ctx, StreamDevice, 100, 1<<40, false)
	if err != nil {
		t.Fatal(err)
	}
	if dev == nil || len(dev.Events) != 8 {
		t.Fatalf("device batch %+v, want 8 events", dev)
	}
}
