// Package fleetsim simulates a fleet of gateways against the Agent API's
// control channel (docs/protocol.md §4), for load tests and benchmarks of
// the cloud: each simulated gateway holds one WebSocket, sends heartbeats,
// acknowledges commands in two phases, applies a policy_update by fetching
// the version (GET /v2/gateway/policies/{id}?version=…) and checking its
// checksum, executes each command id once (a redelivered one is answered
// from its ledger), and reconnects with full-jitter backoff.
//
// It is built for many thousands of connections in one process, so each
// gateway costs one goroutine (the reader, which also runs the commands in
// order), a timer for heartbeats and small socket buffers; writes share a
// buffer pool, and policy fetches share one HTTP transport with a bounded
// number of connections. It imports only the protocol package and the
// backoff leaf: it is a client of the cloud, not part of it.
package fleetsim

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/staffcontrol/staffcontrol/internal/backoff"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// Gateway is one simulated gateway's identity.
type Gateway struct {
	ID  string
	Key string
}

// ReadGateways reads gateway identities, one "id key" pair per line
// (separated by white space; blank lines and lines starting with # are
// skipped).
func ReadGateways(r io.Reader) ([]Gateway, error) {
	var out []Gateway
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			return nil, fmt.Errorf("fleetsim: line %d: want \"gateway-id api-key\"", n)
		}
		out = append(out, Gateway{ID: f[0], Key: f[1]})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("fleetsim: read gateways: %w", err)
	}
	return out, nil
}

// Options configure a Fleet.
type Options struct {
	// BaseURL is the Agent API (http://host:port); the socket URL is derived
	// from it (ws://host:port/v2/gateway/socket).
	BaseURL string
	// Gateways are the simulated gateways.
	Gateways []Gateway
	// DialConcurrency bounds the connection attempts in flight (default 32),
	// so that a fleet starting or coming back does not overflow the
	// server's accept queue.
	DialConcurrency int
	// FetchConnections bounds the policy fetches in flight, and so the
	// HTTP connections they use (default 64): the server's sockets stay
	// bounded while thousands of gateways fetch at once. A gateway waits
	// for its turn before its request starts; FetchTimeout bounds the
	// request itself, as a real gateway's own HTTP client does (the wait
	// for a turn is this simulator's, not the cloud's).
	FetchConnections int
	// FetchTimeout bounds one policy fetch once it is sent (default 30 s).
	FetchTimeout time.Duration
	// BackoffInitial and BackoffMax bound reconnect delays (1 s, 30 s); each
	// delay is random up to the capped exponential backoff (full jitter).
	BackoffInitial, BackoffMax time.Duration
	// HeartbeatInterval applies until the cloud's welcome says otherwise
	// (30 s).
	HeartbeatInterval time.Duration
	// OnReady is called once, when every gateway has had its first welcome.
	OnReady func()
	// Logger receives a line per notable event (not per message).
	Logger *slog.Logger
}

// Stats are the fleet's counters.
type Stats struct {
	Gateways     int   `json:"gateways"`
	Connected    int64 `json:"connected"`     // sockets up now
	Welcomed     int64 `json:"welcomed"`      // gateways that had at least one welcome
	Sessions     int64 `json:"sessions"`      // sockets opened, reconnects included
	DialFailures int64 `json:"dial_failures"` // connection attempts that failed
	Commands     int64 `json:"commands"`      // command messages received, redeliveries included
	Duplicates   int64 `json:"duplicates"`    // redelivered command ids answered from the ledger
	Applied      int64 `json:"applied"`       // policy versions applied
	Failed       int64 `json:"failed"`        // commands acknowledged failed
}

// Fleet is a set of simulated gateways.
type Fleet struct {
	opts   Options
	socket string
	dialer *websocket.Dialer
	http   *http.Client
	dials  chan struct{}
	// fetches holds a token per policy fetch in flight.
	fetches chan struct{}
	gws     []*gateway

	connected, welcomed, sessions, dialFailures atomic.Int64
	commands, duplicates, applied, failed       atomic.Int64
	readyOnce                                   sync.Once
}

