// Package config loads the gateway's configuration: the YAML file written by
// the install script (server, organization, buffer, adapters, logging, plus
// gateway, uplink, collector, health, device and devices sections), then environment
// overrides (STAFF_GATEWAY_<KEY> with dots as underscores, e.g.
// STAFF_GATEWAY_BUFFER_MAX_SIZE). One table of keys drives the file, the
// environment, the defaults and the documentation, so every error names the
// key at fault.
package config

import (
	"bytes"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/staffcontrol/staffcontrol/internal/edge/buffer"
	"github.com/staffcontrol/staffcontrol/internal/edge/collector"
	"github.com/staffcontrol/staffcontrol/internal/edge/control"
	"github.com/staffcontrol/staffcontrol/internal/edge/devices"
	"github.com/staffcontrol/staffcontrol/internal/edge/health"
	"github.com/staffcontrol/staffcontrol/internal/edge/uplink"
)

// Config is the gateway's configuration.
type Config struct {
	Server       Server
	Organization Organization
	Gateway      Gateway
	Buffer       Buffer
	Uplink       Uplink
	Collector    Collector
	Control      Control
	Health       Health
	Logging      Logging
	// Adapters holds adapters.<name>.* settings; device adapters read them.
	Adapters map[string]Adapter
	// Device is the device supervisors' tunables (device.*).
	Device Device
	// Devices are the door terminals of the devices list (the adapter
	// settings are checked against the adapter's schema when the gateway
	// builds its device manager).
	Devices []devices.Config
}

// Device is the device supervisors' tunables: the supervisor's own Config.
type Device = devices.SupervisorConfig

// Server is the cloud Agent API.
type Server struct {
	URL        string
	ControlURL string
	Timeout    time.Duration
	CAFile     string
	CertFile   string
	KeyFile    string
}

// Organization identifies the tenant and how the gateway authenticates.
type Organization struct {
	ID                int64
	ProvisioningToken string
	APIKey            string
}

// Gateway is the gateway's own identity and listeners.
type Gateway struct {
	Serial     string
	Listen     string
	GRPCListen string
	// TLSCertFile and TLSKeyFile, when set, serve the collector (HTTP and
	// gRPC) over TLS with the gateway's certificate.
	TLSCertFile string
	TLSKeyFile  string
}

// Buffer is the SQLite buffer: the buffer's own Config (buffer.max_size
// is its MaxBytes, buffer.retention_days its Retention in whole days).
type Buffer = buffer.Config

// Uplink bounds batches and retries: the uplink's own Config.
type Uplink = uplink.Config

// Collector bounds agent requests (the collector's own Config) and paces
// agent enrolment.
type Collector struct {
	collector.Config
	// EnrolmentRefresh is how often the enrolment verifier is fetched from
	// the cloud (and enrolled agents reported to it).
	EnrolmentRefresh time.Duration
	// EnrolmentVerifier, when set, is the verifier used until the cloud
	// sends one (sha256:<hex>): agents can enrol before first contact.
	EnrolmentVerifier string
}

// Control paces the control channel (the control client's own Config) and
// the commands it carries.
type Control struct {
	control.Config
	// RestartTimeout is how long restart_agent waits for agents to confirm.
	RestartTimeout time.Duration
}

// Health sets readiness thresholds and who sees what (health's own
// Config), and where it is served.
type Health struct {
	health.Config
	// Listen, when set, serves /health* and /metrics on their own address
	// instead of gateway.listen.
	Listen string
}

// Logging sets the log level and an optional file (stderr otherwise).
type Logging struct {
	Level string
	File  string
}

// Adapter is one device adapter's settings.
type Adapter struct {
	Enabled  bool
	Settings map[string]string
}

// EnvPrefix starts every environment override.
const EnvPrefix = "STAFF_GATEWAY_"

// Key describes one configuration key.
type Key struct {
	// Name is the dotted YAML path, e.g. buffer.max_size.
	Name string
	// Default is the value used when neither file nor environment sets it.
	Default string
	// Doc explains the key.
	Doc string
	set func(c *Config, v string) error
}

// Env is the environment variable that overrides the key.
func (k Key) Env() string {
	return EnvPrefix + strings.ToUpper(strings.NewReplacer(".", "_").Replace(k.Name))
}

