// Package commandqueue is the gateway command queue in PostgreSQL
// (gateway_commands): enqueue with priority, expiry and an attempt budget;
// claim with FOR UPDATE SKIP LOCKED so that several Agent API replicas share
// the work; two-phase acknowledgement (received, then completed or failed);
// a sweep that redelivers unacknowledged commands with backoff and expires
// old ones; and LISTEN/NOTIFY so that the replica holding a gateway's socket
// wakes when a command for it is enqueued.
package commandqueue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/cloud/commandqueue/commandqueuedb"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
	"github.com/staffcontrol/staffcontrol/internal/tracing"
)

// Statuses of a command.
const (
	StatusPending   = "pending"
	StatusDelivered = "delivered"
	StatusCompleted = "completed"
	StatusFailed    = "failed"
	StatusExpired   = "expired"
	StatusCancelled = "cancelled"
)

// ErrNotFound means no such command for that gateway (or not visible).
var ErrNotFound = errors.New("commandqueue: command not found")

// Options are a queue's timings.
type Options struct {
	// AckTimeout bounds delivery → received (default 30 s).
	AckTimeout time.Duration
	// ExecTimeout bounds received → completed (default 10 min).
	ExecTimeout time.Duration
	// Backoff is the first redelivery delay; it doubles per attempt, to at
	// most 5 minutes (default 5 s).
	Backoff time.Duration
	// Logger reports lost LISTEN connections.
	Logger *slog.Logger
	// GroupMax is the most commands one group-committed enqueue
	// transaction holds (default 128).
	GroupMax int
	// GroupInFlight is how many group-committed enqueue transactions of
	// one tenant may run at once (default 2): while they commit, the
	// tenant's next calls gather into the next batch.
	GroupInFlight int
}

// Queue is the command queue.
type Queue struct {
	db   *pgxpool.Pool
	opts Options

	enqueued *prometheus.CounterVec
	swept    *prometheus.CounterVec
	acks     *prometheus.CounterVec

	group        grouper
	batchSize    prometheus.Histogram
	batchRetries prometheus.Counter
}

// New returns a Queue over db (any runtime role) and registers its metrics.
func New(db *pgxpool.Pool, opts Options, reg prometheus.Registerer) (*Queue, error) {
	if opts.AckTimeout <= 0 {
		opts.AckTimeout = 30 * time.Second
	}
	if opts.ExecTimeout <= 0 {
		opts.ExecTimeout = 10 * time.Minute
	}
	if opts.Backoff <= 0 {
		opts.Backoff = 5 * time.Second
	}
	if opts.GroupMax <= 0 {
		opts.GroupMax = defaultGroupMax
	}
	if opts.GroupInFlight <= 0 {
		opts.GroupInFlight = defaultGroupInFlight
	}
	d := &Queue{db: db, opts: opts, group: grouper{tenants: map[postgres.Tenant]*tenantQueue{}},
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "commands_enqueue_batch_size",
			Help: "Commands per group-committed enqueue transaction (Enqueue).", Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128}}),
		batchRetries: prometheus.NewCounter(prometheus.CounterOpts{Name: "commands_enqueue_batch_retries_total",
			Help: "Group-committed enqueue batches that failed as a whole and were retried one command at a time."}),
		enqueued: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "commands_enqueued_total", Help: "Commands enqueued, by type."}, []string{"type"}),
		swept: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "commands_swept_total",
			Help: "Commands changed by the sweep: pending (redelivery after a missed acknowledgement), failed (attempts exhausted), expired."}, []string{"status"}),
		acks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "commands_acks_total", Help: "Acknowledgements by phase (received, completed, failed)."}, []string{"phase"}),
	}
	reg.MustRegister(d.enqueued, d.swept, d.acks, d.batchSize, d.batchRetries)
	return d, nil
}

// NewCommand is what Enqueue needs.
type NewCommand struct {
	GatewayID   uuid.UUID
	Type        string
	Payload     json.RawMessage
	Priority    int
	MaxAttempts int           // default 3
	TTL         time.Duration // default 24 h
	CreatedBy   string
}

