package compose

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/staffcontrol/staffcontrol/internal/cloud/accesstoken"
	cloudservice "github.com/staffcontrol/staffcontrol/internal/cloud/service"
	"github.com/staffcontrol/staffcontrol/internal/cloud/storage"
	"github.com/staffcontrol/staffcontrol/internal/edge/config"
	"github.com/staffcontrol/staffcontrol/internal/throttle"
)

// exampleVars reads env.example, with well-formed stand-ins for the
// secrets it leaves as CHANGE-ME (what an operator generates).
func exampleVars(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile("env.example")
	if err != nil {
		t.Fatal(err)
	}
	key := func() string {
		k := make([]byte, 32)
		if _, err := rand.Read(k); err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(k)
	}
	vars := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.HasPrefix(k, "#") {
			continue
		}
		if strings.HasPrefix(v, "CHANGE-ME") {
			switch k {
			case "TENANT_CONTEXT_KEY", "DASHBOARD_TOKEN_KEYS":
				v = "k1:" + key()
			case "STORAGE_URL_KEY":
				v = strings.Repeat("ab", 32)
			default:
				v = "0123456789abcdef0123456789abcdef0123456789abcdef"
			}
		}
		vars[k] = v
	}
	return vars
}

var interpRe = regexp.MustCompile(`\$\{([A-Z0-9_]+)(?:(:-|:\?)([^}]*))?\}`)

// interpolate expands ${VAR}, ${VAR:-default} and ${VAR:?message} as
// compose does.
func interpolate(s string, vars map[string]string) (string, error) {
	var err error
	out := interpRe.ReplaceAllStringFunc(s, func(m string) string {
		p := interpRe.FindStringSubmatch(m)
		if v := vars[p[1]]; v != "" {
			return v
		}
		switch p[2] {
		case ":-":
			return p[3]
		case ":?":
			err = fmt.Errorf("%s: %s", p[1], p[3])
		}
		return ""
	})
	return out, err
}

// parseCloudEnv reads env as the service's start does (the same functions,
// short of connecting); it returns the listen address.
func parseCloudEnv(name string, env map[string]string) (string, error) {
	getenv := func(k string) string { return env[k] }
	addrKey, def := "AGENT_API_ADDR", ":3001"
	if name == "dashboard-api" {
		addrKey, def = "DASHBOARD_ADDR", ":3000"
	}
	cfg, err := cloudservice.ConfigFromEnv(getenv, addrKey, def)
	if err != nil {
		return "", err
	}
	files, err := storage.ConfigFromEnv(getenv)
	if err != nil {
		return "", err
	}
	switch name {
	case "agent-api":
		if _, err := cloudservice.ThrottleFromEnv(getenv); err != nil {
			return "", err
		}
	case "dashboard-api":
		if _, err := accesstoken.ParseKeys(getenv("DASHBOARD_TOKEN_KEYS")); err != nil {
			return "", fmt.Errorf("DASHBOARD_TOKEN_KEYS: %w", err)
		}
		if _, err := throttle.ParseTrustedProxies(getenv(cloudservice.KeyTrustedProxies)); err != nil {
			return "", err
		}
		if err := files.CheckURLs(); err != nil {
			return "", err
		}
	}
	return cfg.Addr, nil
}

// TestComposeValuesParse: with env.example's values (and generated
// secrets), each of our services' environment is accepted by the
// service's own configuration parsing, and it listens on the port compose
// publishes; the gateway's by the gateway's configuration loader.
func TestComposeValuesParse(t *testing.T) {
	f, _ := loadCompose(t)
	vars := exampleVars(t)
	envOf := func(name string) map[string]string {
		env := map[string]string{}
		for k, v := range f.Services[name].Environment {
			x, err := interpolate(v, vars)
			if err != nil {
				t.Fatalf("%s: %s: %v", name, k, err)
			}
			env[k] = x
		}
		return env
	}
	for _, name := range []string{"agent-api", "dashboard-api"} {
		addr, err := parseCloudEnv(name, envOf(name))
		if err != nil {
			t.Errorf("%s would refuse its environment: %v", name, err)
			continue
		}
		_, port, _ := net.SplitHostPort(addr)
		published := false
		for _, p := range f.Services[name].Ports {
			published = published || strings.HasSuffix(p, ":"+port)
		}
		if !published {
			t.Errorf("%s listens on %s, which compose does not publish (%v)", name, addr, f.Services[name].Ports)
		}
	}
	gw := envOf("gateway")
	gw["STAFF_GATEWAY_ORGANIZATION_ID"] = "1"
	gw["STAFF_GATEWAY_ORGANIZATION_PROVISIONING_TOKEN"] = "token-from-staffctl-gateway-register"
	cfg, err := config.Load("", func(k string) string { return gw[k] })
	if err != nil {
		t.Fatalf("the gateway would refuse its environment: %v", err)
	}
	if cfg.Buffer.Path != "/var/lib/staff-gateway/buffer.sqlite" {
		t.Errorf("gateway buffer %q: not in its volume /var/lib/staff-gateway", cfg.Buffer.Path)
	}
	if cfg.Health.Listen != ":9100" {
		t.Errorf("gateway health.listen %q: Prometheus scrapes gateway:9100", cfg.Health.Listen)
	}

	// The check can fail: the example's placeholders themselves are refused.
	env := envOf("agent-api")
	env["TENANT_CONTEXT_KEY"] = "CHANGE-ME"
	if _, err := parseCloudEnv("agent-api", env); err == nil || !strings.Contains(err.Error(), "TENANT_CONTEXT_KEY") {
		t.Errorf("a placeholder TENANT_CONTEXT_KEY: %v, want an error naming it", err)
	}
}