// gateway is one simulated gateway. Its ledger and welcomed flag are
// touched only by its own goroutine (sessions run one after another);
// version is also read by heartbeats and Versions.
type gateway struct {
	Gateway
	ledger   map[string]protocol.CommandAck // executed command id → final ack
	welcomed bool                           // had a welcome at least once
	version  atomic.Value                   // string: the policy version applied
}

// New returns a Fleet.
func New(opts Options) (*Fleet, error) {
	if opts.DialConcurrency <= 0 {
		opts.DialConcurrency = 32
	}
	if opts.FetchConnections <= 0 {
		opts.FetchConnections = 64
	}
	if opts.FetchTimeout <= 0 {
		opts.FetchTimeout = 30 * time.Second
	}
	if opts.BackoffInitial <= 0 {
		opts.BackoffInitial = time.Second
	}
	if opts.BackoffMax <= 0 {
		opts.BackoffMax = 30 * time.Second
	}
	if opts.HeartbeatInterval <= 0 {
		opts.HeartbeatInterval = 30 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	base := strings.TrimRight(opts.BaseURL, "/")
	var socket string
	switch {
	case strings.HasPrefix(base, "http://"):
		socket = "ws://" + strings.TrimPrefix(base, "http://")
	case strings.HasPrefix(base, "https://"):
		socket = "wss://" + strings.TrimPrefix(base, "https://")
	default:
		return nil, fmt.Errorf("fleetsim: base URL %q: want http:// or https://", opts.BaseURL)
	}
	opts.BaseURL = base
	f := &Fleet{opts: opts, socket: socket + protocol.PathGatewaySocket,
		dialer: &websocket.Dialer{HandshakeTimeout: 15 * time.Second, ReadBufferSize: 1024, WriteBufferSize: 1024,
			WriteBufferPool: &sync.Pool{}},
		http: &http.Client{Transport: &http.Transport{
			MaxConnsPerHost: opts.FetchConnections, MaxIdleConnsPerHost: opts.FetchConnections, IdleConnTimeout: 30 * time.Second}},
		dials:   make(chan struct{}, opts.DialConcurrency),
		fetches: make(chan struct{}, opts.FetchConnections),
	}
	for _, g := range opts.Gateways {
		gw := &gateway{Gateway: g, ledger: map[string]protocol.CommandAck{}}
		gw.version.Store("")
		f.gws = append(f.gws, gw)
	}
	return f, nil
}

// Stats returns the fleet's counters.
func (f *Fleet) Stats() Stats {
	return Stats{Gateways: len(f.gws), Connected: f.connected.Load(), Welcomed: f.welcomed.Load(), Sessions: f.sessions.Load(),
		DialFailures: f.dialFailures.Load(), Commands: f.commands.Load(), Duplicates: f.duplicates.Load(),
		Applied: f.applied.Load(), Failed: f.failed.Load()}
}

// Versions counts the gateways by the policy version they applied last
// ("" for none yet).
func (f *Fleet) Versions() map[string]int {
	out := map[string]int{}
	for _, g := range f.gws {
		out[g.version.Load().(string)]++
	}
	return out
}

// Run connects every gateway and keeps it connected until ctx ends.
func (f *Fleet) Run(ctx context.Context) {
	if len(f.gws) == 0 {
		<-ctx.Done()
		return
	}
	var wg sync.WaitGroup
	for _, g := range f.gws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.keep(ctx, g)
		}()
	}
	wg.Wait()
	f.http.CloseIdleConnections()
}

// errAuth is the cloud's refusal of a gateway's key.
var errAuth = errors.New("fleetsim: the cloud refused the gateway's API key")

// keep runs one gateway's sessions, reconnecting with full-jitter backoff.
func (f *Fleet) keep(ctx context.Context, g *gateway) {
	pace := backoff.Policy{Initial: f.opts.BackoffInitial, Max: f.opts.BackoffMax}
	failures := 0
	for ctx.Err() == nil {
		welcomed, err := f.session(ctx, g)
		if ctx.Err() != nil {
			return
		}
		if welcomed {
			failures = 0
		}
		failures++
		wait := pace.Delay(failures - 1)
		if errors.Is(err, errAuth) {
			wait = backoff.Jitter(pace.Cap(math.MaxInt))
		}
		if failures == 4 { // once per streak of failures
			f.opts.Logger.WarnContext(ctx, "fleetsim: gateway keeps failing", "gateway", g.ID, "failures", failures, "err", err)
		}
		if !backoff.Sleep(ctx, wait) {
			return
		}
	}
}