// envAliases returns the seed's docker-compose variables and their keys.
func envAliases() map[string]string {
	return map[string]string{"AGENT_API_URL": "server.url", "BUFFER_PATH": "buffer.path"}
}

func str(f func(c *Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error { *f(c) = strings.TrimSpace(v); return nil }
}

func integer(f func(c *Config) *int, min int) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			return fmt.Errorf("must be an integer, not %q", v)
		}
		if n < min {
			return fmt.Errorf("must be at least %d", min)
		}
		*f(c) = n
		return nil
	}
}

// days sets a duration given in whole days (at least min), with the
// messages of integer.
func days(f func(c *Config) *time.Duration, min int) func(*Config, string) error {
	return func(c *Config, v string) error {
		var n int
		if err := integer(func(*Config) *int { return &n }, min)(c, v); err != nil {
			return err
		}
		*f(c) = time.Duration(n) * 24 * time.Hour
		return nil
	}
}

func duration(f func(c *Config) *time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil || d <= 0 {
			return fmt.Errorf("must be a positive duration such as 30s or 5m, not %q", v)
		}
		*f(c) = d
		return nil
	}
}

func bytesize(f func(c *Config) *int64) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := ParseSize(v)
		if err != nil {
			return err
		}
		*f(c) = n
		return nil
	}
}

// ParseSize parses a size such as 1GB, 512MB, 64KiB or 1048576. KB, MB and
// GB are binary multiples (1 GB = 1024³ bytes), as are KiB, MiB and GiB.
func ParseSize(v string) (int64, error) {
	s := strings.ToUpper(strings.TrimSpace(v))
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GIB", 1 << 30}, {"MIB", 1 << 20}, {"KIB", 1 << 10}, {"GB", 1 << 30}, {"MB", 1 << 20}, {"KB", 1 << 10}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"B", 1}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseFloat(s, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("must be a positive size such as 1GB or 512MB, not %q", v)
	}
	return int64(n * float64(mult)), nil
}

