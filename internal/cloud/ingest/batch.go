package ingest

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/cloud/auth"
	"github.com/staffcontrol/staffcontrol/internal/cloud/ingest/ingestdb"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/cloud/service"
	"github.com/staffcontrol/staffcontrol/internal/cloud/timeseries"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
	"github.com/staffcontrol/staffcontrol/internal/tracing"
)

// prepared is a decoded, validated batch ready to be written.
type prepared struct {
	// hash identifies the request's content for the idempotency check.
	hash []byte
	// rows are the batch's events, in batch order (rows[i] is events[i]).
	rows []row
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
	// write inserts the events whose batch position keep allows (all when
	// keep is nil) with the given statements (store or fallback), in a
	// transaction whose organisation is set, and says what it stored.
	write func(ctx context.Context, tx pgx.Tx, ins *inserts, keep func(int) bool) (written, error)
	// files are the screenshot files before wrote; nil for the other
	// endpoints.
	files *fileSet
}

// serve runs one batch request through the idempotency protocol:
// claim the key, write the events and the answer in one transaction, reply.
func (s *Service) serve(w http.ResponseWriter, r *http.Request, endpoint string, prepare func(*http.Request, auth.Gateway) (*prepared, error)) {
	// The batch's span continues the gateway's upload (its traceparent).
	ctx, span := s.tracer.Start(tracing.Extract(r.Context(), r.Header.Get(tracing.Header)), "ingest.batch",
		trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attribute.String("http.route", endpoint)))
	defer span.End()
	gw, ok := auth.GatewayFrom(ctx)
	if ok && span.IsRecording() { // no id formatting with tracing off
		span.SetAttributes(attribute.String(tracing.AttrGateway, gw.ID.String()), attribute.Int64(tracing.AttrOrganization, gw.OrganizationID),
			attribute.String(tracing.AttrBatch, r.Header.Get(protocol.HeaderIdempotencyKey)))
	}
	if !ok {
		s.fail(w, endpoint, apperr.New(apperr.Unauthenticated, protocol.HeaderAPIKey, "not authenticated"))
		return
	}
	rawKey := r.Header.Get(protocol.HeaderIdempotencyKey)
	if rawKey == "" {
		s.fail(w, endpoint, apperr.New(apperr.Malformed, protocol.HeaderIdempotencyKey, "every batch needs an Idempotency-Key header (a UUID kept with the batch across retries)").WithReason(protocol.ErrCodeIdemMissing))
		return
	}
	key, err := uuid.Parse(rawKey)
	if err != nil || len(rawKey) != 36 {
		s.fail(w, endpoint, apperr.New(apperr.Malformed, protocol.HeaderIdempotencyKey, "must be a UUID").WithReason(protocol.ErrCodeValidation))
		return
	}
	p, err := prepare(r, gw)
	if err == nil {
		err = s.checkTimes(ctx, p)
	}
	if err != nil {
		s.fail(w, endpoint, err)
		return
	}
	tenant := postgres.Tenant{OrganizationID: gw.OrganizationID}

	// Claim the key in its own short transaction, so that a concurrent
	// request with the same key sees it in flight (409) rather than waiting.
	var stored *storedAnswer
	err = postgres.InTenant(ctx, s.db, tenant, func(tx pgx.Tx) error {
		q := ingestdb.New(tx)
		claimed, err := q.ClaimBatch(ctx, ingestdb.ClaimBatchParams{OrganizationID: gw.OrganizationID, GatewayID: gw.ID,
			IdempotencyKey: key, Endpoint: endpoint, RequestHash: p.hash, LockFor: "2 minutes"})
		if err != nil {
			return err
		}
		if len(claimed) > 0 {
			return nil
		}
		r, err := q.LookupBatch(ctx, ingestdb.LookupBatchParams{GatewayID: gw.ID, IdempotencyKey: key})
		if err != nil {
			return fmt.Errorf("look up idempotency key: %w", err)
		}
		a := storedAnswer{endpoint: r.Endpoint, hash: r.RequestHash, status: r.Status, body: r.ResponseBody}
		if r.ResponseStatus != nil {
			code := int(*r.ResponseStatus)
			a.code = &code
		}
		stored = &a
		return nil
	})
	if err != nil {
		s.fail(w, endpoint, s.failure(ctx, "claim idempotency key", err))
		return
	}
	if stored != nil {
		switch {
		case stored.endpoint != endpoint || string(stored.hash) != string(p.hash):
			s.fail(w, endpoint, apperr.New(apperr.Invalid, protocol.HeaderIdempotencyKey,
				"this Idempotency-Key was used for a different request body").WithReason(protocol.ErrCodeIdemMismatch))
		case stored.status != "done":
			s.fail(w, endpoint, apperr.New(apperr.Conflict, protocol.HeaderIdempotencyKey,
				"a request with this Idempotency-Key is still being processed; retry later").WithReason(protocol.ErrCodeIdemInFlight))
		default:
			s.metrics.replays.WithLabelValues(endpoint).Inc()
			s.metrics.batches.WithLabelValues(endpoint, "replayed").Inc()
			var resp protocol.IngestResponse
			_ = json.Unmarshal(stored.body, &resp)
			writeAnswer(w, *stored.code, resp)
		}
		return
	}

	resp, err := s.tracedStore(ctx, gw, key, endpoint, p)
	if err != nil {
		span.SetStatus(codes.Error, "not stored")
		// Give the key back so that the gateway's retry is processed anew.
		if relErr := postgres.InTenant(context.WithoutCancel(ctx), s.db, tenant, func(tx pgx.Tx) error {
			return ingestdb.New(tx).ReleaseBatch(ctx, ingestdb.ReleaseBatchParams{GatewayID: gw.ID, IdempotencyKey: key})
		}); relErr != nil {
			s.logger.WarnContext(ctx, "release idempotency key", "err", relErr)
		}
		if apperr.As(err) == nil {
			err = s.failure(ctx, "write batch", err)
		}
		s.fail(w, endpoint, err)
		return
	}
	s.metrics.batches.WithLabelValues(endpoint, "stored").Inc()
	writeAnswer(w, http.StatusOK, resp)
}

