package report_test

import (
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/cloud/report"
)

// The expected answers, by brute force over seconds and minutes, written
// apart from the engine (none of its helpers).

func (ds *dataset) days(p [2]string) []time.Time {
	var out []time.Time
	from, _ := time.ParseInLocation(time.DateOnly, p[0], ds.loc)
	to, _ := time.ParseInLocation(time.DateOnly, p[1], ds.loc)
	for d := from; !d.After(to); d = time.Date(d.Year(), d.Month(), d.Day()+1, 0, 0, 0, 0, ds.loc) {
		out = append(out, d)
	}
	return out
}

func host(raw string) string {
	if raw == "" {
		return ""
	}
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return strings.ToLower(u.Hostname())
}

func (ds *dataset) cls(proc, h string) string {
	inSites := func(list []string) bool {
		for _, s := range list {
			if h != "" && (h == s || strings.HasSuffix(h, "."+s)) {
				return true
			}
		}
		return false
	}
	inProcs := func(list []string) bool {
		for _, p := range list {
			if strings.EqualFold(p, proc) {
				return true
			}
		}
		return false
	}
	switch {
	case inSites(ds.productiveSite):
		return report.Productive
	case inSites(ds.unproductiveSite):
		return report.Unproductive
	case inProcs(ds.productiveProc):
		return report.Productive
	case inProcs(ds.unproductiveProc):
		return report.Unproductive
	}
	return report.Neutral
}

// uniqueRows is A's rows once each.
func (ds *dataset) uniqueRows() []row { return ds.rows }

// expectDay computes one employee-day.
// expectDay computes one employee-day; since is the first day of the
// period: the session state carried in is looked for 31 days before it.
func (ds *dataset) expectDay(p person, day, since time.Time) report.EmployeeDay {
	next := time.Date(day.Year(), day.Month(), day.Day()+1, 0, 0, 0, 0, ds.loc)
	out := report.EmployeeDay{EmployeeID: p.id, EmployeeNumber: p.number, Name: p.name, DepartmentID: &p.dept,
		Date: day.Format(time.DateOnly), DayStart: day, DayEnd: next, TopApplications: []report.Usage{}, TopSites: []report.Usage{}, Sessions: []report.SessionEvent{}}
	mine := map[string]bool{}
	for _, s := range p.sids {
		mine[s] = true
	}
	minutes := int(next.Sub(day) / time.Minute)
	active := make([]bool, minutes)
	type key struct{ kind, proc, host string }
	secs := map[key]int64{}
	events := map[key]int64{}
	for _, sid := range p.sids {
		cover := map[key][]bool{}
		for _, rw := range ds.uniqueRows() {
			if rw.sid != sid {
				continue
			}
			dur := max(rw.dur, 0)
			end := rw.at.Add(time.Duration(dur) * time.Second)
			touches := (dur > 0 && rw.at.Before(next) && end.After(day)) || (dur == 0 && !rw.at.Before(day) && rw.at.Before(next))
			if !touches {
				continue
			}
			k := key{rw.kind, "", host(rw.url)}
			if rw.kind == "window" {
				k.proc = rw.process
				for m := 0; m < minutes; m++ {
					ms, me := day.Add(time.Duration(m)*time.Minute), day.Add(time.Duration(m+1)*time.Minute)
					if (dur > 0 && rw.at.Before(me) && end.After(ms)) || (dur == 0 && !rw.at.Before(ms) && rw.at.Before(me)) {
						active[m] = true
					}
				}
			}
			events[k]++
			if cover[k] == nil {
				cover[k] = make([]bool, int(next.Sub(day)/time.Second))
			}
			for s := rw.at; s.Before(end); s = s.Add(time.Second) {
				if !s.Before(day) && s.Before(next) {
					cover[k][int(s.Sub(day)/time.Second)] = true
				}
			}
		}
		for k, c := range cover {
			for _, b := range c {
				if b {
					secs[k]++
				}
			}
		}
	}
	first, last := -1, -1
	for m, a := range active {
		if a {
			if first < 0 {
				first = m
			}
			last = m
		}
	}
	if first >= 0 {
		idleMin := (ds.policyIdle + 59) / 60
		var occ, idle, pause, run int64
		for m := first; m <= last; m++ {
			if active[m] {
				occ++
				if run >= int64(idleMin) {
					idle += run
				} else {
					pause += run
				}
				run = 0
			} else {
				run++
			}
		}
		f, l := day.Add(time.Duration(first)*time.Minute), day.Add(time.Duration(last+1)*time.Minute)
		out.FirstActivity, out.LastActivity = &f, &l
		out.OccupiedSeconds, out.ActiveSeconds, out.IdleSeconds = 60*occ, 60*(occ+pause), 60*idle
	}
	apps, sites := map[string]*report.Usage{}, map[string]*report.Usage{}
	for k := range events {
		s := secs[k]
		if k.kind == "window" {
			switch ds.cls(k.proc, k.host) {
			case report.Productive:
				out.ProductiveSeconds += s
			case report.Unproductive:
				out.UnproductiveSeconds += s
			default:
				out.NeutralSeconds += s
			}
			if k.proc != "" {
				if apps[k.proc] == nil {
					apps[k.proc] = &report.Usage{Name: k.proc, Category: ds.cls(k.proc, "")}
				}
				apps[k.proc].Seconds += s
				apps[k.proc].Events += events[k]
			}
		} else if k.host != "" {
			if sites[k.host] == nil {
				sites[k.host] = &report.Usage{Name: k.host, Category: ds.cls("", k.host)}
			}
			sites[k.host].Seconds += s
			sites[k.host].Events += events[k]
		}
	}
	out.TopApplications = sortUsage(apps)
	out.TopSites = sortUsage(sites)
	// Sessions.
	var before *report.SessionEvent
	for _, s := range ds.sessions {
		if !mine[s.sid] {
			continue
		}
		ev := report.SessionEvent{Type: s.typ, At: s.at, Computer: s.computer}
		if s.at.Before(day) && !s.at.Before(since.Add(-31*24*time.Hour)) && (before == nil || s.at.After(before.At) || (s.at.Equal(before.At) && ev.Computer+ev.Type > before.Computer+before.Type)) {
			e := ev
			before = &e
		}
		if !s.at.Before(day) && s.at.Before(next) {
			out.Sessions = append(out.Sessions, ev)
		}
	}
	sort.Slice(out.Sessions, func(i, j int) bool {
		a, b := out.Sessions[i], out.Sessions[j]
		if !a.At.Equal(b.At) {
			return a.At.Before(b.At)
		}
		if a.Computer != b.Computer {
			return a.Computer < b.Computer
		}
		return a.Type < b.Type
	})
	out.CarriedSession = before
	return out
}

