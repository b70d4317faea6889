//go:build linux

// Package lazyfs is a FUSE loopback filesystem that simulates power loss, in
// the spirit of LazyFS (github.com/dsrhaslab/lazyfs): it mirrors an
// underlying directory, but file data written through it is held in memory
// until the file is fsynced or fdatasynced. Only then is it written to the
// underlying file, and the underlying file fsynced. Crash (or PowerOff, at
// an instant while processes still run, then PowerOn) discards every write
// that was not synced, so that the underlying directory is then exactly
// what a power cut would have left behind.
//
// The model:
//
//   - Data: a write is cached in 4 KiB pages keyed by the underlying inode,
//     so every handle of a file (and every hard link) shares it. Reads,
//     getattr and statx (the size) see the cached data on top of the
//     underlying file. Writes past the end grow the cached file; the
//     underlying file keeps its old size until a sync. fsync and fdatasync
//     behave alike: both write the file's cached pages and its size.
//   - Metadata: create, mkdir, rename, unlink, link, chmod, utimes and
//     truncate/ftruncate go to the underlying directory at once, as if
//     every metadata change were journaled and durable immediately. This is
//     a limitation: it is weaker than a real filesystem (ext4, say) in that
//     direction only (a missing directory fsync after a rename is not
//     caught, and a file renamed into place before its data was synced
//     survives as a name with its old, possibly empty, contents). It is
//     still a strict check of data durability: a byte that was not synced
//     is lost at a crash, always.
//   - Timestamps of the underlying files do not reflect cached writes.
//   - A crash drops whole unsynced writes; it does not tear or reorder
//     them, nor corrupt synced data.
//   - The underlying directory must be a single filesystem (data is keyed
//     by inode number), and must not be changed behind the mount's back
//     while data is cached.
//
// Kernel caches: entry and attribute timeouts are zero, and the page cache
// is write-through (go-fuse does not ask for the kernel's writeback
// cache), so every write(2) reaches the filesystem before it returns.
// PowerOn (and so Crash) invalidates the kernel's cached pages of every
// file it knows, and opening a file drops them too, so that nothing read
// after a crash comes from before it. Shared writable mmap works (SQLite's
// -shm index): the kernel writes its dirty pages to the filesystem at the
// latest when the file is closed, which happens before a killed process is
// reaped; like any write they are lost at a crash unless fsynced.
//
// The instant of a power cut: Crash and PowerOff wait for a sync that is
// already writing its data back (that data is then durable), and a sync
// that has not begun writing back yet (it is waiting out
// Options.SyncDelay) fails with EIO and keeps nothing.
//
// POSIX advisory locks (fcntl, used by SQLite) and flock are left to the
// kernel, which handles them locally for a FUSE mount that does not
// implement locking: they work between processes of this host, which is
// all a loopback test needs. O_TMPFILE is not supported (EOPNOTSUPP).
//
// A process must not access a mount served by itself through mmap: a page
// fault that waits for this process's own FUSE server can deadlock the Go
// runtime. Plain system calls (open, read, write, stat) are safe.
package lazyfs

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// pageSize is the granularity of the data cache.
const pageSize = 4096

// unmountWait bounds how long Unmount waits for the server to finish after
// a forced unmount.
const unmountWait = 10 * time.Second

// Options configures Mount. The zero value is usable.
type Options struct {
	// Logger receives diagnostics (write-back errors, go-fuse's own
	// messages); nil discards them.
	Logger *slog.Logger
	// Debug logs every FUSE request (very verbose) to Logger.
	Debug bool
	// SyncDelay is added to every fsync of a file with cached data, before
	// the data is written back, like a slow disk. It widens the window in
	// which a crash finds data written but not yet synced.
	SyncDelay time.Duration
}

// Stats are the filesystem's counters, for test assertions.
type Stats struct {
	// BytesCached is the data held in memory and not yet synced, in whole
	// pages.
	BytesCached int64
	// FilesCached is the number of files with unsynced data.
	FilesCached int
	// Fsyncs counts fsync and fdatasync calls served.
	Fsyncs int64
	// BytesSynced is the data written to underlying files by syncs, in
	// whole pages.
	BytesSynced int64
	// Crashes counts power cuts (PowerOff and Crash calls).
	Crashes int
	// LastCrashDropped is the data the last power cut discarded, in whole
	// pages.
	LastCrashDropped int64
	// TotalDropped is the data discarded by all crashes, in whole pages.
	TotalDropped int64
}

// CrashReport says what a power cut (Crash, PowerOff) discarded.
type CrashReport struct {
	// Bytes is the unsynced data discarded, in whole pages.
	Bytes int64
	// Files maps each file that lost data (its path relative to the mount
	// when it was last opened) to the bytes it lost.
	Files map[string]int64
}