// Command is a queued command.
type Command struct {
	ID          uuid.UUID       `json:"id"`
	GatewayID   uuid.UUID       `json:"gateway_id"`
	Type        string          `json:"type"`
	Payload     json.RawMessage `json:"payload"`
	Priority    int             `json:"priority"`
	Status      string          `json:"status"`
	Attempts    int             `json:"attempts"`
	MaxAttempts int             `json:"max_attempts"`
	ExpiresAt   time.Time       `json:"expires_at"`
	CreatedAt   time.Time       `json:"created_at"`
	DeliveredAt *time.Time      `json:"delivered_at,omitempty"`
	ReceivedAt  *time.Time      `json:"received_at,omitempty"`
	CompletedAt *time.Time      `json:"completed_at,omitempty"`
	Result      json.RawMessage `json:"result,omitempty"`
	Error       *string         `json:"error,omitempty"`
	// TraceParent is the enqueuer's trace context (W3C traceparent; "" when
	// untraced), sent to the gateway with the command (issue 19). Set by
	// the claims; not part of the API's JSON.
	TraceParent string `json:"-"`
}

// traceParentOf is the traceparent of ctx's span for the column (nil when
// ctx holds none, as with tracing off).
func traceParentOf(ctx context.Context) *string {
	if tp := tracing.Traceparent(ctx); tp != "" {
		return &tp
	}
	return nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func interval(d time.Duration) string { return fmt.Sprintf("%d milliseconds", d.Milliseconds()) }

// validate checks a new command and fills in its defaults.
func validate(c NewCommand) (NewCommand, error) {
	switch c.Type {
	case protocol.CommandPolicyUpdate, protocol.CommandRestartAgent, protocol.CommandDeviceCommand, protocol.CommandRotateAPIKey, protocol.CommandReplayDeadLetters, protocol.CommandRevokeAgent, protocol.CommandDevicesUpdate:
	default:
		return NewCommand{}, &apperr.FieldError{Field: "type", Message: fmt.Sprintf("%q is not a command type (policy_update, restart_agent, device_command, rotate_api_key, replay_dead_letters, revoke_agent, devices_update)", c.Type)}
	}
	if len(c.Payload) == 0 {
		c.Payload = json.RawMessage(`{}`)
	}
	if !json.Valid(c.Payload) || c.Payload[0] != '{' {
		return NewCommand{}, &apperr.FieldError{Field: "payload", Message: "must be a JSON object"}
	}
	if c.Type == protocol.CommandRotateAPIKey {
		if err := checkRotatePayload(c.Payload); err != nil {
			return NewCommand{}, err
		}
	}
	if utf8.RuneCountInString(c.CreatedBy) > 255 {
		return NewCommand{}, &apperr.FieldError{Field: "created_by", Message: "must be at most 255 characters"}
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 3
	}
	if c.MaxAttempts < 1 || c.MaxAttempts > 100 {
		return NewCommand{}, &apperr.FieldError{Field: "max_attempts", Message: "must be between 1 and 100"}
	}
	if c.TTL == 0 {
		c.TTL = 24 * time.Hour
	}
	if c.TTL < time.Second || c.TTL > 30*24*time.Hour {
		return NewCommand{}, &apperr.FieldError{Field: "ttl", Message: "must be between 1s and 720h"}
	}
	return c, nil
}

// EnqueueTx is Enqueue inside the caller's tenant transaction, so that a
// command can be created atomically with what it belongs to.
func (d *Queue) EnqueueTx(ctx context.Context, tx pgx.Tx, c NewCommand) (Command, error) {
	c, err := validate(c)
	if err != nil {
		return Command{}, err
	}
	out := Command{GatewayID: c.GatewayID, Type: c.Type, Payload: c.Payload, Priority: c.Priority, Status: StatusPending, MaxAttempts: c.MaxAttempts}
	q := commandqueuedb.New(tx)
	org, err := q.GatewayOrganization(ctx, c.GatewayID)
	if errors.Is(err, pgx.ErrNoRows) {
		return Command{}, ErrNotFound
	}
	if err != nil {
		return Command{}, fmt.Errorf("commandqueue: look up gateway: %w", err)
	}
	row, err := q.Enqueue(ctx, commandqueuedb.EnqueueParams{OrganizationID: org, GatewayID: c.GatewayID, Type: c.Type, Payload: c.Payload,
		Priority: int32(c.Priority), MaxAttempts: int32(c.MaxAttempts), Ttl: interval(c.TTL), CreatedBy: &c.CreatedBy,
		TraceParent: traceParentOf(ctx)})
	if err != nil {
		return Command{}, fmt.Errorf("commandqueue: enqueue: %w", err)
	}
	out.ID, out.CreatedAt, out.ExpiresAt = row.ID, row.CreatedAt, row.ExpiresAt
	d.enqueued.WithLabelValues(c.Type).Inc()
	return out, nil
}

// EnqueueManyTx is EnqueueTx of the same command (c.GatewayID is ignored)
// for each of gateways in one statement, inside the caller's tenant
// transaction: the same validation, and the same NOTIFY per gateway (the
// insert trigger fires per row). The commands are returned in the order of
// gateways. A gateway listed twice, revoked or invisible to the tenant
// answers ErrNotFound and nothing is enqueued (the caller's transaction
// should then be rolled back).
func (d *Queue) EnqueueManyTx(ctx context.Context, tx pgx.Tx, c NewCommand, gateways []uuid.UUID) ([]Command, error) {
	c, err := validate(c)
	if err != nil {
		return nil, err
	}
	if len(gateways) == 0 {
		return nil, nil
	}
	rows, err := commandqueuedb.New(tx).EnqueueMany(ctx, commandqueuedb.EnqueueManyParams{Type: c.Type, Payload: c.Payload,
		Priority: int32(c.Priority), MaxAttempts: int32(c.MaxAttempts), Ttl: interval(c.TTL), CreatedBy: &c.CreatedBy, GatewayIds: gateways,
		TraceParent: traceParentOf(ctx)})
	if err != nil {
		return nil, fmt.Errorf("commandqueue: enqueue many: %w", err)
	}
	byGateway := make(map[uuid.UUID]commandqueuedb.EnqueueManyRow, len(rows))
	for _, r := range rows {
		byGateway[r.GatewayID] = r
	}
	if len(rows) != len(gateways) || len(byGateway) != len(gateways) {
		return nil, ErrNotFound
	}
	out := make([]Command, len(gateways))
	for i, gw := range gateways {
		r, ok := byGateway[gw]
		if !ok {
			return nil, ErrNotFound
		}
		out[i] = Command{ID: r.ID, GatewayID: gw, Type: c.Type, Payload: c.Payload, Priority: c.Priority, Status: StatusPending,
			MaxAttempts: c.MaxAttempts, CreatedAt: r.CreatedAt, ExpiresAt: r.ExpiresAt}
	}
	d.enqueued.WithLabelValues(c.Type).Add(float64(len(out)))
	return out, nil
}

// Claim marks up to limit due commands of a gateway delivered and returns
// them, highest priority first. Concurrent claims never return the same
// command. t must be the gateway's organisation.
func (d *Queue) Claim(ctx context.Context, t postgres.Tenant, gateway uuid.UUID, limit int) ([]Command, error) {
	var out []Command
	err := postgres.InTenant(ctx, d.db, t, func(tx pgx.Tx) error {
		rows, err := commandqueuedb.New(tx).Claim(ctx, commandqueuedb.ClaimParams{GatewayID: gateway, MaxRows: int32(limit),
			AckTimeout: interval(d.opts.AckTimeout)})
		for _, r := range rows {
			out = append(out, Command{ID: r.ID, GatewayID: gateway, Type: r.Type, Payload: r.Payload, Priority: int(r.Priority),
				Status: StatusDelivered, Attempts: int(r.Attempts), MaxAttempts: int(r.MaxAttempts), ExpiresAt: r.ExpiresAt, CreatedAt: r.CreatedAt,
				TraceParent: deref(r.TraceParent)})
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("commandqueue: claim: %w", err)
	}
	// The UPDATE … FROM returns rows in no particular order.
	sortByPriority(out)
	return out, nil
}

func sortByPriority(cs []Command) {
	for i := 1; i < len(cs); i++ {
		for j := i; j > 0 && less(cs[j], cs[j-1]); j-- {
			cs[j], cs[j-1] = cs[j-1], cs[j]
		}
	}
}

func less(a, b Command) bool {
	if a.Priority != b.Priority {
		return a.Priority > b.Priority
	}
	return a.CreatedAt.Before(b.CreatedAt)
}

// Received records phase one of an acknowledgement.
func (d *Queue) Received(ctx context.Context, t postgres.Tenant, gateway, id uuid.UUID) error {
	err := d.one(ctx, t, func(q *commandqueuedb.Queries) (uuid.UUID, error) {
		return q.Received(ctx, commandqueuedb.ReceivedParams{ID: id, GatewayID: gateway, ExecTimeout: interval(d.opts.ExecTimeout)})
	})
	if err == nil {
		d.acks.WithLabelValues("received").Inc()
	}
	return err
}

// Finish records phase two: completed (ok) or failed, with the gateway's
// result or error. Finishing a finished command is a no-op returning nil
// (redelivered acknowledgements are normal).
func (d *Queue) Finish(ctx context.Context, t postgres.Tenant, gateway, id uuid.UUID, ok bool, result json.RawMessage, errMsg string) error {
	status := StatusCompleted
	if !ok {
		status = StatusFailed
	}
	var e *string
	if errMsg != "" {
		e = &errMsg
	}
	if len(result) == 0 {
		result = nil
	}
	err := d.one(ctx, t, func(q *commandqueuedb.Queries) (uuid.UUID, error) {
		return q.Finish(ctx, commandqueuedb.FinishParams{ID: id, GatewayID: gateway, Status: status, Result: result, Error: e})
	})
	if errors.Is(err, ErrNotFound) {
		c, gerr := d.Get(ctx, t, id)
		if gerr == nil && c.GatewayID == gateway && (c.Status == StatusCompleted || c.Status == StatusFailed) {
			return nil
		}
		return err
	}
	if err == nil {
		d.acks.WithLabelValues(status).Inc()
	}
	return err
}

// Cancel cancels a command not yet finished.
func (d *Queue) Cancel(ctx context.Context, t postgres.Tenant, id uuid.UUID) error {
	return d.one(ctx, t, func(q *commandqueuedb.Queries) (uuid.UUID, error) { return q.Cancel(ctx, id) })
}

// one runs a statement that returns the id of the one command it changed.
func (d *Queue) one(ctx context.Context, t postgres.Tenant, run func(*commandqueuedb.Queries) (uuid.UUID, error)) error {
	return postgres.InTenant(ctx, d.db, t, func(tx pgx.Tx) error {
		_, err := run(commandqueuedb.New(tx))
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		return err
	})
}

// Get reads one command visible to the tenant.
func (d *Queue) Get(ctx context.Context, t postgres.Tenant, id uuid.UUID) (Command, error) {
	var c Command
	err := postgres.InTenant(ctx, d.db, t, func(tx pgx.Tx) error {
		r, err := commandqueuedb.New(tx).Get(ctx, id)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		c = command(commandqueuedb.ListRow(r))
		return err
	})
	return c, err
}

// Due returns which of the given gateways of the tenant's organisation have
// a command due now (gateway_commands_due answers nothing without a tenant,
// so no caller can probe another organisation's gateways by id).
func (d *Queue) Due(ctx context.Context, t postgres.Tenant, gateways []uuid.UUID) ([]uuid.UUID, error) {
	var due []uuid.UUID
	err := postgres.InTenant(ctx, d.db, t, func(tx pgx.Tx) error {
		var err error
		due, err = commandqueuedb.New(tx).Due(ctx, gateways)
		return err
	})
	return due, err
}

// Swept is one command the sweep changed.
type Swept struct {
	ID        uuid.UUID
	GatewayID uuid.UUID
	Status    string
}

// Sweep redelivers unacknowledged commands after a backoff, fails those out
// of attempts and expires those past their expiry, across organisations, at
// the database server's clock.
func (d *Queue) Sweep(ctx context.Context) ([]Swept, error) {
	rows, err := commandqueuedb.New(d.db).Sweep(ctx, interval(d.opts.Backoff))
	if err != nil {
		return nil, fmt.Errorf("commandqueue: sweep: %w", err)
	}
	out := make([]Swept, 0, len(rows))
	for _, r := range rows {
		out = append(out, Swept(r))
		d.swept.WithLabelValues(r.Status).Inc()
	}
	return out, nil
}

// Listen delivers the id of every gateway with a new pending command to
// wake, until ctx ends; after a lost connection it reports uuid.Nil once
// (meaning "anything may have been missed: check all").
func (d *Queue) Listen(ctx context.Context, wake func(gateway uuid.UUID)) {
	postgres.Listen(ctx, d.db, []string{"gateway_commands"}, func(_, payload string) {
		if id, err := uuid.Parse(payload); err == nil {
			wake(id)
		}
	}, func(err error) {
		if d.opts.Logger != nil {
			d.opts.Logger.WarnContext(ctx, "command notifications interrupted; reconnected", "err", err)
		}
		wake(uuid.Nil)
	})
}

// List returns the tenant's most recent commands, newest first, for one
// gateway or (gateway = uuid.Nil) all of them.
func (d *Queue) List(ctx context.Context, t postgres.Tenant, gateway uuid.UUID, limit int) ([]Command, error) {
	var out []Command
	err := postgres.InTenant(ctx, d.db, t, func(tx pgx.Tx) error {
		rows, err := commandqueuedb.New(tx).List(ctx, commandqueuedb.ListParams{GatewayID: nullUUID(gateway), MaxRows: int32(limit)})
		for _, r := range rows {
			out = append(out, command(r))
		}
		return err
	})
	return out, err
}

// command is a row of gateway_commands as a Command.
func command(r commandqueuedb.ListRow) Command {
	return Command{ID: r.ID, GatewayID: r.GatewayID, Type: r.Type, Payload: r.Payload, Priority: int(r.Priority), Status: r.Status,
		Attempts: int(r.Attempts), MaxAttempts: int(r.MaxAttempts), ExpiresAt: r.ExpiresAt, CreatedAt: r.CreatedAt,
		DeliveredAt: r.DeliveredAt, ReceivedAt: r.ReceivedAt, CompletedAt: r.CompletedAt, Result: r.Result, Error: r.Error}
}

func nullUUID(id uuid.UUID) *uuid.UUID {
	if id == uuid.Nil {
		return nil
	}
	return &id
}

// checkRotatePayload keeps secrets out of the queue: a rotate_api_key
// command carries only overlap_seconds; the gateway fetches its new key
// itself (POST /v2/gateway/keys/rotate), so a key in the payload — which
// would sit in gateway_commands in plain text — is refused.
func checkRotatePayload(payload json.RawMessage) error {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(payload, &fields); err != nil {
		return &apperr.FieldError{Field: "payload", Message: "must be a JSON object"}
	}
	for k, v := range fields {
		if k != "overlap_seconds" {
			return &apperr.FieldError{Field: "payload." + k, Message: "is not allowed in rotate_api_key (only overlap_seconds; the gateway fetches its new key itself, so no key travels in a command)"}
		}
		var n int64
		if err := json.Unmarshal(v, &n); err != nil || n < 0 {
			return &apperr.FieldError{Field: "payload.overlap_seconds", Message: "must be a non-negative whole number of seconds"}
		}
	}
	return nil
}

// PageFilter selects one page of a gateway's commands for ListPageTx.
type PageFilter struct {
	GatewayID uuid.UUID
	// Status keeps only commands in this status ("": any).
	Status string
	// Before is the keyset cursor: commands created before BeforeAt, or
	// at BeforeAt with an id below BeforeID (zero BeforeAt: the newest).
	BeforeAt time.Time
	BeforeID uuid.UUID
	Limit    int
}

// ListPageTx returns one page of a gateway's commands, newest first (ties
// by id), inside the caller's tenant transaction: the Dashboard API's
// cursor pages. A gateway of another organisation has none.
func (d *Queue) ListPageTx(ctx context.Context, tx pgx.Tx, f PageFilter) ([]Command, error) {
	p := commandqueuedb.ListPageParams{GatewayID: f.GatewayID, MaxRows: int32(f.Limit)}
	if f.Status != "" {
		p.Status = &f.Status
	}
	if !f.BeforeAt.IsZero() {
		p.BeforeAt = pgtype.Timestamptz{Time: f.BeforeAt, Valid: true}
		p.BeforeID = &f.BeforeID
	}
	rows, err := commandqueuedb.New(tx).ListPage(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("commandqueue: list: %w", err)
	}
	out := make([]Command, 0, len(rows))
	for _, r := range rows {
		out = append(out, command(commandqueuedb.ListRow(r)))
	}
	return out, nil
}

// GetTx is Get inside the caller's tenant transaction.
func (d *Queue) GetTx(ctx context.Context, tx pgx.Tx, id uuid.UUID) (Command, error) {
	r, err := commandqueuedb.New(tx).Get(ctx, id)
	if errors.Is(err, pgx.ErrNoRows) {
		return Command{}, ErrNotFound
	}
	if err != nil {
		return Command{}, fmt.Errorf("commandqueue: get: %w", err)
	}
	return command(commandqueuedb.ListRow(r)), nil
}

// ErrFinished means a command cannot be cancelled: it is completed,
// failed, expired or cancelled already.
var ErrFinished = errors.New("commandqueue: command is finished")

// CancelTx cancels a command not yet finished inside the caller's tenant
// transaction and returns it as it is now: ErrNotFound when the tenant
// cannot see it, ErrFinished (with the command) when it is finished.
func (d *Queue) CancelTx(ctx context.Context, tx pgx.Tx, id uuid.UUID) (Command, error) {
	_, err := commandqueuedb.New(tx).Cancel(ctx, id)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return Command{}, fmt.Errorf("commandqueue: cancel: %w", err)
	}
	c, gerr := d.GetTx(ctx, tx, id)
	if gerr != nil {
		return Command{}, gerr
	}
	if err != nil {
		return c, ErrFinished
	}
	return c, nil
}

// RotateKey is the rotate_api_key command for a gateway, as staffctl
// gateway rotate-key and the Dashboard API queue it: no key in the
// payload (the gateway fetches its new key itself), only the overlap
// during which the old key stays valid if the new one is never used
// (whole seconds, protocol.MinKeyOverlapSeconds…MaxKeyOverlapSeconds; 0:
// the default), at a high priority. A bad overlap names the field
// "overlap_seconds".
func RotateKey(gateway uuid.UUID, overlap, ttl time.Duration, createdBy string) (NewCommand, error) {
	if overlap == 0 {
		overlap = time.Duration(protocol.DefaultKeyOverlapSeconds) * time.Second
	}
	lo, hi := time.Duration(protocol.MinKeyOverlapSeconds)*time.Second, time.Duration(protocol.MaxKeyOverlapSeconds)*time.Second
	if overlap < lo || overlap > hi || overlap%time.Second != 0 {
		return NewCommand{}, &apperr.FieldError{Field: "overlap_seconds",
			Message: fmt.Sprintf("must be whole seconds from %d to %d", protocol.MinKeyOverlapSeconds, protocol.MaxKeyOverlapSeconds)}
	}
	payload, err := json.Marshal(protocol.RotateAPIKeyPayload{OverlapSeconds: int(overlap / time.Second)})
	if err != nil {
		return NewCommand{}, err
	}
	return NewCommand{GatewayID: gateway, Type: protocol.CommandRotateAPIKey, Payload: payload, Priority: 10, TTL: ttl, CreatedBy: createdBy}, nil
}

// CancelPendingTx cancels a gateway's still-pending commands of one type
// inside the caller's tenant transaction, with reason as their error, and
// returns how many: a newer devices_update supersedes the older ones
// before any is delivered.
func (d *Queue) CancelPendingTx(ctx context.Context, tx pgx.Tx, gateway uuid.UUID, typ, reason string) (int64, error) {
	n, err := commandqueuedb.New(tx).CancelPending(ctx, commandqueuedb.CancelPendingParams{GatewayID: gateway, Type: typ, Reason: &reason})
	if err != nil {
		return 0, fmt.Errorf("commandqueue: cancel pending %s: %w", typ, err)
	}
	return n, nil
}
