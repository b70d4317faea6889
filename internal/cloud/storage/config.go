package storage

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The drivers Config.Driver names.
const (
	DriverLocal = "local"
	DriverS3    = "s3"
)

// DefaultURLTTL is Config.URLTTL's default: how long a download URL the
// Dashboard API hands out stays valid.
const DefaultURLTTL = 15 * time.Minute

// The configuration keys ConfigFromEnv reads, shared by the Agent API and
// the Dashboard API.
const (
	KeyDriver        = "STORAGE_DRIVER"
	KeyBasePath      = "STORAGE_BASE_PATH"
	KeyURLKey        = "STORAGE_URL_KEY"
	KeyPublicURL     = "STORAGE_PUBLIC_URL"
	KeyURLTTL        = "STORAGE_URL_TTL"
	KeyS3Endpoint    = "STORAGE_S3_ENDPOINT"
	KeyS3Bucket      = "STORAGE_S3_BUCKET"
	KeyS3Region      = "STORAGE_S3_REGION"
	KeyS3AccessKeyID = "STORAGE_S3_ACCESS_KEY_ID"
	KeyS3SecretKey   = "STORAGE_S3_SECRET_ACCESS_KEY"
	KeyS3UseTLS      = "STORAGE_S3_USE_TLS"
	KeyS3PathStyle   = "STORAGE_S3_PATH_STYLE"
)

// Usage documents the STORAGE_* keys in a service's usage text.
const Usage = `  STORAGE_DRIVER        local (default) or s3
  STORAGE_BASE_PATH     local: directory of the files (required)
  STORAGE_URL_KEY       local: key signing download URLs, hex or base64 of at least 32 bytes (Dashboard API: required)
  STORAGE_PUBLIC_URL    local: absolute URL the Dashboard API serves downloads at, e.g. https://dash.example.com/files (Dashboard API: required)
  STORAGE_URL_TTL       lifetime of a download URL (default 15m, at most 168h)
  STORAGE_S3_ENDPOINT   s3: host[:port] without scheme, e.g. s3.eu-west-1.amazonaws.com (required)
  STORAGE_S3_BUCKET     s3: bucket (required; it must exist)
  STORAGE_S3_REGION     s3: region (default: asked of the store)
  STORAGE_S3_ACCESS_KEY_ID, STORAGE_S3_SECRET_ACCESS_KEY  s3: credentials (required)
  STORAGE_S3_USE_TLS    s3: https (default true)
  STORAGE_S3_PATH_STYLE s3: path-style requests, as MinIO and SeaweedFS want (default false)
`

// Config selects a Store's driver and configures it: what both cloud
// services read from STORAGE_* (ConfigFromEnv). The local driver's URL
// fields (URLKey, PublicURL) are needed only by a service that hands out
// download URLs (CheckURLs).
type Config struct {
	// Driver is DriverLocal (the default) or DriverS3 (STORAGE_DRIVER).
	Driver string
	// BasePath is the local store's directory (STORAGE_BASE_PATH).
	BasePath string
	// URLKey signs the local store's download URLs (STORAGE_URL_KEY, hex
	// or base64 of at least MinURLSecret bytes).
	URLKey []byte
	// PublicURL is where the local store's download handler
	// (storagehttp.Handler) is reachable (STORAGE_PUBLIC_URL).
	PublicURL string
	// URLTTL is a download URL's lifetime (STORAGE_URL_TTL, default
	// DefaultURLTTL, at most MaxURLExpiry).
	URLTTL time.Duration
	// S3 configures the S3 driver (STORAGE_S3_*).
	S3 S3Config
}

// ConfigFromEnv reads a Config from STORAGE_*; absent keys take their
// defaults, and an error names the key at fault. It checks what it can
// without connecting; Open connects.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	c := Config{Driver: strings.ToLower(strings.TrimSpace(getenv(KeyDriver))), URLTTL: DefaultURLTTL}
	if c.Driver == "" {
		c.Driver = DriverLocal
	}
	if v := getenv(KeyURLTTL); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Second || d > MaxURLExpiry {
			return c, fmt.Errorf("%s=%q: want a duration from 1s to %v, such as 15m", KeyURLTTL, v, MaxURLExpiry)
		}
		c.URLTTL = d
	}
	switch c.Driver {
	case DriverLocal:
		if c.BasePath = getenv(KeyBasePath); c.BasePath == "" {
			return c, fmt.Errorf("%s is required with %s=%s: the directory where files are stored", KeyBasePath, KeyDriver, DriverLocal)
		}
		if v := getenv(KeyURLKey); v != "" {
			k, err := ParseURLKey(v)
			if err != nil {
				return c, fmt.Errorf("%s: %w", KeyURLKey, err)
			}
			c.URLKey = k
		}
		if v := getenv(KeyPublicURL); v != "" {
			if _, err := publicURL(v); err != nil {
				return c, fmt.Errorf("%s=%q: %w", KeyPublicURL, v, err)
			}
			c.PublicURL = v
		}
	case DriverS3:
		s := S3Config{Endpoint: getenv(KeyS3Endpoint), Bucket: getenv(KeyS3Bucket), Region: getenv(KeyS3Region),
			AccessKey: getenv(KeyS3AccessKeyID), SecretKey: getenv(KeyS3SecretKey), UseTLS: true}
		for _, r := range []struct{ key, val, what string }{
			{KeyS3Endpoint, s.Endpoint, "host[:port] of the S3 store"},
			{KeyS3Bucket, s.Bucket, "the bucket"},
			{KeyS3AccessKeyID, s.AccessKey, "the access key id"},
			{KeyS3SecretKey, s.SecretKey, "the secret access key"},
		} {
			if r.val == "" {
				return c, fmt.Errorf("%s is required with %s=%s: %s", r.key, KeyDriver, DriverS3, r.what)
			}
		}
		if strings.Contains(s.Endpoint, "://") || strings.Contains(s.Endpoint, "/") {
			return c, fmt.Errorf("%s=%q: want host[:port] without scheme or path (%s chooses https)", KeyS3Endpoint, s.Endpoint, KeyS3UseTLS)
		}
		for _, b := range []struct {
			key string
			dst *bool
		}{{KeyS3UseTLS, &s.UseTLS}, {KeyS3PathStyle, &s.PathStyle}} {
			v := getenv(b.key)
			if v == "" {
				continue
			}
			x, err := strconv.ParseBool(v)
			if err != nil {
				return c, fmt.Errorf("%s=%q: want true or false", b.key, v)
			}
			*b.dst = x
		}
		c.S3 = s
	default:
		return c, fmt.Errorf("%s=%q: want %s or %s", KeyDriver, c.Driver, DriverLocal, DriverS3)
	}
	return c, nil
}

