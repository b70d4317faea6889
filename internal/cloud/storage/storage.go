// Package storage keeps files (screenshots, later exports and photos)
// behind one interface, so that the services do not care whether they live
// on a local disk or in S3-compatible object storage. Local is the driver
// for one machine and for tests; S3 the driver for AWS S3, MinIO, SeaweedFS
// and other S3-compatible stores. Both hand out download URLs that expire
// (Signer).
package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"
)

// ErrNotFound means no file exists at the key.
var ErrNotFound = errors.New("storage: not found")

// ErrExists means a file already exists at the key (Create never replaces
// one).
var ErrExists = errors.New("storage: file exists")

// Store keeps files by key (a slash-separated relative path).
type Store interface {
	// Put stores r at key, replacing any file there. It returns only once
	// the file is complete and durable; a reader never sees half a file.
	Put(ctx context.Context, key string, r io.Reader) error
	// Create stores r at key only if no file is there: write-once. It
	// returns ErrExists, and leaves the stored bytes alone, when one is. It
	// returns only once the file is complete and durable.
	Create(ctx context.Context, key string, r io.Reader) error
	// List calls fn with every file whose key starts with prefix and its
	// last modification time, in no particular order; an error from fn
	// stops the walk and is returned.
	List(ctx context.Context, prefix string, fn func(key string, modTime time.Time) error) error
	// Get opens the file at key.
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// Delete removes the file at key; a missing file is not an error.
	Delete(ctx context.Context, key string) error
}

// MaxKeyLen bounds a key's length in bytes (S3's own limit is 1024).
const MaxKeyLen = 1024

// MaxKeySegmentLen bounds one slash-separated segment of a key in bytes (a
// file name's limit on common file systems).
const MaxKeySegmentLen = 255

// CheckKey reports whether key is a valid store key: a non-empty relative
// slash-separated path of at most MaxKeyLen bytes of UTF-8 without control
// characters, backslashes, or empty, "." or ".." segments, or segments
// longer than MaxKeySegmentLen. Every driver
// refuses other keys with an error wrapping ErrBadKey.
func CheckKey(key string) error {
	if key == "" || len(key) > MaxKeyLen || !utf8.ValidString(key) {
		return fmt.Errorf("%w %q", ErrBadKey, key)
	}
	for _, c := range key {
		if c < 0x20 || c == 0x7f || c == '\\' {
			return fmt.Errorf("%w %q", ErrBadKey, key)
		}
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "" || seg == "." || seg == ".." || len(seg) > MaxKeySegmentLen {
			return fmt.Errorf("%w %q", ErrBadKey, key)
		}
	}
	return nil
}

// ErrBadKey means a key is not a valid store key (see CheckKey).
var ErrBadKey = errors.New("storage: bad key")

// Local stores files under a directory.
type Local struct {
	root string
	urls *localURLs
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
	if err := CheckKey(key); err != nil {
		return "", err
	}
	return filepath.Join(l.root, filepath.FromSlash(key)), nil
}

// Put writes to a temporary file, syncs it and renames it into place.
func (l *Local) Put(ctx context.Context, key string, r io.Reader) error {
	return l.write(ctx, key, r, func(tmp, p string) error {
		if err := os.Rename(tmp, p); err != nil {
			return fmt.Errorf("storage: rename %s: %w", key, err)
		}
		return nil
	})
}

// Create writes to a temporary file, syncs it and hard-links it into place:
// the link fails if a file is already there, so that an existing file is
// never replaced, even by a concurrent Create.
func (l *Local) Create(ctx context.Context, key string, r io.Reader) error {
	return l.write(ctx, key, r, func(tmp, p string) error {
		if err := os.Link(tmp, p); err != nil {
			if errors.Is(err, os.ErrExist) {
				return ErrExists
			}
			return fmt.Errorf("storage: link %s: %w", key, err)
		}
		return syncDir(filepath.Dir(p))
	})
}

// write copies r to a synced temporary file next to key's path and calls
// place to move it there.
func (l *Local) write(ctx context.Context, key string, r io.Reader, place func(tmp, p string) error) error {
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
	if _, err := io.Copy(f, ctxReader{ctx, r}); err != nil {
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
	return place(f.Name(), p)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("storage: sync %s: %w", dir, err)
	}
	return nil
}

// List walks the directory of prefix (up to its last slash) and reports the
// files whose keys start with prefix; temporary files of writes in progress
// are skipped.
func (l *Local) List(ctx context.Context, prefix string, fn func(key string, modTime time.Time) error) error {
	dir := l.root
	if i := strings.LastIndex(prefix, "/"); i > 0 {
		p, err := l.path(prefix[:i])
		if err != nil {
			return err
		}
		dir = p
	}
	err := filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if de.IsDir() || strings.HasPrefix(de.Name(), ".put-") {
			return nil
		}
		rel, err := filepath.Rel(l.root, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if !strings.HasPrefix(key, prefix) {
			return nil
		}
		info, err := de.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed meanwhile
		}
		if err != nil {
			return err
		}
		return fn(key, info.ModTime())
	})
	if err != nil {
		return fmt.Errorf("storage: list %s: %w", prefix, err)
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

// ctxReader stops a copy once its context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
