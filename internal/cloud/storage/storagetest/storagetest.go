// Package storagetest is test support: one behavioural suite that every
// storage.Store driver must pass (Run), so that Local and S3 keep the same
// semantics.
package storagetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/cloud/storage"
)

// LargeSize is the size of the large object the suite streams (20 MiB).
const LargeSize = 20 << 20

// maxLargeAlloc bounds what a driver may allocate while storing the large
// object: well under its size, so a driver that buffers it whole fails.
const maxLargeAlloc = 12 << 20

// Run runs the suite against stores made by newStore. newStore is called
// once per subtest and must return an empty store (or one whose keys no
// other subtest sees, e.g. an S3 store with its own Prefix). The URL
// subtests need the store to implement storage.Signer and its URLs to be
// served (Local: by storagehttp.Handler at its BaseURL).
func Run(t *testing.T, newStore func(t *testing.T) storage.Store) {
	// The large upload runs first and alone, so that the allocation it
	// measures is its own.
	t.Run("LargeStreamed", func(t *testing.T) { large(t, newStore(t)) })
	for _, c := range []struct {
		name string
		fn   func(*testing.T, storage.Store)
	}{
		{"PutGet", putGet},
		{"Replace", replace},
		{"CreateOnce", createOnce},
		{"List", list},
		{"DeleteIdempotent", deleteIdempotent},
		{"GetMissing", getMissing},
		{"InvalidKeys", invalidKeys},
		{"ConcurrentPuts", concurrentPuts},
		{"CancelledUpload", cancelledUpload},
		{"URL", urlWorks},
		{"URLExpires", urlExpires},
		{"URLTampered", urlTampered},
		{"URLExpiryBounds", urlExpiryBounds},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.fn(t, newStore(t))
		})
	}
}

func ctxOf(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func read(t *testing.T, s storage.Store, key string) []byte {
	t.Helper()
	r, err := s.Get(ctxOf(t), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("Get(%q): read: %v", key, err)
	}
	return b
}

func put(t *testing.T, s storage.Store, key, body string) {
	t.Helper()
	if err := s.Put(ctxOf(t), key, strings.NewReader(body)); err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
}

func putGet(t *testing.T, s storage.Store) {
	for _, body := range []string{"", "x", strings.Repeat("screenshot", 10_000)} {
		put(t, s, "a/b/c.png", body)
		if got := read(t, s, "a/b/c.png"); string(got) != body {
			t.Fatalf("Get returned %d bytes, want the %d put", len(got), len(body))
		}
	}
}

func replace(t *testing.T, s storage.Store) {
	put(t, s, "r/file", "one")
	put(t, s, "r/file", "two")
	if got := read(t, s, "r/file"); string(got) != "two" {
		t.Fatalf("got %q, want the replacement", got)
	}
}

func createOnce(t *testing.T, s storage.Store) {
	ctx := ctxOf(t)
	if err := s.Create(ctx, "c/first.png", strings.NewReader("original")); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(ctx, "c/first.png", strings.NewReader("replacement")); !errors.Is(err, storage.ErrExists) {
		t.Fatalf("second Create: %v, want ErrExists", err)
	}
	if got := read(t, s, "c/first.png"); string(got) != "original" {
		t.Fatalf("stored %q after a refused Create, want the original", got)
	}
	// Larger than an S3 driver's part: a multipart upload, whose
	// completion must carry the condition too.
	if err := s.Create(ctx, "c/first.png", &genReader{n: 6 << 20, state: 3}); !errors.Is(err, storage.ErrExists) {
		t.Fatalf("second Create of 6 MiB: %v, want ErrExists", err)
	}
	if got := read(t, s, "c/first.png"); string(got) != "original" {
		t.Fatalf("stored %d bytes after a refused large Create, want the original", len(got))
	}
	if err := s.Create(ctx, "c/large", &genReader{n: 6 << 20, state: 3}); err != nil {
		t.Fatalf("Create of 6 MiB: %v", err)
	}
	if got := read(t, s, "c/large"); len(got) != 6<<20 {
		t.Fatalf("Create of 6 MiB stored %d bytes", len(got))
	}
	put(t, s, "c/put", "by put")
	if err := s.Create(ctx, "c/put", strings.NewReader("by create")); !errors.Is(err, storage.ErrExists) {
		t.Fatalf("Create over a Put file: %v, want ErrExists", err)
	}
	// Racing Creates: exactly one wins.
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins, exists := 0, 0
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.Create(ctx, "c/raced", strings.NewReader(fmt.Sprint("writer ", i)))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case errors.Is(err, storage.ErrExists):
				exists++
			default:
				t.Errorf("racing Create: %v", err)
			}
		}()
	}
	wg.Wait()
	if wins != 1 || exists != 7 {
		t.Fatalf("racing Creates: %d won and %d got ErrExists, want 1 and 7", wins, exists)
	}
}

