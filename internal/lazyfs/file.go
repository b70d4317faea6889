//go:build linux

package lazyfs

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// maxRunPages bounds one pwrite of contiguous cached pages at a sync.
const maxRunPages = 256

// powerOffError fails an fsync that was in flight when the power went off.
type powerOffError struct{}

// Error implements error.
func (powerOffError) Error() string { return "lazyfs: the power went off" }

// fileData is the cache of one underlying inode, shared by all its handles.
//
// Invariants while dirty: the underlying file is never longer than size
// (truncate applies to both at once, writes only grow size, a sync makes
// them equal); bytes of a cached page beyond size are zero; a page that
// is not cached reads as the underlying file (zeros past its end).
type fileData struct {
	ino uint64

	// handles, orphan and name are guarded by FS.mu.
	handles int    // open handles
	orphan  bool   // the file's last name is gone
	name    string // path relative to the mount when last opened

	mu    sync.Mutex
	dirty bool                      // unsynced data (pages or size)
	size  int64                     // size seen through the mount, when dirty
	pages map[int64]*[pageSize]byte // by page index, when dirty
	// wfd is a writable descriptor of the underlying file, duplicated at
	// the first unsynced write, so that a sync through any handle (or
	// after the writer closed its handle) can write the pages back.
	wfd int
}

func newFileData(ino uint64) *fileData { return &fileData{ino: ino, wfd: -1} }

// discardLocked drops the unsynced data and returns its size in whole
// pages. d.mu must be held.
func (d *fileData) discardLocked() int64 {
	n := int64(len(d.pages)) * pageSize
	d.pages = nil
	d.dirty = false
	d.size = 0
	if d.wfd >= 0 {
		syscall.Close(d.wfd)
		d.wfd = -1
	}
	return n
}

// dupCloexec duplicates fd with close-on-exec set, so that processes
// started by the serving process do not inherit it.
func dupCloexec(fd int) (int, error) {
	r, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_DUPFD_CLOEXEC, 0)
	if errno != 0 {
		return -1, errno
	}
	return int(r), nil
}

// preadFull reads into buf at off until buf is full or the file ends and
// returns the bytes read.
func preadFull(fd int, buf []byte, off int64) (int, error) {
	got := 0
	for got < len(buf) {
		n, err := syscall.Pread(fd, buf[got:], off+int64(got))
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return got, fmt.Errorf("pread at %d: %w", off+int64(got), err)
		}
		if n == 0 {
			break
		}
		got += n
	}
	return got, nil
}

// pwriteFull writes all of buf at off.
func pwriteFull(fd int, buf []byte, off int64) error {
	for len(buf) > 0 {
		n, err := syscall.Pwrite(fd, buf, off)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("pwrite at %d: %w", off, err)
		}
		buf = buf[n:]
		off += int64(n)
	}
	return nil
}

