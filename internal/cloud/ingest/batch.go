package ingest

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/staffcontrol/staffcontrol/internal/cloud/auth"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/cloud/timeseries"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// httpError is a rejection: the status, the stable code, and the field at
// fault.
type httpError struct {
	status int
	code   string
	field  string
	msg    string
}

func (e *httpError) Error() string {
	return fmt.Sprintf("%d %s %s: %s", e.status, e.code, e.field, e.msg)
}

func reject(status int, code, field, format string, a ...any) *httpError {
	return &httpError{status: status, code: code, field: field, msg: fmt.Sprintf(format, a...)}
}

// fromFieldError turns a validation failure into a 422.
func fromFieldError(err error) error {
	var fe *protocol.FieldError
	if errors.As(err, &fe) {
		return reject(http.StatusUnprocessableEntity, protocol.ErrCodeValidation, fe.Field, "%s", fe.Message)
	}
	return err
}

// prepared is a decoded, validated batch ready to be written.
type prepared struct {
	// hash identifies the request's content for the idempotency check.
	hash []byte
	// days are the UTC days the events fall on (partitions to ensure).
	days map[string]time.Time
	// maxSeq is the highest sequence number in the batch.
	maxSeq int64
	// drops are the gateway's drop reports.
	drops []protocol.Drop
	// before runs after the key is claimed and before the transaction (file
	// uploads); may be nil.
	before func(ctx context.Context) error
	// check runs in a tenant transaction of the main database before the
	// write (references to relational rows); may be nil.
	check func(ctx context.Context, tx pgx.Tx) error
	// write inserts the events with the given statements (store or
	// fallback) and returns how many rows were new and how many were
	// duplicates, by type.
	write func(ctx context.Context, tx pgx.Tx, ins *inserts) (accepted, duplicates map[string]int, err error)
}

// serve runs one batch request through the idempotency protocol:
// claim the key, write the events and the answer in one transaction, reply.
func (s *Service) serve(w http.ResponseWriter, r *http.Request, endpoint string, prepare func(*http.Request, auth.Gateway) (*prepared, error)) {
	ctx := r.Context()
	gw, ok := auth.GatewayFrom(ctx)
	if !ok {
		s.fail(w, endpoint, reject(http.StatusUnauthorized, protocol.ErrCodeUnauthorized, protocol.HeaderAPIKey, "not authenticated"))
		return
	}
	rawKey := r.Header.Get(protocol.HeaderIdempotencyKey)
	if rawKey == "" {
		s.fail(w, endpoint, reject(http.StatusBadRequest, protocol.ErrCodeIdemMissing, protocol.HeaderIdempotencyKey, "every batch needs an Idempotency-Key header (a UUID kept with the batch across retries)"))
		return
	}
	key, err := uuid.Parse(rawKey)
	if err != nil || len(rawKey) != 36 {
		s.fail(w, endpoint, reject(http.StatusBadRequest, protocol.ErrCodeValidation, protocol.HeaderIdempotencyKey, "must be a UUID"))
		return
	}
	p, err := prepare(r, gw)
	if err != nil {
		s.fail(w, endpoint, err)
		return
	}
	tenant := postgres.Tenant{OrganizationID: gw.OrganizationID}

	// Claim the key in its own short transaction, so that a concurrent
	// request with the same key sees it in flight (409) rather than waiting.
	var stored *storedAnswer
	err = postgres.InTenant(ctx, s.db, tenant, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, s.q.claimBatch, gw.OrganizationID, gw.ID, key, endpoint, p.hash, "2 minutes")
		if err != nil {
			return err
		}
		claimed := rows.Next()
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if claimed {
			return nil
		}
		var a storedAnswer
		if err := tx.QueryRow(ctx, s.q.lookupBatch, gw.ID, key).Scan(&a.endpoint, &a.hash, &a.status, &a.code, &a.body); err != nil {
			return fmt.Errorf("look up idempotency key: %w", err)
		}
		stored = &a
		return nil
	})
	if err != nil {
		s.fail(w, endpoint, s.unavailable(ctx, "claim idempotency key", err))
		return
	}
	if stored != nil {
		switch {
		case stored.endpoint != endpoint || string(stored.hash) != string(p.hash):
			s.fail(w, endpoint, reject(http.StatusUnprocessableEntity, protocol.ErrCodeIdemMismatch, protocol.HeaderIdempotencyKey,
				"this Idempotency-Key was used for a different request body"))
		case stored.status != "done":
			s.fail(w, endpoint, reject(http.StatusConflict, protocol.ErrCodeIdemInFlight, protocol.HeaderIdempotencyKey,
				"a request with this Idempotency-Key is still being processed; retry later"))
		default:
			s.metrics.replays.WithLabelValues(endpoint).Inc()
			s.metrics.batches.WithLabelValues(endpoint, "replayed").Inc()
			var resp protocol.IngestResponse
			_ = json.Unmarshal(stored.body, &resp)
			writeAnswer(w, *stored.code, resp)
		}
		return
	}

	resp, err := s.store(ctx, gw, key, endpoint, p)
	if err != nil {
		// Give the key back so that the gateway's retry is processed anew.
		if relErr := postgres.InTenant(context.WithoutCancel(ctx), s.db, tenant, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, s.q.releaseBatch, gw.ID, key)
			return err
		}); relErr != nil {
			s.logger.WarnContext(ctx, "release idempotency key", "err", relErr)
		}
		var he *httpError
		if !errors.As(err, &he) {
			err = s.unavailable(ctx, "write batch", err)
		}
		s.fail(w, endpoint, err)
		return
	}
	s.metrics.batches.WithLabelValues(endpoint, "stored").Inc()
	writeAnswer(w, http.StatusOK, resp)
}

