package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// FuzzLoad loads a fuzzed gateway.yml with one fuzzed environment override:
// never a panic, every refusal an *Error naming a key, and loading is
// deterministic (the same input gives the same configuration).
func FuzzLoad(f *testing.F) {
	f.Add([]byte(seedFile), "", "")
	f.Add([]byte(seedFile), "STAFF_GATEWAY_BUFFER_MAX_SIZE", "512MB")
	f.Add([]byte(seedFile), "STAFF_GATEWAY_UPLINK_FLUSH_INTERVAL", "-1s")
	f.Add([]byte("buffer:\n  max_size: 1XB\n"), "", "")
	f.Add([]byte("buffer:\n  max_sise: 1GB\n"), "", "")
	f.Add([]byte("organization:\n  id: 99999999999999999999999\n"), "", "")
	f.Add([]byte("adapters:\n  hikvision:\n    enabled: maybe\n"), "", "")
	f.Add([]byte("a: &a [*a, *a]\nb: &b [*a, *a, *a, *a]\nc: [*b, *b, *b, *b]\n"), "", "")
	f.Add([]byte("server: [1, 2]\n"), "", "")
	f.Add([]byte("\x00\xff: \x00\n"), "AGENT_API_URL", "http://\x00")
	f.Add([]byte("- just\n- a list\n"), "", "")
	f.Add([]byte("logging:\n  level: loud\n"), "STAFF_GATEWAY_GATEWAY_LISTEN", ":0")
	f.Add([]byte(seedFile+"devices:\n  - name: a\n    adapter_type: zkteco\n    host: h\n    config: {comm_key: 1, doors: [1, 2]}\n"), "", "")
	f.Add([]byte(seedFile+"devices:\n  - name: a\n    config: &c {x: *c}\n"), "", "")
	f.Add([]byte(seedFile), "STAFF_GATEWAY_DEVICES", `[{"name":"a","adapter_type":"zkteco","host":"h","config":{"k":1}}]`)
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, yml []byte, envKey, envVal string) {
		if len(yml) > 64<<10 {
			return
		}
		path := filepath.Join(dir, "gateway.yml")
		if err := os.WriteFile(path, []byte(strings.ReplaceAll(string(yml), "BUFDIR", dir)), 0o600); err != nil {
			t.Fatal(err)
		}
		getenv := func(k string) string {
			if k == envKey {
				return envVal
			}
			return ""
		}
		start := time.Now()
		c, err := Load(path, getenv)
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("Load took %v on %d bytes", d, len(yml))
		}
		c2, err2 := Load(path, getenv)
		if (err == nil) != (err2 == nil) || (err != nil && err.Error() != err2.Error()) {
			t.Fatalf("not deterministic: %v then %v", err, err2)
		}
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) || ce.Key == "" || ce.Msg == "" {
				t.Fatalf("error %v (%T) names no key", err, err)
			}
			return
		}
		if !reflect.DeepEqual(c, c2) {
			t.Fatalf("two loads differ:\n%+v\n%+v", c, c2)
		}
		if c.Gateway.Serial == "" || c.Buffer.MaxBytes <= 0 {
			t.Fatalf("accepted configuration lacks required values: %+v", c)
		}
	})
}
