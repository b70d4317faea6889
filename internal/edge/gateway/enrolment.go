package gateway

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/staffcontrol/staffcontrol/internal/backoff"
	"github.com/staffcontrol/staffcontrol/internal/edge/cloudclient"
	"github.com/staffcontrol/staffcontrol/internal/edge/config"
	"github.com/staffcontrol/staffcontrol/internal/edge/control"
	"github.com/staffcontrol/staffcontrol/internal/edge/enroll"
	"github.com/staffcontrol/staffcontrol/internal/edge/executor"
	"github.com/staffcontrol/staffcontrol/internal/edge/uplink"
	"github.com/staffcontrol/staffcontrol/internal/lifecycle"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// The gateway's cloud-facing parts need its credentials, which it may not
// have at start: enrolment (a lifecycle.Service) obtains them — stored,
// configured, or provisioned with the one-time token, retried with the
// uplink's backoff while agents are served and their data waits in the
// buffer — and yields the keyring. Only then are the parts that use it
// built, with it, and started as a lifecycle.Group of their own: the
// executor, the uplink and the control client; the enrolment sync (the
// agents' verifier and reports) starts first, as soon as the keyring
// exists. Stop ends provisioning, then stops the sync and that group in
// reverse: the control client (a command cut short is not in the ledger
// and is redelivered), the uplink (a batch in flight stays claimed and is
// resent after restart), the executor.
//
// Before enrolment completes the gateway is "not provisioned": online
// returns nil, and the health, metrics and agent-policy views say so.

// online is what exists once the gateway has its credentials.
type online struct {
	exec *executor.Executor
	// ctl is nil when the control plane could not start (the executor's
	// ledger would not open): data still goes up without it.
	ctl   *control.Client
	up    *uplink.Uplink
	group *lifecycle.Group
}

// buildOnline builds the cloud-facing parts over the keyring k (see
// onlineParts in control.go for what they are given).
type buildOnline func(k *enroll.Keyring, creds *enroll.Credentials) (*online, error)

// enrolment is the service that yields the credentials and then runs the
// online parts.
type enrolment struct {
	cfg     *config.Config
	client  *http.Client
	version string
	log     *slog.Logger
	build   buildOnline
	// sync keeps the agents' enrolment verifier fresh and reports
	// enrolled agents; it starts as soon as the keyring exists.
	sync lifecycle.Service
	// syncStarted is set (under mu) once sync started.
	syncStarted bool

	// keyed is closed once keyring is set, ready once on is set; neither
	// changes after. The keyring comes first: the online parts are built
	// with it (and extra handlers may use it at once).
	keyed   chan struct{}
	keyring *enroll.Keyring
	ready   chan struct{}
	on      *online

	idMu   sync.Mutex
	gwID   string
	idStat string

	mu       sync.Mutex
	started  bool
	stopping bool
	cancel   context.CancelFunc
	done     chan struct{}
}

func newEnrolment(cfg *config.Config, client *http.Client, version string, log *slog.Logger, build buildOnline, sync lifecycle.Service) *enrolment {
	return &enrolment{cfg: cfg, client: client, version: version, log: log, build: build, sync: sync, keyed: make(chan struct{}), ready: make(chan struct{}), idStat: "pending"}
}

// online returns the cloud-facing parts, or nil before enrolment completed.
func (e *enrolment) online() *online {
	select {
	case <-e.ready:
		return e.on
	default:
		return nil
	}
}

// keys returns the keyring, or nil before the gateway has credentials.
func (e *enrolment) keys() *enroll.Keyring {
	select {
	case <-e.keyed:
		return e.keyring
	default:
		return nil
	}
}

// apiKey is the current API key ("" before enrolment).
func (e *enrolment) apiKey() string {
	if k := e.keys(); k != nil {
		return k.APIKey()
	}
	return ""
}

func (e *enrolment) setIdentity(id, state string) {
	e.idMu.Lock()
	e.gwID, e.idStat = id, state
	e.idMu.Unlock()
}

// fail records that enrolment cannot go on: the provisioning state names
// err, and the log says what is lost (alert).
func (e *enrolment) fail(id, alert string, err error) {
	e.setIdentity(id, "failed: "+err.Error())
	e.log.Error(alert, "err", err)
}

// identity is the gateway id and the provisioning state ("pending…",
// "ok", "failed: …").
func (e *enrolment) identity() (string, string) {
	e.idMu.Lock()
	defer e.idMu.Unlock()
	return e.gwID, e.idStat
}

// Start begins enrolment in the background and returns at once.
func (e *enrolment) Start(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopping {
		return errors.New("gateway: enrolment: start after stop")
	}
	if e.started {
		return errors.New("gateway: enrolment: started twice")
	}
	e.started = true
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	e.cancel, e.done = cancel, make(chan struct{})
	go func() {
		defer close(e.done)
		e.run(runCtx)
	}()
	return nil
}

