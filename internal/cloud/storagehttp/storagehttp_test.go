package storagehttp

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/cloud/storage"
)

func TestHandler(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_800_000_000, 0)
	l, err := storage.NewLocalSigned(t.TempDir(), storage.LocalURLConfig{
		BaseURL: "https://files.example/f", Secret: []byte(strings.Repeat("s", 32)), Now: func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Put(t.Context(), "a/shot.png", strings.NewReader("png bytes")); err != nil {
		t.Fatal(err)
	}
	h := Handler(l, slog.New(slog.DiscardHandler))
	signed := func(key string, d time.Duration) string {
		u, err := l.URL(t.Context(), key, d)
		if err != nil {
			t.Fatal(err)
		}
		p, _ := url.Parse(u)
		return p.RequestURI()
	}
	ok := signed("a/shot.png", time.Hour)
	for _, c := range []struct {
		name, method, target string
		header               map[string]string
		code                 int
		body                 string
	}{
		{"valid", "GET", ok, nil, 200, "png bytes"},
		{"head", "HEAD", ok, nil, 200, ""},
		{"range", "GET", ok, map[string]string{"Range": "bytes=4-"}, 206, "bytes"},
		{"post", "POST", ok, nil, 405, ""},
		{"unsigned", "GET", "/f?key=a%2Fshot.png", nil, 403, ""},
		{"garbage signature", "GET", ok + "x", nil, 403, ""},
		{"valid but missing", "GET", signed("a/none.png", time.Hour), nil, 404, ""},
	} {
		req := httptest.NewRequest(c.method, c.target, nil)
		for k, v := range c.header {
			req.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		body, _ := io.ReadAll(rec.Result().Body)
		if rec.Code != c.code || (c.body != "" && string(body) != c.body) {
			t.Errorf("%s: %d %q, want %d %q", c.name, rec.Code, body, c.code, c.body)
		}
		if c.code == 200 {
			if cc := rec.Header().Get("Cache-Control"); !strings.HasPrefix(cc, "private, max-age=") {
				t.Errorf("%s: Cache-Control %q", c.name, cc)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "image/png" {
				t.Errorf("%s: Content-Type %q, want image/png", c.name, ct)
			}
		}
	}
	// Past its expiry (the store's clock moved on), the same URL is refused.
	now = now.Add(time.Hour + time.Second)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", ok, nil))
	if rec.Code != http.StatusForbidden {
		t.Fatalf("expired: %d, want 403", rec.Code)
	}
}