// Keys returns every configuration key in documentation order.
func Keys() []Key {
	return []Key{
		{"server.url", "", "Agent API base URL (https://…); required.", str(func(c *Config) *string { return &c.Server.URL })},
		{"server.control_url", "", "WebSocket control channel URL (wss://…/v2/gateway/socket).", str(func(c *Config) *string { return &c.Server.ControlURL })},
		{"server.timeout", "60s", "Timeout of one request to the cloud.", duration(func(c *Config) *time.Duration { return &c.Server.Timeout })},
		{"server.tls.ca_file", "", "PEM CA bundle to verify the cloud (system roots when empty).", str(func(c *Config) *string { return &c.Server.CAFile })},
		{"server.tls.cert_file", "", "PEM client certificate for mutual TLS (with key_file).", str(func(c *Config) *string { return &c.Server.CertFile })},
		{"server.tls.key_file", "", "PEM private key of the client certificate.", str(func(c *Config) *string { return &c.Server.KeyFile })},
		{"organization.id", "", "Organisation id (integer) the gateway belongs to; needed to provision.", func(c *Config, v string) error {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil || n <= 0 {
				return fmt.Errorf("must be a positive integer, not %q", v)
			}
			c.Organization.ID = n
			return nil
		}},
		{"organization.provisioning_token", "", "One-time token exchanged for an API key at first start.", str(func(c *Config) *string { return &c.Organization.ProvisioningToken })},
		{"organization.api_key", "", "API key, when issued out of band (skips provisioning).", str(func(c *Config) *string { return &c.Organization.APIKey })},
		{"gateway.serial", "(host name)", "Serial the gateway registers under.", str(func(c *Config) *string { return &c.Gateway.Serial })},
		{"gateway.listen", ":3000", "Address of the agent HTTP API, /health and /metrics.", str(func(c *Config) *string { return &c.Gateway.Listen })},
		{"gateway.grpc_listen", ":3002", "Address of the agent gRPC API; \"off\" disables it.", str(func(c *Config) *string { return &c.Gateway.GRPCListen })},
		{"gateway.tls.cert_file", "", "PEM certificate (chain) of the gateway: when set (with key_file), agents reach the collector, HTTP and gRPC, over TLS.", str(func(c *Config) *string { return &c.Gateway.TLSCertFile })},
		{"gateway.tls.key_file", "", "PEM private key of gateway.tls.cert_file.", str(func(c *Config) *string { return &c.Gateway.TLSKeyFile })},
		{"buffer.path", "/var/lib/staff-gateway/buffer.sqlite", "SQLite buffer file; screenshots and the API key file live beside it.", str(func(c *Config) *string { return &c.Buffer.Path })},
		{"buffer.max_size", "1GB", "Buffer size limit: warn and shed screenshots at 80 %, refuse data at 95 %.", bytesize(func(c *Config) *int64 { return &c.Buffer.MaxBytes })},
		{"buffer.dead_letter_max_events", "10000", "Most dead letters kept (events the cloud refused for good or that kept failing alone); the oldest are purged beyond.", integer(func(c *Config) *int { return &c.Buffer.DeadLetterMaxEvents }, 1)},
		{"buffer.dead_letter_max_bytes", "100MB", "Most bytes of dead letters kept (counted in buffer usage); the oldest are purged beyond.", bytesize(func(c *Config) *int64 { return &c.Buffer.DeadLetterMaxBytes })},
		{"buffer.retention_days", "7", "Unsent data older than this is dropped (counted and reported).", days(func(c *Config) *time.Duration { return &c.Buffer.Retention }, 1)},
		{"buffer.synchronous", "full", "full: acknowledged events survive power loss; normal: process crashes only.", func(c *Config, v string) error {
			v = strings.ToLower(strings.TrimSpace(v))
			if v != "full" && v != "normal" && v != "extra" {
				return fmt.Errorf("must be full, extra or normal, not %q", v)
			}
			c.Buffer.Synchronous = v
			return nil
		}},
		{"uplink.batch_max_events", "1000", "Most events in one logs or device-events batch.", integer(func(c *Config) *int { return &c.Uplink.BatchMaxEvents }, 1)},
		{"uplink.batch_max_bytes", "4MB", "Most bytes in one logs or device-events batch (before gzip).", bytesize(func(c *Config) *int64 { return &c.Uplink.BatchMaxBytes })},
		{"uplink.screenshot_batch_max_events", "16", "Most screenshots in one batch.", integer(func(c *Config) *int { return &c.Uplink.ScreenshotBatchMaxEvents }, 1)},
		{"uplink.screenshot_batch_max_bytes", "16MB", "Most bytes in one screenshot batch.", bytesize(func(c *Config) *int64 { return &c.Uplink.ScreenshotBatchMaxBytes })},
		{"uplink.flush_interval", "30s", "Longest wait for a batch to fill (a backlog drains continuously).", duration(func(c *Config) *time.Duration { return &c.Uplink.FlushInterval })},
		{"uplink.backoff_initial", "1s", "Cap of the first retry delay; doubles per failure (full jitter).", duration(func(c *Config) *time.Duration { return &c.Uplink.BackoffInitial })},
		{"uplink.backoff_max", "16s", "Retry delay cap (full jitter: each delay is random up to the doubling cap); retries never stop.", duration(func(c *Config) *time.Duration { return &c.Uplink.BackoffMax })},
		{"uplink.parallel", "2", "Batches of one stream in flight at once.", integer(func(c *Config) *int { return &c.Uplink.Parallel }, 1)},
		{"uplink.isolate_after_failures", "5", "Consecutive 5xx answers to one batch after which, if the cloud is otherwise healthy (another upload succeeded or the ping answers 200), the batch is split and a single event still failing is set aside as a dead letter.", integer(func(c *Config) *int { return &c.Uplink.IsolateAfterFailures }, 1)},
		{"uplink.auth_retry_interval", "1m", "Pause after the cloud rejects the API key (401/403).", duration(func(c *Config) *time.Duration { return &c.Uplink.AuthRetryInterval })},
		{"collector.max_body_bytes", "8MB", "Largest events request (413 above).", bytesize(func(c *Config) *int64 { return &c.Collector.MaxBodyBytes })},
		{"collector.max_batch_events", "1000", "Most events in one request (413 above).", integer(func(c *Config) *int { return &c.Collector.MaxBatchEvents }, 1)},
		{"collector.max_screenshot_bytes", "10MB", "Largest screenshot image (413 above).", bytesize(func(c *Config) *int64 { return &c.Collector.MaxScreenshotBytes })},
		{"collector.retry_after", "5s", "Retry-After sent with 503 under back-pressure.", duration(func(c *Config) *time.Duration { return &c.Collector.RetryAfter })},
		{"collector.enrolment_refresh", "5m", "How often the agent enrolment verifier is fetched from the cloud and new enrolments reported (a wrong secret also refreshes, at most every 10 s).", duration(func(c *Config) *time.Duration { return &c.Collector.EnrolmentRefresh })},
		{"collector.enrolment_verifier", "", "Verifier (sha256:<64 hex>, printed by staffctl org enrolment-secret) used until the cloud sends one, so agents can enrol before the gateway first reaches the cloud; never the secret itself.", func(c *Config, v string) error {
			v = strings.TrimSpace(v)
			h, ok := strings.CutPrefix(v, "sha256:")
			if _, err := hex.DecodeString(h); !ok || err != nil || len(h) != 64 {
				return fmt.Errorf("must be sha256: and 64 hex digits (the verifier, not the secret)")
			}
			c.Collector.EnrolmentVerifier = v
			return nil
		}},
		{"collector.heartbeat_interval", "30s", "Agent heartbeat interval; silent for 3 intervals = disconnected.", duration(func(c *Config) *time.Duration { return &c.Collector.HeartbeatInterval })},
		{"control.backoff_initial", "1s", "Cap of the first control-channel reconnect delay; doubles per failure (full jitter).", duration(func(c *Config) *time.Duration { return &c.Control.BackoffInitial })},
		{"control.backoff_max", "1m", "Control-channel reconnect delay cap.", duration(func(c *Config) *time.Duration { return &c.Control.BackoffMax })},
		{"control.fallback_after", "5", "WebSocket failures in a row before polling commands over REST.", integer(func(c *Config) *int { return &c.Control.FallbackAfter }, 1)},
		{"control.fallback_for", "5m", "How long to poll over REST before trying the WebSocket again.", duration(func(c *Config) *time.Duration { return &c.Control.FallbackFor })},
		{"control.max_concurrent_commands", "8", "How many cloud commands run at once (at most 64); commands of one lane (one device, one agent, ...) run one at a time in arrival order.", integer(func(c *Config) *int { return &c.Control.MaxConcurrentCommands }, 1)},
		{"control.restart_timeout", "2m", "How long restart_agent waits for agents to confirm (the payload's timeout_seconds overrides).", duration(func(c *Config) *time.Duration { return &c.Control.RestartTimeout })},
		{"health.max_unsent_age", "5m", "/health/ready fails when the oldest unsent event is older.", duration(func(c *Config) *time.Duration { return &c.Health.MaxUnsentAge })},
		{"health.listen", "", "Address of /health, /health/ready, /health/details and /metrics (e.g. 127.0.0.1:9100); empty serves them on gateway.listen.", str(func(c *Config) *string { return &c.Health.Listen })},
		{"health.operator_token", "", "Bearer token an operator presents to see agent ids and computer names in /health/details (at least 16 characters); without it they are omitted.", str(func(c *Config) *string { return &c.Health.OperatorToken })},
		{"device.call_timeout", "10s", "Timeout of one call to a door terminal (connect, info, command, close); a call ignoring it is abandoned and the device reconnected.", duration(func(c *Config) *time.Duration { return &c.Device.CallTimeout })},
		{"device.fetch_timeout", "2m", "Timeout of one catch-up read of a terminal's stored events (all pages).", duration(func(c *Config) *time.Duration { return &c.Device.FetchTimeout })},
		{"device.catchup_interval", "1m", "Period of the catch-up read while a terminal is online; it also probes the session.", duration(func(c *Config) *time.Duration { return &c.Device.CatchupInterval })},
		{"device.backoff_initial", "1s", "Cap of the first reconnect delay to a terminal; doubles per failure (full jitter).", duration(func(c *Config) *time.Duration { return &c.Device.BackoffInitial })},
		{"device.backoff_max", "1m", "Reconnect delay cap.", duration(func(c *Config) *time.Duration { return &c.Device.BackoffMax })},
		{"device.healthy_after", "1m", "A session lasting this long resets the failure count (and the backoff).", duration(func(c *Config) *time.Duration { return &c.Device.HealthyAfter })},
		{"device.isolate_after_failures", "5", "Consecutive failures after which a terminal is isolated (circuit open) for device.isolate_for.", integer(func(c *Config) *int { return &c.Device.IsolateAfter }, 1)},
		{"device.isolate_for", "5m", "How long an isolated terminal is left alone before one more attempt.", duration(func(c *Config) *time.Duration { return &c.Device.IsolateFor })},
		{"device.reboot_grace", "3m", "After a reboot the terminal answered, how long its reconnect failures are expected: they never isolate it and reconnects stay a few seconds apart.", duration(func(c *Config) *time.Duration { return &c.Device.RebootGrace })},
		{"device.command_timeout", "30s", "How long a device command waits for its terminal to be online (when the command sets no deadline).", duration(func(c *Config) *time.Duration { return &c.Device.CommandTimeout })},
		{"devices", "", "The door terminals: a YAML list of {name, adapter_type, host, port, serial, id, config: {…}} (see docs/operations.md); in the environment, the same list as JSON.", func(c *Config, v string) error {
			list, err := devicesFromJSON(v)
			if err != nil {
				return err
			}
			c.Devices = list
			return nil
		}},
		{"logging.level", "info", "debug, info, warn or error.", func(c *Config, v string) error {
			v = strings.ToLower(strings.TrimSpace(v))
			switch v {
			case "debug", "info", "warn", "error":
				c.Logging.Level = v
				return nil
			}
			return fmt.Errorf("must be debug, info, warn or error, not %q", v)
		}},
		{"logging.file", "", "Append JSON logs to this file instead of stderr.", str(func(c *Config) *string { return &c.Logging.File })},
	}
}

