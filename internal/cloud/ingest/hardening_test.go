package ingest_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/staffcontrol/staffcontrol/internal/cloud/ingest"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// written counts every row an ingest request may leave behind.
func (e *env) written() int {
	e.t.Helper()
	return e.count(`SELECT ((SELECT count(*) FROM monitoring.active_windows) + (SELECT count(*) FROM monitoring.visited_sites)
		+ (SELECT count(*) FROM monitoring.user_sessions) + (SELECT count(*) FROM monitoring.device_events)
		+ (SELECT count(*) FROM monitoring.screenshots) + (SELECT count(*) FROM ingest_batches WHERE status = 'done')
		+ (SELECT count(*) FROM gateway_drop_reports) + (SELECT count(*) FROM gateway_ingest_stats))::int`)
}

// gap is the gateway's unaccounted sequence numbers as stored.
func (e *env) gap(g gatewayCreds) int {
	e.t.Helper()
	return e.count(`SELECT coalesce((SELECT (max_seq - events_accepted - events_dropped)::int FROM gateway_ingest_stats WHERE gateway_id = $1), 0)`, g.id)
}

// files lists the files under the store's screenshot directory.
func (e *env) screenshotFiles() map[string][]byte {
	e.t.Helper()
	out := map[string][]byte{}
	_ = filepath.WalkDir(filepath.Join(e.files, "screenshots"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		b, _ := os.ReadFile(p)
		rel, _ := filepath.Rel(e.files, p)
		out[filepath.ToSlash(rel)] = b
		return nil
	})
	return out
}

func screenshotEvent(seq int64, at time.Time, img []byte) protocol.Event {
	sum := sha256.Sum256(img)
	return protocol.Event{EventID: uuid.Must(uuid.NewV7()).String(), Seq: seq, Type: protocol.TypeScreenshot, AgentUID: "agent-1", ComputerName: "PC-1",
		UserSID: "S-1-5-21-1", Datetime: at, Screenshot: &protocol.Screenshot{SHA256: hex.EncodeToString(sum[:]), Size: int64(len(img)), ContentType: "image/png"}}
}

func (e *env) postScreenshots(g gatewayCreds, key string, events []protocol.Event, images map[string][]byte, out any) int {
	e.t.Helper()
	ct, body := screenshotRequest(e.t.(*testing.T), events, images)
	return e.post(protocol.PathIngestScreenshots, g.key, key, ct, "", body, out)
}

func deviceEvent(seq int64, at time.Time) protocol.DeviceEvent {
	door := 1
	return protocol.DeviceEvent{EventID: uuid.Must(uuid.NewV7()).String(), Seq: seq, AdapterType: "zkteco", DeviceSerial: "ZK-1",
		Datetime: at, EmployeeNumber: "42", CardNumber: "123", Door: &door, MajorCode: 5, MinorCode: 75, VerifyMode: "card", Direction: "in"}
}