// FS is a mounted lazy filesystem. Its methods are safe for concurrent use;
// they must not be called from a goroutine that is itself blocked on an
// operation of the mount.
type FS struct {
	dir        string
	underlying string
	log        *slog.Logger
	server     *fuse.Server
	root       *node
	syncDelay  time.Duration

	off   atomic.Bool // between PowerOff and PowerOn
	mu    sync.Mutex
	files map[uint64]*fileData // by underlying inode number
	stats Stats

	unmountOnce sync.Once
	unmountErr  error
}

// Mount mounts a lazy view of the directory underlying on dir (an existing
// directory) and serves it from this process until Unmount. As root it
// mounts with mount(2) directly; otherwise go-fuse's fusermount helper must
// be installed. The error wraps the mount's own (errors.Is(err,
// os.ErrPermission) when mount(2) refused).
func Mount(dir, underlying string, opts Options) (*FS, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	absDir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("lazyfs: mount point %s: %w", dir, err)
	}
	absUnder, err := filepath.Abs(underlying)
	if err != nil {
		return nil, fmt.Errorf("lazyfs: underlying directory %s: %w", underlying, err)
	}
	if fi, err := os.Stat(absUnder); err != nil {
		return nil, fmt.Errorf("lazyfs: underlying directory: %w", err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("lazyfs: underlying %s is not a directory", absUnder)
	}
	f := &FS{dir: absDir, underlying: absUnder, log: log, syncDelay: opts.SyncDelay, files: map[uint64]*fileData{}}
	lroot, err := fs.NewLoopbackRoot(absUnder)
	if err != nil {
		return nil, fmt.Errorf("lazyfs: loopback root %s: %w", absUnder, err)
	}
	ln := lroot.(*fs.LoopbackNode)
	root := &node{LoopbackNode: ln, lfs: f}
	ln.RootData.RootNode = root
	zero := time.Duration(0)
	fopts := &fs.Options{
		EntryTimeout:    &zero,
		AttrTimeout:     &zero,
		NegativeTimeout: &zero,
		Logger:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		MountOptions: fuse.MountOptions{
			FsName:      "lazyfs",
			Name:        "lazyfs",
			DirectMount: os.Geteuid() == 0,
			// The kernel stops asking for security.capability on every
			// write once xattrs answer ENOSYS.
			DisableXAttrs: true,
			Debug:         opts.Debug,
			Logger:        slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		},
	}
	server, err := fs.Mount(absDir, root, fopts)
	if err != nil {
		return nil, fmt.Errorf("lazyfs: mount %s on %s: %w", absUnder, absDir, err)
	}
	f.server = server
	f.root = root
	log.Debug("lazyfs mounted", "dir", absDir, "underlying", absUnder)
	return f, nil
}

// Dir is the mount point.
func (f *FS) Dir() string { return f.dir }

// Underlying is the mirrored directory: after Crash it holds what a power
// cut would have left.
func (f *FS) Underlying() string { return f.underlying }

// Unmount unmounts the filesystem and stops serving it. If the mount is
// busy (files still open on it), it aborts the FUSE connection (a forced
// unmount: pending and later operations on the mount fail, so no process
// stays blocked on it), detaches the mount point and waits (bounded) for
// the server to finish. Unsynced data is discarded, as by Crash. Calling it
// again returns the first call's result.
func (f *FS) Unmount() error {
	f.unmountOnce.Do(func() {
		err := f.server.Unmount()
		if err != nil {
			f.log.Warn("lazyfs: unmount failed; forcing it", "dir", f.dir, "err", err)
			// MNT_FORCE aborts a FUSE connection even when the unmount
			// itself still fails; MNT_DETACH then frees the mount point.
			ferr := syscall.Unmount(f.dir, syscall.MNT_FORCE)
			if ferr != nil {
				if derr := syscall.Unmount(f.dir, syscall.MNT_DETACH); derr != nil {
					f.unmountErr = fmt.Errorf("lazyfs: unmount %s: %w (forced: %w; lazy: %w)", f.dir, err, ferr, derr)
					return
				}
			}
			done := make(chan struct{})
			go func() { f.server.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(unmountWait):
				f.unmountErr = fmt.Errorf("lazyfs: %s unmounted by force, but the server still runs after %s: %w", f.dir, unmountWait, err)
			}
		}
		f.mu.Lock()
		for ino, d := range f.files {
			d.mu.Lock()
			d.discardLocked()
			d.mu.Unlock()
			delete(f.files, ino)
		}
		f.mu.Unlock()
	})
	return f.unmountErr
}