func sortUsage(m map[string]*report.Usage) []report.Usage {
	out := []report.Usage{}
	for _, u := range m {
		out = append(out, *u)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Seconds != out[j].Seconds {
			return out[i].Seconds > out[j].Seconds
		}
		return out[i].Name < out[j].Name
	})
	if len(out) > report.DefaultTopN {
		out = out[:report.DefaultTopN]
	}
	return out
}

// expectAttendance computes one employee-day's attendance.
func (ds *dataset) expectAttendance(p person, day time.Time) report.AttendanceDay {
	next := time.Date(day.Year(), day.Month(), day.Day()+1, 0, 0, 0, 0, ds.loc)
	wd := day.Weekday()
	out := report.AttendanceDay{EmployeeID: p.id, EmployeeNumber: p.number, Name: p.name, DepartmentID: &p.dept,
		Date: day.Format(time.DateOnly), Scheduled: wd != time.Saturday && wd != time.Sunday}
	var mine []badgeRow
	for _, b := range ds.badges {
		own := false
		switch {
		case b.number == p.number || (b.number != "" && contains(p.numbers, b.number)):
			own = true
		case b.number != "" && ds.knownNumber(b.number):
			own = false
		case b.card != "" && contains(p.cards, b.card):
			own = true
		}
		if own && !b.at.Before(day) && b.at.Before(next) {
			mine = append(mine, b)
		}
	}
	sort.Slice(mine, func(i, j int) bool { return mine[i].at.Before(mine[j].at) })
	out.Badges = len(mine)
	if len(mine) == 0 {
		out.Absent = out.Scheduled && p.status == "active"
		return out
	}
	in, last := mine[0].at, mine[len(mine)-1].at
	for _, b := range mine {
		if b.direction != "out" {
			in = b.at
			break
		}
	}
	for i := len(mine) - 1; i >= 0; i-- {
		if mine[i].direction != "in" {
			last = mine[i].at
			break
		}
	}
	out.FirstIn, out.LastOut = &in, &last
	if last.After(in) {
		out.OnSiteSeconds = int64(last.Sub(in) / time.Second)
	}
	if out.Scheduled {
		// The schedule is wall-clock time of the day.
		out.Late = in.After(time.Date(day.Year(), day.Month(), day.Day(), 0, ds.workStart+ds.grace, 0, 0, ds.loc))
		out.EarlyLeave = last.Before(time.Date(day.Year(), day.Month(), day.Day(), 0, ds.workEnd-ds.grace, 0, 0, ds.loc))
	}
	return out
}

func (ds *dataset) knownNumber(n string) bool {
	for _, p := range ds.people {
		if p.number == n || contains(p.numbers, n) {
			return true
		}
	}
	return false
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