// TestNULInEveryTextFieldIsRefusedNamingTheField: a NUL (which PostgreSQL
// refuses, SQLSTATE 22021) or invalid UTF-8 in any text field of any
// endpoint is a 422 naming that field, never a 503, and writes nothing.
func TestNULInEveryTextFieldIsRefusedNamingTheField(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ingest.DefaultLimits())
	now := time.Now().UTC()
	const nul = "bad\x00value"
	logEvent := func(typ string) protocol.Event {
		d := int64(5)
		ev := protocol.Event{EventID: uuid.Must(uuid.NewV7()).String(), Seq: 1, Type: typ, AgentUID: "agent-1", ComputerName: "PC-1", UserSID: "S-1-5-21-1", Datetime: now}
		switch typ {
		case protocol.TypeActiveWindow:
			ev.ProcessName, ev.WindowTitle, ev.URL, ev.DurationSeconds = "code.exe", "main.go", "https://a.example/", &d
		case protocol.TypeVisitedSite:
			ev.URL, ev.Title, ev.DurationSeconds = "https://a.example/", "A", &d
		case protocol.TypeUserSession:
			ev.SessionType = protocol.SessionLogin
		}
		return ev
	}
	type logCase struct {
		typ, field string
		set        func(*protocol.Event, string)
	}
	logCases := []logCase{}
	for _, typ := range []string{protocol.TypeActiveWindow, protocol.TypeVisitedSite, protocol.TypeUserSession} {
		logCases = append(logCases,
			logCase{typ, "agent_uid", func(ev *protocol.Event, v string) { ev.AgentUID = v }},
			logCase{typ, "computer_name", func(ev *protocol.Event, v string) { ev.ComputerName = v }},
			logCase{typ, "user_sid", func(ev *protocol.Event, v string) { ev.UserSID = v }})
	}
	logCases = append(logCases,
		logCase{protocol.TypeActiveWindow, "window_title", func(ev *protocol.Event, v string) { ev.WindowTitle = v }},
		logCase{protocol.TypeActiveWindow, "process_name", func(ev *protocol.Event, v string) { ev.ProcessName = v }},
		logCase{protocol.TypeActiveWindow, "url", func(ev *protocol.Event, v string) { ev.URL = v }},
		logCase{protocol.TypeVisitedSite, "url", func(ev *protocol.Event, v string) { ev.URL = v }},
		logCase{protocol.TypeVisitedSite, "title", func(ev *protocol.Event, v string) { ev.Title = v }},
	)
	// (Invalid UTF-8 cannot reach the database: JSON carries text as UTF-8,
	// and the decoder refuses or replaces anything else.)
	for _, bad := range []string{nul} {
		for _, c := range logCases {
			good := logEvent(protocol.TypeUserSession)
			ev := logEvent(c.typ)
			ev.Seq = 2
			c.set(&ev, bad)
			var er protocol.ErrorResponse
			code := e.postGzip(protocol.PathIngestLogs, e.a, uuid.NewString(), protocol.LogBatch{Events: []protocol.Event{good, ev}}, &er)
			if code != http.StatusUnprocessableEntity || er.Field != "events[1]."+c.field || er.Error != protocol.ErrCodeValidation {
				t.Errorf("logs %s.%s = %q: %d %+v, want 422 naming events[1].%s", c.typ, c.field, bad, code, er, c.field)
			}
		}
	}
	// Drop reports.
	for _, f := range []string{"reason", "class"} {
		d := protocol.Drop{Reason: protocol.DropDiskPressure, Class: protocol.ClassScreenshot, Count: 1}
		if f == "reason" {
			d.Reason = nul
		} else {
			d.Class = nul
		}
		var er protocol.ErrorResponse
		code := e.postGzip(protocol.PathIngestLogs, e.a, uuid.NewString(), protocol.LogBatch{Events: []protocol.Event{logEvent(protocol.TypeUserSession)}, Drops: []protocol.Drop{d}}, &er)
		if code != http.StatusUnprocessableEntity || er.Field != "drops[0]."+f {
			t.Errorf("drop %s with a NUL: %d %+v, want 422 naming drops[0].%s", f, code, er, f)
		}
	}
	// Device events.
	devFields := map[string]func(*protocol.DeviceEvent){
		"device_serial":   func(d *protocol.DeviceEvent) { d.DeviceSerial = nul },
		"employee_number": func(d *protocol.DeviceEvent) { d.EmployeeNumber = nul },
		"card_number":     func(d *protocol.DeviceEvent) { d.CardNumber = nul },
		"verify_mode":     func(d *protocol.DeviceEvent) { d.VerifyMode = nul },
		"direction":       func(d *protocol.DeviceEvent) { d.Direction = nul },
		"adapter_type":    func(d *protocol.DeviceEvent) { d.AdapterType = nul },
	}
	for f, set := range devFields {
		ev := deviceEvent(2, now)
		set(&ev)
		var er protocol.ErrorResponse
		code := e.postGzip(protocol.PathIngestDeviceEvents, e.a, uuid.NewString(), protocol.DeviceEventBatch{Events: []protocol.DeviceEvent{deviceEvent(1, now), ev}}, &er)
		if code != http.StatusUnprocessableEntity || er.Field != "events[1]."+f {
			t.Errorf("device event %s with a NUL: %d %+v, want 422 naming events[1].%s", f, code, er, f)
		}
	}
	// Screenshots.
	img := []byte("\x89PNG image")
	for _, f := range []string{"agent_uid", "computer_name", "user_sid"} {
		ev := screenshotEvent(1, now, img)
		switch f {
		case "agent_uid":
			ev.AgentUID = nul
		case "computer_name":
			ev.ComputerName = nul
		default:
			ev.UserSID = nul
		}
		var er protocol.ErrorResponse
		code := e.postScreenshots(e.a, uuid.NewString(), []protocol.Event{ev}, map[string][]byte{ev.EventID: img}, &er)
		if code != http.StatusUnprocessableEntity || er.Field != "events[0]."+f {
			t.Errorf("screenshot %s with a NUL: %d %+v, want 422 naming events[0].%s", f, code, er, f)
		}
	}
	// A device code outside the int4 column is refused, not wrapped.
	big := deviceEvent(1, now)
	big.MajorCode = 1 << 33
	var er protocol.ErrorResponse
	if code := e.postGzip(protocol.PathIngestDeviceEvents, e.a, uuid.NewString(), protocol.DeviceEventBatch{Events: []protocol.DeviceEvent{big}}, &er); code != 422 || er.Field != "events[0].major_code" {
		t.Errorf("major_code 2^33: %d %+v, want 422 naming events[0].major_code", code, er)
	}
	if n := e.written(); n != 0 {
		t.Errorf("refused requests wrote %d rows", n)
	}
	if n := len(e.screenshotFiles()); n != 0 {
		t.Errorf("refused screenshot uploads left %d files", n)
	}
}