// ParseURLKey decodes a URL-signing key: hex when the text is hex of an
// even length, else base64 (standard or URL alphabet, padded or not); at
// least MinURLSecret bytes either way.
func ParseURLKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	var k []byte
	var err error
	if b, herr := hex.DecodeString(s); herr == nil {
		k = b
	} else {
		k, err = decodeBase64(s)
		if err != nil {
			return nil, errors.New("want hex or base64 (e.g. openssl rand -hex 32)")
		}
	}
	if len(k) < MinURLSecret {
		return nil, fmt.Errorf("want at least %d bytes, got %d (e.g. openssl rand -hex 32)", MinURLSecret, len(k))
	}
	return k, nil
}

func decodeBase64(s string) ([]byte, error) {
	var err error
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		var b []byte
		if b, err = enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, err
}

// publicURL parses a local store's public URL: absolute http(s), a path
// other than the root (the Dashboard API mounts the handler there), no
// query or fragment.
func publicURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("want an absolute http(s) URL without query or fragment, e.g. https://dash.example.com/files")
	}
	if p := strings.TrimSuffix(u.Path, "/"); p == "" || strings.ContainsAny(p, "{}") {
		return nil, errors.New("want a path below the root, e.g. https://dash.example.com/files")
	}
	return u, nil
}

// CheckURLs reports whether c lets a store hand out download URLs: the
// local driver needs URLKey and PublicURL (an error names the key); S3
// presigns with its credentials.
func (c Config) CheckURLs() error {
	if c.Driver != DriverLocal {
		return nil
	}
	if len(c.URLKey) == 0 {
		return fmt.Errorf("%s is required with %s=%s to sign download URLs (hex or base64 of at least %d random bytes, e.g. openssl rand -hex 32)",
			KeyURLKey, KeyDriver, DriverLocal, MinURLSecret)
	}
	if c.PublicURL == "" {
		return fmt.Errorf("%s is required with %s=%s: the absolute URL downloads are served at, e.g. https://dash.example.com/files",
			KeyPublicURL, KeyDriver, DriverLocal)
	}
	return nil
}

// MountPath is the path at which a service serves the local store's
// download handler: PublicURL's path ("" for the S3 driver or without a
// PublicURL).
func (c Config) MountPath() string {
	if c.Driver != DriverLocal || c.PublicURL == "" {
		return ""
	}
	u, err := publicURL(c.PublicURL)
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(u.Path, "/")
}

// SignedStore is a Store that also hands out download URLs.
type SignedStore interface {
	Store
	Signer
}

// Open builds the configured store: a Local (signing URLs when URLKey and
// PublicURL are set; otherwise its URL method fails) or an S3 store,
// connecting and checking that the bucket exists. An error names the key
// at fault.
func (c Config) Open(ctx context.Context) (SignedStore, error) {
	switch c.Driver {
	case DriverLocal, "":
		if len(c.URLKey) > 0 && c.PublicURL != "" {
			l, err := NewLocalSigned(c.BasePath, LocalURLConfig{BaseURL: c.PublicURL, Secret: c.URLKey})
			if err != nil {
				return nil, fmt.Errorf("%s, %s, %s: %w", KeyBasePath, KeyURLKey, KeyPublicURL, err)
			}
			return l, nil
		}
		l, err := NewLocal(c.BasePath)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", KeyBasePath, err)
		}
		return l, nil
	case DriverS3:
		s, err := NewS3(ctx, c.S3)
		if err != nil {
			return nil, fmt.Errorf("%s=%s (%s %s, %s %s): %w", KeyDriver, DriverS3, KeyS3Endpoint, c.S3.Endpoint, KeyS3Bucket, c.S3.Bucket, err)
		}
		return s, nil
	}
	return nil, fmt.Errorf("%s=%q: want %s or %s", KeyDriver, c.Driver, DriverLocal, DriverS3)
}