// tracedStore is store inside the insert's span (ids only as attributes).
func (s *Service) tracedStore(ctx context.Context, gw auth.Gateway, key uuid.UUID, endpoint string, p *prepared) (protocol.IngestResponse, error) {
	ctx, span := s.tracer.Start(ctx, "ingest.insert")
	defer span.End()
	if span.IsRecording() {
		span.SetAttributes(attribute.String(tracing.AttrGateway, gw.ID.String()), attribute.Int64(tracing.AttrOrganization, gw.OrganizationID),
			attribute.String(tracing.AttrBatch, key.String()), attribute.Int(tracing.AttrEvents, len(p.rows)))
	}
	resp, err := s.store(ctx, gw, key, endpoint, p)
	if err != nil {
		span.SetStatus(codes.Error, string(apperr.CodeOf(err)))
	}
	return resp, err
}

type storedAnswer struct {
	endpoint string
	hash     []byte
	status   string
	code     *int
	body     []byte
}

// checkTimes refuses a batch with an event older than its table's
// retention (it would be deleted at the next maintenance run, and its day
// may have no partition any more), and a batch whose events fall on more
// distinct days than Limits.MaxDays (each day may need new partitions).
func (s *Service) checkTimes(ctx context.Context, p *prepared) error {
	if len(p.rows) == 0 {
		return nil
	}
	keep, err := s.retention.Days(ctx)
	if err != nil {
		return s.unavailable(ctx, "read retention", err)
	}
	now := s.now()
	days := map[time.Time]bool{}
	for _, r := range p.rows {
		if n, ok := keep[r.table]; ok && r.at.Before(now.Add(-time.Duration(n)*24*time.Hour)) {
			return apperr.New(apperr.Invalid, fmt.Sprintf("events[%d].datetime", r.index),
				"%s is older than the %d-day retention of %s; it can no longer be stored", r.at.UTC().Format(time.RFC3339), n, r.table)
		}
		days[timeseries.DayOf(r.at)] = true
	}
	if len(days) > s.limits.MaxDays {
		return apperr.New(apperr.TooLarge, "events",
			"the events fall on %d distinct days, at most %d per batch; send fewer events per batch", len(days), s.limits.MaxDays)
	}
	return nil
}

