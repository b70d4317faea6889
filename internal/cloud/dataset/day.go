package dataset

import (
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
)

// One employee-day: the plan (when the person arrives, locks the screen,
// sits in a meeting, leaves) drawn from the seed, and the rows of every
// series that follow from it. Every draw of the plan and of the timeline
// happens whatever series is asked for, so each series' rows are the same
// whether drawn alone or with the others; ids come from one stream per
// series.

// Streams of draws (the third coordinate of newRNG after seed and kind).
const (
	streamPlan uint64 = iota + 1
	streamTimeline
	streamShots
	streamIDs // + the series' index
	streamPeople
	streamVisitors
)

// employee is what the series need of one generated employee.
type employee struct {
	index     int
	number    string   // employee number (E00001)
	card      string   // access card number
	sids      []string // Windows SIDs: one, or two for a second computer
	computers []string // the computers, by the same index as sids
	agents    []string // the agents' ids, likewise
	profile   int
	zk        bool // badges at the ZKTeco terminal (by employee number)
}

// span is [from, to).
type span struct{ from, to time.Time }

// segment is a span in which windows flow on one computer (who indexes
// the employee's sids and computers).
type segment struct {
	span
	who int
}

// sessionEvent is a user_sessions row before ids.
type sessionEvent struct {
	at   time.Time
	who  int
	kind string
}

// badgeEvent is a device_events row before ids.
type badgeEvent struct {
	at  time.Time
	dir string
}

// plan is an employee-day: nothing when not worked.
type plan struct {
	worked   bool
	segs     []segment
	sessions []sessionEvent
	badges   []badgeEvent
}

// clock is the wall-clock minute m (may exceed a day) of local day d.
func clock(d time.Time, m int) time.Time {
	return time.Date(d.Year(), d.Month(), d.Day(), 0, m, 0, 0, d.Location())
}

// minuteOf is t's minutes since local midnight of day d (by the wall clock).
func minuteOf(d, t time.Time) int {
	t = t.In(d.Location())
	m := t.Hour()*60 + t.Minute()
	if t.YearDay() != d.YearDay() {
		m += 24 * 60
	}
	return m
}