// Error is a configuration error naming the key.
type Error struct {
	Key    string
	Source string // file:line or environment variable
	Msg    string
}

// Error implements error.
func (e *Error) Error() string {
	if e.Source != "" {
		return fmt.Sprintf("config: %s (%s): %s", e.Key, e.Source, e.Msg)
	}
	return fmt.Sprintf("config: %s: %s", e.Key, e.Msg)
}

// Load builds the configuration: defaults, then the YAML file at path (if
// path is not empty), then environment overrides read through getenv, then
// validation. Every error is an *Error naming the key.
func Load(path string, getenv func(string) string) (*Config, error) {
	keys := Keys()
	byName := map[string]Key{}
	c := &Config{Adapters: map[string]Adapter{}}
	for _, k := range keys {
		byName[k.Name] = k
		if k.Default != "" && !strings.HasPrefix(k.Default, "(") {
			if err := k.set(c, k.Default); err != nil {
				return nil, &Error{Key: k.Name, Msg: "bad default: " + err.Error()}
			}
		}
	}
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, &Error{Key: "--config", Msg: err.Error()}
		}
		var root yaml.Node
		if err := yaml.Unmarshal(data, &root); err != nil {
			return nil, &Error{Key: "(file)", Source: path, Msg: "invalid YAML: " + err.Error()}
		}
		if len(root.Content) > 0 {
			if err := walk(c, byName, root.Content[0], "", path); err != nil {
				return nil, err
			}
		}
	}
	if getenv != nil {
		for alias, key := range envAliases() {
			if v := getenv(alias); v != "" {
				if err := byName[key].set(c, v); err != nil {
					return nil, &Error{Key: key, Source: alias, Msg: err.Error()}
				}
			}
		}
		for _, k := range keys {
			if v := getenv(k.Env()); v != "" {
				if err := k.set(c, v); err != nil {
					return nil, &Error{Key: k.Name, Source: k.Env(), Msg: err.Error()}
				}
			}
		}
	}
	if c.Gateway.Serial == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, &Error{Key: "gateway.serial", Msg: "not set and the host name is unknown: " + err.Error()}
		}
		c.Gateway.Serial = h
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return c, nil
}