// session runs one WebSocket session until it breaks; it reports whether
// the cloud welcomed the gateway.
func (f *Fleet) session(ctx context.Context, g *gateway) (welcomed bool, err error) {
	select {
	case f.dials <- struct{}{}:
	case <-ctx.Done():
		return false, ctx.Err()
	}
	ws, resp, err := f.dialer.DialContext(ctx, f.socket, http.Header{protocol.HeaderAPIKey: {g.Key}})
	<-f.dials
	if err != nil {
		f.dialFailures.Add(1)
		if resp != nil && (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden) {
			return false, errAuth
		}
		return false, fmt.Errorf("fleetsim: dial: %w", err)
	}
	f.sessions.Add(1)
	f.connected.Add(1)
	defer f.connected.Add(-1)
	stop := context.AfterFunc(ctx, func() { ws.Close() })
	defer stop()
	defer ws.Close()

	var wmu sync.Mutex
	send := func(typ string, v any) error {
		data, err := json.Marshal(v)
		if err != nil {
			return err
		}
		wmu.Lock()
		defer wmu.Unlock()
		_ = ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
		return ws.WriteJSON(protocol.Envelope{V: protocol.ControlVersion, Type: typ, Data: data})
	}
	// Heartbeats run on a timer, not a goroutine of their own.
	var hmu sync.Mutex
	interval := f.opts.HeartbeatInterval
	var hb *time.Timer
	beat := func() {
		if send(protocol.MsgHeartbeat, f.heartbeat(g)) != nil {
			ws.Close()
			return
		}
		hmu.Lock()
		defer hmu.Unlock()
		if hb != nil {
			hb.Reset(interval)
		}
	}
	if err := send(protocol.MsgHeartbeat, f.heartbeat(g)); err != nil {
		return false, fmt.Errorf("fleetsim: write: %w", err)
	}
	hmu.Lock()
	hb = time.AfterFunc(interval, beat)
	hmu.Unlock()
	defer func() {
		hmu.Lock()
		hb.Stop()
		hb = nil
		hmu.Unlock()
	}()

	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			return welcomed, fmt.Errorf("fleetsim: read: %w", err)
		}
		var env protocol.Envelope
		if err := json.Unmarshal(data, &env); err != nil {
			continue
		}
		switch env.Type {
		case protocol.MsgWelcome:
			var w protocol.Welcome
			if json.Unmarshal(env.Data, &w) == nil && w.HeartbeatIntervalSeconds > 0 {
				hmu.Lock()
				interval = time.Duration(w.HeartbeatIntervalSeconds) * time.Second
				hmu.Unlock()
			}
			welcomed = true
			if !g.welcomed {
				g.welcomed = true
				if f.welcomed.Add(1) == int64(len(f.gws)) && f.opts.OnReady != nil {
					f.readyOnce.Do(f.opts.OnReady)
				}
			}
		case protocol.MsgCommand:
			var cmd protocol.Command
			if err := json.Unmarshal(env.Data, &cmd); err != nil || cmd.ID == "" {
				continue
			}
			f.commands.Add(1)
			if err := send(protocol.MsgCommandAck, protocol.CommandAck{CommandID: cmd.ID, Phase: protocol.AckReceived}); err != nil {
				return welcomed, fmt.Errorf("fleetsim: write: %w", err)
			}
			ack, dup := g.ledger[cmd.ID]
			if dup {
				f.duplicates.Add(1)
			} else {
				ack = f.execute(ctx, g, cmd)
				if ctx.Err() != nil {
					return welcomed, ctx.Err()
				}
				g.ledger[cmd.ID] = ack
			}
			if err := send(protocol.MsgCommandAck, ack); err != nil {
				return welcomed, fmt.Errorf("fleetsim: write: %w", err)
			}
		}
	}
}