// PowerOff cuts the power at this instant: every write not yet synced is
// discarded, and the underlying directory is left as a power cut would
// have left it. Until PowerOn, every operation that reads or changes data
// or the directory fails with EIO and reaches nothing: a process still
// running (to be killed next) cannot make anything durable any more, not
// even by an fsync that was in flight at the cut (it waits out SyncDelay,
// then fails).
func (f *FS) PowerOff() CrashReport {
	f.off.Store(true)
	f.mu.Lock()
	defer f.mu.Unlock()
	rep := CrashReport{Files: map[string]int64{}}
	for ino, d := range f.files {
		d.mu.Lock()
		if n := d.discardLocked(); n > 0 {
			rep.Bytes += n
			rep.Files[d.name] += n
		}
		d.mu.Unlock()
		if d.handles == 0 {
			delete(f.files, ino)
		}
	}
	f.stats.Crashes++
	f.stats.LastCrashDropped = rep.Bytes
	f.stats.TotalDropped += rep.Bytes
	f.log.Debug("lazyfs: power off", "dropped_bytes", rep.Bytes, "files", len(rep.Files))
	return rep
}

// PowerOn ends a PowerOff: the filesystem serves the underlying directory
// again, as the cut left it, and the kernel's cached pages of every file
// are invalidated. Processes that used the mount should be gone (killed and
// reaped) before; handles still open remain usable.
func (f *FS) PowerOn() {
	f.invalidate(f.root.EmbeddedInode())
	f.off.Store(false)
}

// Crash is a power cut with nothing running on the mount: PowerOff, then
// PowerOn. It returns what was discarded.
func (f *FS) Crash() CrashReport {
	rep := f.PowerOff()
	f.PowerOn()
	return rep
}

// powered reports whether the filesystem serves; EIO otherwise.
func (f *FS) powered() syscall.Errno {
	if f.off.Load() {
		return syscall.EIO
	}
	return 0
}

// invalidate drops the kernel's cached pages and attributes of the regular
// files under dir that the kernel knows.
func (f *FS) invalidate(dir *fs.Inode) {
	for _, ch := range dir.Children() {
		switch {
		case ch.IsDir():
			f.invalidate(ch)
		case ch.Mode()&syscall.S_IFMT == syscall.S_IFREG:
			// ENOENT: the kernel has forgotten the inode meanwhile.
			if errno := ch.NotifyContent(0, 0); errno != 0 && errno != syscall.ENOENT {
				f.log.Warn("lazyfs: invalidate the kernel's cache", "ino", ch.StableAttr().Ino, "err", errno)
			}
		}
	}
}

// Stats returns the counters.
func (f *FS) Stats() Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.stats
	for _, d := range f.files {
		d.mu.Lock()
		if d.dirty {
			st.FilesCached++
			st.BytesCached += int64(len(d.pages)) * pageSize
		}
		d.mu.Unlock()
	}
	return st
}

// Unsynced returns the files with data not yet synced (paths relative to
// the mount, as last opened) and how much each holds, in whole pages: what
// a power cut now would discard.
func (f *FS) Unsynced() map[string]int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]int64{}
	for _, d := range f.files {
		d.mu.Lock()
		if d.dirty && len(d.pages) > 0 {
			out[d.name] += int64(len(d.pages)) * pageSize
		}
		d.mu.Unlock()
	}
	return out
}

// acquire returns the file data of inode ino, opened as name, creating it,
// and counts one more handle on it.
func (f *FS) acquire(ino uint64, name string) *fileData {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.files[ino]
	if d == nil {
		d = newFileData(ino)
		f.files[ino] = d
	}
	d.handles++
	d.name = name
	return d
}

// release counts one handle less on d and forgets d when nothing refers to
// it any more: no handle and no unsynced data, or its file was deleted.
func (f *FS) release(d *fileData) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d.handles--
	if d.handles > 0 {
		return
	}
	d.mu.Lock()
	forget := d.orphan || !d.dirty
	if d.orphan {
		d.discardLocked()
	}
	d.mu.Unlock()
	if forget && f.files[d.ino] == d {
		delete(f.files, d.ino)
	}
}

// lookup returns the file data of inode ino, or nil.
func (f *FS) lookup(ino uint64) *fileData {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.files[ino]
}

// cachedSize returns the size of inode ino as seen through the mount when
// it differs from the underlying file's (unsynced data).
func (f *FS) cachedSize(ino uint64) (int64, bool) {
	d := f.lookup(ino)
	if d == nil {
		return 0, false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.size, d.dirty
}

// unlinked is called when the last name of inode ino went away (unlink, or
// rename over it): its unsynced data dies with it once no handle is left.
func (f *FS) unlinked(ino uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.files[ino]
	if d == nil {
		return
	}
	d.orphan = true
	if d.handles == 0 {
		d.mu.Lock()
		d.discardLocked()
		d.mu.Unlock()
		delete(f.files, ino)
	}
}

// synced records one fsync that wrote n bytes.
func (f *FS) synced(n int64) {
	f.mu.Lock()
	f.stats.Fsyncs++
	f.stats.BytesSynced += n
	f.mu.Unlock()
}

// logError logs a failed write or write-back.
func (f *FS) logError(ctx context.Context, msg string, args ...any) {
	f.log.ErrorContext(ctx, msg, args...)
}