func walk(c *Config, keys map[string]Key, n *yaml.Node, prefix, file string) error {
	if n.Kind != yaml.MappingNode {
		name := strings.TrimSuffix(prefix, ".")
		if name == "" {
			name = "(file)"
		}
		return &Error{Key: name, Source: fmt.Sprintf("%s:%d", file, n.Line), Msg: "must be a mapping of keys"}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := n.Content[i], n.Content[i+1]
		name := prefix + kn.Value
		src := fmt.Sprintf("%s:%d", file, kn.Line)
		if kn.Value == "" {
			// An empty key (`? ` or `"": x`, found by FuzzLoad) would make
			// an error naming no key.
			parent := strings.TrimSuffix(prefix, ".")
			if parent == "" {
				parent = "(file)"
			}
			return &Error{Key: parent, Source: src, Msg: "holds an empty key"}
		}
		if strings.HasPrefix(name, "adapters.") {
			if err := adapter(c, kn.Value, name, vn, src, prefix); err != nil {
				return err
			}
			continue
		}
		if name == "devices" {
			if vn.Kind == yaml.ScalarNode && vn.Tag == "!!null" {
				continue
			}
			list, err := devicesFromYAML(vn, file)
			if err != nil {
				return err
			}
			c.Devices = list
			continue
		}
		if name == "adapters" {
			if vn.Kind == yaml.ScalarNode && (vn.Value == "" || vn.Tag == "!!null") {
				continue
			}
			if err := walk(c, keys, vn, name+".", file); err != nil {
				return err
			}
			continue
		}
		if k, ok := keys[name]; ok {
			if vn.Kind != yaml.ScalarNode {
				return &Error{Key: name, Source: src, Msg: "must be a single value"}
			}
			if vn.Tag == "!!null" {
				continue
			}
			if err := k.set(c, vn.Value); err != nil {
				return &Error{Key: name, Source: src, Msg: err.Error()}
			}
			continue
		}
		if isSection(keys, name) {
			if vn.Kind == yaml.ScalarNode && vn.Tag == "!!null" {
				continue
			}
			if err := walk(c, keys, vn, name+".", file); err != nil {
				return err
			}
			continue
		}
		return &Error{Key: name, Source: src, Msg: "unknown key" + suggest(keys, name)}
	}
	return nil
}