// TestDatabaseRefusalIsA422NamingTheEvent: whatever validation lets through
// and the database refuses with a data error (class 22 or 23) is answered
// 422 naming the event and, when the database says, the field; every
// retry gets the same answer; the other batches keep flowing; no file is
// left behind.
func TestDatabaseRefusalIsA422NamingTheEvent(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ingest.DefaultLimits())
	ctx := context.Background()
	// Stand-ins for refusals validation cannot foresee: a check constraint
	// (23514), a NOT NULL (23502, names its column) and a value the database
	// cannot convert (22P02, a data exception like the NUL's 22021).
	for _, ddl := range []string{
		`ALTER TABLE monitoring.active_windows ADD CONSTRAINT test_refuse CHECK (process_name IS DISTINCT FROM 'refuse.exe')`,
		`ALTER TABLE monitoring.visited_sites ALTER COLUMN title SET NOT NULL`,
		`ALTER TABLE monitoring.user_sessions ADD CONSTRAINT test_cast CHECK (user_sid NOT LIKE 'N:%' OR substr(user_sid, 3)::int > 0)`,
		`ALTER TABLE monitoring.screenshots ADD CONSTRAINT test_refuse CHECK (user_sid <> 'S-REFUSE')`,
	} {
		if _, err := e.admin.Exec(ctx, ddl); err != nil {
			t.Fatal(err)
		}
	}
	events := makeEvents(60, 1) // events[i]: i%3 0 active window, 1 visited site, 2 user session
	cases := []struct {
		name    string
		index   int
		mod     func(*protocol.Event)
		field   string
		sqlstat string
	}{
		{"check constraint", 36, func(ev *protocol.Event) { ev.ProcessName = "refuse.exe" }, "events[36]", "23514"},
		{"not null", 43, func(ev *protocol.Event) { ev.Title = "" }, "events[43].title", "23502"},
		{"data exception", 17, func(ev *protocol.Event) { ev.UserSID = "N:not-a-number" }, "events[17]", "22P02"},
	}
	for _, c := range cases {
		batch := append([]protocol.Event{}, events...)
		c.mod(&batch[c.index])
		key := uuid.NewString()
		for try := 0; try < 2; try++ {
			var er protocol.ErrorResponse
			code := e.postGzip(protocol.PathIngestLogs, e.a, key, protocol.LogBatch{Events: batch}, &er)
			if code != http.StatusUnprocessableEntity || er.Field != c.field || !strings.Contains(er.Message, c.sqlstat) {
				t.Errorf("%s (try %d): %d %+v, want 422 naming %s with SQLSTATE %s", c.name, try+1, code, er, c.field, c.sqlstat)
			}
		}
	}
	if n := len(e.storedIDs(e.a.org)); n != 0 {
		t.Errorf("refused batches stored %d events", n)
	}
	if code := e.postGzip(protocol.PathIngestLogs, e.a, uuid.NewString(), protocol.LogBatch{Events: events}, nil); code != 200 {
		t.Errorf("the clean batch after the refused ones: %d", code)
	}
	// A refused screenshot upload answers 422 and leaves no file.
	now := time.Now().UTC()
	var shots []protocol.Event
	imgs := map[string][]byte{}
	for i := 0; i < 4; i++ {
		img := bytes.Repeat([]byte{byte(i), 'P', 'N', 'G'}, 50)
		ev := screenshotEvent(int64(100+i), now, img)
		if i == 2 {
			ev.UserSID = "S-REFUSE"
		}
		shots = append(shots, ev)
		imgs[ev.EventID] = img
	}
	var er protocol.ErrorResponse
	if code := e.postScreenshots(e.a, uuid.NewString(), shots, imgs, &er); code != 422 || er.Field != "events[2]" {
		t.Errorf("refused screenshots: %d %+v, want 422 naming events[2]", code, er)
	}
	if files := e.screenshotFiles(); len(files) != 0 {
		t.Errorf("a refused screenshot upload left %d files: %v", len(files), files)
	}
	if v := counterSum(t, e.registry, "ingest_database_refusals_total"); v != 7 {
		t.Errorf("ingest_database_refusals_total sums to %v, want 7 (three cases tried twice, one upload)", v)
	}
}

