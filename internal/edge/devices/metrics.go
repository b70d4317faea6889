package devices

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the device platform's Prometheus metrics, labelled by adapter
// type and device name (bounded by the configured devices: a removed
// device's series are deleted).
type Metrics struct {
	connected *prometheus.GaugeVec
	events    *prometheus.CounterVec
	invalid   *prometheus.CounterVec
	failures  *prometheus.CounterVec
	commands  *prometheus.CounterVec
	lastEvent *prometheus.GaugeVec
	reconnect *prometheus.CounterVec
	state     *prometheus.GaugeVec
}

// Failure classes (the class label of gateway_device_failures_total).
const (
	FailureNetwork  = "network"
	FailureProtocol = "protocol"
	FailureAuth     = "auth"
	FailurePanic    = "panic"
	FailureTimeout  = "timeout"
)

// NewMetrics builds the metrics and registers them on reg (nil registers
// nothing).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	labels := []string{"adapter_type", "device"}
	m := &Metrics{
		connected: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gateway_device_connected",
			Help: "1 while the device's session is up (connected and caught up), else 0.",
		}, labels),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_device_events_total",
			Help: "Device events appended to the buffer, by source (live: the event stream; catchup: read back from the device's log).",
		}, append(labels, "source")),
		invalid: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_device_invalid_events_total",
			Help: "Device events refused by validation (not buffered).",
		}, labels),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_device_failures_total",
			Help: "Failed sessions and calls, by class: network, protocol, auth, panic, timeout.",
		}, append(labels, "class")),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_device_commands_total",
			Help: "Device commands by result: ok, error, offline, queue_full.",
		}, append(labels, "result")),
		lastEvent: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gateway_device_last_event_timestamp_seconds",
			Help: "Unix time at which the last event of the device was buffered.",
		}, labels),
		reconnect: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_device_reconnects_total",
			Help: "Sessions re-established after a failure.",
		}, labels),
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gateway_device_state",
			Help: "1 for the device's current supervisor state (connecting, online, backoff, isolated, auth_failed, stopped).",
		}, append(labels, "state")),
	}
	if reg != nil {
		reg.MustRegister(m.connected, m.events, m.invalid, m.failures, m.commands, m.lastEvent, m.reconnect, m.state)
	}
	return m
}

// forget deletes every series of one device.
func (m *Metrics) forget(adapterType, device string) {
	if m == nil {
		return
	}
	l := prometheus.Labels{"adapter_type": adapterType, "device": device}
	for _, v := range []interface{ DeletePartialMatch(prometheus.Labels) int }{
		m.connected, m.events, m.invalid, m.failures, m.commands, m.lastEvent, m.reconnect, m.state,
	} {
		v.DeletePartialMatch(l)
	}
}

// setState sets the state gauge of one device to state.
func (m *Metrics) setState(adapterType, device string, state State) {
	for _, s := range allStates() {
		v := 0.0
		if s == state {
			v = 1
		}
		m.state.WithLabelValues(adapterType, device, string(s)).Set(v)
	}
	c := 0.0
	if state == StateOnline {
		c = 1
	}
	m.connected.WithLabelValues(adapterType, device).Set(c)
}
