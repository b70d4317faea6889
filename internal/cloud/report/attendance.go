package report

import (
	"context"
	"fmt"
	"iter"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/cloud/report/reportdb"
)

// maxUnknownBadges bounds the unknown badges a report lists.
const maxUnknownBadges = 10000

// Attendance streams the attendance report: per employee in scope and day,
// the first entry, last exit, time on site, late arrival and early
// departure against the policy's schedule (plus grace), and absences
// (a scheduled day that has begun, no badge, an active employee). Days
// without a badge that are not scheduled are left out.
func (e *Engine) Attendance(ctx context.Context, t postgres.Tenant, q EmployeeDaysQuery) iter.Seq2[AttendanceDay, error] {
	return func(yield func(AttendanceDay, error) bool) {
		err := e.run(ctx, t, q.Period, q, func(s *session) error {
			for _, emp := range s.sc.employees {
				days, err := s.attendance(ctx, emp)
				if err != nil {
					return err
				}
				for _, d := range days {
					if (d.Badges > 0 || d.Scheduled) && !yield(d, nil) {
						return errStop
					}
				}
			}
			return nil
		})
		if err != nil {
			yield(AttendanceDay{}, err)
		}
	}
}

// badgesOf reads the badges of emp over the scope's days, sorted by time.
func (s *session) badgesOf(ctx context.Context, emp employee) ([]Badge, error) {
	days := s.sc.days
	if len(days) == 0 {
		return nil, nil
	}
	cards := emp.Cards
	if cards == nil {
		cards = []string{}
	}
	seen := map[uuid.UUID]bool{}
	var out []Badge
	for _, q := range s.queries() {
		rows, err := q.DeviceEvents(ctx, reportdb.DeviceEventsParams{FromTime: days[0].Start, ToTime: days[len(days)-1].End,
			Numbers: emp.Numbers, Cards: cards})
		if err != nil {
			return nil, fmt.Errorf("report: read device events: %w", err)
		}
		for _, r := range rows {
			if seen[r.ID] || s.sc.owner(deref(r.EmployeeNumber), deref(r.CardNumber)) != emp.ID {
				continue
			}
			seen[r.ID] = true
			out = append(out, badge(r.Datetime, r.DeviceID, r.DeviceSerial, r.Door, r.Direction, r.EmployeeNumber, r.CardNumber))
		}
	}
	slices.SortFunc(out, func(a, b Badge) int { return a.At.Compare(b.At) })
	return out, nil
}

func badge(at time.Time, device *int64, serial string, door *int32, dir, number, card *string) Badge {
	return Badge{At: at, DeviceID: device, DeviceSerial: serial, Door: door, Direction: deref(dir), EmployeeNumber: deref(number), CardNumber: deref(card)}
}

// owner is the employee a badge belongs to: by employee number when it is
// a visible employee's, else by card (0: nobody visible).
func (sc *scope) owner(number, card string) int64 {
	if id, ok := sc.numberOwner[number]; ok && number != "" {
		return id
	}
	if id, ok := sc.cardOwner[card]; ok && card != "" {
		return id
	}
	return 0
}

// attendance computes emp's attendance days (one per scope day).
func (s *session) attendance(ctx context.Context, emp employee) ([]AttendanceDay, error) {
	st := s.sc.settings
	badges, err := s.badgesOf(ctx, emp)
	if err != nil {
		return nil, err
	}
	out := make([]AttendanceDay, len(s.sc.days))
	j := 0
	for i, d := range s.sc.days {
		a := AttendanceDay{EmployeeID: emp.ID, EmployeeNumber: emp.Number, Name: emp.Name, DepartmentID: emp.DepartmentID,
			Date: d.Date, Scheduled: st.WorkDays[isoWeekday(d.Start)]}
		for ; j < len(badges) && badges[j].At.Before(d.Start); j++ {
		}
		var day []Badge
		for ; j < len(badges) && badges[j].At.Before(d.End); j++ {
			day = append(day, badges[j])
		}
		a.Badges = len(day)
		if len(day) > 0 {
			in, out := firstIn(day), lastOut(day)
			a.FirstIn, a.LastOut = &in, &out
			if out.After(in) {
				a.OnSiteSeconds = int64(out.Sub(in) / time.Second)
			}
			if a.Scheduled {
				y, m, dd := d.Start.Date()
				start := time.Date(y, m, dd, 0, st.WorkStart+st.GraceMinutes, 0, 0, st.Location)
				end := time.Date(y, m, dd, 0, st.WorkEnd-st.GraceMinutes, 0, 0, st.Location)
				a.Late = in.After(start)
				a.EarlyLeave = out.Before(end)
			}
		} else {
			a.Absent = a.Scheduled && emp.Status == "active"
		}
		out[i] = a
	}
	return out, nil
}