func list(t *testing.T, s storage.Store) {
	ctx := ctxOf(t)
	before := time.Now().Add(-2 * time.Second) // S3 times have 1 s resolution; allow clock skew
	for _, k := range []string{"x/y/1", "x/y/2", "x/z/3", "x/yz", "xy/4", "other/5"} {
		put(t, s, k, k)
	}
	after := time.Now().Add(2 * time.Second)
	collect := func(prefix string) map[string]bool {
		t.Helper()
		got := map[string]bool{}
		if err := s.List(ctx, prefix, func(key string, mod time.Time) error {
			if mod.Before(before) || mod.After(after) {
				t.Errorf("List(%q): %s modified at %v, want between %v and %v", prefix, key, mod, before, after)
			}
			if got[key] {
				t.Errorf("List(%q): %s twice", prefix, key)
			}
			got[key] = true
			return nil
		}); err != nil {
			t.Fatalf("List(%q): %v", prefix, err)
		}
		return got
	}
	for _, c := range []struct {
		prefix string
		want   []string
	}{
		{"x/", []string{"x/y/1", "x/y/2", "x/z/3", "x/yz"}},
		{"x/y", []string{"x/y/1", "x/y/2", "x/yz"}},
		{"x/y/", []string{"x/y/1", "x/y/2"}},
		{"x", []string{"x/y/1", "x/y/2", "x/z/3", "x/yz", "xy/4"}},
		{"", []string{"x/y/1", "x/y/2", "x/z/3", "x/yz", "xy/4", "other/5"}},
		{"missing/", nil},
	} {
		got := collect(c.prefix)
		if len(got) != len(c.want) {
			t.Errorf("List(%q) = %v, want %v", c.prefix, keys(got), c.want)
			continue
		}
		for _, k := range c.want {
			if !got[k] {
				t.Errorf("List(%q) = %v, want %v", c.prefix, keys(got), c.want)
				break
			}
		}
	}
	stop := errors.New("stop")
	calls := 0
	if err := s.List(ctx, "x/", func(string, time.Time) error { calls++; return stop }); !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("List with a failing fn: %v after %d calls, want fn's error after 1", err, calls)
	}
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func deleteIdempotent(t *testing.T, s storage.Store) {
	ctx := ctxOf(t)
	put(t, s, "d/file", "x")
	for i := range 2 {
		if err := s.Delete(ctx, "d/file"); err != nil {
			t.Fatalf("Delete #%d: %v", i+1, err)
		}
	}
	if _, err := s.Get(ctx, "d/file"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Get after Delete: %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, "d/never-was"); err != nil {
		t.Fatalf("Delete of a missing key: %v", err)
	}
}

func getMissing(t *testing.T, s storage.Store) {
	if _, err := s.Get(ctxOf(t), "no/such/key"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Get of a missing key: %v, want ErrNotFound", err)
	}
}