// adapter handles adapters.<name> → mapping of scalar settings.
func adapter(c *Config, _ string, name string, vn *yaml.Node, src, prefix string) error {
	if prefix != "adapters." {
		return &Error{Key: name, Source: src, Msg: "adapter settings must be scalars"}
	}
	adapterName := strings.TrimPrefix(name, "adapters.")
	if vn.Kind != yaml.MappingNode {
		return &Error{Key: name, Source: src, Msg: "must be a mapping (e.g. enabled: true)"}
	}
	a := Adapter{Settings: map[string]string{}}
	for i := 0; i+1 < len(vn.Content); i += 2 {
		k, v := vn.Content[i], vn.Content[i+1]
		key := name + "." + k.Value
		if v.Kind != yaml.ScalarNode {
			return &Error{Key: key, Source: fmt.Sprintf("%s:%d", src[:strings.LastIndex(src, ":")], k.Line), Msg: "must be a single value"}
		}
		if k.Value == "enabled" {
			b, err := strconv.ParseBool(v.Value)
			if err != nil {
				return &Error{Key: key, Source: fmt.Sprintf("%s:%d", src[:strings.LastIndex(src, ":")], k.Line), Msg: "must be true or false"}
			}
			a.Enabled = b
			continue
		}
		a.Settings[k.Value] = v.Value
	}
	c.Adapters[adapterName] = a
	return nil
}

// deviceFields are the keys of one entry of the devices list.
const deviceFields = "name, adapter_type, host, port, serial, id, config"

