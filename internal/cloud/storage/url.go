package storage

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"time"
)

// Signer hands out download URLs that stop working after a while.
type Signer interface {
	// URL returns a URL that downloads the file at key until expires from
	// now (at most MaxURLExpiry). It does not check that the file exists.
	URL(ctx context.Context, key string, expires time.Duration) (string, error)
}

// MaxURLExpiry bounds a signed URL's lifetime: S3's own limit for a
// presigned URL.
const MaxURLExpiry = 7 * 24 * time.Hour

// MinURLSecret is the shortest accepted secret for Local's signed URLs.
const MinURLSecret = 32

// ErrBadSignature means a signed URL is expired, tampered with or not
// signed at all. It says nothing about whether the file exists.
var ErrBadSignature = errors.New("storage: bad or expired signature")

// The query parameters of Local's signed URLs.
const (
	urlKey       = "key"
	urlExpires   = "expires"
	urlSignature = "signature"
)

type localURLs struct {
	base   *url.URL
	secret []byte
	now    func() time.Time
}

// LocalURLConfig configures Local's signed URLs: BaseURL is where the
// signed-URL handler (storagehttp.Handler) is served, Secret (at least
// MinURLSecret bytes) signs them; Now defaults to time.Now.
type LocalURLConfig struct {
	BaseURL string
	Secret  []byte
	Now     func() time.Time
}

// NewLocalSigned returns a Local store rooted at dir that also signs
// download URLs (Signer) under cfg.
func NewLocalSigned(dir string, cfg LocalURLConfig) (*Local, error) {
	base, err := url.Parse(cfg.BaseURL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" || base.RawQuery != "" || base.Fragment != "" {
		return nil, fmt.Errorf("storage: BaseURL %q: want an absolute http(s) URL without query or fragment", cfg.BaseURL)
	}
	if len(cfg.Secret) < MinURLSecret {
		return nil, fmt.Errorf("storage: Secret: want at least %d bytes, got %d", MinURLSecret, len(cfg.Secret))
	}
	l, err := NewLocal(dir)
	if err != nil {
		return nil, err
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	l.urls = &localURLs{base: base, secret: append([]byte(nil), cfg.Secret...), now: now}
	return l, nil
}

// URL returns BaseURL?key=…&expires=<unix seconds>&signature=<HMAC-SHA256
// of key and expiry>, valid until expires from now.
func (l *Local) URL(_ context.Context, key string, expires time.Duration) (string, error) {
	if l.urls == nil {
		return "", errors.New("storage: this local store signs no URLs (use NewLocalSigned)")
	}
	if err := CheckKey(key); err != nil {
		return "", err
	}
	if err := checkExpiry(expires); err != nil {
		return "", err
	}
	exp := strconv.FormatInt(l.urls.now().Add(expires).Unix(), 10)
	u := *l.urls.base
	q := url.Values{}
	q.Set(urlKey, key)
	q.Set(urlExpires, exp)
	q.Set(urlSignature, l.urls.sign(key, exp))
	u.RawQuery = q.Encode()
	return u.String(), nil
}

func checkExpiry(expires time.Duration) error {
	if expires < time.Second || expires > MaxURLExpiry {
		return fmt.Errorf("storage: URL expiry %v: want 1s to %v", expires, MaxURLExpiry)
	}
	return nil
}

func (u *localURLs) sign(key, expires string) string {
	m := hmac.New(sha256.New, u.secret)
	m.Write([]byte(key))
	m.Write([]byte{0})
	m.Write([]byte(expires))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// OpenSigned opens the file a signed URL's query names, after checking the
// signature and the expiry: ErrBadSignature when either fails (before the
// file is looked at, so a refusal reveals nothing about it), ErrNotFound
// when a validly signed key has no file. It also returns the file's
// modification time.
func (l *Local) OpenSigned(ctx context.Context, query url.Values) (io.ReadCloser, time.Time, error) {
	if l.urls == nil {
		return nil, time.Time{}, ErrBadSignature
	}
	key, exp, sig := query.Get(urlKey), query.Get(urlExpires), query.Get(urlSignature)
	// Strict: the last character of 43 carries two padding bits, which a
	// lenient decoder ignores — four spellings of one signature would
	// all pass, so a URL differing in that character would too.
	got, err := base64.RawURLEncoding.Strict().DecodeString(sig)
	if err != nil {
		return nil, time.Time{}, ErrBadSignature
	}
	want, _ := base64.RawURLEncoding.DecodeString(l.urls.sign(key, exp))
	if !hmac.Equal(got, want) {
		return nil, time.Time{}, ErrBadSignature
	}
	unix, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || !l.urls.now().Before(time.Unix(unix, 0)) {
		return nil, time.Time{}, ErrBadSignature
	}
	p, err := l.path(key)
	if err != nil {
		return nil, time.Time{}, ErrBadSignature
	}
	if err := ctx.Err(); err != nil {
		return nil, time.Time{}, err
	}
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, time.Time{}, ErrNotFound
	}
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("storage: open %s: %w", key, err)
	}
	fi, err := f.Stat()
	if err != nil || fi.IsDir() {
		f.Close()
		return nil, time.Time{}, ErrNotFound
	}
	return f, fi.ModTime(), nil
}