func invalidKeys(t *testing.T, s storage.Store) {
	ctx := ctxOf(t)
	bad := []string{"", "/etc/passwd", "../x", "a/../../x", "a/./b", "a//b", "a/", `a\b`, "a\x00b", "a\nb",
		strings.Repeat("k/", storage.MaxKeyLen/2) + "k", strings.Repeat("k", storage.MaxKeySegmentLen+1), "\xff"}
	for _, k := range bad {
		if err := s.Put(ctx, k, strings.NewReader("x")); !errors.Is(err, storage.ErrBadKey) {
			t.Errorf("Put(%q): %v, want ErrBadKey", k, err)
		}
		if err := s.Create(ctx, k, strings.NewReader("x")); !errors.Is(err, storage.ErrBadKey) {
			t.Errorf("Create(%q): %v, want ErrBadKey", k, err)
		}
		if _, err := s.Get(ctx, k); !errors.Is(err, storage.ErrBadKey) {
			t.Errorf("Get(%q): %v, want ErrBadKey", k, err)
		}
		if err := s.Delete(ctx, k); !errors.Is(err, storage.ErrBadKey) {
			t.Errorf("Delete(%q): %v, want ErrBadKey", k, err)
		}
		if sg, ok := s.(storage.Signer); ok {
			if _, err := sg.URL(ctx, k, time.Minute); !errors.Is(err, storage.ErrBadKey) {
				t.Errorf("URL(%q): %v, want ErrBadKey", k, err)
			}
		}
	}
	long := strings.Repeat(strings.Repeat("k", storage.MaxKeySegmentLen)+"/", 3) + "end"
	put(t, s, long, "long key")
	if got := read(t, s, long); string(got) != "long key" {
		t.Fatalf("long key: got %q", got)
	}
}

func concurrentPuts(t *testing.T, s storage.Store) {
	const writers, size = 8, 1 << 20
	var wg sync.WaitGroup
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Put(ctxOf(t), "p/same", bytes.NewReader(bytes.Repeat([]byte{byte('a' + i)}, size))); err != nil {
				t.Errorf("Put #%d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	got := read(t, s, "p/same")
	if len(got) != size {
		t.Fatalf("after concurrent Puts: %d bytes, want %d", len(got), size)
	}
	if n := bytes.Count(got, got[:1]); n != size {
		t.Fatalf("after concurrent Puts: the file mixes writers (%d of %d bytes are %q)", n, size, got[:1])
	}
}

// genReader yields n pseudo-random bytes without holding them, counting
// what it gave, and calls at (once) when it has given atBytes.
type genReader struct {
	n, given, atBytes int64
	at                func()
	state             uint64
}

func (g *genReader) Read(p []byte) (int, error) {
	if g.given >= g.n {
		return 0, io.EOF
	}
	if g.at != nil && g.given >= g.atBytes {
		g.at()
		g.at = nil
	}
	p = p[:min(int64(len(p)), g.n-g.given)]
	for i := range p {
		g.state = g.state*6364136223846793005 + 1442695040888963407
		p[i] = byte(g.state >> 56)
	}
	g.given += int64(len(p))
	return len(p), nil
}

func large(t *testing.T, s storage.Store) {
	ctx := ctxOf(t)
	want := sha256.New()
	if _, err := io.Copy(want, &genReader{n: LargeSize, state: 1}); err != nil {
		t.Fatal(err)
	}
	src := &genReader{n: LargeSize, state: 1}
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	if err := s.Put(ctx, "big/object", src); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&m1)
	if src.given != LargeSize {
		t.Fatalf("the store read %d bytes of %d", src.given, LargeSize)
	}
	if alloc := m1.TotalAlloc - m0.TotalAlloc; alloc > maxLargeAlloc {
		t.Errorf("storing %d MiB allocated %d MiB: the driver buffers the object instead of streaming it", LargeSize>>20, alloc>>20)
	} else {
		t.Logf("storing %d MiB allocated %.1f MiB", LargeSize>>20, float64(alloc)/(1<<20))
	}
	r, err := s.Get(ctx, "big/object")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got := sha256.New()
	n, err := io.Copy(got, r)
	if err != nil {
		t.Fatal(err)
	}
	if n != LargeSize || !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
		t.Fatalf("read back %d bytes with a different hash, want the %d put", n, LargeSize)
	}
}