type storedAnswer struct {
	endpoint string
	hash     []byte
	status   string
	code     *int
	body     []byte
}

// store writes a claimed batch: the events where the time-series Store
// routes them, and the batch's accounting and answer in the main database.
// With one database, or in fallback, that is one transaction; with a
// separate time-series store, the events commit there first (idempotently,
// so a crash before the answer commits only makes the retry find
// duplicates).
func (s *Service) store(ctx context.Context, gw auth.Gateway, key uuid.UUID, endpoint string, p *prepared) (protocol.IngestResponse, error) {
	tenant := postgres.Tenant{OrganizationID: gw.OrganizationID}
	if p.before != nil {
		if err := p.before(ctx); err != nil {
			return protocol.IngestResponse{}, err
		}
	}
	if p.check != nil {
		if err := postgres.InTenant(ctx, s.db, tenant, func(tx pgx.Tx) error { return p.check(ctx, tx) }); err != nil {
			return protocol.IngestResponse{}, err
		}
	}
	start := time.Now()
	defer func() { s.metrics.writeSecs.WithLabelValues(endpoint).Observe(time.Since(start).Seconds()) }()

	var acc, dup map[string]int
	var ins *inserts
	storeName := "timeseries"
	switch {
	case !s.ts.Separate():
		ins = &s.q.store
	case s.ts.Mode() == timeseries.ModeFallback:
		ins, storeName = &s.q.fallback, "fallback"
	default:
		err := s.writeStore(ctx, p, func(tx pgx.Tx) (err error) {
			acc, dup, err = p.write(ctx, tx, &s.q.store)
			return err
		})
		switch {
		case err == nil:
			s.ts.Succeeded()
		case timeseries.IsStoreFailure(err) && s.ts.Failed(ctx, err):
			ins, storeName = &s.q.fallback, "fallback"
		default:
			return protocol.IngestResponse{}, err
		}
	}
	if ins != nil {
		if err := s.ensureDays(ctx, s.db, p.days); err != nil {
			return protocol.IngestResponse{}, err
		}
	}
	var resp protocol.IngestResponse
	var gap int64
	err := postgres.InTenant(ctx, s.db, tenant, func(tx pgx.Tx) error {
		if ins != nil {
			var err error
			if acc, dup, err = p.write(ctx, tx, ins); err != nil {
				return err
			}
		}
		resp = protocol.IngestResponse{Store: storeName}
		for _, n := range acc {
			resp.Accepted += n
		}
		for _, n := range dup {
			resp.Duplicates += n
		}
		var dropped int64
		for _, d := range p.drops {
			dropped += d.Count
			if _, err := tx.Exec(ctx, s.q.insertDropReport, gw.OrganizationID, gw.ID, d.Reason, d.Class, d.Count, nullTime(d.FirstAt), nullTime(d.LastAt)); err != nil {
				return fmt.Errorf("insert drop report: %w", err)
			}
		}
		if err := tx.QueryRow(ctx, s.q.accountSequence, gw.OrganizationID, gw.ID, p.maxSeq, resp.Accepted, dropped).Scan(&gap); err != nil {
			return fmt.Errorf("account sequence: %w", err)
		}
		body, err := json.Marshal(resp)
		if err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, s.q.completeBatch, gw.ID, key, http.StatusOK, body)
		if err != nil {
			return fmt.Errorf("complete batch: %w", err)
		}
		if tag.RowsAffected() != 1 {
			// Our claim expired and another request took the key over.
			return reject(http.StatusConflict, protocol.ErrCodeIdemInFlight, protocol.HeaderIdempotencyKey,
				"the claim on this Idempotency-Key expired; retry")
		}
		return nil
	})
	if err != nil {
		return resp, err
	}
	for t, n := range acc {
		s.metrics.events.WithLabelValues(t, orgLabel(gw.OrganizationID)).Add(float64(n))
	}
	for t, n := range dup {
		s.metrics.duplicates.WithLabelValues(t).Add(float64(n))
	}
	for _, d := range p.drops {
		s.metrics.drops.WithLabelValues(d.Reason, d.Class).Add(float64(d.Count))
	}
	s.metrics.seqGap.WithLabelValues(gw.ID.String()).Set(float64(gap))
	return resp, nil
}