// Stop ends provisioning, or stops the online parts in reverse order.
func (e *enrolment) Stop(ctx context.Context) error {
	e.mu.Lock()
	if e.stopping {
		e.mu.Unlock()
		return nil
	}
	e.stopping = true
	started := e.started
	e.mu.Unlock()
	if !started {
		return nil
	}
	e.cancel()
	select {
	case <-e.done:
	case <-ctx.Done():
		return errors.New("gateway: control client did not stop in time")
	}
	var errs []error
	if e.syncStarted {
		errs = append(errs, e.sync.Stop(ctx))
	}
	if on := e.online(); on != nil {
		errs = append(errs, on.group.Stop(ctx))
	}
	return errors.Join(errs...)
}

// run obtains credentials (provisioning if needed, retrying until ctx
// ends), builds the online parts and starts them unless Stop came first.
func (e *enrolment) run(ctx context.Context) {
	cfg := e.cfg
	creds, err := credentials(cfg)
	if err != nil {
		e.fail("", "ALERT: gateway credentials unusable; uploads disabled", err)
		return
	}
	pace := backoff.Policy{Initial: cfg.Uplink.BackoffInitial, Max: cfg.Uplink.BackoffMax}
	for attempt := 0; creds == nil && ctx.Err() == nil; attempt++ {
		host, _ := os.Hostname()
		c, err := enroll.Provision(ctx, e.client, cfg.Server.URL, protocol.ProvisionRequest{
			OrganizationID: cfg.Organization.ID, ProvisioningToken: cfg.Organization.ProvisioningToken,
			Serial: cfg.Gateway.Serial, Hostname: host, Version: e.version})
		if err == nil {
			if err = enroll.Save(KeyFilePath(cfg), c); err == nil {
				creds = c
				e.log.Info("gateway provisioned", "gateway_id", c.GatewayID, "organization_id", c.OrganizationID, "key_file", KeyFilePath(cfg))
				break
			}
		}
		wait := pace.Delay(attempt)
		if se := cloudclient.Status(err); se != nil && !se.Retryable() {
			wait = cfg.Uplink.AuthRetryInterval
			e.log.Error("ALERT: provisioning refused; check organization.id and organization.provisioning_token", "err", err, "retry_in", wait.String())
		} else {
			if se != nil {
				wait = backoff.Floor(wait, se.RetryAfter, cfg.Uplink.AuthRetryInterval)
			}
			e.log.Warn("provisioning failed; retrying", "err", err, "retry_in", wait.String())
		}
		e.setIdentity("", "pending: "+err.Error())
		if !backoff.Sleep(ctx, wait) {
			return
		}
	}
	if ctx.Err() != nil {
		return
	}
	e.setIdentity(creds.GatewayID, "ok")
	k, err := enroll.NewKeyring(keyFileFor(cfg), creds)
	if err != nil {
		e.fail(creds.GatewayID, "ALERT: gateway credentials unusable; uploads disabled", err)
		return
	}
	e.mu.Lock()
	if e.stopping {
		e.mu.Unlock()
		return
	}
	e.keyring = k
	close(e.keyed)
	if err := e.sync.Start(ctx); err != nil {
		e.log.Error("enrolment sync not started", "err", err)
	} else {
		e.syncStarted = true
	}
	e.mu.Unlock()
	on, err := e.build(k, creds)
	if err != nil {
		e.fail(creds.GatewayID, "ALERT: uplink not started", err)
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopping {
		// Stopped while building: nothing was started; close the ledger.
		if on.exec != nil {
			_ = on.exec.Stop(context.Background())
		}
		return
	}
	e.on = on
	close(e.ready)
	if err := on.group.Start(ctx); err != nil {
		e.fail(creds.GatewayID, "ALERT: uplink not started", err)
	}
}

// The control plane's state for metrics: the mode and commands handled
// ("disconnected", 0 before enrolment or without a control plane).
func (e *enrolment) controlMode() (string, int64) {
	if on := e.online(); on != nil && on.ctl != nil {
		return on.ctl.Mode(), on.ctl.Commands()
	}
	return "disconnected", 0
}

// registerControlMetrics exposes the control plane's state.
func (e *enrolment) registerControlMetrics(reg prometheus.Registerer, policy prometheus.Collector) {
	for _, m := range []string{"websocket", "rest", "disconnected"} {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "gateway_control_mode",
			Help:        "1 for the control channel's current mode (websocket, rest, disconnected), 0 for the others.",
			ConstLabels: prometheus.Labels{"mode": m},
		}, func() float64 {
			if mode, _ := e.controlMode(); mode == m {
				return 1
			}
			return 0
		}))
	}
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "gateway_control_commands_total",
		Help: "Commands handled by the executor (redelivered ones answered from the ledger included).",
	}, func() float64 {
		_, n := e.controlMode()
		return float64(n)
	}), policy)
}
