package storage

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

func TestLocalPutGetDelete(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, err := NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "a/b/c.png", strings.NewReader("one")); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "a/b/c.png", strings.NewReader("two")); err != nil {
		t.Fatal(err)
	}
	r, err := s.Get(ctx, "a/b/c.png")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r)
	r.Close()
	if string(b) != "two" {
		t.Fatalf("got %q, want the replacement", b)
	}
	if err := s.Delete(ctx, "a/b/c.png"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "a/b/c.png"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
	if err := s.Delete(ctx, "a/b/c.png"); err != nil {
		t.Fatalf("deleting a missing file: %v", err)
	}
	for _, bad := range []string{"", "/etc/passwd", "../x", "a/../../x", `a\b`} {
		if err := s.Put(ctx, bad, strings.NewReader("x")); err == nil {
			t.Errorf("Put(%q) accepted a key outside the store", bad)
		}
	}
}

func TestLocalCreateIsWriteOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, err := NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Create(ctx, "x/y/first.png", strings.NewReader("original")); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(ctx, "x/y/first.png", strings.NewReader("replacement")); !errors.Is(err, ErrExists) {
		t.Fatalf("second Create: %v, want ErrExists", err)
	}
	r, err := s.Get(ctx, "x/y/first.png")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r)
	r.Close()
	if string(b) != "original" {
		t.Fatalf("stored %q after a refused Create, want the original", b)
	}
	if err := s.Create(ctx, "x/z/second.png", strings.NewReader("2")); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "other/third.png", strings.NewReader("3")); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	if err := s.List(ctx, "x/", func(key string, mod time.Time) error {
		if mod.IsZero() {
			t.Errorf("%s: no modification time", key)
		}
		got[key] = true
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !got["x/y/first.png"] || !got["x/z/second.png"] {
		t.Fatalf("List(x/) = %v, want the two files under x/ and no temporary file", got)
	}
	if err := s.List(ctx, "missing/", func(string, time.Time) error { t.Error("called for a missing prefix"); return nil }); err != nil {
		t.Fatalf("List of a missing prefix: %v", err)
	}
}
