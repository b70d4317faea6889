package k8s

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/staffcontrol/staffcontrol/internal/cloud/accesstoken"
	"github.com/staffcontrol/staffcontrol/internal/cloud/service"
	"github.com/staffcontrol/staffcontrol/internal/cloud/storage"
	"github.com/staffcontrol/staffcontrol/internal/throttle"
)

// fakeSecret is a well-formed stand-in for a Secret's key (by its name).
func fakeSecret(t *testing.T, key string) string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	switch {
	case strings.HasSuffix(key, "database-url"):
		return "postgres://role:pw@db.internal:5432/staffcontrol?sslmode=verify-full"
	case key == "tenant-context-key":
		return "k1:" + base64.RawURLEncoding.EncodeToString(b)
	case key == "token-keys":
		return "k1:" + base64.RawURLEncoding.EncodeToString(b)
	}
	return "x"
}

// parseCloudEnv reads env as the service's start does (the same functions,
// short of connecting), so that a value the service would refuse fails
// here; it returns the listen address.
func parseCloudEnv(name string, env map[string]string) (string, error) {
	getenv := func(k string) string { return env[k] }
	addrKey, def := "AGENT_API_ADDR", ":3001"
	if name == "dashboard-api" {
		addrKey, def = "DASHBOARD_ADDR", ":3000"
	}
	cfg, err := service.ConfigFromEnv(getenv, addrKey, def)
	if err != nil {
		return "", err
	}
	if _, err := service.TLSFromEnv(getenv); err != nil {
		return "", err
	}
	files, err := storage.ConfigFromEnv(getenv)
	if err != nil {
		return "", err
	}
	switch name {
	case "agent-api":
		if _, err := service.ThrottleFromEnv(getenv); err != nil {
			return "", err
		}
	case "dashboard-api":
		if _, err := accesstoken.ParseKeys(getenv("DASHBOARD_TOKEN_KEYS")); err != nil {
			return "", fmt.Errorf("DASHBOARD_TOKEN_KEYS: %w", err)
		}
		if _, err := throttle.ParseTrustedProxies(getenv(service.KeyTrustedProxies)); err != nil {
			return "", err
		}
		if _, err := service.ParseOrigins("DASHBOARD_CORS_ORIGINS", getenv("DASHBOARD_CORS_ORIGINS")); err != nil {
			return "", err
		}
		if err := files.CheckURLs(); err != nil {
			return "", err
		}
	}
	return cfg.Addr, nil
}

// TestManifestValuesParse: each service's environment, with well-formed
// stand-ins for the Secrets, is accepted by the service's own configuration
// parsing, and it listens on the port its container declares.
func TestManifestValuesParse(t *testing.T) {
	applied, _, _ := manifests(t)
	n := 0
	for _, d := range applied {
		if kind(d) != "Deployment" {
			continue
		}
		for _, c := range list(d, "spec", "template", "spec", "containers") {
			env := map[string]string{}
			for _, e := range list(c, "env") {
				if ref := get(e, "valueFrom", "secretKeyRef"); ref != nil {
					env[str(e, "name")] = fakeSecret(t, str(ref, "key"))
				} else {
					env[str(e, "name")] = fmt.Sprint(get(e, "value"))
				}
			}
			addr, err := parseCloudEnv(str(c, "name"), env)
			if err != nil {
				t.Errorf("Deployment %s: the service would refuse its environment: %v", name(d), err)
				continue
			}
			_, port, _ := net.SplitHostPort(addr)
			if want := fmt.Sprint(num(c, "ports", "0", "containerPort")); port != want {
				t.Errorf("Deployment %s: listens on %s, its container port is %s", name(d), addr, want)
			}
			n++
		}
	}
	if n != 2 {
		t.Errorf("checked %d services, want 2", n)
	}
	// The check can fail: a value the service refuses.
	_, err := parseCloudEnv("agent-api", map[string]string{"DATABASE_URL": fakeSecret(t, "database-url"),
		"TENANT_CONTEXT_KEY": fakeSecret(t, "tenant-context-key"), "STORAGE_DRIVER": "s3", "STORAGE_S3_ENDPOINT": "https://s3.example.com",
		"STORAGE_S3_BUCKET": "b", "STORAGE_S3_ACCESS_KEY_ID": "x", "STORAGE_S3_SECRET_ACCESS_KEY": "x"})
	if err == nil || !strings.Contains(err.Error(), "STORAGE_S3_ENDPOINT") {
		t.Errorf("an S3 endpoint with a scheme: %v, want an error naming STORAGE_S3_ENDPOINT", err)
	}
}