// devicesFromYAML reads the devices list; errors name devices[i].<field>.
func devicesFromYAML(vn *yaml.Node, file string) ([]devices.Config, error) {
	src := func(n *yaml.Node) string { return fmt.Sprintf("%s:%d", file, n.Line) }
	if vn.Kind != yaml.SequenceNode {
		return nil, &Error{Key: "devices", Source: src(vn), Msg: "must be a list of devices (- name: …)"}
	}
	list := make([]devices.Config, 0, len(vn.Content))
	for i, item := range vn.Content {
		at := fmt.Sprintf("devices[%d]", i)
		if item.Kind != yaml.MappingNode {
			return nil, &Error{Key: at, Source: src(item), Msg: "must be a mapping (" + deviceFields + ")"}
		}
		var d devices.Config
		seen := map[string]bool{}
		for j := 0; j+1 < len(item.Content); j += 2 {
			kn, v := item.Content[j], item.Content[j+1]
			key := at + "." + kn.Value
			fail := func(msg string) error { return &Error{Key: key, Source: src(kn), Msg: msg} }
			if seen[kn.Value] {
				return nil, fail("is given twice")
			}
			seen[kn.Value] = true
			if kn.Value == "config" {
				if v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
					continue
				}
				if v.Kind != yaml.MappingNode {
					return nil, fail("must be a mapping of the adapter's settings")
				}
				var m map[string]any
				if err := v.Decode(&m); err != nil {
					return nil, fail(err.Error())
				}
				raw, err := json.Marshal(m)
				if err != nil {
					return nil, fail("cannot be expressed as JSON: " + err.Error())
				}
				d.Settings = raw
				continue
			}
			if v.Kind != yaml.ScalarNode {
				return nil, fail("must be a single value")
			}
			switch kn.Value {
			case "name":
				d.Name = strings.TrimSpace(v.Value)
			case "adapter_type":
				d.Type = strings.TrimSpace(v.Value)
			case "host":
				d.Host = strings.TrimSpace(v.Value)
			case "serial":
				d.Serial = strings.TrimSpace(v.Value)
			case "port":
				n, err := strconv.Atoi(strings.TrimSpace(v.Value))
				if err != nil {
					return nil, fail(fmt.Sprintf("must be an integer, not %q", v.Value))
				}
				d.Port = n
			case "id":
				n, err := strconv.ParseInt(strings.TrimSpace(v.Value), 10, 64)
				if err != nil {
					return nil, fail(fmt.Sprintf("must be an integer, not %q", v.Value))
				}
				d.ID = n
			default:
				return nil, fail("unknown key (known: " + deviceFields + ")")
			}
		}
		list = append(list, d)
	}
	return list, nil
}

// devicesFromJSON reads the devices list given as JSON (the environment).
func devicesFromJSON(v string) ([]devices.Config, error) {
	dec := json.NewDecoder(bytes.NewReader([]byte(v)))
	dec.DisallowUnknownFields()
	var list []devices.Config
	if err := dec.Decode(&list); err != nil {
		return nil, fmt.Errorf("must be a JSON list of devices ({%s}): %v", deviceFields, err)
	}
	return list, nil
}

// validateDevices checks the devices' common fields (the adapter settings
// are checked against the adapter's schema by the gateway).
func validateDevices(list []devices.Config) error {
	names := map[string]int{}
	for i, d := range list {
		at := fmt.Sprintf("devices[%d]", i)
		switch {
		case d.Name == "":
			return &Error{Key: at + ".name", Msg: "is required"}
		case d.Type == "":
			return &Error{Key: at + ".adapter_type", Msg: "is required"}
		case d.Host == "":
			return &Error{Key: at + ".host", Msg: "is required"}
		case d.Port < 0 || d.Port > 65535:
			return &Error{Key: at + ".port", Msg: fmt.Sprintf("must be between 1 and 65535 (0: the adapter's default), not %d", d.Port)}
		case d.ID < 0:
			return &Error{Key: at + ".id", Msg: "must be positive"}
		}
		if j, dup := names[d.Name]; dup {
			return &Error{Key: at + ".name", Msg: fmt.Sprintf("%q is also the name of devices[%d]; names must be unique", d.Name, j)}
		}
		names[d.Name] = i
	}
	return nil
}

func isSection(keys map[string]Key, name string) bool {
	for k := range keys {
		if strings.HasPrefix(k, name+".") {
			return true
		}
	}
	return false
}

func suggest(keys map[string]Key, name string) string {
	var names []string
	section := name[:strings.LastIndex(name, ".")+1]
	for k := range keys {
		if section != "" && strings.HasPrefix(k, section) && !strings.Contains(k[len(section):], ".") {
			names = append(names, k)
		}
	}
	if len(names) == 0 {
		return ""
	}
	sort.Strings(names)
	return " (known: " + strings.Join(names, ", ") + ")"
}

