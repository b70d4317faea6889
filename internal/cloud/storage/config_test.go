package storage_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/cloud/storage"
)

func TestConfigFromEnv(t *testing.T) {
	t.Parallel()
	key := bytes.Repeat([]byte{0xab}, 32)
	hexKey := hex.EncodeToString(key)
	s3env := map[string]string{"STORAGE_DRIVER": "s3", "STORAGE_S3_ENDPOINT": "s3.example.com", "STORAGE_S3_BUCKET": "shots",
		"STORAGE_S3_ACCESS_KEY_ID": "AKIA", "STORAGE_S3_SECRET_ACCESS_KEY": "secret"}
	with := func(base map[string]string, kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	local := map[string]string{"STORAGE_BASE_PATH": "/var/lib/files"}
	for _, tt := range []struct {
		name    string
		env     map[string]string
		wantErr string // the key the error must name; empty: valid
		want    storage.Config
	}{
		{"local defaults", local, "", storage.Config{Driver: "local", BasePath: "/var/lib/files", URLTTL: 15 * time.Minute}},
		{"local signed", with(local, "STORAGE_URL_KEY", hexKey, "STORAGE_PUBLIC_URL", "https://dash.example.com/files", "STORAGE_URL_TTL", "1h"), "",
			storage.Config{Driver: "local", BasePath: "/var/lib/files", URLKey: key, PublicURL: "https://dash.example.com/files", URLTTL: time.Hour}},
		{"base64 key", with(local, "STORAGE_URL_KEY", base64.StdEncoding.EncodeToString(key)), "",
			storage.Config{Driver: "local", BasePath: "/var/lib/files", URLKey: key, URLTTL: 15 * time.Minute}},
		{"base64url key unpadded", with(local, "STORAGE_URL_KEY", base64.RawURLEncoding.EncodeToString(key)), "",
			storage.Config{Driver: "local", BasePath: "/var/lib/files", URLKey: key, URLTTL: 15 * time.Minute}},
		{"driver in capitals", with(local, "STORAGE_DRIVER", "LOCAL"), "", storage.Config{Driver: "local", BasePath: "/var/lib/files", URLTTL: 15 * time.Minute}},
		{"s3", with(s3env, "STORAGE_S3_REGION", "eu-west-1", "STORAGE_S3_USE_TLS", "false", "STORAGE_S3_PATH_STYLE", "true"), "",
			storage.Config{Driver: "s3", URLTTL: 15 * time.Minute, S3: storage.S3Config{Endpoint: "s3.example.com", Bucket: "shots", Region: "eu-west-1",
				AccessKey: "AKIA", SecretKey: "secret", UseTLS: false, PathStyle: true}}},
		{"s3 defaults to TLS", s3env, "", storage.Config{Driver: "s3", URLTTL: 15 * time.Minute,
			S3: storage.S3Config{Endpoint: "s3.example.com", Bucket: "shots", AccessKey: "AKIA", SecretKey: "secret", UseTLS: true}}},

		{"unknown driver", with(local, "STORAGE_DRIVER", "ftp"), "STORAGE_DRIVER", storage.Config{}},
		{"no base path", map[string]string{}, "STORAGE_BASE_PATH", storage.Config{}},
		{"short key", with(local, "STORAGE_URL_KEY", hex.EncodeToString(key[:16])), "STORAGE_URL_KEY", storage.Config{}},
		{"key not encoded", with(local, "STORAGE_URL_KEY", "not a key!"), "STORAGE_URL_KEY", storage.Config{}},
		{"public URL relative", with(local, "STORAGE_PUBLIC_URL", "/files"), "STORAGE_PUBLIC_URL", storage.Config{}},
		{"public URL at the root", with(local, "STORAGE_PUBLIC_URL", "https://dash.example.com/"), "STORAGE_PUBLIC_URL", storage.Config{}},
		{"public URL with query", with(local, "STORAGE_PUBLIC_URL", "https://dash.example.com/files?x=1"), "STORAGE_PUBLIC_URL", storage.Config{}},
		{"public URL not http", with(local, "STORAGE_PUBLIC_URL", "ftp://dash.example.com/files"), "STORAGE_PUBLIC_URL", storage.Config{}},
		{"ttl not a duration", with(local, "STORAGE_URL_TTL", "15"), "STORAGE_URL_TTL", storage.Config{}},
		{"ttl over 7 days", with(local, "STORAGE_URL_TTL", "169h"), "STORAGE_URL_TTL", storage.Config{}},
		{"ttl under a second", with(local, "STORAGE_URL_TTL", "500ms"), "STORAGE_URL_TTL", storage.Config{}},
		{"s3 no endpoint", with(s3env, "STORAGE_S3_ENDPOINT", ""), "STORAGE_S3_ENDPOINT", storage.Config{}},
		{"s3 endpoint with scheme", with(s3env, "STORAGE_S3_ENDPOINT", "https://s3.example.com"), "STORAGE_S3_ENDPOINT", storage.Config{}},
		{"s3 no bucket", with(s3env, "STORAGE_S3_BUCKET", ""), "STORAGE_S3_BUCKET", storage.Config{}},
		{"s3 no access key", with(s3env, "STORAGE_S3_ACCESS_KEY_ID", ""), "STORAGE_S3_ACCESS_KEY_ID", storage.Config{}},
		{"s3 no secret", with(s3env, "STORAGE_S3_SECRET_ACCESS_KEY", ""), "STORAGE_S3_SECRET_ACCESS_KEY", storage.Config{}},
		{"s3 bad TLS flag", with(s3env, "STORAGE_S3_USE_TLS", "sometimes"), "STORAGE_S3_USE_TLS", storage.Config{}},
		{"s3 bad path style", with(s3env, "STORAGE_S3_PATH_STYLE", "yes please"), "STORAGE_S3_PATH_STYLE", storage.Config{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := storage.ConfigFromEnv(func(k string) string { return tt.env[k] })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to name %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestConfigCheckURLs(t *testing.T) {
	t.Parallel()
	key := bytes.Repeat([]byte{1}, 32)
	for _, tt := range []struct {
		name    string
		cfg     storage.Config
		wantErr string
		mount   string
	}{
		{"local signed", storage.Config{Driver: "local", URLKey: key, PublicURL: "https://d.example.com/files/"}, "", "/files"},
		{"local without key", storage.Config{Driver: "local", PublicURL: "https://d.example.com/files"}, "STORAGE_URL_KEY", "/files"},
		{"local without public URL", storage.Config{Driver: "local", URLKey: key}, "STORAGE_PUBLIC_URL", ""},
		{"s3", storage.Config{Driver: "s3"}, "", ""},
	} {
		err := tt.cfg.CheckURLs()
		if (tt.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("%s: CheckURLs = %v, want an error naming %q", tt.name, err, tt.wantErr)
		}
		if got := tt.cfg.MountPath(); got != tt.mount {
			t.Errorf("%s: MountPath = %q, want %q", tt.name, got, tt.mount)
		}
	}
}

func TestConfigOpen(t *testing.T) {
	t.Parallel()
	key := bytes.Repeat([]byte{2}, 32)
	dir := t.TempDir()
	s, err := storage.Config{Driver: "local", BasePath: dir, URLKey: key, PublicURL: "http://127.0.0.1:1/files"}.Open(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	u, err := s.URL(t.Context(), "a/b.png", time.Minute)
	if err != nil || !strings.HasPrefix(u, "http://127.0.0.1:1/files?") {
		t.Errorf("URL = %q, %v", u, err)
	}
	unsigned, err := storage.Config{Driver: "local", BasePath: dir}.Open(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := unsigned.URL(t.Context(), "a/b.png", time.Minute); err == nil {
		t.Error("an unsigned local store signed a URL")
	}
	if _, err := (storage.Config{Driver: "s3", S3: storage.S3Config{Endpoint: "127.0.0.1:1", Bucket: "b", AccessKey: "a", SecretKey: "s"}}).Open(t.Context()); err == nil ||
		!strings.Contains(err.Error(), "STORAGE_S3_ENDPOINT") {
		t.Errorf("Open of an unreachable S3 store: %v, want an error naming STORAGE_S3_ENDPOINT", err)
	}
}