// store writes a claimed batch: the events where the time-series Store
// routes them, and the batch's accounting and answer in the main database.
// With one database, or in fallback, that is one transaction; with a
// separate time-series store, the events commit there first (idempotently,
// so a crash before the answer commits only makes the retry find
// duplicates). Screenshot files that no committed row references are
// removed before it returns (kept for the sweep when the outcome of a
// commit is unknown).
func (s *Service) store(ctx context.Context, gw auth.Gateway, key uuid.UUID, endpoint string, p *prepared) (resp protocol.IngestResponse, err error) {
	tenant := postgres.Tenant{OrganizationID: gw.OrganizationID}
	committed := map[string]bool{} // event ids whose rows (referencing this request's files) committed
	unknown := false               // a commit's outcome is unknown: leave the files to the sweep
	defer func() {
		if !unknown {
			s.discardFiles(context.WithoutCancel(ctx), p, committed)
		}
	}()
	if p.before != nil {
		if err := p.before(ctx); err != nil {
			return resp, err
		}
	}
	if p.check != nil {
		if err := postgres.InTenant(ctx, s.db, tenant, func(tx pgx.Tx) error { return p.check(ctx, tx) }); err != nil {
			unknown = !rolledBack(err)
			return resp, err
		}
	}
	start := time.Now()
	defer func() { s.metrics.writeSecs.WithLabelValues(endpoint).Observe(time.Since(start).Seconds()) }()

	var wr written
	var ins *inserts
	storeName := "timeseries"
	switch {
	case !s.ts.Separate():
		ins = &s.q.store
	case s.ts.Mode() == timeseries.ModeFallback:
		ins, storeName = &s.q.fallback, "fallback"
	default:
		var err error
		wr, err = s.writeStore(ctx, gw, key, endpoint, p)
		switch {
		case err == nil:
			s.ts.Succeeded()
			for id := range wr.inserted {
				committed[id] = true
			}
		case timeseries.IsStoreFailure(err) && s.ts.Failed(ctx, err):
			unknown = unknown || !rolledBack(err)
			ins, storeName = &s.q.fallback, "fallback"
		default:
			unknown = !rolledBack(err)
			return resp, err
		}
	}
	var gap int64
	var stage string
	attempt := func() error {
		return postgres.InTenant(ctx, s.db, tenant, func(tx pgx.Tx) error {
			q := ingestdb.New(tx)
			if ins != nil {
				stage = "write"
				var err error
				if wr, err = p.write(ctx, tx, ins, nil); err != nil {
					return err
				}
			}
			resp = protocol.IngestResponse{Store: storeName}
			for _, n := range wr.accepted {
				resp.Accepted += n
			}
			for _, n := range wr.duplicates {
				resp.Duplicates += n
			}
			resp.Accepted, resp.Duplicates = resp.Accepted+wr.carried, resp.Duplicates-wr.carried
			var dropped int64
			for i, d := range p.drops {
				stage = fmt.Sprintf("drops[%d]", i)
				dropped += d.Count
				if err := q.InsertDropReport(ctx, ingestdb.InsertDropReportParams{OrganizationID: gw.OrganizationID, GatewayID: gw.ID,
					Reason: d.Reason, Class: d.Class, Count: d.Count, FirstAt: nullTime(d.FirstAt), LastAt: nullTime(d.LastAt)}); err != nil {
					return fmt.Errorf("insert drop report: %w", err)
				}
			}
			stage = ""
			var resent int64
			if len(wr.resent) > 0 {
				n, err := q.InsertResentSeqs(ctx, ingestdb.InsertResentSeqsParams{OrganizationID: gw.OrganizationID, GatewayID: gw.ID, Seqs: wr.resent})
				if err != nil {
					return fmt.Errorf("record re-sent seqs: %w", err)
				}
				resent = n
			}
			var err error
			if gap, err = q.AccountSequence(ctx, ingestdb.AccountSequenceParams{OrganizationID: gw.OrganizationID, GatewayID: gw.ID,
				MaxSeq: p.maxSeq, Accepted: int64(resp.Accepted), Dropped: dropped, Resent: resent}); err != nil {
				return fmt.Errorf("account sequence: %w", err)
			}
			s.metrics.resent.Add(float64(resent))
			body, err := json.Marshal(resp)
			if err != nil {
				return err
			}
			status := int32(http.StatusOK)
			n, err := q.CompleteBatch(ctx, ingestdb.CompleteBatchParams{GatewayID: gw.ID, IdempotencyKey: key, ResponseStatus: &status,
				ResponseBody: body})
			if err != nil {
				return fmt.Errorf("complete batch: %w", err)
			}
			if n != 1 {
				// Our claim expired and another request took the key over.
				return apperr.New(apperr.Conflict, protocol.HeaderIdempotencyKey,
					"the claim on this Idempotency-Key expired; retry").WithReason(protocol.ErrCodeIdemInFlight)
			}
			return nil
		})
	}
	if ins != nil {
		err = s.withPartitions(ctx, s.db, ins.schema, p, attempt)
	} else {
		err = attempt()
	}
	if err != nil {
		unknown = unknown || !rolledBack(err)
		if pe, ok := dataError(err); ok {
			switch {
			case stage == "write":
				return resp, s.refused(ctx, s.db, gw.OrganizationID, endpoint, p, ins, pe)
			case stage != "":
				s.metrics.dbRefusals.WithLabelValues(endpoint, pe.Code).Inc()
				return resp, apperr.New(apperr.Invalid, stage, "is refused by the database: %s (SQLSTATE %s)", pe.Message, pe.Code)
			default:
				s.metrics.dbRefusals.WithLabelValues(endpoint, pe.Code).Inc()
				return resp, apperr.New(apperr.Invalid, "", "the database refuses this batch: %s (SQLSTATE %s)", pe.Message, pe.Code)
			}
		}
		return resp, err
	}
	if ins != nil {
		for id := range wr.inserted {
			committed[id] = true
		}
	} else {
		s.forgetStoreAccounting(ctx, tenant, gw, key)
	}
	for t, n := range wr.accepted {
		s.metrics.events.WithLabelValues(t, orgLabel(gw.OrganizationID)).Add(float64(n))
	}
	for t, n := range wr.duplicates {
		s.metrics.duplicates.WithLabelValues(t).Add(float64(n))
	}
	for _, d := range p.drops {
		s.metrics.drops.WithLabelValues(d.Reason, d.Class).Add(float64(d.Count))
	}
	s.metrics.seqGap.WithLabelValues(gw.ID.String()).Set(float64(gap))
	return resp, nil
}