func (c *Config) validate() error {
	if c.Server.URL == "" {
		return &Error{Key: "server.url", Msg: "is required"}
	}
	u, err := url.Parse(c.Server.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return &Error{Key: "server.url", Msg: fmt.Sprintf("must be an http(s) URL, not %q", c.Server.URL)}
	}
	if c.Server.ControlURL != "" {
		u, err := url.Parse(c.Server.ControlURL)
		if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
			return &Error{Key: "server.control_url", Msg: fmt.Sprintf("must be a ws(s) URL, not %q", c.Server.ControlURL)}
		}
	}
	if (c.Server.CertFile == "") != (c.Server.KeyFile == "") {
		key := "server.tls.key_file"
		if c.Server.CertFile == "" {
			key = "server.tls.cert_file"
		}
		return &Error{Key: key, Msg: "cert_file and key_file must be set together"}
	}
	for _, f := range []struct{ key, path string }{{"server.tls.ca_file", c.Server.CAFile}, {"server.tls.cert_file", c.Server.CertFile}, {"server.tls.key_file", c.Server.KeyFile}} {
		if f.path != "" {
			if _, err := os.Stat(f.path); err != nil {
				return &Error{Key: f.key, Msg: err.Error()}
			}
		}
	}
	if (c.Gateway.TLSCertFile == "") != (c.Gateway.TLSKeyFile == "") {
		key := "gateway.tls.key_file"
		if c.Gateway.TLSCertFile == "" {
			key = "gateway.tls.cert_file"
		}
		return &Error{Key: key, Msg: "cert_file and key_file must be set together"}
	}
	if c.Gateway.TLSCertFile != "" {
		for _, f := range []struct{ key, path string }{{"gateway.tls.cert_file", c.Gateway.TLSCertFile}, {"gateway.tls.key_file", c.Gateway.TLSKeyFile}} {
			if _, err := os.Stat(f.path); err != nil {
				return &Error{Key: f.key, Msg: err.Error()}
			}
		}
		if _, err := tls.LoadX509KeyPair(c.Gateway.TLSCertFile, c.Gateway.TLSKeyFile); err != nil {
			return &Error{Key: "gateway.tls.cert_file", Msg: "with gateway.tls.key_file: " + err.Error()}
		}
	}
	if t := c.Health.OperatorToken; t != "" && len(t) < 16 {
		return &Error{Key: "health.operator_token", Msg: "must be at least 16 characters"}
	}
	if c.Health.Listen != "" && c.Health.Listen == c.Gateway.Listen && !strings.HasSuffix(c.Health.Listen, ":0") {
		return &Error{Key: "health.listen", Msg: "must differ from gateway.listen (leave it empty to share that address)"}
	}
	if c.Buffer.Path == "" {
		return &Error{Key: "buffer.path", Msg: "is required"}
	}
	if st, err := os.Stat(filepath.Dir(c.Buffer.Path)); err == nil && !st.IsDir() {
		return &Error{Key: "buffer.path", Msg: "its parent is not a directory"}
	}
	if c.Buffer.MaxBytes < 64<<10 {
		return &Error{Key: "buffer.max_size", Msg: "must be at least 64KB"}
	}
	if c.Gateway.Listen == "" {
		return &Error{Key: "gateway.listen", Msg: "is required"}
	}
	if c.Uplink.BackoffMax < c.Uplink.BackoffInitial {
		return &Error{Key: "uplink.backoff_max", Msg: "must not be below uplink.backoff_initial"}
	}
	if c.Control.BackoffMax < c.Control.BackoffInitial {
		return &Error{Key: "control.backoff_max", Msg: "must not be below control.backoff_initial"}
	}
	if c.Device.BackoffMax < c.Device.BackoffInitial {
		return &Error{Key: "device.backoff_max", Msg: "must not be below device.backoff_initial"}
	}
	if err := validateDevices(c.Devices); err != nil {
		return err
	}
	if c.Organization.ProvisioningToken != "" && c.Organization.ID == 0 {
		return &Error{Key: "organization.id", Msg: "is required with organization.provisioning_token"}
	}
	return nil
}

// ErrNoCredentials means the gateway has neither a key file, an API key nor
// a provisioning token.
var ErrNoCredentials = errors.New("config: organization.provisioning_token: is required to provision this gateway (no API key file yet and organization.api_key is empty)")
