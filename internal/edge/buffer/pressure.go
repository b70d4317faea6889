package buffer

// Back-pressure: usage (accounted bytes against buffer.max_size, or the
// filesystem's fullness), the levels with hysteresis, and admission of
// appends at each level.

import (
	"context"
	"log/slog"
	"math"
	"sync/atomic"

	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// Level is the back-pressure level of the buffer.
type Level int32

// Back-pressure levels.
const (
	LevelNormal   Level = 0
	LevelWarning  Level = 1
	LevelCritical Level = 2
)

// String returns normal, warning or critical.
func (l Level) String() string {
	switch l {
	case LevelWarning:
		return "warning"
	case LevelCritical:
		return "critical"
	default:
		return "normal"
	}
}

// Thresholds with hysteresis: a level is entered at Enter and left below Exit.
const (
	WarningEnter  = 0.80
	WarningExit   = 0.75
	CriticalEnter = 0.95
	CriticalExit  = 0.90
)

func recSize(r *Record) int64 { return int64(len(r.Payload)) + r.FileSize + rowOverhead }

// admit decides, in order, which requests of a group may be written.
func (b *Buffer) admit(reqs []*appendReq) []bool {
	ok := make([]bool, len(reqs))
	level := Level(b.level.Load())
	b.mu.Lock()
	total := b.totalBytesLocked()
	b.mu.Unlock()
	for i, req := range reqs {
		var add int64
		shots := false
		for j := range req.recs {
			add += recSize(&req.recs[j])
			if req.recs[j].Class == protocol.ClassScreenshot {
				shots = true
			}
		}
		switch {
		case level >= LevelCritical || total+add > b.opts.MaxBytes:
			req.res <- appendRes{err: ErrFull}
			b.m.rejected.WithLabelValues("buffer_full").Add(float64(len(req.recs)))
		case shots && level >= LevelWarning:
			req.res <- appendRes{err: ErrShedding}
			b.m.rejected.WithLabelValues("shedding").Add(float64(len(req.recs)))
		default:
			ok[i] = true
			total += add
		}
	}
	return ok
}

func (b *Buffer) totalBytesLocked() int64 {
	t := b.deadBytes
	for _, c := range b.counters {
		t += c.bytes
	}
	return t
}

func loadFloat(a *atomic.Uint64) float64 { return float64frombits(a.Load()) }

// evaluate recomputes usage and the back-pressure level with hysteresis.
func (b *Buffer) evaluate() {
	b.mu.Lock()
	total := b.totalBytesLocked()
	b.mu.Unlock()
	u := float64(total) / float64(b.opts.MaxBytes)
	if fs := loadFloat(&b.fsUsage); fs > u {
		u = fs
	}
	b.usage.Store(float64bits(u))
	old := Level(b.level.Load())
	next := old
	switch old {
	case LevelNormal:
		if u >= CriticalEnter {
			next = LevelCritical
		} else if u >= WarningEnter {
			next = LevelWarning
		}
	case LevelWarning:
		if u >= CriticalEnter {
			next = LevelCritical
		} else if u < WarningExit {
			next = LevelNormal
		}
	case LevelCritical:
		if u < WarningExit {
			next = LevelNormal
		} else if u < CriticalExit {
			next = LevelWarning
		}
	}
	if next == old {
		return
	}
	if !b.level.CompareAndSwap(int32(old), int32(next)) {
		return
	}
	b.m.level.Set(float64(next))
	if next > old {
		b.m.overflow.WithLabelValues(next.String()).Inc()
		lvl := slog.LevelWarn
		if next == LevelCritical {
			lvl = slog.LevelError
		}
		b.log.Log(context.Background(), lvl, "buffer usage rose to a back-pressure level",
			"buffer_level", next.String(), "usage", u, "bytes", total, "max_bytes", b.opts.MaxBytes)
		select {
		case b.wakeMaint <- struct{}{}:
		default:
		}
	} else {
		b.log.Info("buffer usage fell", "buffer_level", next.String(), "usage", u)
	}
}

// Level returns the current back-pressure level.
func (b *Buffer) Level() Level { return Level(b.level.Load()) }

// Usage returns the usage ratio: the larger of accounted bytes ÷ max size
// and filesystem fullness.
func (b *Buffer) Usage() float64 { return loadFloat(&b.usage) }

func float64bits(f float64) uint64     { return math.Float64bits(f) }
func float64frombits(u uint64) float64 { return math.Float64frombits(u) }