func cancelledUpload(t *testing.T, s storage.Store) {
	for _, create := range []bool{false, true} {
		ctx, cancel := context.WithCancel(ctxOf(t))
		// Cancel after 6 MiB: past an S3 driver's first 5 MiB part, so a
		// multipart upload is under way.
		src := &genReader{n: LargeSize, atBytes: 6 << 20, at: cancel, state: 2}
		key := fmt.Sprintf("cancel/%v", create)
		var err error
		if create {
			err = s.Create(ctx, key, src)
		} else {
			err = s.Put(ctx, key, src)
		}
		cancel()
		if err == nil {
			t.Fatalf("upload (create=%v) cancelled mid-way succeeded", create)
		}
		if _, err := s.Get(ctxOf(t), key); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("after a cancelled upload (create=%v), Get: %v, want ErrNotFound", create, err)
		}
	}
	if err := s.List(ctxOf(t), "cancel/", func(key string, _ time.Time) error {
		t.Errorf("List shows %s after cancelled uploads", key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func signer(t *testing.T, s storage.Store) storage.Signer {
	t.Helper()
	sg, ok := s.(storage.Signer)
	if !ok {
		t.Fatalf("%T does not implement storage.Signer", s)
	}
	return sg
}

func fetch(t *testing.T, u string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctxOf(t), http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	return resp.StatusCode, b
}

func urlWorks(t *testing.T, s storage.Store) {
	put(t, s, "u/file.png", "picture")
	u, err := signer(t, s).URL(ctxOf(t), "u/file.png", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if code, body := fetch(t, u); code != http.StatusOK || string(body) != "picture" {
		t.Fatalf("GET via URL: %d %q, want 200 \"picture\"", code, body)
	}
}

func urlExpires(t *testing.T, s storage.Store) {
	put(t, s, "u/soon", "gone soon")
	u, err := signer(t, s).URL(ctxOf(t), "u/soon", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2100 * time.Millisecond)
	if code, body := fetch(t, u); code != http.StatusForbidden {
		t.Fatalf("GET via an expired URL: %d %q, want 403", code, body)
	}
}

func urlTampered(t *testing.T, s storage.Store) {
	put(t, s, "u/secret", "secret")
	put(t, s, "u/other", "other")
	sg := signer(t, s)
	u, err := sg.URL(ctxOf(t), "u/secret", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	missing, err := sg.URL(ctxOf(t), "u/missing", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(s string) string { // change the last character of the signature
		last := s[len(s)-1]
		if last == 'A' {
			return s[:len(s)-1] + "B"
		}
		return s[:len(s)-1] + "A"
	}
	for name, tampered := range map[string]string{
		"signature":                  flip(u),
		"key":                        strings.Replace(u, "secret", "other", 1),
		"signature of a missing key": flip(missing),
	} {
		if tampered == u {
			t.Fatalf("%s: tampering changed nothing", name)
		}
		if code, body := fetch(t, tampered); code != http.StatusForbidden {
			t.Errorf("GET via a URL with a tampered %s: %d %q, want 403", name, code, body)
		}
	}
}

func urlExpiryBounds(t *testing.T, s storage.Store) {
	sg := signer(t, s)
	for _, d := range []time.Duration{0, -time.Second, storage.MaxURLExpiry + time.Second} {
		if _, err := sg.URL(ctxOf(t), "u/x", d); err == nil {
			t.Errorf("URL with expiry %v accepted", d)
		}
	}
	if _, err := sg.URL(ctxOf(t), "u/x", storage.MaxURLExpiry); err != nil {
		t.Errorf("URL with the maximum expiry: %v", err)
	}
}
