// Package health serves the gateway's operational endpoints: /health
// (liveness), /health/ready (making progress: the oldest unsent event is
// younger than a threshold and the buffer is below the critical level),
// /health/details (JSON for operators, dead letters included; agent
// identities only with the operator token) and /metrics
// (Prometheus). Dead letters do not make the gateway unready: they block
// nothing, and the oldest-unsent check does not see them.
package health

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/staffcontrol/staffcontrol/internal/edge/buffer"
	"github.com/staffcontrol/staffcontrol/internal/edge/collector"
	"github.com/staffcontrol/staffcontrol/internal/edge/devices"
	"github.com/staffcontrol/staffcontrol/internal/edge/uplink"
)

// Config is health's tunables: the health.* keys of the gateway's
// configuration that shape the answers (internal/edge/config composes it),
// declared here once.
type Config struct {
	// MaxUnsentAge is the readiness threshold for the oldest unsent event.
	MaxUnsentAge time.Duration
	// OperatorToken, when set, is the bearer token that shows agent
	// identities (ids, computer names, versions) in /health/details; a
	// request without it sees only the counts. Compared in constant time.
	OperatorToken string
}

// Options are health's Config and the sources the endpoints read. Buffer,
// Agents and Gatherer are required.
type Options struct {
	Config
	Buffer   *buffer.Buffer
	Agents   *collector.Agents
	Gatherer prometheus.Gatherer
	// Uplink returns the running uplink, or nil before provisioning.
	Uplink func() *uplink.Uplink
	// Identity returns the gateway id and the provisioning state.
	Identity func() (gatewayID, provisioning string)
	// Control returns the control plane's state, or nil before the gateway
	// has its credentials.
	Control func() *ControlStatus
	// Devices returns the door terminals' states; nil lists none.
	Devices func() []devices.Status
	Version string
	Started time.Time
}

// Routes registers the endpoints on mux.
func Routes(mux *http.ServeMux, o Options) {
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /health/ready", func(w http.ResponseWriter, r *http.Request) {
		ready, reasons, _ := o.readiness(r.Context())
		code := http.StatusOK
		if !ready {
			code = http.StatusServiceUnavailable
		}
		writeJSON(w, code, map[string]any{"ready": ready, "reasons": reasons})
	})
	mux.HandleFunc("GET /health/details", func(w http.ResponseWriter, r *http.Request) {
		d, err := o.Details(r.Context())
		if err != nil {
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
			return
		}
		if !o.operator(r) {
			// Agent identities are for authenticated operators only.
			d.Agents.Recent = nil
			d.Agents.Redacted = true
		}
		writeJSON(w, http.StatusOK, d)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(o.Gatherer, promhttp.HandlerOpts{}))
}

// operator reports whether r presents the operator token.
func (o Options) operator(r *http.Request) bool {
	if o.OperatorToken == "" {
		return false
	}
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	a, b := sha256.Sum256([]byte(strings.TrimSpace(tok))), sha256.Sum256([]byte(o.OperatorToken))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

func (o Options) readiness(ctx context.Context) (bool, []string, float64) {
	reasons := []string{}
	age := 0.0
	oldest, ok, err := o.Buffer.OldestUnsent(ctx)
	if err != nil {
		reasons = append(reasons, "buffer unreadable: "+err.Error())
	} else if ok {
		age = time.Since(oldest).Seconds()
		if o.MaxUnsentAge > 0 && age > o.MaxUnsentAge.Seconds() {
			reasons = append(reasons, "oldest unsent event is older than "+o.MaxUnsentAge.String())
		}
	}
	if o.Buffer.Level() >= buffer.LevelCritical {
		reasons = append(reasons, "buffer at or above 95 %: refusing new data")
	}
	return len(reasons) == 0, reasons, age
}

// ControlStatus is the control plane's state in /health/details.
type ControlStatus struct {
	// Mode is websocket, rest or disconnected.
	Mode string `json:"mode"`
	// CommandsExecuted counts commands handled since start (redelivered
	// ones answered from the ledger included).
	CommandsExecuted int64 `json:"commands_executed"`
	// PolicyVersion and PolicyChecksum describe the current policy ("" when
	// none was applied yet).
	PolicyVersion  string `json:"policy_version"`
	PolicyChecksum string `json:"policy_checksum,omitempty"`
	// AgentCommandsPending counts commands queued for agents.
	AgentCommandsPending int `json:"agent_commands_pending"`
}

// Details is the body of /health/details.
type Details struct {
	Status        string   `json:"status"`
	Ready         bool     `json:"ready"`
	Reasons       []string `json:"reasons"`
	Version       string   `json:"version"`
	GatewayID     string   `json:"gateway_id,omitempty"`
	Provisioning  string   `json:"provisioning"`
	UptimeSeconds float64  `json:"uptime_seconds"`
	Buffer        struct {
		buffer.Stats
		OldestUnsentAgeSeconds float64 `json:"oldest_unsent_age_seconds"`
	} `json:"buffer"`
	// DeadLetters are events set aside (they block nothing; readiness
	// ignores them): inspect and replay with replay_dead_letters.
	DeadLetters buffer.DeadLetterStats `json:"dead_letters"`
	Uplink      *uplink.Status         `json:"uplink"`
	Control     *ControlStatus         `json:"control"`
	// Devices are the door terminals and their supervisors' states.
	Devices []devices.Status `json:"devices"`
	Agents  struct {
		Connected int `json:"connected"`
		// Recent lists agent identities; omitted (Redacted) unless the
		// request presents health.operator_token.
		Recent   []collector.AgentInfo `json:"recent,omitempty"`
		Redacted bool                  `json:"redacted,omitempty"`
	} `json:"agents"`
}

// Details gathers the operator view.
func (o Options) Details(ctx context.Context) (*Details, error) {
	var d Details
	st, err := o.Buffer.Stats(ctx)
	if err != nil {
		return nil, err
	}
	d.Buffer.Stats = st
	if d.DeadLetters, err = o.Buffer.DeadLetters(ctx); err != nil {
		return nil, err
	}
	d.Ready, d.Reasons, d.Buffer.OldestUnsentAgeSeconds = o.readiness(ctx)
	d.Status = "ok"
	if !d.Ready || st.Level != buffer.LevelNormal.String() {
		d.Status = "degraded"
	}
	d.Version = o.Version
	d.UptimeSeconds = time.Since(o.Started).Seconds()
	if o.Identity != nil {
		d.GatewayID, d.Provisioning = o.Identity()
	}
	if o.Uplink != nil {
		if u := o.Uplink(); u != nil {
			s := u.Status()
			d.Uplink = &s
			if s.Paused != "" {
				d.Status = "degraded"
			}
		}
	}
	if o.Control != nil {
		d.Control = o.Control()
	}
	d.Devices = []devices.Status{}
	if o.Devices != nil {
		d.Devices = o.Devices()
	}
	d.Agents.Connected = o.Agents.Connected()
	d.Agents.Recent = o.Agents.List(50)
	return &d, nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