// partitions counts the daily partitions of schema.table.
func (e *env) partitions(schema, table string) int {
	e.t.Helper()
	return e.count(`SELECT count(*)::int FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = to_regclass($1)`, schema+"."+table)
}

// timescaleDB reports whether the store's series are TimescaleDB
// hypertables (TEST_DATABASE_URL on such a server) rather than native
// partitions.
func (e *env) timescaleDB() bool {
	e.t.Helper()
	return e.count(`SELECT (monitoring.storage_kind() = 'timescaledb')::int`) == 1
}

// TestMissingPartitionIsEnsuredAgain: a day whose partitions retention
// (here, the owner) dropped after ingest ensured them takes events again at
// once: ingest notices the missing partition, ensures it and retries. With
// TimescaleDB the day's chunks are dropped instead, and TimescaleDB makes
// new ones for the next insert: nothing is missing, nothing is retried.
func TestMissingPartitionIsEnsuredAgain(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ingest.DefaultLimits())
	ctx := context.Background()
	day := time.Now().UTC().AddDate(0, 0, -20).Truncate(24 * time.Hour)
	first := makeEvents(3, 1)
	for i := range first {
		first[i].Datetime = day.Add(time.Duration(i+1) * time.Hour)
	}
	if code := e.postGzip(protocol.PathIngestLogs, e.a, uuid.NewString(), protocol.LogBatch{Events: first}, nil); code != 200 {
		t.Fatalf("first batch: %d", code)
	}
	tsdb := e.timescaleDB()
	for _, table := range []string{"active_windows", "visited_sites", "user_sessions", "device_events", "screenshots"} {
		sql := fmt.Sprintf(`DROP TABLE IF EXISTS monitoring.%s_p%s`, table, day.Format("20060102"))
		if tsdb {
			sql = fmt.Sprintf(`SELECT count(*) FROM drop_chunks('monitoring.%s', newer_than => '%s'::timestamptz, older_than => '%s'::timestamptz)`,
				table, day.Format(time.RFC3339), day.AddDate(0, 0, 1).Format(time.RFC3339))
		}
		if _, err := e.admin.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	if n := e.count(`SELECT count(*)::int FROM monitoring.active_windows WHERE datetime >= $1 AND datetime < $2`, day, day.AddDate(0, 0, 1)); n != 0 {
		t.Fatalf("%d rows left on the dropped day", n)
	}
	again := makeEvents(3, 4)
	for i := range again {
		again[i].Datetime = day.Add(time.Duration(i+5) * time.Hour)
	}
	var resp protocol.IngestResponse
	if code := e.postGzip(protocol.PathIngestLogs, e.a, uuid.NewString(), protocol.LogBatch{Events: again}, &resp); code != 200 || resp.Accepted != 3 {
		t.Fatalf("after the partitions were dropped: %d %+v, want 200 with 3 accepted", code, resp)
	}
	got := e.storedIDs(e.a.org)
	for _, ev := range again {
		if got[ev.EventID] != 1 {
			t.Errorf("event %s stored %d times, want 1", ev.EventID, got[ev.EventID])
		}
	}
	if v, want := gaugeValue(t, e.registry, "ingest_partition_retries_total", "", ""), map[bool]float64{false: 1, true: 0}[tsdb]; v != want {
		t.Errorf("ingest_partition_retries_total = %v, want %v", v, want)
	}
	// Device events and screenshots of the same day (tables whose
	// partitions were dropped too, never ensured since) go in as well.
	if code := e.postGzip(protocol.PathIngestDeviceEvents, e.a, uuid.NewString(), protocol.DeviceEventBatch{Events: []protocol.DeviceEvent{deviceEvent(7, day.Add(time.Hour))}}, nil); code != 200 {
		t.Errorf("device event on the dropped day: %d", code)
	}
	img := []byte("png bytes")
	shot := screenshotEvent(8, day.Add(2*time.Hour), img)
	if code := e.postScreenshots(e.a, uuid.NewString(), []protocol.Event{shot}, map[string][]byte{shot.EventID: img}, nil); code != 200 {
		t.Errorf("screenshot on the dropped day: %d", code)
	}
}

