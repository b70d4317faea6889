package backoff

import (
	"context"
	"net/http"
	"testing"
	"time"
)

func TestCapGrowsAndStopsAtMax(t *testing.T) {
	tests := []struct {
		name    string
		p       Policy
		attempt int
		want    time.Duration
	}{
		{"first", Policy{Initial: time.Second, Max: 16 * time.Second}, 0, time.Second},
		{"doubles", Policy{Initial: time.Second, Max: 16 * time.Second}, 1, 2 * time.Second},
		{"doubles again", Policy{Initial: time.Second, Max: 16 * time.Second}, 3, 8 * time.Second},
		{"reaches max", Policy{Initial: time.Second, Max: 16 * time.Second}, 4, 16 * time.Second},
		{"stays at max", Policy{Initial: time.Second, Max: 16 * time.Second}, 5, 16 * time.Second},
		{"max not a power of two", Policy{Initial: time.Second, Max: 10 * time.Second}, 4, 10 * time.Second},
		{"huge attempt does not overflow", Policy{Initial: time.Second, Max: time.Minute}, 1 << 30, time.Minute},
		{"attempt 62 does not overflow", Policy{Initial: 3, Max: 1 << 62}, 62, 1 << 62},
		{"negative attempt is the first", Policy{Initial: time.Second, Max: time.Minute}, -3, time.Second},
		{"max below initial caps at initial", Policy{Initial: time.Second, Max: time.Millisecond}, 3, time.Second},
		{"zero max caps at initial", Policy{Initial: time.Second}, 3, time.Second},
		{"zero policy", Policy{}, 3, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.p.Cap(tt.attempt); got != tt.want {
				t.Fatalf("Cap(%d) = %v, want %v", tt.attempt, got, tt.want)
			}
		})
	}
}

// TestDelayIsFullJitter: every delay lies in (0, cap], and the draws cover
// the interval (not only its top, as a ±20 % jitter would).
func TestDelayIsFullJitter(t *testing.T) {
	p := Policy{Initial: 100 * time.Millisecond, Max: 800 * time.Millisecond}
	for attempt := range 6 {
		c := p.Cap(attempt)
		var lo, hi time.Duration = c, 0
		for range 2000 {
			d := p.Delay(attempt)
			if d <= 0 || d > c {
				t.Fatalf("attempt %d: delay %v outside (0, %v]", attempt, d, c)
			}
			lo, hi = min(lo, d), max(hi, d)
		}
		if lo > c/10 || hi < c*9/10 {
			t.Errorf("attempt %d: 2000 delays spanned only [%v, %v] of (0, %v]", attempt, lo, hi, c)
		}
	}
	if d := (Policy{}).Delay(0); d != 0 {
		t.Errorf("zero policy: delay %v", d)
	}
	if d := Jitter(1); d != 1 {
		t.Errorf("Jitter(1ns) = %v", d)
	}
}

// TestDelayGrows: the mean delay doubles with each attempt until the cap.
func TestDelayGrows(t *testing.T) {
	p := Policy{Initial: time.Second, Max: 16 * time.Second}
	mean := func(attempt int) time.Duration {
		var sum time.Duration
		for range 4000 {
			sum += p.Delay(attempt)
		}
		return sum / 4000
	}
	prev := mean(0)
	for attempt := 1; attempt <= 4; attempt++ {
		m := mean(attempt)
		if r := float64(m) / float64(prev); r < 1.7 || r > 2.3 {
			t.Errorf("attempt %d: mean %v after %v (ratio %.2f), want about double", attempt, m, prev, r)
		}
		prev = m
	}
	if m := mean(9); m < 7*time.Second || m > 9*time.Second {
		t.Errorf("capped mean %v, want about 8s", m)
	}
}

func TestFloor(t *testing.T) {
	tests := []struct {
		name                 string
		d, retryAfter, limit time.Duration
		want                 time.Duration
	}{
		{"no Retry-After", 2 * time.Second, 0, time.Minute, 2 * time.Second},
		{"shorter Retry-After", 2 * time.Second, time.Second, time.Minute, 2 * time.Second},
		{"longer Retry-After wins", 2 * time.Second, 30 * time.Second, time.Minute, 30 * time.Second},
		{"Retry-After capped", 2 * time.Second, time.Hour, time.Minute, time.Minute},
		{"cap below the delay keeps the delay", 2 * time.Minute, time.Hour, time.Minute, 2 * time.Minute},
		{"no cap", 2 * time.Second, time.Hour, 0, time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Floor(tt.d, tt.retryAfter, tt.limit); got != tt.want {
				t.Fatalf("Floor(%v, %v, %v) = %v, want %v", tt.d, tt.retryAfter, tt.limit, got, tt.want)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"3", 3 * time.Second},
		{" 120 ", 2 * time.Minute},
		{"0", 0},
		{"-1", 0},
		{"x", 0},
		{"1.5", 0},
		{"99999999999999", 365 * 24 * time.Hour},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{"Saturday, 05-Dec-26 10:00:30 GMT", 30 * time.Second}, // RFC 850
		{"Sat Dec  5 10:01:00 2026", time.Minute},              // ANSI C asctime
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},     // in the past
		{"Sat, 05 Dec 2026 10:00:00 XYZ", 0},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := ParseRetryAfter(tt.in, now); got != tt.want {
				t.Fatalf("ParseRetryAfter(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestSleep(t *testing.T) {
	if !Sleep(context.Background(), time.Millisecond) {
		t.Fatal("a short sleep did not complete")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	if Sleep(ctx, time.Hour) {
		t.Fatal("a sleep completed after its context ended")
	}
	if time.Since(start) > time.Second {
		t.Fatal("a cancelled sleep did not return at once")
	}
	if Sleep(ctx, 0) {
		t.Fatal("a zero sleep reported success after its context ended")
	}
}
