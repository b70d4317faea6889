// Package storage keeps files (screenshots, later exports and photos)
// behind one interface, so that the services do not care whether they live
// on a local disk or in S3-compatible object storage. Local is the driver
// for one machine and for tests.
package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// ErrNotFound means no file exists at the key.
var ErrNotFound = errors.New("storage: not found")

// Store keeps files by key (a slash-separated relative path).
type Store interface {
	// Put stores r at key, replacing any file there. It returns only once
	// the file is complete and durable; a reader never sees half a file.
	Put(ctx context.Context, key string, r io.Reader) error
	// Get opens the file at key.
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// Delete removes the file at key; a missing file is not an error.
	Delete(ctx context.Context, key string) error
}

// Local stores files under a directory.
type Local struct {
	root string
}

// NewLocal returns a Local store rooted at dir, creating it if needed.
func NewLocal(dir string) (*Local, error) {
	if dir == "" {
		return nil, errors.New("storage: local directory is empty")
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	return &Local{root: dir}, nil
}

func (l *Local) path(key string) (string, error) {
	if key == "" || strings.HasPrefix(key, "/") || strings.Contains(key, "\\") {
		return "", fmt.Errorf("storage: bad key %q", key)
	}
	clean := filepath.Clean(filepath.FromSlash(key))
	if clean == "." || strings.HasPrefix(clean, "..") {
		return "", fmt.Errorf("storage: bad key %q", key)
	}
	return filepath.Join(l.root, clean), nil
}

// Put writes to a temporary file, syncs it and renames it into place.
func (l *Local) Put(ctx context.Context, key string, r io.Reader) error {
	p, err := l.path(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(p), ".put-*")
	if err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	defer os.Remove(f.Name())
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return fmt.Errorf("storage: write %s: %w", key, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("storage: sync %s: %w", key, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("storage: close %s: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), p); err != nil {
		return fmt.Errorf("storage: rename %s: %w", key, err)
	}
	return nil
}

// Get opens the file at key.
func (l *Local) Get(_ context.Context, key string) (io.ReadCloser, error) {
	p, err := l.path(key)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNotFound
	}
	return f, err
}

// Delete removes the file at key.
func (l *Local) Delete(_ context.Context, key string) error {
	p, err := l.path(key)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("storage: delete %s: %w", key, err)
	}
	return nil
}