// firstIn is the first badge that is not an exit (the first badge when all
// are exits); lastOut the last that is not an entry (likewise).
func firstIn(day []Badge) time.Time {
	for _, b := range day {
		if b.Direction != "out" {
			return b.At
		}
	}
	return day[0].At
}

func lastOut(day []Badge) time.Time {
	for i := len(day) - 1; i >= 0; i-- {
		if day[i].Direction != "in" {
			return day[i].At
		}
	}
	return day[len(day)-1].At
}

// Reconcile streams attendance against activity: per employee-day, a
// badge with no computer activity, or computer activity with no badge.
func (e *Engine) Reconcile(ctx context.Context, t postgres.Tenant, q EmployeeDaysQuery) iter.Seq2[Mismatch, error] {
	return func(yield func(Mismatch, error) bool) {
		err := e.run(ctx, t, q.Period, q, func(s *session) error {
			return s.eachEmployeeDays(ctx, false, func(emp employee, act []EmployeeDay) error {
				att, err := s.attendance(ctx, emp)
				if err != nil {
					return err
				}
				for i := range att {
					m := Mismatch{EmployeeID: emp.ID, EmployeeNumber: emp.Number, Name: emp.Name, Date: att[i].Date,
						FirstBadge: att[i].FirstIn, FirstActivity: act[i].FirstActivity}
					switch {
					case att[i].Badges > 0 && act[i].OccupiedSeconds == 0:
						m.Kind = BadgeWithoutActivity
					case att[i].Badges == 0 && act[i].OccupiedSeconds > 0:
						m.Kind = ActivityWithoutBadge
					default:
						continue
					}
					if !yield(m, nil) {
						return errStop
					}
				}
				return nil
			})
		})
		if err != nil {
			yield(Mismatch{}, err)
		}
	}
}

// UnknownBadges lists the period's badges that match no visible employee
// (by employee number or card), oldest first, at most 10,000. A narrowed
// role sees none: its views show only its employees' badges.
func (e *Engine) UnknownBadges(ctx context.Context, t postgres.Tenant, p Period) ([]Badge, error) {
	out := []Badge{}
	err := e.run(ctx, t, p, EmployeeDaysQuery{Period: p, EmployeeIDs: []int64{-1}}, func(s *session) error {
		days := s.sc.days
		if len(days) == 0 {
			return nil
		}
		numbers, cards := []string{}, []string{}
		for n := range s.sc.numberOwner {
			numbers = append(numbers, n)
		}
		for c := range s.sc.cardOwner {
			cards = append(cards, c)
		}
		seen := map[uuid.UUID]bool{}
		for _, q := range s.queries() {
			rows, err := q.UnknownBadges(ctx, reportdb.UnknownBadgesParams{FromTime: days[0].Start, ToTime: days[len(days)-1].End,
				Numbers: numbers, Cards: cards, MaxRows: maxUnknownBadges})
			if err != nil {
				return fmt.Errorf("report: read unknown badges: %w", err)
			}
			for _, r := range rows {
				if !seen[r.ID] {
					seen[r.ID] = true
					out = append(out, badge(r.Datetime, r.DeviceID, r.DeviceSerial, r.Door, r.Direction, r.EmployeeNumber, r.CardNumber))
				}
			}
		}
		slices.SortFunc(out, func(a, b Badge) int { return a.At.Compare(b.At) })
		if len(out) > maxUnknownBadges {
			out = out[:maxUnknownBadges]
		}
		return nil
	})
	return out, err
}