// write caches p at off; fd is the writer's underlying descriptor.
func (d *fileData) write(fd int, p []byte, off int64) error {
	if off < 0 {
		return syscall.EINVAL
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.dirty {
		var st syscall.Stat_t
		if err := syscall.Fstat(fd, &st); err != nil {
			return fmt.Errorf("fstat: %w", err)
		}
		wfd, err := dupCloexec(fd)
		if err != nil {
			return fmt.Errorf("dup: %w", err)
		}
		d.dirty, d.size, d.wfd, d.pages = true, st.Size, wfd, map[int64]*[pageSize]byte{}
	}
	end := off + int64(len(p))
	for pos := off; pos < end; {
		idx := pos / pageSize
		start := idx * pageSize
		pg := d.pages[idx]
		if pg == nil {
			pg = new([pageSize]byte)
			if off > start || end < start+pageSize {
				// A partial page: start from the underlying content.
				if _, err := preadFull(d.wfd, pg[:], start); err != nil {
					return err
				}
			}
			d.pages[idx] = pg
		}
		pos += int64(copy(pg[pos-start:], p[pos-off:]))
	}
	d.size = max(d.size, end)
	return nil
}

// read fills buf from off: the underlying file with the cached pages on
// top. fd is the reader's underlying descriptor.
func (d *fileData) read(fd int, buf []byte, off int64) (int, error) {
	if off < 0 {
		return 0, syscall.EINVAL
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.dirty {
		return preadFull(fd, buf, off)
	}
	if off >= d.size {
		return 0, nil
	}
	n := min(int64(len(buf)), d.size-off)
	buf = buf[:n]
	got, err := preadFull(fd, buf, off)
	if err != nil {
		return 0, err
	}
	clear(buf[got:])
	for idx := off / pageSize; idx*pageSize < off+n; idx++ {
		pg := d.pages[idx]
		if pg == nil {
			continue
		}
		start := idx * pageSize
		lo, hi := max(off, start), min(off+n, start+pageSize)
		copy(buf[lo-off:hi-off], pg[lo-start:hi-start])
	}
	return int(n), nil
}

// truncateLocked applies a truncate to the cache (the caller truncates the
// underlying file). d.mu must be held.
func (d *fileData) truncateLocked(size int64) {
	if !d.dirty {
		return
	}
	for idx := range d.pages {
		if idx*pageSize >= size {
			delete(d.pages, idx)
		}
	}
	if rem := size % pageSize; rem != 0 {
		if pg := d.pages[size/pageSize]; pg != nil {
			clear(pg[rem:])
		}
	}
	d.size = size
}

// sync writes the cached pages and size to the underlying file, fsyncs it
// and returns the bytes written (whole pages). When there is something to
// write it waits delay first, and then fails with EIO if the power went off
// meanwhile. On error the data stays cached.
func (d *fileData) sync(delay time.Duration, off *atomic.Bool) (int64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.dirty {
		return 0, nil
	}
	if delay > 0 {
		time.Sleep(delay)
	}
	if off.Load() {
		return 0, powerOffError{}
	}
	idxs := make([]int64, 0, len(d.pages))
	for idx := range d.pages {
		idxs = append(idxs, idx)
	}
	slices.Sort(idxs)
	var run []byte
	for i := 0; i < len(idxs); {
		j := i
		for j+1 < len(idxs) && idxs[j+1] == idxs[j]+1 && j+1-i < maxRunPages {
			j++
		}
		start := idxs[i] * pageSize
		end := min((idxs[j]+1)*pageSize, d.size)
		if end > start {
			run = run[:0]
			for k := i; k <= j; k++ {
				run = append(run, d.pages[idxs[k]][:]...)
			}
			if err := pwriteFull(d.wfd, run[:end-start], start); err != nil {
				return 0, err
			}
		}
		i = j + 1
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(d.wfd, &st); err != nil {
		return 0, fmt.Errorf("fstat: %w", err)
	}
	if st.Size != d.size {
		if err := syscall.Ftruncate(d.wfd, d.size); err != nil {
			return 0, fmt.Errorf("ftruncate to %d: %w", d.size, err)
		}
	}
	if err := syscall.Fsync(d.wfd); err != nil {
		return 0, fmt.Errorf("fsync: %w", err)
	}
	return d.discardLocked(), nil
}

// handle is an open file of the mount: an underlying descriptor plus the
// inode's shared cache.
type handle struct {
	lfs *FS
	lf  *fs.LoopbackFile // owns fd
	fd  int
	d   *fileData
	// syncWrites is set for O_SYNC and O_DSYNC opens: every write is
	// synced before it returns.
	syncWrites bool
}

var (
	_ = (fs.FileReader)((*handle)(nil))
	_ = (fs.FileWriter)((*handle)(nil))
	_ = (fs.FileWritever)((*handle)(nil))
	_ = (fs.FileFsyncer)((*handle)(nil))
	_ = (fs.FileFlusher)((*handle)(nil))
	_ = (fs.FileReleaser)((*handle)(nil))
)

// toErrno maps an error to the errno returned to the kernel.
func toErrno(err error) syscall.Errno {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return syscall.EIO
}

// Read implements fs.FileReader.
func (h *handle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if errno := h.lfs.powered(); errno != 0 {
		return nil, errno
	}
	n, err := h.d.read(h.fd, dest, off)
	if err != nil {
		return nil, toErrno(err)
	}
	return fuse.ReadResultData(dest[:n]), 0
}

// Write implements fs.FileWriter: the data is cached, not written.
func (h *handle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	if errno := h.lfs.powered(); errno != 0 {
		return 0, errno
	}
	if err := h.d.write(h.fd, data, off); err != nil {
		h.lfs.logError(ctx, "lazyfs: write", "ino", h.d.ino, "off", off, "err", err)
		return 0, toErrno(err)
	}
	if h.syncWrites {
		if errno := h.Fsync(ctx, 0); errno != 0 {
			return 0, errno
		}
	}
	return uint32(len(data)), 0
}

// Writev implements fs.FileWritever.
func (h *handle) Writev(ctx context.Context, data [][]byte, off int64) (uint32, syscall.Errno) {
	if len(data) == 1 {
		return h.Write(ctx, data[0], off)
	}
	return h.Write(ctx, slices.Concat(data...), off)
}

// Fsync implements fs.FileFsyncer: the cached data of the file is written
// to the underlying file, which is then fsynced.
func (h *handle) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	if errno := h.lfs.powered(); errno != 0 {
		return errno
	}
	n, err := h.d.sync(h.lfs.syncDelay, &h.lfs.off)
	if errors.As(err, new(powerOffError)) {
		return syscall.EIO
	}
	if err != nil {
		h.lfs.logError(ctx, "lazyfs: write-back at fsync failed; the data stays cached", "ino", h.d.ino, "err", err)
		return toErrno(err)
	}
	h.lfs.synced(n)
	return 0
}

// Flush implements fs.FileFlusher (close(2)); it does not sync.
func (h *handle) Flush(ctx context.Context) syscall.Errno { return h.lf.Flush(ctx) }

// Release implements fs.FileReleaser.
func (h *handle) Release(ctx context.Context) syscall.Errno {
	h.lfs.release(h.d)
	return h.lf.Release(ctx)
}
