package ingest

import (
	"time"

	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// The column arrays of the unnest inserts, in the order of the SQL files.

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func duration(d *int64) *int32 {
	if d == nil {
		return nil
	}
	v := int32(*d)
	return &v
}

func activeWindowColumns(es []*protocol.Event) []any {
	n := len(es)
	ids, seqs := make([]string, n), make([]int64, n)
	agents, computers, sids := make([]string, n), make([]string, n), make([]string, n)
	titles, procs, urls := make([]*string, n), make([]*string, n), make([]*string, n)
	times, durs := make([]time.Time, n), make([]*int32, n)
	for i, e := range es {
		ids[i], seqs[i], agents[i], computers[i], sids[i] = e.EventID, e.Seq, e.AgentUID, e.ComputerName, e.UserSID
		titles[i], procs[i], urls[i] = nullable(e.WindowTitle), nullable(e.ProcessName), nullable(e.URL)
		times[i], durs[i] = e.Datetime, duration(e.DurationSeconds)
	}
	return []any{ids, seqs, agents, computers, sids, titles, procs, urls, times, durs}
}

func visitedSiteColumns(es []*protocol.Event) []any {
	n := len(es)
	ids, seqs := make([]string, n), make([]int64, n)
	agents, computers, sids := make([]string, n), make([]string, n), make([]string, n)
	urls, titles := make([]string, n), make([]*string, n)
	times, durs := make([]time.Time, n), make([]*int32, n)
	for i, e := range es {
		ids[i], seqs[i], agents[i], computers[i], sids[i] = e.EventID, e.Seq, e.AgentUID, e.ComputerName, e.UserSID
		urls[i], titles[i] = e.URL, nullable(e.Title)
		times[i], durs[i] = e.Datetime, duration(e.DurationSeconds)
	}
	return []any{ids, seqs, agents, computers, sids, urls, titles, times, durs}
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
	return []any{ids, seqs, agents, computers, sids, kinds, times}
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
	return []any{ids, seqs, agents, computers, sids, paths, sizes, sums, times}
}

func deviceEventColumns(es []*protocol.DeviceEvent) []any {
	n := len(es)
	ids, seqs, devs := make([]string, n), make([]int64, n), make([]*int64, n)
	serials, times := make([]string, n), make([]time.Time, n)
	emps, cards := make([]*string, n), make([]*string, n)
	doors, majors, minors := make([]*int32, n), make([]int32, n), make([]int32, n)
	modes, dirs := make([]*string, n), make([]*string, n)
	for i, e := range es {
		ids[i], seqs[i], devs[i], serials[i], times[i] = e.EventID, e.Seq, e.DeviceID, e.DeviceSerial, e.Datetime
		emps[i], cards[i] = nullable(e.EmployeeNumber), nullable(e.CardNumber)
		if e.Door != nil {
			d := int32(*e.Door)
			doors[i] = &d
		}
		majors[i], minors[i] = int32(e.MajorCode), int32(e.MinorCode)
		modes[i], dirs[i] = nullable(e.VerifyMode), nullable(e.Direction)
	}
	return []any{ids, seqs, devs, serials, times, emps, cards, doors, majors, minors, modes, dirs}
}
