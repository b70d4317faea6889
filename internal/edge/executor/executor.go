// Package executor runs the commands the cloud sends a gateway, each at
// most once: a durable ledger (SQLite, beside the buffer) records every
// command id with its outcome before the outcome is acknowledged, so a
// redelivered command is answered from the ledger without running again.
//
// policy_update fetches the version from the Agent API, checks its SHA-256
// against the command, and persists it atomically as the gateway's current
// policy, which the collector serves to agents. Types this gateway does not
// execute fail with a clear error.
package executor

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	_ "modernc.org/sqlite" // the pure-Go SQLite driver (database/sql name "sqlite")

	"github.com/staffcontrol/staffcontrol/internal/edge/cloudclient"
	"github.com/staffcontrol/staffcontrol/internal/edge/executor/ledger"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
	"github.com/staffcontrol/staffcontrol/internal/tracing"
)

// Policy is the gateway's current policy.
type Policy struct {
	PolicyID int64           `json:"policy_id"`
	Version  string          `json:"version"`
	Checksum string          `json:"checksum"`
	Content  json.RawMessage `json:"content"`
}

// Executor executes commands once.
type Executor struct {
	db    *sql.DB
	q     *ledger.Queries
	dir   string
	cloud *cloudclient.Client

	handlers map[string]Handler

	mu     sync.Mutex
	policy *Policy
	// onPolicy is Options.OnPolicy.
	onPolicy func(json.RawMessage)
	tracer   trace.Tracer

	// flights are the commands running now, by id: a copy of one that
	// arrives meanwhile (a redelivery, on another session or lane) waits
	// for its outcome instead of running it again.
	flightMu sync.Mutex
	flights  map[string]*flight

	closeOnce sync.Once
	closeErr  error
}

// Handler executes one command type and returns its result. It is called
// at most once per command id (the ledger answers redeliveries); a
// cancelled context leaves the command unrecorded, so it runs again.
type Handler func(ctx context.Context, cmd protocol.Command) (json.RawMessage, error)

// Options configure an Executor.
type Options struct {
	// Dir holds the ledger (commands.sqlite) and the current policy.
	Dir string
	// BaseURL is the Agent API (https://host).
	BaseURL string
	// APIKey returns the gateway's current API key.
	APIKey func() string
	// Client is the HTTP client towards the cloud (mTLS configured there).
	Client *http.Client
	// Handlers add command types (restart_agent, rotate_api_key, ...)
	// beside the built-in policy_update.
	Handlers map[string]Handler
	// TracerProvider traces each execution (a child of the caller's span,
	// the control client's); nil: no tracing.
	TracerProvider trace.TracerProvider
	// OnPolicy, when set, is given the current policy's content at Open
	// and each applied policy's after (the gateway sets its log
	// scrubber's window-title switch from it).
	OnPolicy func(content json.RawMessage)
}

// Open opens (creating) the ledger and loads the current policy.
func Open(opts Options) (*Executor, error) {
	if err := os.MkdirAll(opts.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("executor: %w", err)
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(opts.Dir, "commands.sqlite")+"?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(5000)")
	if err != nil {
		return nil, fmt.Errorf("executor: open ledger: %w", err)
	}
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(ledger.Schema()); err != nil {
		db.Close()
		return nil, fmt.Errorf("executor: ledger schema: %w", err)
	}
	if opts.Client == nil {
		opts.Client = cloudclient.HTTPClient(nil, 30*time.Second)
	}
	cloud := cloudclient.New(cloudclient.Options{BaseURL: opts.BaseURL, APIKey: opts.APIKey, HTTP: opts.Client})
	e := &Executor{db: db, q: ledger.New(db), dir: opts.Dir, cloud: cloud, handlers: map[string]Handler{}, flights: map[string]*flight{},
		onPolicy: opts.OnPolicy, tracer: tracing.OrNoop(opts.TracerProvider).Tracer("github.com/staffcontrol/staffcontrol/internal/edge/executor")}
	for t, h := range opts.Handlers {
		e.handlers[t] = h
	}
	if b, err := os.ReadFile(e.policyPath()); err == nil {
		var p Policy
		if json.Unmarshal(b, &p) == nil {
			e.policy = &p
			if e.onPolicy != nil {
				e.onPolicy(p.Content)
			}
		}
	}
	return e, nil
}

// The executor is a lifecycle.Service with no goroutine of its own: Open
// opens the ledger (commands run on their caller's goroutine), Start has
// nothing to start, and Stop closes the ledger, once.

// Start does nothing: the executor works on its callers' goroutines.
func (e *Executor) Start(context.Context) error { return nil }

// Stop closes the ledger; a second Stop returns nil.
func (e *Executor) Stop(context.Context) error {
	first := false
	e.closeOnce.Do(func() { first, e.closeErr = true, e.db.Close() })
	if first {
		return e.closeErr
	}
	return nil
}

// Close closes the ledger (Stop without a context); a second Close returns
// the first one's result.
func (e *Executor) Close() error {
	e.closeOnce.Do(func() { e.closeErr = e.db.Close() })
	return e.closeErr
}

func (e *Executor) policyPath() string { return filepath.Join(e.dir, "policy.json") }

// CurrentPolicy is the policy last applied, or nil.
func (e *Executor) CurrentPolicy() *Policy {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.policy
}

// flight is one running execution of a command id; done closes when its
// outcome is set.
type flight struct {
	done chan struct{}
	res  json.RawMessage
	err  error
	// unrecorded: the execution was cut short (or the ledger could not be
	// read), so a waiting copy runs the command itself.
	unrecorded bool
}