// planDay draws employee e's day number n (local midnight day).
func (g *generator) planDay(e *employee, n int, day time.Time, p *plan) {
	*p = plan{segs: p.segs[:0], sessions: p.sessions[:0], badges: p.badges[:0]}
	r := newRNG(g.seed, streamPlan, uint64(e.index), uint64(n))
	wd := day.Weekday()
	weekend := wd == time.Saturday || wd == time.Sunday
	absent := r.chance(0.03) // illness, leave
	worksWeekend := r.chance(0.03)
	late := r.chance(0.07)
	overtime := r.chance(0.02) // stays past midnight
	if (weekend && !worksWeekend) || (!weekend && absent) {
		return
	}
	p.worked = true
	var start, end time.Time
	switch {
	case weekend:
		start = clock(day, 10*60+r.between(0, 60))
		end = clock(day, minuteOf(day, start)+r.between(180, 300))
	case late:
		start = clock(day, 9*60+15+r.between(0, 75))
	default:
		start = clock(day, 8*60+15+r.between(0, 50)) // on time: before 09:05
	}
	if !weekend {
		end = clock(day, minuteOf(day, start)+r.between(510, 570))
		if overtime {
			end = clock(day, 24*60+5+r.between(0, 80))
		}
	}

	// Time off the keyboard: lunch and short breaks lock the screen; a
	// meeting leaves it unlocked and idle; the second computer (two SIDs)
	// takes an afternoon stretch while the first is locked.
	type off struct {
		span
		lock, second, lunch bool
	}
	var offs []off
	if !weekend {
		from := clock(day, 12*60+r.between(0, 60))
		offs = append(offs, off{span: span{from, from.Add(r.mins(30, 60))}, lock: true, lunch: true})
	}
	length := int(end.Sub(start) / time.Minute)
	for range r.intn(3) {
		from := start.Add(time.Duration(30+r.intn(max(length-60, 1))) * time.Minute)
		offs = append(offs, off{span: span{from, from.Add(r.mins(5, 16))}, lock: true})
	}
	if r.chance(0.5) {
		from := start.Add(time.Duration(30+r.intn(max(length-90, 1))) * time.Minute)
		offs = append(offs, off{span: span{from, from.Add(r.mins(20, 51))}})
	}
	if len(e.sids) > 1 && !weekend {
		from := clock(day, 14*60+r.between(0, 30))
		offs = append(offs, off{span: span{from, from.Add(r.mins(60, 121))}, lock: true, second: true})
	}
	slices.SortFunc(offs, func(a, b off) int { return a.from.Compare(b.from) })
	kept := offs[:0]
	last := start.Add(10 * time.Minute)
	for _, o := range offs {
		if o.from.Before(last) || o.to.After(end.Add(-10*time.Minute)) {
			continue // overlaps the previous one, or too close to either end
		}
		kept = append(kept, o)
		last = o.to.Add(time.Minute)
	}
	lunchOut := r.chance(0.4)

	p.sessions = append(p.sessions, sessionEvent{start, 0, "login"})
	p.badges = append(p.badges, badgeEvent{start.Add(-r.mins(1, 6)), "in"})
	from := start
	for _, o := range kept {
		p.segs = append(p.segs, segment{span{from, o.from}, 0})
		from = o.to
		if !o.lock {
			continue
		}
		p.sessions = append(p.sessions, sessionEvent{o.from, 0, "lock"})
		if o.second {
			p.sessions = append(p.sessions, sessionEvent{o.from.Add(30 * time.Second), 1, "login"})
			p.segs = append(p.segs, segment{span{o.from.Add(time.Minute), o.to.Add(-time.Minute)}, 1})
			p.sessions = append(p.sessions, sessionEvent{o.to.Add(-30 * time.Second), 1, "logout"})
		}
		if o.lunch && lunchOut {
			p.badges = append(p.badges, badgeEvent{o.from.Add(2 * time.Minute), "out"}, badgeEvent{o.to.Add(-3 * time.Minute), "in"})
		}
		p.sessions = append(p.sessions, sessionEvent{o.to, 0, "unlock"})
	}
	p.segs = append(p.segs, segment{span{from, end}, 0})
	p.sessions = append(p.sessions, sessionEvent{end, 0, "logout"})
	p.badges = append(p.badges, badgeEvent{end.Add(r.mins(1, 5)), "out"})
}

// Series, in the order of their tables.
const (
	seriesWindows = iota
	seriesSites
	seriesShots
	seriesSessions
	seriesBadges
	seriesCount
)

// tableNames are the series' tables in schema monitoring.
var tableNames = [seriesCount]string{"active_windows", "visited_sites", "screenshots", "user_sessions", "device_events"}

// columns are the columns each series' COPY writes (ingested_at takes its
// default).
var columns = [seriesCount][]string{
	{"id", "organization_id", "gateway_id", "seq", "agent_uid", "computer_uid", "user_sid", "window_title", "process_name", "url", "datetime", "duration_seconds"},
	{"id", "organization_id", "gateway_id", "seq", "agent_uid", "computer_uid", "user_sid", "url", "title", "datetime", "duration_seconds"},
	{"id", "organization_id", "gateway_id", "seq", "agent_uid", "computer_uid", "user_sid", "file_path", "file_size", "sha256", "datetime"},
	{"id", "organization_id", "gateway_id", "seq", "agent_uid", "computer_uid", "user_sid", "session_type", "datetime"},
	{"id", "organization_id", "gateway_id", "seq", "device_id", "device_serial", "datetime", "employee_number", "card_number", "door",
		"major_code", "minor_code", "verify_mode", "direction"},
}

