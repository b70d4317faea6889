package ingest

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/staffcontrol/staffcontrol/internal/cloud/ingest/ingestdb"
)

// screenshotPrefix is the storage prefix of every screenshot file.
const screenshotPrefix = "screenshots/"

// fileSet is the screenshot files one request wrote: per batch position,
// the key, the event id, and whether this request created the file (only
// those it may remove).
type fileSet struct {
	paths   []string
	ids     []string
	created []bool
}

// discardFiles removes the files the request created whose event has no
// committed row of this request: a duplicate's (the stored row references
// an earlier upload's file) or a refused or failed batch's. It is called
// only when the outcome of every commit is known.
func (s *Service) discardFiles(ctx context.Context, p *prepared, committed map[string]bool) {
	if p.files == nil {
		return
	}
	for i, path := range p.files.paths {
		if !p.files.created[i] || committed[p.files.ids[i]] {
			continue
		}
		if err := s.files.Delete(ctx, path); err != nil {
			s.logger.WarnContext(ctx, "remove unreferenced screenshot file; the sweep will retry", "path", path, "err", err)
			continue
		}
		s.metrics.filesDiscarded.Inc()
	}
}

// SweepScreenshots removes the screenshot files older than grace that no
// row of monitoring.screenshots or monitoring_fallback.screenshots
// references (in the main database, and in the time-series store when it
// is separate): files of uploads whose outcome was unknown, of removals
// that failed, and of rows that retention deleted. It asks the databases
// through monitoring.screenshot_files_referenced, the main database's
// fallback rows first (re-sync copies a row to the store before deleting
// it from the fallback, so a row moving meanwhile is seen in one of the
// two). On any error it stops, having removed only verified orphans. It
// returns how many files it removed.
func (s *Service) SweepScreenshots(ctx context.Context, now time.Time, grace time.Duration) (int, error) {
	type group struct {
		org int64
		day string
	}
	old := map[group][]string{}
	err := s.files.List(ctx, screenshotPrefix, func(key string, mod time.Time) error {
		if !mod.Before(now.Add(-grace)) {
			return nil
		}
		parts := strings.Split(strings.TrimPrefix(key, screenshotPrefix), "/")
		if len(parts) != 3 {
			return nil // not a screenshot key: never ours to remove
		}
		org, err := strconv.ParseInt(parts[0], 10, 64)
		if err != nil {
			return nil
		}
		if _, err := time.Parse(time.DateOnly, parts[1]); err != nil {
			return nil
		}
		g := group{org, parts[1]}
		old[g] = append(old[g], key)
		return nil
	})
	if err != nil {
		s.metrics.sweepErrors.Inc()
		return 0, fmt.Errorf("ingest: sweep screenshots: %w", err)
	}
	pools := []*pgxpool.Pool{s.db}
	if s.ts.Separate() {
		pools = append(pools, s.ts.TS())
	}
	removed := 0
	for g, keys := range old {
		for len(keys) > 0 {
			chunk := keys[:min(len(keys), 1000)]
			keys = keys[len(chunk):]
			used := map[string]bool{}
			for _, db := range pools {
				refs, err := ingestdb.New(db).ScreenshotFilesReferenced(ctx, ingestdb.ScreenshotFilesReferencedParams{
					OrganizationID: g.org, Day: g.day, Files: chunk})
				if err != nil {
					s.metrics.sweepErrors.Inc()
					return removed, fmt.Errorf("ingest: sweep screenshots: %w", err)
				}
				for _, r := range refs {
					used[r] = true
				}
			}
			for _, k := range chunk {
				if used[k] {
					continue
				}
				if err := s.files.Delete(ctx, k); err != nil {
					s.metrics.sweepErrors.Inc()
					return removed, fmt.Errorf("ingest: sweep screenshots: %w", err)
				}
				removed++
				s.metrics.orphansRemoved.Inc()
			}
		}
	}
	if removed > 0 {
		s.logger.InfoContext(ctx, "screenshot sweep removed orphan files", "removed", removed)
	}
	return removed, nil
}
