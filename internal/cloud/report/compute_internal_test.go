package report

import (
	"testing"
	"time"
)

func TestHostOf(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ in, want string }{
		{"https://WWW.Example.com:8443/x?y", "www.example.com"},
		{"example.org/path", "example.org"},
		{"", ""},
		{"http://[::1]:80/", "::1"},
		{"https://example.com./", "example.com"},
	} {
		if got := hostOf(tt.in); got != tt.want {
			t.Errorf("hostOf(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestMeasure(t *testing.T) {
	t.Parallel()
	mask := func(minutes ...int) []byte {
		m := make([]byte, 180)
		for _, i := range minutes {
			setBit(m, i)
		}
		return m
	}
	for _, tt := range []struct {
		name string
		mask []byte
		idle int
		want activity
	}{
		{"none", mask(), 5, activity{First: -1, Last: -1}},
		{"one", mask(7), 5, activity{Occupied: 1, First: 7, Last: 7}},
		{"short pause", mask(1, 2, 6), 5, activity{Occupied: 3, ShortPause: 3, First: 1, Last: 6}},
		{"idle at the threshold", mask(1, 7), 5, activity{Occupied: 2, Idle: 5, First: 1, Last: 7}},
		{"last minute", mask(0, 1439), 5, activity{Occupied: 2, Idle: 1438, First: 0, Last: 1439}},
	} {
		if got := measure(tt.mask, 1440, tt.idle); got != tt.want {
			t.Errorf("%s: %+v, want %+v", tt.name, got, tt.want)
		}
	}
}

func TestComputeSidDay(t *testing.T) {
	t.Parallel()
	loc, _ := time.LoadLocation("Europe/Berlin")
	d := localDay(time.Date(2026, 3, 29, 12, 0, 0, 0, loc), loc)
	if d.minutes() != 23*60 {
		t.Fatalf("2026-03-29 in Berlin has %d minutes", d.minutes())
	}
	at := func(h, m int) time.Time { return time.Date(2026, 3, 29, h, m, 0, 0, loc) }
	rows := []interval{
		{Kind: "window", Process: "a", At: at(1, 50), Seconds: 20 * 60}, // crosses the skipped hour: 01:50–03:10 CEST = 20 min
		{Kind: "window", Process: "a", At: at(3, 0), Seconds: 300},      // overlaps the first
		{Kind: "window", Process: "b", At: at(23, 59).Add(30 * time.Second), Seconds: 60},
		{Kind: "window", Process: "c", At: at(12, 0).Add(10 * time.Second), Seconds: 0},
		{Kind: "site", Host: "x.test", At: at(12, 0), Seconds: 30},
		{Kind: "window", Process: "d", At: at(0, 0).Add(-time.Hour), Seconds: 3600}, // ends at midnight: not in the day
	}
	sd := computeSidDay(d, rows)
	if got := sd.Usage[usageKey{Kind: "window", Process: "a"}]; got.Seconds != 20*60 || got.Events != 2 {
		t.Errorf("a: %+v", got)
	}
	if got := sd.Usage[usageKey{Kind: "window", Process: "b"}]; got.Seconds != 30 || got.Events != 1 {
		t.Errorf("b (clipped at midnight): %+v", got)
	}
	if got := sd.Usage[usageKey{Kind: "window", Process: "c"}]; got.Seconds != 0 || got.Events != 1 {
		t.Errorf("c: %+v", got)
	}
	if _, ok := sd.Usage[usageKey{Kind: "window", Process: "d"}]; ok {
		t.Error("a row ending at midnight counted")
	}
	m := measure(sd.Mask, d.minutes(), 5)
	// 01:50–01:59 (10) + 03:00–03:09 (10), 12:00, 23:59.
	if m.Occupied != 22 {
		t.Errorf("occupied %d, want 22", m.Occupied)
	}
}
