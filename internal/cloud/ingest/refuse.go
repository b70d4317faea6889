package ingest

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
)

// Permanent and transient failures (DESIGN.md §2 "Permanent is not
// transient"): what the database refuses because of the data (SQLSTATE
// class 22, data exception, and 23, integrity constraint violation) fails
// again on every retry, so it is answered 422 naming the event and field;
// only what a retry can cure (connections, resources, serialisation,
// deadlocks, shutdown) is answered 503.

// dataError returns the PostgreSQL error of err when it is a data error
// (SQLSTATE class 22 or 23): the same data will be refused again.
func dataError(err error) (*pgconn.PgError, bool) {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && len(pe.Code) == 5 && (pe.Code[:2] == "22" || pe.Code[:2] == "23") {
		return pe, true
	}
	return nil, false
}

// noPartition reports whether err is PostgreSQL's "no partition of relation
// ... found for row" (23514): the event's daily partition does not exist.
func noPartition(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23514" && strings.HasPrefix(pe.Message, "no partition of relation")
}

// rolledBack reports whether a failed transaction certainly did not commit:
// the server answered with an error, or the request was refused. A lost
// connection leaves the outcome unknown.
func rolledBack(err error) bool {
	var pe *pgconn.PgError
	return apperr.As(err) != nil || errors.As(err, &pe)
}

// refused turns a data error of the batch's write into a 422 naming the
// event (and field, when the database says which) that the database
// refuses: it re-runs the write on halves of the batch, inside savepoints
// of a transaction that is always rolled back, until one event is left.
// The bisection costs about twice the batch's inserts, on the error path
// only.
func (s *Service) refused(ctx context.Context, db *pgxpool.Pool, org int64, endpoint string, p *prepared, ins *inserts, cause *pgconn.PgError) error {
	s.metrics.dbRefusals.WithLabelValues(endpoint, cause.Code).Inc()
	i, pe, err := s.bisect(ctx, db, org, p, ins)
	if err != nil {
		return s.unavailable(ctx, "locate the refused event", err)
	}
	s.logger.WarnContext(ctx, "database refused an event that validation accepted", "endpoint", endpoint,
		"sqlstate", cause.Code, "err", cause.Message, "event", i)
	if i < 0 {
		return apperr.New(apperr.Invalid, "events",
			"the database refuses this batch (%s, SQLSTATE %s), though no single event of it alone", cause.Message, cause.Code)
	}
	field, msg := describeRefusal(p.rows[i], pe)
	return apperr.New(apperr.Invalid, field, "%s", msg)
}

// bisect finds the batch position of an event whose insert alone the
// database refuses with a data error, and that error; -1 when no single
// event is refused.
func (s *Service) bisect(ctx context.Context, db *pgxpool.Pool, org int64, p *prepared, ins *inserts) (int, *pgconn.PgError, error) {
	tx, err := db.Begin(ctx)
	if err != nil {
		return -1, nil, err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if err := postgres.SetTenant(ctx, tx, postgres.Tenant{OrganizationID: org}); err != nil {
		return -1, nil, err
	}
	try := func(idx []int) (*pgconn.PgError, error) {
		keep := make(map[int]bool, len(idx))
		for _, i := range idx {
			keep[i] = true
		}
		sp, err := tx.Begin(ctx) // a savepoint
		if err != nil {
			return nil, err
		}
		_, werr := p.write(ctx, sp, ins, func(i int) bool { return keep[i] })
		if err := sp.Rollback(ctx); err != nil {
			return nil, err
		}
		if pe, ok := dataError(werr); ok {
			return pe, nil
		}
		return nil, werr
	}
	cand := make([]int, len(p.rows))
	for i := range cand {
		cand[i] = i
	}
	for len(cand) > 1 {
		half := cand[:len(cand)/2]
		pe, err := try(half)
		if err != nil {
			return -1, nil, err
		}
		if pe != nil {
			cand = half
		} else {
			cand = cand[len(cand)/2:]
		}
	}
	if len(cand) == 0 {
		return -1, nil, nil
	}
	pe, err := try(cand)
	if err != nil || pe == nil {
		return -1, nil, err
	}
	return cand[0], pe, nil
}

// jsonField is the wire name of a column, where it differs.
var jsonField = map[string]string{
	"computer_uid": "computer_name",
	"file_path":    "screenshot",
	"file_size":    "screenshot.size",
	"sha256":       "screenshot.sha256",
}

// describeRefusal names the field of r the database refused and says why.
func describeRefusal(r row, pe *pgconn.PgError) (string, string) {
	path := fmt.Sprintf("events[%d]", r.index)
	switch {
	case noPartition(pe):
		return path + ".datetime", fmt.Sprintf("has no daily partition of %s to go to (its day is past the table's retention or too far ahead)", r.table)
	case pe.ColumnName != "":
		name := pe.ColumnName
		if j, ok := jsonField[name]; ok {
			name = j
		}
		return path + "." + name, fmt.Sprintf("is refused by the database: %s (SQLSTATE %s)", pe.Message, pe.Code)
	default:
		return path, fmt.Sprintf("is refused by the database: %s (SQLSTATE %s)", pe.Message, pe.Code)
	}
}