// Access terminals: a Hikvision reader (cards) at the entrance and a
// ZKTeco terminal (fingerprints, by employee number) at the side door.
const (
	hikvisionSerial = "DS-K1T671M-G20251104"
	zktecoSerial    = "ZK-F22-CKJX213060"
	majorEvent      = 5 // Hikvision major type: event
	minorValidCard  = 1 // Hikvision minor: valid card
	minorNoCard     = 9 // Hikvision minor: card not found
)

// emitter draws one series' rows of an employee-day into rows (one []any
// per row) and reports the UTC hours the activity series (windows, sites:
// what the report rollups are built from) touch.
type emitter struct {
	g      *generator
	series int
	plan   plan
	rows   [][]any // reused: rows of the current employee-day
	n      int     // rows used in rows
	hours  func(sid string, from, to time.Time)
}

// row returns the next row buffer (reused across employee-days).
func (m *emitter) row() []any {
	if m.n == len(m.rows) {
		m.rows = append(m.rows, make([]any, len(columns[m.series])))
	}
	r := m.rows[m.n]
	m.n++
	return r
}

// employeeDay fills m.rows with the series' rows of employee e on day n
// (e nil: the day's visitors, i.e. badges of unknown cards).
func (m *emitter) employeeDay(e *employee, n int) {
	m.n = 0
	g := m.g
	day := g.days[n]
	if e == nil {
		if m.series == seriesBadges {
			m.visitors(n, day)
		}
		return
	}
	g.planDay(e, n, day, &m.plan)
	if !m.plan.worked {
		return
	}
	ids := newRNG(g.seed, streamIDs+uint64(m.series), uint64(e.index), uint64(n))
	seq := int64(n)<<40 | int64(e.index)<<20
	next := func() int64 { seq++; return seq }
	switch m.series {
	case seriesSessions:
		for _, s := range m.plan.sessions {
			v := m.row()
			v[0], v[1], v[2], v[3] = ids.uuid7(s.at), g.org, g.gateway, next()
			v[4], v[5], v[6] = e.agents[s.who], e.computers[s.who], e.sids[s.who]
			v[7], v[8] = s.kind, s.at
		}
	case seriesBadges:
		for _, b := range m.plan.badges {
			v := m.row()
			v[0], v[1], v[2], v[3], v[4] = ids.uuid7(b.at), g.org, g.gateway, next(), nil
			v[6], v[7], v[9] = b.at, e.number, int32(1)
			if e.zk {
				v[5], v[8], v[10], v[11], v[12] = zktecoSerial, nil, int32(0), int32(0), "fingerprint"
			} else {
				v[5], v[8], v[10], v[11], v[12] = hikvisionSerial, e.card, int32(majorEvent), int32(minorValidCard), "card"
			}
			v[13] = b.dir
		}
	case seriesShots:
		r := newRNG(g.seed, streamShots, uint64(e.index), uint64(n))
		for _, s := range m.plan.segs {
			for t := s.from.Add(r.secs(0, 300)); t.Before(s.to); t = t.Add(r.secs(280, 321)) {
				v := m.row()
				id := ids.uuid7(t)
				v[0], v[1], v[2], v[3] = id, g.org, g.gateway, next()
				v[4], v[5], v[6] = e.agents[s.who], e.computers[s.who], e.sids[s.who]
				v[7], v[10] = g.screenshotKey(id, t), t
				size, sum := g.screenshot(&ids)
				v[8], v[9] = size, sum
			}
		}
	default: // windows and sites follow the same timeline
		r := newRNG(g.seed, streamTimeline, uint64(e.index), uint64(n))
		prof := &profiles[e.profile]
		cur := prof.apps.pick(&r)
		for _, s := range m.plan.segs {
			if !s.from.Before(s.to) {
				continue
			}
			m.hours(e.sids[s.who], s.from, s.to)
			for t := s.from; t.Before(s.to); {
				gap := r.secs(4, 30)
				dur := min(gap, s.to.Sub(t))
				if !r.chance(0.5) {
					cur = prof.apps.pick(&r)
				}
				a := &apps[cur]
				var title, url string
				if a.browser {
					si := prof.sites.pick(&r)
					pg := r.intn(len(sites[si].pages))
					title, url = g.pageTitles[si][pg], g.pageURLs[si][pg]
				} else {
					title = a.titles[r.intn(len(a.titles))]
				}
				visited := a.browser && r.chance(0.8)
				secs := int32(dur / time.Second)
				switch {
				case m.series == seriesWindows:
					v := m.row()
					v[0], v[1], v[2], v[3] = ids.uuid7(t), g.org, g.gateway, next()
					v[4], v[5], v[6] = e.agents[s.who], e.computers[s.who], e.sids[s.who]
					v[7], v[8], v[10], v[11] = title, a.process, t, secs
					if url != "" {
						v[9] = url
					} else {
						v[9] = nil
					}
				case visited:
					v := m.row()
					v[0], v[1], v[2], v[3] = ids.uuid7(t), g.org, g.gateway, next()
					v[4], v[5], v[6] = e.agents[s.who], e.computers[s.who], e.sids[s.who]
					v[7], v[8], v[9], v[10] = url, title, t, secs
				}
				t = t.Add(gap)
			}
		}
	}
}

