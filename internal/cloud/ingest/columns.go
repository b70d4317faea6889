package ingest

import (
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// The column arrays of the unnest inserts, in the order of the SQL files.
// Nullable columns are pgtype values, not pointers: no allocation per
// element (1,000 events a batch, up to three nullable columns each).

func nullable(s string) pgtype.Text {
	return pgtype.Text{String: s, Valid: s != ""}
}

// binaryIDs returns event ids as [16]byte values, which pgx sends as a
// binary uuid[]. A []string has no binary encoding to uuid[]: pgx first
// fails it (formatting the whole array into the error) and then sends it
// as text, which the server parses id by id. Should an id not parse
// (validation refuses those before), the strings go as before and the
// server refuses them as before.
func binaryIDs(ids []string) any {
	out := make([][16]byte, len(ids))
	for i, s := range ids {
		u, err := uuid.Parse(s)
		if err != nil {
			return ids
		}
		out[i] = u
	}
	return out
}

func duration(d *int64) pgtype.Int4 {
	if d == nil {
		return pgtype.Int4{}
	}
	return pgtype.Int4{Int32: int32(*d), Valid: true}
}

func activeWindowColumns(es []*protocol.Event) []any {
	n := len(es)
	ids, seqs := make([]string, n), make([]int64, n)
	agents, computers, sids := make([]string, n), make([]string, n), make([]string, n)
	titles, procs, urls := make([]pgtype.Text, n), make([]pgtype.Text, n), make([]pgtype.Text, n)
	times, durs := make([]time.Time, n), make([]pgtype.Int4, n)
	for i, e := range es {
		ids[i], seqs[i], agents[i], computers[i], sids[i] = e.EventID, e.Seq, e.AgentUID, e.ComputerName, e.UserSID
		titles[i], procs[i], urls[i] = nullable(e.WindowTitle), nullable(e.ProcessName), nullable(e.URL)
		times[i], durs[i] = e.Datetime, duration(e.DurationSeconds)
	}
	return []any{binaryIDs(ids), seqs, agents, computers, sids, titles, procs, urls, times, durs}
}

func visitedSiteColumns(es []*protocol.Event) []any {
	n := len(es)
	ids, seqs := make([]string, n), make([]int64, n)
	agents, computers, sids := make([]string, n), make([]string, n), make([]string, n)
	urls, titles := make([]string, n), make([]pgtype.Text, n)
	times, durs := make([]time.Time, n), make([]pgtype.Int4, n)
	for i, e := range es {
		ids[i], seqs[i], agents[i], computers[i], sids[i] = e.EventID, e.Seq, e.AgentUID, e.ComputerName, e.UserSID
		urls[i], titles[i] = e.URL, nullable(e.Title)
		times[i], durs[i] = e.Datetime, duration(e.DurationSeconds)
	}
	return []any{binaryIDs(ids), seqs, agents, computers, sids, urls, titles, times, durs}
}

func userSessionColumns(es []*protocol.Event) []any {
	n := len(es)
	ids, seqs := make([]string, n), make([]int64, n)
	agents, computers, sids := make([]string, n), make([]string, n), make([]string, n)
	kinds, times := make([]string, n), make([]time.Time, n)
	for i, e := range es {
		ids[i], seqs[i], agents[i], computers[i], sids[i] = e.EventID, e.Seq, e.AgentUID, e.ComputerName, e.UserSID
		kinds[i], times[i] = e.SessionType, e.Datetime
	}
	return []any{binaryIDs(ids), seqs, agents, computers, sids, kinds, times}
}

func screenshotColumns(es []*protocol.Event, paths []string) []any {
	n := len(es)
	ids, seqs := make([]string, n), make([]int64, n)
	agents, computers, sids := make([]string, n), make([]string, n), make([]string, n)
	sizes, sums, times := make([]int64, n), make([]string, n), make([]time.Time, n)
	for i, e := range es {
		ids[i], seqs[i], agents[i], computers[i], sids[i] = e.EventID, e.Seq, e.AgentUID, e.ComputerName, e.UserSID
		sizes[i], sums[i], times[i] = e.Screenshot.Size, e.Screenshot.SHA256, e.Datetime
	}
	return []any{binaryIDs(ids), seqs, agents, computers, sids, paths, sizes, sums, times}
}

func deviceEventColumns(es []*protocol.DeviceEvent) []any {
	n := len(es)
	ids, seqs, devs := make([]string, n), make([]int64, n), make([]pgtype.Int8, n)
	serials, times := make([]string, n), make([]time.Time, n)
	emps, cards := make([]pgtype.Text, n), make([]pgtype.Text, n)
	doors, majors, minors := make([]pgtype.Int4, n), make([]int32, n), make([]int32, n)
	modes, dirs := make([]pgtype.Text, n), make([]pgtype.Text, n)
	for i, e := range es {
		ids[i], seqs[i], serials[i], times[i] = e.EventID, e.Seq, e.DeviceSerial, e.Datetime
		if e.DeviceID != nil {
			devs[i] = pgtype.Int8{Int64: *e.DeviceID, Valid: true}
		}
		emps[i], cards[i] = nullable(e.EmployeeNumber), nullable(e.CardNumber)
		if e.Door != nil {
			doors[i] = pgtype.Int4{Int32: int32(*e.Door), Valid: true}
		}
		majors[i], minors[i] = int32(e.MajorCode), int32(e.MinorCode)
		modes[i], dirs[i] = nullable(e.VerifyMode), nullable(e.Direction)
	}
	return []any{binaryIDs(ids), seqs, devs, serials, times, emps, cards, doors, majors, minors, modes, dirs}
}