// TestRetentionAndDaysPerBatch: an event older than its table's retention
// is refused naming its datetime (never stored and deleted later); a batch
// creates partitions only for its own days and tables; a batch spanning
// more days than the limit is answered 413 so that the gateway halves it.
func TestRetentionAndDaysPerBatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ingest.Limits{MaxBodyBytes: 1 << 20, MaxDecodedBytes: 4 << 20, MaxEvents: 1000, MaxImageBytes: 1 << 20, MaxDays: 10})
	now := time.Now().UTC()
	evs := makeEvents(3, 1) // active window, visited site, user session
	evs[1].Datetime = now.AddDate(0, 0, -91)
	var er protocol.ErrorResponse
	if code := e.postGzip(protocol.PathIngestLogs, e.a, uuid.NewString(), protocol.LogBatch{Events: evs}, &er); code != 422 || er.Field != "events[1].datetime" ||
		!strings.Contains(er.Message, "retention") || !strings.Contains(er.Message, "90") {
		t.Errorf("visited site 91 days old: %d %+v, want 422 naming events[1].datetime and the 90-day retention", code, er)
	}
	shotImg := []byte("old png")
	shot := screenshotEvent(1, now.AddDate(0, 0, -31), shotImg)
	if code := e.postScreenshots(e.a, uuid.NewString(), []protocol.Event{shot}, map[string][]byte{shot.EventID: shotImg}, &er); code != 422 || er.Field != "events[0].datetime" ||
		!strings.Contains(er.Message, "retention") || !strings.Contains(er.Message, "30") {
		t.Errorf("screenshot 31 days old: %d %+v", code, er)
	}
	if code := e.postGzip(protocol.PathIngestDeviceEvents, e.a, uuid.NewString(), protocol.DeviceEventBatch{Events: []protocol.DeviceEvent{deviceEvent(1, now.AddDate(0, 0, -366))}}, &er); code != 422 || er.Field != "events[0].datetime" {
		t.Errorf("device event 366 days old: %d %+v", code, er)
	}
	if n := e.written(); n != 0 {
		t.Errorf("events past retention wrote %d rows", n)
	}

	// The batch: two user sessions 399 and 300 days old. 399 is past
	// the 365-day retention; 300 and 200 go in with one partition each, in
	// user_sessions of the schema written only.
	sess := makeEvents(3, 10)
	old := []protocol.Event{sess[2], sess[2]}
	old[0].EventID, old[0].Seq, old[0].Datetime = uuid.Must(uuid.NewV7()).String(), 10, now.AddDate(0, 0, -399)
	old[1].EventID, old[1].Seq, old[1].Datetime = uuid.Must(uuid.NewV7()).String(), 11, now.AddDate(0, 0, -300)
	if code := e.postGzip(protocol.PathIngestLogs, e.a, uuid.NewString(), protocol.LogBatch{Events: old}, &er); code != 422 || er.Field != "events[0].datetime" {
		t.Errorf("user session 399 days old: %d %+v, want 422", code, er)
	}
	before := map[string]int{}
	for _, s := range []string{"monitoring", "monitoring_fallback"} {
		for _, tb := range []string{"active_windows", "visited_sites", "user_sessions", "device_events", "screenshots"} {
			before[s+"."+tb] = e.partitions(s, tb)
		}
	}
	old[0].Datetime = now.AddDate(0, 0, -200)
	start := time.Now()
	if code := e.postGzip(protocol.PathIngestLogs, e.a, uuid.NewString(), protocol.LogBatch{Events: old}, nil); code != 200 {
		t.Fatalf("user sessions 200 and 300 days old: %d", code)
	}
	t.Logf("batch with two old days stored in %v", time.Since(start))
	for k, n := range before {
		want := n
		if k == "monitoring.user_sessions" {
			want = n + 2
		}
		s, tb, _ := strings.Cut(k, ".")
		if got := e.partitions(s, tb); got != want {
			t.Errorf("%s has %d partitions, want %d (before: %d)", k, got, want, n)
		}
	}
	// With TimescaleDB the two new children of monitoring.user_sessions are
	// chunks TimescaleDB made; ingest creates no partition.
	if v, want := gaugeValue(t, e.registry, "ingest_partitions_created_total", "", ""), map[bool]float64{false: 2, true: 0}[e.timescaleDB()]; v != want {
		t.Errorf("ingest_partitions_created_total = %v, want %v", v, want)
	}

	// Eleven distinct days with a limit of ten: 413 naming events.
	many := makeEvents(11, 20)
	for i := range many {
		many[i].Datetime = now.AddDate(0, 0, -i)
	}
	if code := e.postGzip(protocol.PathIngestLogs, e.a, uuid.NewString(), protocol.LogBatch{Events: many}, &er); code != http.StatusRequestEntityTooLarge || er.Field != "events" || er.Error != protocol.ErrCodeTooLarge {
		t.Errorf("11 days in one batch: %d %+v, want 413 naming events", code, er)
	}
	// Halved, as the gateway does, both halves go in.
	for _, half := range [][]protocol.Event{many[:6], many[6:]} {
		if code := e.postGzip(protocol.PathIngestLogs, e.a, uuid.NewString(), protocol.LogBatch{Events: half}, nil); code != 200 {
			t.Errorf("half of the 11-day batch: %d", code)
		}
	}
}

