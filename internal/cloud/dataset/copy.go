package dataset

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// A job is one series of one day: a COPY of every employee's rows of that
// series for that day into the series' parent table, streamed employee by
// employee from a pgx.CopyFromSource (memory: one employee-day).
type job struct {
	series int
	day    int
}

// hourKey is an (employee SID, UTC hour) whose report rollup the series
// written make stale (monitoring.activity_dirty).
type hourKey struct {
	sid  string
	hour int64 // Unix seconds of the hour's start
}

// source streams one job's rows.
type source struct {
	ctx  context.Context
	g    *generator
	job  job
	emp  int // next employee (len(emps): the day's visitors)
	m    emitter
	cur  int // current row in m.rows
	rows *atomic.Int64
	err  error
	keys map[hourKey]struct{}
	last hourKey
}

var _ pgx.CopyFromSource = (*source)(nil)

func newSource(ctx context.Context, g *generator, j job, rows *atomic.Int64) *source {
	s := &source{ctx: ctx, g: g, job: j, rows: rows, keys: map[hourKey]struct{}{}}
	s.m = emitter{g: g, series: j.series, hours: s.markHours}
	return s
}

// markHours records the UTC hours [from, to] touch for sid.
func (s *source) markHours(sid string, from, to time.Time) {
	for h := from.Unix() / 3600 * 3600; h <= to.Unix(); h += 3600 {
		k := hourKey{sid, h}
		if k == s.last {
			continue
		}
		s.last = k
		s.keys[k] = struct{}{}
	}
}

// Next advances to the next row, drawing the next employee-day when the
// current one is used up.
func (s *source) Next() bool {
	s.cur++
	for s.cur >= s.m.n {
		if s.emp > len(s.g.emps) || s.err != nil {
			return false
		}
		var e *employee
		if s.emp < len(s.g.emps) {
			e = &s.g.emps[s.emp]
		}
		s.emp++
		s.m.employeeDay(e, s.job.day)
		s.cur = 0
		if s.job.series == seriesShots && s.g.files != nil {
			s.err = s.storeImages()
		}
	}
	s.rows.Add(1)
	return true
}

// storeImages writes the tiny image of every screenshot of the current
// employee-day (--screenshot-files).
func (s *source) storeImages() error {
	for _, v := range s.m.rows[:s.m.n] {
		key := v[7].(string)
		if err := s.g.files.Put(s.ctx, key, bytes.NewReader(s.g.image)); err != nil {
			return fmt.Errorf("store screenshot %s: %w", key, err)
		}
	}
	return nil
}

// Values is the current row (a buffer reused for later rows: pgx encodes
// a row before asking for the next).
func (s *source) Values() ([]any, error) { return s.m.rows[s.cur], nil }

// Err is the error that ended the stream early.
func (s *source) Err() error { return s.err }

// jobs lists every (series, day), day by day (the writers work on one or
// two days' partitions at a time), the largest series first within a day.
func (g *generator) jobs() []job {
	var out []job
	for d := range g.days {
		for _, sr := range []int{seriesWindows, seriesSites, seriesShots, seriesSessions, seriesBadges} {
			out = append(out, job{series: sr, day: d})
		}
	}
	return out
}

// copyResult is what the writers did.
type copyResult struct {
	rows [seriesCount]int64
	keys map[hourKey]struct{}
}

// runJobs runs jobs on writers connections of pool at once, each job one
// COPY into its series' parent table, its rows from newSrc.
func runJobs(ctx context.Context, pool *pgxpool.Pool, writers int, jobs []job, newSrc func(job) pgx.CopyFromSource) (copyResult, error) {
	res := copyResult{keys: map[hourKey]struct{}{}}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	queue := make(chan job)
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range queue {
				src := newSrc(j)
				n, err := pool.CopyFrom(ctx, pgx.Identifier{"monitoring", tableNames[j.series]}, columns[j.series], src)
				mu.Lock()
				res.rows[j.series] += n
				if s, ok := src.(*source); ok {
					for k := range s.keys {
						res.keys[k] = struct{}{}
					}
				}
				if err != nil && firstErr == nil {
					firstErr = fmt.Errorf("copy %s of day %d: %w", tableNames[j.series], j.day, err)
					cancel()
				}
				mu.Unlock()
			}
		}()
	}
feed:
	for _, j := range jobs {
		select {
		case queue <- j:
		case <-ctx.Done():
			break feed
		}
	}
	close(queue)
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		firstErr = ctx.Err()
	}
	return res, firstErr
}
