package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// seedFile is the gateway.yml the seed's install script writes.
const seedFile = `server:
  url: https://agent-api.staff-control.com
  control_url: wss://agent-api.staff-control.com/v2/gateway/socket

organization:
  id: 42
  provisioning_token: tok-123

buffer:
  path: BUFDIR/buffer.sqlite
  max_size: 1GB
  retention_days: 7

adapters:
  hikvision:
    enabled: true
  zkteco:
    enabled: true

logging:
  level: info
  file: /var/log/staff-gateway/gateway.log
`

func writeFile(t *testing.T, body string) string {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "gateway.yml")
	if err := os.WriteFile(p, []byte(strings.ReplaceAll(body, "BUFDIR", dir)), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestLoadSeedFileWithDefaults(t *testing.T) {
	c, err := Load(writeFile(t, seedFile), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Server.URL != "https://agent-api.staff-control.com" || c.Organization.ID != 42 || c.Organization.ProvisioningToken != "tok-123" {
		t.Fatalf("server/org: %+v %+v", c.Server, c.Organization)
	}
	if c.Buffer.MaxBytes != 1<<30 || c.Buffer.Retention != 7*24*time.Hour || c.Buffer.Synchronous != "full" {
		t.Fatalf("buffer %+v", c.Buffer)
	}
	if !c.Adapters["hikvision"].Enabled || !c.Adapters["zkteco"].Enabled {
		t.Fatalf("adapters %+v", c.Adapters)
	}
	if c.Uplink.FlushInterval != 30*time.Second || c.Uplink.BackoffMax != 16*time.Second || c.Uplink.BatchMaxEvents != 1000 {
		t.Fatalf("uplink defaults %+v", c.Uplink)
	}
	if c.Gateway.Listen != ":3000" || c.Gateway.Serial == "" {
		t.Fatalf("gateway %+v", c.Gateway)
	}
}

func TestEnvironmentOverrides(t *testing.T) {
	c, err := Load(writeFile(t, seedFile), env(map[string]string{
		"STAFF_GATEWAY_BUFFER_MAX_SIZE":        "512MB",
		"STAFF_GATEWAY_UPLINK_FLUSH_INTERVAL":  "2s",
		"STAFF_GATEWAY_ORGANIZATION_API_KEY":   "key-1",
		"AGENT_API_URL":                        "http://127.0.0.1:3001",
		"STAFF_GATEWAY_GATEWAY_LISTEN":         "127.0.0.1:0",
		"STAFF_GATEWAY_BUFFER_SYNCHRONOUS":     "NORMAL",
		"STAFF_GATEWAY_COLLECTOR_RETRY_AFTER":  "7s",
		"STAFF_GATEWAY_HEALTH_MAX_UNSENT_AGE":  "1m",
		"STAFF_GATEWAY_UPLINK_BACKOFF_INITIAL": "10ms",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Buffer.MaxBytes != 512<<20 || c.Uplink.FlushInterval != 2*time.Second || c.Organization.APIKey != "key-1" ||
		c.Server.URL != "http://127.0.0.1:3001" || c.Gateway.Listen != "127.0.0.1:0" || c.Buffer.Synchronous != "normal" ||
		c.Collector.RetryAfter != 7*time.Second || c.Health.MaxUnsentAge != time.Minute || c.Uplink.BackoffInitial != 10*time.Millisecond {
		t.Fatalf("overrides not applied: %+v", c)
	}
}

func TestEnvironmentOnly(t *testing.T) {
	dir := t.TempDir()
	c, err := Load("", env(map[string]string{"STAFF_GATEWAY_SERVER_URL": "http://x", "STAFF_GATEWAY_BUFFER_PATH": filepath.Join(dir, "b.sqlite")}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Server.URL != "http://x" {
		t.Fatal(c.Server.URL)
	}
}

func TestBadConfigNamesTheKey(t *testing.T) {
	cases := []struct {
		name string
		file string
		env  map[string]string
		key  string
	}{
		{"unknown key", strings.Replace(seedFile, "retention_days", "retention_dayz", 1), nil, "buffer.retention_dayz"},
		{"unknown section", seedFile + "metrics:\n  port: 9\n", nil, "metrics"},
		{"bad size", strings.Replace(seedFile, "1GB", "lots", 1), nil, "buffer.max_size"},
		{"too small", strings.Replace(seedFile, "1GB", "1KB", 1), nil, "buffer.max_size"},
		{"bad retention", strings.Replace(seedFile, "retention_days: 7", "retention_days: seven", 1), nil, "buffer.retention_days"},
		{"zero retention", strings.Replace(seedFile, "retention_days: 7", "retention_days: 0", 1), nil, "buffer.retention_days"},
		{"bad url", strings.Replace(seedFile, "https://agent-api", "ftp://agent-api", 1), nil, "server.url"},
		{"bad control url", strings.Replace(seedFile, "wss://", "https://", 1), nil, "server.control_url"},
		{"missing url", strings.Replace(seedFile, "  url: https://agent-api.staff-control.com\n", "", 1), nil, "server.url"},
		{"bad org id", strings.Replace(seedFile, "id: 42", "id: acme", 1), nil, "organization.id"},
		{"bad adapter flag", strings.Replace(seedFile, "enabled: true", "enabled: maybe", 1), nil, "adapters.hikvision.enabled"},
		{"bad log level", strings.Replace(seedFile, "level: info", "level: loud", 1), nil, "logging.level"},
		{"section is a scalar", strings.Replace(seedFile, "buffer:\n", "buffer: 5\nx:\n", 1), nil, "buffer"},
		{"value is a list", strings.Replace(seedFile, "retention_days: 7", "retention_days: [7]", 1), nil, "buffer.retention_days"},
		{"bad env duration", seedFile, map[string]string{"STAFF_GATEWAY_UPLINK_FLUSH_INTERVAL": "soon"}, "uplink.flush_interval"},
		{"cert without key", seedFile, map[string]string{"STAFF_GATEWAY_SERVER_TLS_CERT_FILE": "/etc/hostname"}, "server.tls.key_file"},
		{"missing ca file", seedFile, map[string]string{"STAFF_GATEWAY_SERVER_TLS_CA_FILE": "/nonexistent/ca.pem"}, "server.tls.ca_file"},
		{"backoff max below initial", seedFile, map[string]string{"STAFF_GATEWAY_UPLINK_BACKOFF_MAX": "100ms"}, "uplink.backoff_max"},
		{"bad sync", seedFile, map[string]string{"STAFF_GATEWAY_BUFFER_SYNCHRONOUS": "off"}, "buffer.synchronous"},
		{"invalid yaml", "server: [\n", nil, "(file)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(writeFile(t, tc.file), env(tc.env))
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("got %v, want *Error", err)
			}
			if ce.Key != tc.key {
				t.Fatalf("key %q, want %q (%v)", ce.Key, tc.key, err)
			}
			if !strings.Contains(err.Error(), tc.key) {
				t.Fatalf("message %q does not name %s", err, tc.key)
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"1GB": 1 << 30, "512MB": 512 << 20, "64KiB": 64 << 10, "1048576": 1 << 20, "1.5 GB": 3 << 29, "10m": 10 << 20} {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("%q: %d %v, want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "GB", "-1MB", "1TB"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestEveryKeyHasAnEnvName(t *testing.T) {
	seen := map[string]bool{}
	for _, k := range Keys() {
		if seen[k.Env()] {
			t.Fatalf("duplicate env %s", k.Env())
		}
		seen[k.Env()] = true
		if k.Doc == "" {
			t.Fatalf("%s has no doc", k.Name)
		}
	}
}

func TestExampleConfigLoads(t *testing.T) {
	c, err := Load("../../../deploy/gateway/gateway.yml", env(map[string]string{"STAFF_GATEWAY_BUFFER_PATH": filepath.Join(t.TempDir(), "b.sqlite")}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Uplink.Parallel != 2 || c.Buffer.MaxBytes != 1<<30 || c.Gateway.GRPCListen != ":3002" {
		t.Fatalf("%+v", c)
	}
}

func TestDevices(t *testing.T) {
	body := seedFile + `
device:
  call_timeout: 5s
  isolate_after_failures: 3
devices:
  - name: front-door
    adapter_type: hikvision
    host: 192.168.1.64
    port: 80
    serial: DS-K1T671
    config:
      username: admin
      password: secret
      doors: [1, 2]
  - name: canteen
    adapter_type: zkteco
    host: 192.168.1.201
    id: 7
`
	c, err := Load(writeFile(t, body), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Devices) != 2 {
		t.Fatalf("devices %+v", c.Devices)
	}
	d := c.Devices[0]
	if d.Name != "front-door" || d.Type != "hikvision" || d.Host != "192.168.1.64" || d.Port != 80 || d.Serial != "DS-K1T671" ||
		string(d.Settings) != `{"doors":[1,2],"password":"secret","username":"admin"}` {
		t.Fatalf("device 0 %+v (%s)", d, d.Settings)
	}
	if c.Devices[1].ID != 7 || c.Devices[1].Port != 0 || c.Devices[1].Settings != nil {
		t.Fatalf("device 1 %+v", c.Devices[1])
	}
	if c.Device.CallTimeout != 5*time.Second || c.Device.IsolateAfter != 3 || c.Device.CatchupInterval != time.Minute || c.Device.BackoffMax != time.Minute {
		t.Fatalf("device tunables %+v", c.Device)
	}
	c, err = Load(writeFile(t, seedFile), env(map[string]string{
		"STAFF_GATEWAY_DEVICES": `[{"name":"x","adapter_type":"zkteco","host":"10.0.0.2","port":4370,"config":{"comm_key":0}}]`}))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Devices) != 1 || c.Devices[0].Port != 4370 || string(c.Devices[0].Settings) != `{"comm_key":0}` {
		t.Fatalf("devices from the environment %+v", c.Devices)
	}
}

func TestDeviceErrorsNameTheKey(t *testing.T) {
	for _, tc := range []struct {
		yaml, key string
	}{
		{"devices: {name: x}", "devices"},
		{"devices:\n  - just-a-string", "devices[0]"},
		{"devices:\n  - name: a\n    adapter_type: zkteco\n    host: h\n  - name: b\n    adapter_type: zkteco\n    host: h\n    port: eighty", "devices[1].port"},
		{"devices:\n  - name: a\n    adapter_type: zkteco\n    host: h\n    port: 70000", "devices[0].port"},
		{"devices:\n  - name: a\n    adapter_type: zkteco\n    host: h\n    colour: red", "devices[0].colour"},
		{"devices:\n  - name: a\n    adapter_type: zkteco\n    host: h\n    config: 12", "devices[0].config"},
		{"devices:\n  - name: a\n    adapter_type: zkteco\n    host: [h]", "devices[0].host"},
		{"devices:\n  - adapter_type: zkteco\n    host: h", "devices[0].name"},
		{"devices:\n  - name: a\n    host: h", "devices[0].adapter_type"},
		{"devices:\n  - name: a\n    adapter_type: zkteco", "devices[0].host"},
		{"devices:\n  - name: a\n    adapter_type: zkteco\n    host: h\n  - name: a\n    adapter_type: zkteco\n    host: h2", "devices[1].name"},
		{"devices:\n  - name: a\n    name: b\n    adapter_type: zkteco\n    host: h", "devices[0].name"},
		{"device:\n  call_timeout: soon", "device.call_timeout"},
		{"device:\n  backoff_initial: 2m\n  backoff_max: 1m", "device.backoff_max"},
	} {
		_, err := Load(writeFile(t, seedFile+tc.yaml+"\n"), env(nil))
		var ce *Error
		if !errors.As(err, &ce) || ce.Key != tc.key {
			t.Errorf("%q: got %v, want an error naming %s", tc.yaml, err, tc.key)
		}
	}
	_, err := Load(writeFile(t, seedFile), env(map[string]string{"STAFF_GATEWAY_DEVICES": `[{"nam":"x"}]`}))
	var ce *Error
	if !errors.As(err, &ce) || ce.Key != "devices" || ce.Source != "STAFF_GATEWAY_DEVICES" {
		t.Errorf("bad JSON list: %v", err)
	}
}