// TestScreenshotsAreWriteOnceAndOrphansSwept: a duplicate with another
// image keeps the stored bytes and leaves no file of its own; the sweep
// removes an old orphan and keeps referenced files and young orphans.
func TestScreenshotsAreWriteOnceAndOrphansSwept(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ingest.DefaultLimits())
	ctx := context.Background()
	now := time.Now().UTC()
	orig := []byte("the original image")
	ev := screenshotEvent(1, now, orig)
	var r protocol.IngestResponse
	if code := e.postScreenshots(e.a, uuid.NewString(), []protocol.Event{ev}, map[string][]byte{ev.EventID: orig}, &r); code != 200 || r.Accepted != 1 {
		t.Fatalf("upload: %d %+v", code, r)
	}
	// The same event id under a new key with another image.
	other := []byte("another image, same event id")
	dup := ev
	sum := sha256.Sum256(other)
	dup.Seq, dup.Screenshot = 2, &protocol.Screenshot{SHA256: hex.EncodeToString(sum[:]), Size: int64(len(other)), ContentType: "image/png"}
	if code := e.postScreenshots(e.a, uuid.NewString(), []protocol.Event{dup}, map[string][]byte{ev.EventID: other}, &r); code != 200 || r.Duplicates != 1 {
		t.Fatalf("duplicate: %d %+v", code, r)
	}
	var path, stored string
	if err := e.admin.QueryRow(ctx, `SELECT file_path, sha256 FROM monitoring.screenshots WHERE id = $1`, ev.EventID).Scan(&path, &stored); err != nil {
		t.Fatal(err)
	}
	files := e.screenshotFiles()
	if !bytes.Equal(files[path], orig) || stored != ev.Screenshot.SHA256 {
		t.Errorf("after a duplicate with another image the row's file holds %q (row sha %s), want the original", files[path], stored)
	}
	if len(files) != 1 {
		t.Errorf("%d files after the duplicate, want 1 (the duplicate's bytes discarded): %v", len(files), files)
	}
	if v := gaugeValue(t, e.registry, "ingest_screenshot_files_discarded_total", "", ""); v != 1 {
		t.Errorf("ingest_screenshot_files_discarded_total = %v, want 1", v)
	}

	// Orphans: one old (removed), one young (kept for now); the referenced
	// file is old too and kept; a file outside the key scheme is left alone.
	day := now.Format(time.DateOnly)
	oldOrphan := fmt.Sprintf("screenshots/%d/%s/%s-deadbeef0000.png", e.a.org, day, uuid.NewString())
	youngOrphan := fmt.Sprintf("screenshots/%d/%s/%s-deadbeef0001.png", e.a.org, day, uuid.NewString())
	foreign := "screenshots/README"
	for _, k := range []string{oldOrphan, youngOrphan, foreign} {
		p := filepath.Join(e.files, filepath.FromSlash(k))
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("orphan"), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	twoHoursAgo := now.Add(-2 * time.Hour)
	for _, k := range []string{oldOrphan, path, foreign} {
		if err := os.Chtimes(filepath.Join(e.files, filepath.FromSlash(k)), twoHoursAgo, twoHoursAgo); err != nil {
			t.Fatal(err)
		}
	}
	removed, err := e.svc.SweepScreenshots(ctx, now, time.Hour)
	if err != nil || removed != 1 {
		t.Fatalf("sweep: removed %d, %v; want 1", removed, err)
	}
	files = e.screenshotFiles()
	if _, ok := files[oldOrphan]; ok {
		t.Errorf("the old orphan survived the sweep")
	}
	for _, k := range []string{path, youngOrphan, foreign} {
		if _, ok := files[k]; !ok {
			t.Errorf("the sweep removed %s", k)
		}
	}
	if v := gaugeValue(t, e.registry, "ingest_screenshot_orphans_removed_total", "", ""); v != 1 {
		t.Errorf("ingest_screenshot_orphans_removed_total = %v, want 1", v)
	}
	// Once retention deletes the row, its file is an orphan too.
	if _, err := e.admin.Exec(ctx, `DELETE FROM monitoring.screenshots WHERE id = $1`, ev.EventID); err != nil {
		t.Fatal(err)
	}
	if removed, err := e.svc.SweepScreenshots(ctx, now, time.Hour); err != nil || removed != 1 {
		t.Errorf("sweep after the row's deletion: removed %d, %v; want 1", removed, err)
	}
}

