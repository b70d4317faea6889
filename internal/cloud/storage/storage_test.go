package storage

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
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