// writeStore runs fn in a transaction of the separate time-series store,
// within a bounded time, after making sure the batch's partitions exist.
func (s *Service) writeStore(ctx context.Context, p *prepared, fn func(pgx.Tx) error) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.ensureDays(ctx, s.ts.TS(), p.days); err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, s.ts.TS(), fn)
}

// unavailable logs a server-side failure and returns a retryable 503.
func (s *Service) unavailable(ctx context.Context, what string, err error) error {
	s.logger.ErrorContext(ctx, "ingest failed", "step", what, "err", err)
	return reject(http.StatusServiceUnavailable, protocol.ErrCodeUnavailable, "", "temporary problem saving data; retry")
}

func (s *Service) fail(w http.ResponseWriter, endpoint string, err error) {
	var he *httpError
	if !errors.As(err, &he) {
		he = reject(http.StatusInternalServerError, protocol.ErrCodeInternal, "", "internal error")
	}
	s.metrics.rejections.WithLabelValues(endpoint, he.code).Inc()
	outcome := "rejected"
	if he.status >= 500 {
		outcome = "failed"
		w.Header().Set(protocol.HeaderRetryAfter, "1")
	}
	s.metrics.batches.WithLabelValues(endpoint, outcome).Inc()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(he.status)
	_ = json.NewEncoder(w).Encode(protocol.ErrorResponse{Error: he.code, Field: he.field, Message: he.msg})
}

func writeAnswer(w http.ResponseWriter, code int, resp protocol.IngestResponse) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set(protocol.HeaderFallbackMode, fmt.Sprint(resp.Store == "fallback"))
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(resp)
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// hashOf is the SHA-256 of b.
func hashOf(b []byte) []byte {
	h := sha256.Sum256(b)
	return h[:]
}
