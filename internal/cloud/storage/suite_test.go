package storage_test

import (
	"crypto/rand"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/cloud/storage"
	"github.com/staffcontrol/staffcontrol/internal/cloud/storage/storagetest"
	"github.com/staffcontrol/staffcontrol/internal/cloud/storagehttp"
)

func TestLocalSuite(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Store {
		secret := make([]byte, storage.MinURLSecret)
		rand.Read(secret)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		l, err := storage.NewLocalSigned(t.TempDir(), storage.LocalURLConfig{BaseURL: "http://" + ln.Addr().String() + "/files", Secret: secret})
		if err != nil {
			ln.Close()
			t.Fatal(err)
		}
		srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: storagehttp.Handler(l, slog.New(slog.DiscardHandler))}}
		srv.Start()
		t.Cleanup(srv.Close)
		return l
	})
}

var nonKey = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

func TestS3Suite(t *testing.T) {
	cfg := s3Config(t) // one bucket for the suite, a prefix per subtest
	storagetest.Run(t, func(t *testing.T) storage.Store {
		c := cfg
		c.Prefix = nonKey.ReplaceAllString(t.Name(), "_")
		s, err := storage.NewS3(t.Context(), c)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestS3ConfigErrorsNameTheField(t *testing.T) {
	t.Parallel()
	good := storage.S3Config{Endpoint: "127.0.0.1:1", Bucket: "b", AccessKey: "a", SecretKey: "s"}
	for _, c := range []struct {
		field string
		edit  func(*storage.S3Config)
	}{
		{"Endpoint", func(c *storage.S3Config) { c.Endpoint = "" }},
		{"Endpoint", func(c *storage.S3Config) { c.Endpoint = "http://127.0.0.1:1" }},
		{"Bucket", func(c *storage.S3Config) { c.Bucket = "" }},
		{"AccessKey", func(c *storage.S3Config) { c.AccessKey = "" }},
		{"SecretKey", func(c *storage.S3Config) { c.SecretKey = "" }},
		{"Prefix", func(c *storage.S3Config) { c.Prefix = "/abs" }},
		{"Prefix", func(c *storage.S3Config) { c.Prefix = "a/../b" }},
		{"PartSize", func(c *storage.S3Config) { c.PartSize = 1 << 20 }},
	} {
		cfg := good
		c.edit(&cfg)
		_, err := storage.NewS3(t.Context(), cfg)
		if err == nil || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%+v: %v, want an error naming %s", cfg, err, c.field)
		}
	}
}

func TestS3MissingBucket(t *testing.T) {
	cfg := s3Config(t)
	cfg.CreateBucket = false
	if _, err := storage.NewS3(t.Context(), cfg); err == nil || !strings.Contains(err.Error(), "Bucket") {
		t.Fatalf("NewS3 with a missing bucket and no CreateBucket: %v, want an error naming Bucket", err)
	}
	cfg.CreateBucket = true
	for range 2 { // creating is idempotent
		if _, err := storage.NewS3(t.Context(), cfg); err != nil {
			t.Fatal(err)
		}
	}
}

func TestLocalURLConfig(t *testing.T) {
	t.Parallel()
	secret := make([]byte, storage.MinURLSecret)
	for _, c := range []struct {
		cfg   storage.LocalURLConfig
		field string
	}{
		{storage.LocalURLConfig{BaseURL: "/files", Secret: secret}, "BaseURL"},
		{storage.LocalURLConfig{BaseURL: "ftp://h/files", Secret: secret}, "BaseURL"},
		{storage.LocalURLConfig{BaseURL: "http://h/files?x=1", Secret: secret}, "BaseURL"},
		{storage.LocalURLConfig{BaseURL: "http://h/files", Secret: secret[:31]}, "Secret"},
	} {
		if _, err := storage.NewLocalSigned(t.TempDir(), c.cfg); err == nil || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%+v: %v, want an error naming %s", c.cfg, err, c.field)
		}
	}
	l, err := storage.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.URL(t.Context(), "a", time.Minute); err == nil {
		t.Error("an unsigned Local store handed out a URL")
	}
}

// A Local signature has one spelling: every other value of any character,
// the last one included (whose two low bits a lenient base64 decoder
// would ignore), is refused.
func TestLocalSignatureHasOneSpelling(t *testing.T) {
	t.Parallel()
	l, err := storage.NewLocalSigned(t.TempDir(), storage.LocalURLConfig{BaseURL: "http://h/files", Secret: make([]byte, storage.MinURLSecret)})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Put(t.Context(), "k", strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	raw, err := l.URL(t.Context(), "k", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	sig := q.Get("signature")
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for _, pos := range []int{0, len(sig) / 2, len(sig) - 1} {
		for _, c := range alphabet {
			if byte(c) == sig[pos] {
				continue
			}
			q.Set("signature", sig[:pos]+string(c)+sig[pos+1:])
			if r, _, err := l.OpenSigned(t.Context(), q); err == nil {
				r.Close()
				t.Errorf("signature with character %d changed to %q accepted", pos, c)
			}
		}
	}
	q.Set("signature", sig)
	r, _, err := l.OpenSigned(t.Context(), q)
	if err != nil {
		t.Fatalf("the genuine signature: %v", err)
	}
	r.Close()
}