// Execute runs cmd unless the ledger says it ran; either way it returns the
// outcome to acknowledge: a result, or an error for a failed command. Safe
// for concurrent use: a copy of a command that is running now (the same
// id) waits for the running one's outcome and returns it; when that one
// was cut short, the copy runs the command. So a command runs once per
// id, also when redelivered while it runs.
func (e *Executor) Execute(ctx context.Context, cmd protocol.Command) (json.RawMessage, error) {
	ctx, span := e.tracer.Start(ctx, "executor.execute", trace.WithAttributes(attribute.String(tracing.AttrCommand, cmd.ID),
		attribute.String(tracing.AttrCommandType, cmd.Type)))
	defer span.End()
	res, err := e.execute(ctx, cmd)
	if err != nil {
		span.SetStatus(codes.Error, "command failed")
	}
	return res, err
}

// execute is Execute inside its span.
func (e *Executor) execute(ctx context.Context, cmd protocol.Command) (json.RawMessage, error) {
	for {
		e.flightMu.Lock()
		if f, ok := e.flights[cmd.ID]; ok {
			e.flightMu.Unlock()
			select {
			case <-f.done:
				if f.unrecorded {
					continue
				}
				return f.res, f.err
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		f := &flight{done: make(chan struct{})}
		e.flights[cmd.ID] = f
		e.flightMu.Unlock()
		f.res, f.unrecorded, f.err = e.executeOnce(ctx, cmd)
		e.flightMu.Lock()
		delete(e.flights, cmd.ID)
		e.flightMu.Unlock()
		close(f.done)
		return f.res, f.err
	}
}

// executeOnce is Execute for the one caller of an id at a time; unrecorded
// reports an outcome the ledger does not hold (cut short, or the ledger
// unreadable).
func (e *Executor) executeOnce(ctx context.Context, cmd protocol.Command) (_ json.RawMessage, unrecorded bool, _ error) {
	done, err := e.q.Outcome(ctx, cmd.ID)
	if err == nil {
		if done.Ok == 0 {
			return nil, false, errors.New(done.Error.String)
		}
		return json.RawMessage(done.Result.String), false, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, true, fmt.Errorf("executor: ledger: %w", err)
	}
	res, runErr := e.run(ctx, cmd)
	if ctx.Err() != nil {
		// Interrupted (shutdown): not recorded, so a redelivery runs it.
		return nil, true, ctx.Err()
	}
	rec := sql.NullString{}
	if runErr != nil {
		rec = sql.NullString{String: runErr.Error(), Valid: true}
	}
	ok := int64(0)
	if runErr == nil {
		ok = 1
	}
	if err := e.q.Record(ctx, ledger.RecordParams{ID: cmd.ID, Type: cmd.Type, Ok: ok, Result: nullable(res), Error: rec,
		ExecutedAt: time.Now().UTC().Format(time.RFC3339Nano)}); err != nil {
		return nil, false, fmt.Errorf("executor: record command: %w", err)
	}
	return res, false, runErr
}

func nullable(b []byte) sql.NullString {
	if b == nil {
		return sql.NullString{}
	}
	return sql.NullString{String: string(b), Valid: true}
}

// Executed reports whether a command id is in the ledger.
func (e *Executor) Executed(ctx context.Context, id string) (bool, error) {
	n, err := e.q.Count(ctx, id)
	return n > 0, err
}

func (e *Executor) run(ctx context.Context, cmd protocol.Command) (json.RawMessage, error) {
	if cmd.Type == protocol.CommandPolicyUpdate {
		return e.policyUpdate(ctx, cmd.Payload)
	}
	if h, ok := e.handlers[cmd.Type]; ok {
		return h(ctx, cmd)
	}
	return nil, fmt.Errorf("command type %q is not supported by this gateway", cmd.Type)
}

type policyUpdate struct {
	PolicyID int64  `json:"policy_id"`
	Version  string `json:"version"`
	Checksum string `json:"checksum"`
}

func (e *Executor) policyUpdate(ctx context.Context, payload json.RawMessage) (json.RawMessage, error) {
	var pu policyUpdate
	if err := json.Unmarshal(payload, &pu); err != nil || pu.PolicyID <= 0 || pu.Version == "" || len(pu.Checksum) != 64 {
		return nil, errors.New("policy_update: payload needs policy_id, version and a 64-character checksum")
	}
	path := strings.Replace(protocol.PathGatewayPolicy, "{id}", strconv.FormatInt(pu.PolicyID, 10), 1) + "?version=" + url.QueryEscape(pu.Version)
	ans, err := e.cloud.Do(ctx, cloudclient.Request{Path: path, MaxAnswer: 8 << 20})
	if err != nil {
		return nil, fmt.Errorf("policy_update: fetch: %w", err)
	}
	if ans.Status != http.StatusOK {
		return nil, fmt.Errorf("policy_update: fetch answered %d", ans.Status)
	}
	body := ans.Body
	var doc protocol.PolicyDocument
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("policy_update: bad document: %w", err)
	}
	sum, err := protocol.PolicyChecksum(doc.Content)
	if err != nil || sum != pu.Checksum || doc.Version != pu.Version {
		return nil, fmt.Errorf("policy_update: version %s failed verification (checksum %s, want %s)", doc.Version, sum, pu.Checksum)
	}
	p := Policy{PolicyID: doc.PolicyID, Version: doc.Version, Checksum: sum, Content: doc.Content}
	if err := writeAtomic(e.policyPath(), p); err != nil {
		return nil, fmt.Errorf("policy_update: persist: %w", err)
	}
	e.mu.Lock()
	e.policy = &p
	e.mu.Unlock()
	if e.onPolicy != nil {
		e.onPolicy(p.Content)
	}
	return json.Marshal(map[string]string{"applied_version": p.Version})
}

// writeAtomic writes v as JSON to path through a synced temporary file
// and a rename, so that a crash leaves the old or the new file, never half.
func writeAtomic(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".policy-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