// TestResentEventsLeaveNoSequenceGap: the chaos run's scenario on every
// endpoint. A batch is stored (seqs a..b); the gateway, having lost track,
// uploads the same events again under new seqs and a new key (duplicates);
// that batch is replayed under yet another key. The gap stays 0 all along,
// no seq is counted twice, and a real gap still shows.
func TestResentEventsLeaveNoSequenceGap(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ingest.DefaultLimits())
	now := time.Now().UTC()
	var seq int64
	renumber := func(n int) []int64 {
		out := make([]int64, n)
		for i := range out {
			seq++
			out[i] = seq
		}
		return out
	}
	type endpoint struct {
		name string
		send func(key string, seqs []int64) (int, protocol.IngestResponse)
	}
	logs := makeEvents(12, 1)
	devs := []protocol.DeviceEvent{deviceEvent(1, now), deviceEvent(2, now.Add(-time.Minute)), deviceEvent(3, now.Add(-2*time.Minute))}
	var shots []protocol.Event
	imgs := map[string][]byte{}
	for i := 0; i < 3; i++ {
		img := []byte(fmt.Sprintf("image %d", i))
		ev := screenshotEvent(1, now, img)
		shots = append(shots, ev)
		imgs[ev.EventID] = img
	}
	eps := []endpoint{
		{"logs", func(key string, seqs []int64) (int, protocol.IngestResponse) {
			b := append([]protocol.Event{}, logs...)
			for i := range b {
				b[i].Seq = seqs[i]
			}
			var r protocol.IngestResponse
			return e.postGzip(protocol.PathIngestLogs, e.a, key, protocol.LogBatch{Events: b}, &r), r
		}},
		{"device-events", func(key string, seqs []int64) (int, protocol.IngestResponse) {
			b := append([]protocol.DeviceEvent{}, devs...)
			for i := range b {
				b[i].Seq = seqs[i]
			}
			var r protocol.IngestResponse
			return e.postGzip(protocol.PathIngestDeviceEvents, e.a, key, protocol.DeviceEventBatch{Events: b}, &r), r
		}},
		{"screenshots", func(key string, seqs []int64) (int, protocol.IngestResponse) {
			b := append([]protocol.Event{}, shots...)
			for i := range b {
				b[i].Seq = seqs[i]
			}
			var r protocol.IngestResponse
			return e.postScreenshots(e.a, key, b, imgs, &r), r
		}},
	}
	sizes := map[string]int{"logs": len(logs), "device-events": len(devs), "screenshots": len(shots)}
	for _, ep := range eps {
		n := sizes[ep.name]
		if code, r := ep.send(uuid.NewString(), renumber(n)); code != 200 || r.Accepted != n {
			t.Fatalf("%s first upload: %d %+v", ep.name, code, r)
		}
		if g := e.gap(e.a); g != 0 {
			t.Errorf("%s: gap %d after the first upload", ep.name, g)
		}
		resend := renumber(n)
		if code, r := ep.send(uuid.NewString(), resend); code != 200 || r.Duplicates != n {
			t.Fatalf("%s resend: %d %+v", ep.name, code, r)
		}
		if g := e.gap(e.a); g != 0 {
			t.Errorf("%s: gap %d after the resend under new seqs, want 0", ep.name, g)
		}
		if code, r := ep.send(uuid.NewString(), resend); code != 200 || r.Duplicates != n {
			t.Fatalf("%s replay of the resend: %d %+v", ep.name, code, r)
		}
		if g := e.gap(e.a); g != 0 {
			t.Errorf("%s: gap %d after the resend was replayed under another key, want 0", ep.name, g)
		}
	}
	if v := gaugeValue(t, e.registry, "ingest_sequence_gap", "gateway", e.a.id); v != 0 {
		t.Errorf("ingest_sequence_gap = %v, want 0", v)
	}
	wantResent := len(logs) + len(devs) + len(shots)
	if n := e.count(`SELECT events_resent::int FROM gateway_ingest_stats WHERE gateway_id = $1`, e.a.id); n != wantResent {
		t.Errorf("events_resent = %d, want %d", n, wantResent)
	}
	// A real gap: four seqs never arrive.
	seq += 4
	if code, _ := eps[0].send(uuid.NewString(), renumber(len(logs))); code != 200 {
		t.Fatal(code)
	}
	if g := e.gap(e.a); g != 4 {
		t.Errorf("gap %d with four seqs missing, want 4", g)
	}
}

// counterSum adds up every series of the counter name in reg.
func counterSum(t *testing.T, reg prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}
