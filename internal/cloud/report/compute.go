package report

import (
	"cmp"
	"net/url"
	"slices"
	"strings"
	"time"
)

// dayOf is one local day of the organisation: [Start, End), End the next
// local midnight (23, 24 or 25 hours later).
type dayOf struct {
	Date       string // YYYY-MM-DD
	Start, End time.Time
}

// minutes is the day's length in minutes (rounded up).
func (d dayOf) minutes() int { return int((d.End.Sub(d.Start) + time.Minute - 1) / time.Minute) }

// localDay returns the local day of date (a calendar date) in loc.
func localDay(date time.Time, loc *time.Location) dayOf {
	y, m, dd := date.Date()
	start := time.Date(y, m, dd, 0, 0, 0, 0, loc)
	end := time.Date(y, m, dd+1, 0, 0, 0, 0, loc)
	return dayOf{Date: start.Format(time.DateOnly), Start: start, End: end}
}

// interval is one activity row: [At, At + Seconds), Seconds ≥ 0.
type interval struct {
	Kind    string // "window" or "site"
	Process string
	Host    string
	At      time.Time
	Seconds int64
}

func (iv interval) end() time.Time { return iv.At.Add(time.Duration(iv.Seconds) * time.Second) }

// overlaps reports whether iv touches day: a positive-length overlap, or a
// zero-length row whose instant lies in the day.
func (iv interval) overlaps(d dayOf) bool {
	if iv.Seconds <= 0 {
		return !iv.At.Before(d.Start) && iv.At.Before(d.End)
	}
	return iv.At.Before(d.End) && iv.end().After(d.Start)
}

// hostOf is the lower-cased host of a URL or bare host name ("" when none).
func hostOf(raw string) string {
	raw = strings.TrimSpace(raw)
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
	return strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
}

// usageKey identifies one usage row of a rollup.
type usageKey struct {
	Kind, Process, Host string
}

// usageValue is a usage row's seconds and events.
type usageValue struct {
	Seconds, Events int64
}

// sidDay is what one user sid did in one local day: the rollup's content.
type sidDay struct {
	Mask  []byte // bit i (MSB first) = minute i since local midnight
	Usage map[usageKey]usageValue
}

// computeSidDay computes one sid's day from its rows (any order; rows not
// touching the day are ignored).
func computeSidDay(d dayOf, rows []interval) sidDay {
	n := d.minutes()
	out := sidDay{Mask: make([]byte, (n+7)/8), Usage: map[usageKey]usageValue{}}
	spans := map[usageKey][][2]int64{}
	ds, de := d.Start.UnixMicro(), d.End.UnixMicro()
	const minute = int64(time.Minute / time.Microsecond)
	for _, iv := range rows {
		if !iv.overlaps(d) {
			continue
		}
		k := usageKey{Kind: iv.Kind, Host: iv.Host}
		if iv.Kind == "window" {
			k.Process = iv.Process
		}
		u := out.Usage[k]
		u.Events++
		out.Usage[k] = u
		s, e := iv.At.UnixMicro(), iv.end().UnixMicro()
		if iv.Seconds <= 0 {
			// The minute containing the instant (windows only).
			if iv.Kind == "window" {
				setBit(out.Mask, int((s-ds)/minute))
			}
			continue
		}
		s, e = max(s, ds), min(e, de)
		spans[k] = append(spans[k], [2]int64{s, e})
		if iv.Kind == "window" {
			first, last := int((s-ds)/minute), int((e-ds-1)/minute)
			for m := first; m <= last && m < n; m++ {
				setBit(out.Mask, m)
			}
		}
	}
	for k, sp := range spans {
		u := out.Usage[k]
		u.Seconds = (unionLength(sp) + 500_000) / 1_000_000
		out.Usage[k] = u
	}
	return out
}

// unionLength is the length of the union of [s, e) spans.
func unionLength(sp [][2]int64) int64 {
	slices.SortFunc(sp, func(a, b [2]int64) int { return cmp.Compare(a[0], b[0]) })
	var total, curS, curE int64
	open := false
	for _, x := range sp {
		if !open || x[0] > curE {
			if open {
				total += curE - curS
			}
			curS, curE, open = x[0], x[1], true
			continue
		}
		curE = max(curE, x[1])
	}
	if open {
		total += curE - curS
	}
	return total
}

func setBit(mask []byte, i int) {
	if i >= 0 && i/8 < len(mask) {
		mask[i/8] |= 0x80 >> (i % 8)
	}
}

func bit(mask []byte, i int) bool { return i/8 < len(mask) && mask[i/8]&(0x80>>(i%8)) != 0 }

// firstLast returns the first and last set minute of mask among n (-1, -1
// when none).
func firstLast(mask []byte, n int) (int, int) {
	first, last := -1, -1
	for i := 0; i < n; i++ {
		if bit(mask, i) {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	return first, last
}

// activity is the minute arithmetic of one employee-day: occupied minutes,
// short pauses (inactive runs between the first and last active minute
// shorter than the idle threshold, counted as active) and idle runs.
type activity struct {
	Occupied, ShortPause, Idle int
	First, Last                int // minutes; -1 when none
}

func measure(mask []byte, n, idleMinutes int) activity {
	a := activity{}
	a.First, a.Last = firstLast(mask, n)
	if a.First < 0 {
		return a
	}
	run := 0
	for i := a.First; i <= a.Last; i++ {
		if bit(mask, i) {
			a.Occupied++
			if run > 0 {
				if run < idleMinutes {
					a.ShortPause += run
				} else {
					a.Idle += run
				}
				run = 0
			}
			continue
		}
		run++
	}
	return a
}

// orMask ORs src into dst (dst grows as needed) and returns dst.
func orMask(dst, src []byte) []byte {
	if len(dst) < len(src) {
		dst = append(dst, make([]byte, len(src)-len(dst))...)
	}
	for i, b := range src {
		dst[i] |= b
	}
	return dst
}