func (f *Fleet) heartbeat(g *gateway) protocol.Heartbeat {
	return protocol.Heartbeat{CPUPercent: 5, MemoryPercent: 20, DiskPercent: 30, ConnectedAgents: 10,
		Versions: map[string]string{"gateway": "fleetsim", "policy": g.version.Load().(string)}}
}

// execute runs a command once and returns its final acknowledgement.
func (f *Fleet) execute(ctx context.Context, g *gateway, cmd protocol.Command) protocol.CommandAck {
	if cmd.Type != protocol.CommandPolicyUpdate {
		return protocol.CommandAck{CommandID: cmd.ID, Phase: protocol.AckCompleted, Result: json.RawMessage(`{"simulated":true}`)}
	}
	version, err := f.applyPolicy(ctx, g, cmd.Payload)
	if err != nil {
		f.failed.Add(1)
		return protocol.CommandAck{CommandID: cmd.ID, Phase: protocol.AckFailed, Error: err.Error()}
	}
	f.applied.Add(1)
	res, _ := json.Marshal(map[string]string{"applied_version": version})
	return protocol.CommandAck{CommandID: cmd.ID, Phase: protocol.AckCompleted, Result: res}
}

// protocol.CommandPolicyUpdate is the command type that carries a policy version.

// updatePayload is the part of a policy_update payload the gateway needs.
type updatePayload struct {
	PolicyID int64  `json:"policy_id"`
	Version  string `json:"version"`
	Checksum string `json:"checksum"`
}

// applyPolicy fetches the version, checks its checksum and records it. A
// fetch that fails for a transient reason (transport error, 5xx, 429) is
// tried up to three times.
func (f *Fleet) applyPolicy(ctx context.Context, g *gateway, payload json.RawMessage) (string, error) {
	var pl updatePayload
	if err := json.Unmarshal(payload, &pl); err != nil || pl.PolicyID <= 0 || pl.Version == "" || pl.Checksum == "" {
		return "", fmt.Errorf("policy_update: malformed payload")
	}
	var doc protocol.PolicyDocument
	var err error
	for attempt := range 3 {
		if attempt > 0 {
			t := time.NewTimer(time.Duration(attempt) * time.Second)
			select {
			case <-ctx.Done():
				t.Stop()
				return "", ctx.Err()
			case <-t.C:
			}
		}
		var retry bool
		doc, retry, err = f.fetch(ctx, g, pl)
		if err == nil || !retry {
			break
		}
	}
	if err != nil {
		return "", err
	}
	sum, err := protocol.PolicyChecksum(doc.Content)
	if err != nil {
		return "", fmt.Errorf("policy_update: %w", err)
	}
	if sum != pl.Checksum || doc.Version != pl.Version {
		return "", fmt.Errorf("policy_update: version %s has checksum %s, the command says %s", doc.Version, sum, pl.Checksum)
	}
	g.version.Store(doc.Version)
	return doc.Version, nil
}

func (f *Fleet) fetch(ctx context.Context, g *gateway, pl updatePayload) (doc protocol.PolicyDocument, retry bool, err error) {
	select {
	case f.fetches <- struct{}{}:
		defer func() { <-f.fetches }()
	case <-ctx.Done():
		return doc, false, ctx.Err()
	}
	ctx, cancel := context.WithTimeout(ctx, f.opts.FetchTimeout)
	defer cancel()
	url := fmt.Sprintf("%s/v2/gateway/policies/%d?version=%s", f.opts.BaseURL, pl.PolicyID, pl.Version)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return doc, false, err
	}
	req.Header.Set(protocol.HeaderAPIKey, g.Key)
	resp, err := f.http.Do(req)
	if err != nil {
		return doc, true, fmt.Errorf("policy_update: fetch: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return doc, true, fmt.Errorf("policy_update: fetch: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return doc, resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests,
			fmt.Errorf("policy_update: fetch: %s: %s", resp.Status, bytes.TrimSpace(body))
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return doc, false, fmt.Errorf("policy_update: fetch: %w", err)
	}
	return doc, false, nil
}