// writeStore writes the events to the separate time-series store, in its
// own transaction, within a bounded time, with what they account for the
// key (ingest_store_accounting: an earlier attempt's events, committed
// there while its accounting failed to commit in the main database, are
// carried into this attempt's). A data error is answered 422 naming the
// refused event, not counted as a failure of the store.
func (s *Service) writeStore(ctx context.Context, gw auth.Gateway, key uuid.UUID, endpoint string, p *prepared) (written, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	tenant := postgres.Tenant{OrganizationID: gw.OrganizationID}
	var wr written
	err := s.withPartitions(ctx, s.ts.TS(), timeseries.SchemaStore, p, func() error {
		return postgres.InTenant(ctx, s.ts.TS(), tenant, func(tx pgx.Tx) error {
			var err error
			if wr, err = p.write(ctx, tx, &s.q.store, nil); err != nil {
				return err
			}
			accepted := 0
			for _, n := range wr.accepted {
				accepted += n
			}
			resent := append([]int64{}, wr.resent...)
			r, err := ingestdb.New(tx).StoreAccounting(ctx, ingestdb.StoreAccountingParams{OrganizationID: gw.OrganizationID,
				GatewayID: gw.ID, IdempotencyKey: key, Accepted: int64(accepted), Resent: resent})
			if err != nil {
				return fmt.Errorf("record store accounting: %w", err)
			}
			wr.resent = r.Resent
			wr.carried = int(r.Accepted) - accepted
			return nil
		})
	})
	if pe, ok := dataError(err); ok {
		return wr, s.refused(ctx, s.ts.TS(), tenant.OrganizationID, endpoint, p, &s.q.store, pe)
	}
	return wr, err
}