// visitors fills m.rows with the day's badges of cards nobody holds
// (visitors, lost cards): about one per 200 employees on a weekday.
func (m *emitter) visitors(n int, day time.Time) {
	g := m.g
	if wd := day.Weekday(); wd == time.Saturday || wd == time.Sunday {
		return
	}
	r := newRNG(g.seed, streamVisitors, uint64(n))
	ids := newRNG(g.seed, streamIDs+seriesBadges, uint64(len(g.emps)), uint64(n))
	seq := int64(n)<<40 | int64(len(g.emps))<<20
	count := max(1, len(g.emps)/200)
	times := make([]time.Time, count)
	for i := range times {
		times[i] = clock(day, 7*60+r.intn(12*60)).Add(r.secs(0, 60))
	}
	slices.SortFunc(times, time.Time.Compare)
	for _, t := range times {
		v := m.row()
		seq++
		v[0], v[1], v[2], v[3], v[4], v[5], v[6] = ids.uuid7(t), g.org, g.gateway, seq, nil, hikvisionSerial, t
		v[7], v[8], v[9] = nil, g.unknownCard(&r), int32(1)
		v[10], v[11], v[12], v[13] = int32(majorEvent), int32(minorNoCard), "card", "in"
	}
}

// unknownCard is a card number no employee holds (employees' cards start
// with 3, these with 9).
func (g *generator) unknownCard(r *rng) string {
	return fmt.Sprintf("9%09d", r.intn(1_000_000_000))
}

// screenshotKey is where a screenshot's image is (or would be) stored,
// in the ingest's layout: screenshots/<organisation>/<UTC day>/<event
// id>-<upload>.png, the upload suffix being "gen".
func (g *generator) screenshotKey(id uuid.UUID, t time.Time) string {
	return fmt.Sprintf("screenshots/%d/%s/%s-gen.png", g.org, t.UTC().Format(time.DateOnly), id)
}

// screenshot is a screenshot's size and SHA-256: those of the tiny image
// the generator stores with --screenshot-files, else a plausible size and
// a digest drawn from r.
func (g *generator) screenshot(r *rng) (int64, string) {
	if g.files != nil {
		return int64(len(g.image)), g.imageSum
	}
	var sum [32]byte
	for i := 0; i < 32; i += 8 {
		x := r.next()
		for j := range 8 {
			sum[i+j] = byte(x >> (8 * j))
		}
	}
	return int64(40_000 + r.intn(220_000)), hex.EncodeToString(sum[:])
}
