package report

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
	// The IANA zones in the binary: the database accepts any zone it knows
	// (organizations_check_time_zone), the host may have no zoneinfo.
	_ "time/tzdata"
)

// The defaults of an organisation without a report policy.
const (
	DefaultIdleSeconds = 300
	DefaultWorkStart   = "09:00"
	DefaultWorkEnd     = "18:00"
)

// Settings is what a report applies: the organisation's time zone and its
// report policy's idle threshold, working schedule and productivity
// categories.
type Settings struct {
	// TimeZone is the IANA name of the organisation's zone.
	TimeZone string
	// Location is TimeZone loaded.
	Location *time.Location
	// IdleSeconds is the policy's activity.idle_seconds.
	IdleSeconds int
	// WorkStart and WorkEnd are minutes since local midnight.
	WorkStart, WorkEnd int
	// WorkDays holds the scheduled ISO weekdays (1 = Monday).
	WorkDays [8]bool
	// GraceMinutes is working_hours.grace_minutes.
	GraceMinutes int
	// Productive and Unproductive are the policy's categories.
	Productive, Unproductive Category
}

// Category is one productivity category: process names (lower-cased,
// exact) and site hosts (lower-cased; a host matches itself and any
// subdomain).
type Category struct {
	Processes map[string]bool
	Sites     []string
}

func (c Category) process(name string) bool { return c.Processes[strings.ToLower(name)] }

func (c Category) site(host string) bool {
	if host == "" {
		return false
	}
	for _, s := range c.Sites {
		if host == s || strings.HasSuffix(host, "."+s) {
			return true
		}
	}
	return false
}

// Productivity classes.
const (
	Productive   = "productive"
	Neutral      = "neutral"
	Unproductive = "unproductive"
)

// classify is a window key's class: its host's category when the host is
// categorised, else its process's, else neutral (productive wins a tie).
func (s *Settings) classify(process, host string) string {
	switch {
	case s.Productive.site(host):
		return Productive
	case s.Unproductive.site(host):
		return Unproductive
	case s.Productive.process(process):
		return Productive
	case s.Unproductive.process(process):
		return Unproductive
	}
	return Neutral
}

// siteClass is a visited site's class.
func (s *Settings) siteClass(host string) string {
	switch {
	case s.Productive.site(host):
		return Productive
	case s.Unproductive.site(host):
		return Unproductive
	}
	return Neutral
}

// policyContent is the part of a policy's content the reports read (the
// content was validated against policy.schema.json when written).
type policyContent struct {
	Activity struct {
		IdleSeconds *int `json:"idle_seconds"`
	} `json:"activity"`
	WorkingHours *struct {
		Start        string `json:"start"`
		End          string `json:"end"`
		Days         []int  `json:"days"`
		GraceMinutes int    `json:"grace_minutes"`
	} `json:"working_hours"`
	Productivity struct {
		Productive   categoryContent `json:"productive"`
		Unproductive categoryContent `json:"unproductive"`
	} `json:"productivity"`
}

type categoryContent struct {
	Processes []string `json:"processes"`
	Sites     []string `json:"sites"`
}

func (c categoryContent) category() Category {
	out := Category{Processes: map[string]bool{}}
	for _, p := range c.Processes {
		out.Processes[strings.ToLower(p)] = true
	}
	for _, s := range c.Sites {
		if h := hostOf(s); h != "" {
			out.Sites = append(out.Sites, h)
		}
	}
	return out
}

// ParseSettings builds Settings from an organisation's zone and its report
// policy's content (nil: the defaults).
func ParseSettings(zone string, policy []byte) (*Settings, error) {
	loc, err := time.LoadLocation(zone)
	if err != nil {
		return nil, fmt.Errorf("report: time zone %q: %w", zone, err)
	}
	s := &Settings{TimeZone: zone, Location: loc, IdleSeconds: DefaultIdleSeconds,
		Productive: Category{Processes: map[string]bool{}}, Unproductive: Category{Processes: map[string]bool{}}}
	s.WorkStart, _ = clock(DefaultWorkStart)
	s.WorkEnd, _ = clock(DefaultWorkEnd)
	for d := 1; d <= 5; d++ {
		s.WorkDays[d] = true
	}
	if len(policy) == 0 || string(policy) == "null" {
		return s, nil
	}
	var c policyContent
	if err := json.Unmarshal(policy, &c); err != nil {
		return nil, fmt.Errorf("report: policy content: %w", err)
	}
	if c.Activity.IdleSeconds != nil && *c.Activity.IdleSeconds > 0 {
		s.IdleSeconds = *c.Activity.IdleSeconds
	}
	if w := c.WorkingHours; w != nil {
		if v, ok := clock(w.Start); ok {
			s.WorkStart = v
		}
		if v, ok := clock(w.End); ok {
			s.WorkEnd = v
		}
		if w.Days != nil {
			s.WorkDays = [8]bool{}
			for _, d := range w.Days {
				if d >= 1 && d <= 7 {
					s.WorkDays[d] = true
				}
			}
		}
		s.GraceMinutes = max(w.GraceMinutes, 0)
	}
	s.Productive = c.Productivity.Productive.category()
	s.Unproductive = c.Productivity.Unproductive.category()
	return s, nil
}

// clock parses "HH:MM" as minutes since midnight.
func clock(v string) (int, bool) {
	t, err := time.Parse("15:04", v)
	if err != nil {
		return 0, false
	}
	return t.Hour()*60 + t.Minute(), true
}

// idleMinutes is the idle threshold in whole minutes (rounded up).
func (s *Settings) idleMinutes() int { return (s.IdleSeconds + 59) / 60 }

// isoWeekday is t's ISO weekday (1 = Monday … 7 = Sunday).
func isoWeekday(t time.Time) int {
	if d := int(t.Weekday()); d != 0 {
		return d
	}
	return 7
}