// forgetStoreAccounting deletes the store-side accounting record of a key
// whose batch the main database committed. Best effort: a record left
// behind is never read again (the key is only replayed) and is purged
// after two days.
func (s *Service) forgetStoreAccounting(ctx context.Context, tenant postgres.Tenant, gw auth.Gateway, key uuid.UUID) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if err := postgres.InTenant(ctx, s.ts.TS(), tenant, func(tx pgx.Tx) error {
		return ingestdb.New(tx).ForgetStoreAccounting(ctx, ingestdb.ForgetStoreAccountingParams{GatewayID: gw.ID, IdempotencyKey: key})
	}); err != nil {
		s.logger.WarnContext(ctx, "forget store-side accounting record", "err", err)
	}
}

// withPartitions ensures the partitions the batch needs in schema of db,
// then runs attempt; when attempt finds a partition missing (retention
// dropped a day since it was ensured), it forgets what it knew, ensures
// again and runs attempt once more.
func (s *Service) withPartitions(ctx context.Context, db *pgxpool.Pool, schema string, p *prepared, attempt func() error) error {
	tables, days := p.tablesAndDays()
	ensure := func() error {
		n, err := s.days.EnsureDays(ctx, db, schema, tables, days)
		s.metrics.partitionsCreated.Add(float64(n))
		if err != nil {
			return fmt.Errorf("ingest: %w", err)
		}
		return nil
	}
	if len(tables) > 0 {
		if err := ensure(); err != nil {
			return err
		}
	}
	err := attempt()
	if !noPartition(err) {
		return err
	}
	s.metrics.partitionRetries.Inc()
	s.days.Forget(db, schema, tables, days)
	if err := ensure(); err != nil {
		return err
	}
	return attempt()
}

// failure answers an error of step what: 422 when the database refused the
// data (a retry would be refused again), else a retryable 503.
func (s *Service) failure(ctx context.Context, what string, err error) error {
	if pe, ok := dataError(err); ok {
		s.logger.WarnContext(ctx, "database refused a batch", "step", what, "sqlstate", pe.Code, "err", pe.Message)
		return apperr.New(apperr.Invalid, "", "the database refuses this batch: %s (SQLSTATE %s)", pe.Message, pe.Code)
	}
	return s.unavailable(ctx, what, err)
}

// unavailable logs a server-side failure and returns a retryable 503.
func (s *Service) unavailable(ctx context.Context, what string, err error) error {
	s.logger.ErrorContext(ctx, "ingest failed", "step", what, "err", err)
	return apperr.New(apperr.Unavailable, "", "temporary problem saving data; retry")
}

func (s *Service) fail(w http.ResponseWriter, endpoint string, err error) {
	status, body := service.ErrorResponse(err)
	s.metrics.rejections.WithLabelValues(endpoint, body.Error).Inc()
	outcome := "rejected"
	if status >= 500 {
		outcome = "failed"
		w.Header().Set(protocol.HeaderRetryAfter, "1")
	}
	s.metrics.batches.WithLabelValues(endpoint, outcome).Inc()
	service.WriteJSON(w, status, body)
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
