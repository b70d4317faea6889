//go:build linux

package lazyfs

import (
	"context"
	"path/filepath"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// node is a loopback node whose files cache their data (see handle); the
// other operations are go-fuse's loopback ones, applied at once. While the
// power is off, every operation that changes something fails with EIO.
type node struct {
	*fs.LoopbackNode
	lfs *FS
}

var (
	_ = (fs.NodeWrapChilder)((*node)(nil))
	_ = (fs.NodeLookuper)((*node)(nil))
	_ = (fs.NodeCreater)((*node)(nil))
	_ = (fs.NodeOpener)((*node)(nil))
	_ = (fs.NodeGetattrer)((*node)(nil))
	_ = (fs.NodeStatxer)((*node)(nil))
	_ = (fs.NodeSetattrer)((*node)(nil))
	_ = (fs.NodeUnlinker)((*node)(nil))
	_ = (fs.NodeRenamer)((*node)(nil))
	_ = (fs.NodeLinker)((*node)(nil))
	_ = (fs.NodeTmpfiler)((*node)(nil))
	_ = (fs.NodeMkdirer)((*node)(nil))
	_ = (fs.NodeRmdirer)((*node)(nil))
	_ = (fs.NodeMknoder)((*node)(nil))
	_ = (fs.NodeSymlinker)((*node)(nil))
)

// WrapChild implements fs.NodeWrapChilder: every node of the tree is a
// lazy one.
func (n *node) WrapChild(ctx context.Context, ops fs.InodeEmbedder) fs.InodeEmbedder {
	if ln, ok := ops.(*fs.LoopbackNode); ok {
		return &node{LoopbackNode: ln, lfs: n.lfs}
	}
	return ops
}

// underlyingPath is the node's path in the underlying directory.
func (n *node) underlyingPath() string {
	return filepath.Join(n.RootData.Path, n.Path(n.Root()))
}

// overlaySize replaces the size in out by the cached one, if any.
func (n *node) overlaySize(out *fuse.Attr) {
	if size, ok := n.lfs.cachedSize(out.Ino); ok {
		out.Size = uint64(size)
		out.Blocks = (uint64(size) + 511) / 512
	}
}

// underlyingFlags adapts open flags for the underlying open: write-only
// becomes read-write (a partial page is read before it is cached), and
// O_APPEND (the kernel computes append offsets), O_DIRECT (cache I/O is
// unaligned) and O_SYNC/O_DSYNC (handled by the handle) are removed.
func underlyingFlags(flags uint32) uint32 {
	f := flags &^ (syscall.O_APPEND | syscall.O_DIRECT | syscall.O_SYNC | syscall.O_DSYNC | fuse.FMODE_EXEC)
	if f&syscall.O_ACCMODE == syscall.O_WRONLY {
		f = f&^syscall.O_ACCMODE | syscall.O_RDWR
	}
	return f
}

// newHandle wraps an opened loopback file, named name (relative to the
// mount), into a lazy handle.
func (n *node) newHandle(fh fs.FileHandle, name string, flags uint32) (*handle, syscall.Errno) {
	lf, ok := fh.(*fs.LoopbackFile)
	if !ok {
		return nil, syscall.EIO
	}
	fd, ok := lf.PassthroughFd()
	if !ok {
		lf.Release(context.Background())
		return nil, syscall.EBADF
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		lf.Release(context.Background())
		return nil, toErrno(err)
	}
	h := &handle{lfs: n.lfs, lf: lf, fd: fd, d: n.lfs.acquire(st.Ino, name),
		syncWrites: flags&(syscall.O_SYNC|syscall.O_DSYNC) != 0}
	if flags&syscall.O_TRUNC != 0 {
		h.d.mu.Lock()
		h.d.truncateLocked(0)
		h.d.mu.Unlock()
	}
	return h, 0
}

// Lookup implements fs.NodeLookuper, with the cached size.
func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	ch, errno := n.LoopbackNode.Lookup(ctx, name, out)
	if errno == 0 {
		n.overlaySize(&out.Attr)
	}
	return ch, errno
}

// Create implements fs.NodeCreater: the file is created at once, its data
// cached.
func (n *node) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	if errno := n.lfs.powered(); errno != 0 {
		return nil, nil, 0, errno
	}
	ch, fh, _, errno := n.LoopbackNode.Create(ctx, name, underlyingFlags(flags), mode, out)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	// The new child is linked to n only after Create returns.
	h, errno := n.newHandle(fh, filepath.Join(n.Path(n.Root()), name), flags)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	n.overlaySize(&out.Attr)
	return ch, h, 0, 0
}

// Open implements fs.NodeOpener.
func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if errno := n.lfs.powered(); errno != 0 {
		return nil, 0, errno
	}
	uflags := underlyingFlags(flags)
	fh, _, errno := n.LoopbackNode.Open(ctx, uflags)
	if (errno == syscall.EACCES || errno == syscall.EPERM || errno == syscall.EROFS) && uflags&syscall.O_ACCMODE != flags&syscall.O_ACCMODE {
		// Not readable: open as asked (a partial-page write then fails).
		fh, _, errno = n.LoopbackNode.Open(ctx, uflags&^syscall.O_ACCMODE|flags&syscall.O_ACCMODE)
	}
	if errno != 0 {
		return nil, 0, errno
	}
	h, errno := n.newHandle(fh, n.Path(n.Root()), flags)
	if errno != 0 {
		return nil, 0, errno
	}
	return h, 0, 0
}

// loopbackFile returns the loopback file of a lazy handle as a
// fs.FileHandle (a nil interface for none).
func loopbackFile(f fs.FileHandle) fs.FileHandle {
	if h, ok := f.(*handle); ok && h != nil {
		return h.lf
	}
	return nil
}

// Getattr implements fs.NodeGetattrer, with the cached size.
func (n *node) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	errno := n.LoopbackNode.Getattr(ctx, loopbackFile(f), out)
	if errno == 0 {
		n.overlaySize(&out.Attr)
	}
	return errno
}

// Statx implements fs.NodeStatxer, with the cached size.
func (n *node) Statx(ctx context.Context, f fs.FileHandle, flags uint32, mask uint32, out *fuse.StatxOut) syscall.Errno {
	errno := n.LoopbackNode.Statx(ctx, loopbackFile(f), flags, mask, out)
	if errno == 0 {
		if size, ok := n.lfs.cachedSize(out.Statx.Ino); ok {
			out.Statx.Size = uint64(size)
			out.Statx.Blocks = (uint64(size) + 511) / 512
		}
	}
	return errno
}

// Setattr implements fs.NodeSetattrer. A size change (truncate, ftruncate)
// applies to the underlying file at once and to the cache.
func (n *node) Setattr(ctx context.Context, f fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if errno := n.lfs.powered(); errno != 0 {
		return errno
	}
	if size, ok := in.GetSize(); ok {
		if errno := n.truncate(f, int64(size)); errno != 0 {
			return errno
		}
	}
	rest := *in
	rest.Valid &^= fuse.FATTR_SIZE
	errno := n.LoopbackNode.Setattr(ctx, loopbackFile(f), &rest, out)
	if errno == 0 {
		n.overlaySize(&out.Attr)
	}
	return errno
}

// truncate sets the size of the underlying file and of its cache together.
func (n *node) truncate(f fs.FileHandle, size int64) syscall.Errno {
	if size < 0 {
		return syscall.EINVAL
	}
	h, _ := f.(*handle)
	var d *fileData
	if h != nil {
		d = h.d
	} else {
		var st syscall.Stat_t
		if err := syscall.Lstat(n.underlyingPath(), &st); err != nil {
			return toErrno(err)
		}
		d = n.lfs.lookup(st.Ino)
	}
	if d != nil {
		d.mu.Lock()
		defer d.mu.Unlock()
	}
	var err error
	if h != nil {
		err = syscall.Ftruncate(h.fd, size)
	} else {
		err = syscall.Truncate(n.underlyingPath(), size)
	}
	if err != nil {
		return toErrno(err)
	}
	if d != nil {
		d.truncateLocked(size)
	}
	return 0
}

// lastLink returns the inode number of the regular file at path if path is
// its only name (so that removing path frees it).
func lastLink(path string) (uint64, bool) {
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil {
		return 0, false
	}
	return st.Ino, st.Mode&syscall.S_IFMT == syscall.S_IFREG && st.Nlink == 1
}

// Unlink implements fs.NodeUnlinker; unsynced data of the file dies with
// its last name.
func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	if errno := n.lfs.powered(); errno != 0 {
		return errno
	}
	ino, last := lastLink(filepath.Join(n.underlyingPath(), name))
	errno := n.LoopbackNode.Unlink(ctx, name)
	if errno == 0 && last {
		n.lfs.unlinked(ino)
	}
	return errno
}

// Rename implements fs.NodeRenamer; a file replaced by the rename loses
// its unsynced data like an unlinked one.
func (n *node) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	if errno := n.lfs.powered(); errno != 0 {
		return errno
	}
	var victim uint64
	replaced := false
	if np, ok := newParent.(*node); ok && flags&fs.RENAME_EXCHANGE == 0 {
		src, _ := lastLink(filepath.Join(n.underlyingPath(), name))
		victim, replaced = lastLink(filepath.Join(np.underlyingPath(), newName))
		replaced = replaced && victim != src
	}
	errno := n.LoopbackNode.Rename(ctx, name, newParent, newName, flags)
	if errno == 0 && replaced {
		n.lfs.unlinked(victim)
	}
	return errno
}

// Link implements fs.NodeLinker, with the cached size.
func (n *node) Link(ctx context.Context, target fs.InodeEmbedder, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if errno := n.lfs.powered(); errno != 0 {
		return nil, errno
	}
	if t, ok := target.(*node); ok {
		target = t.LoopbackNode
	}
	ch, errno := n.LoopbackNode.Link(ctx, target, name, out)
	if errno == 0 {
		n.overlaySize(&out.Attr)
	}
	return ch, errno
}

// Tmpfile implements fs.NodeTmpfiler: O_TMPFILE is not supported.
func (n *node) Tmpfile(ctx context.Context, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, syscall.EOPNOTSUPP
}

// Mkdir implements fs.NodeMkdirer.
func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if errno := n.lfs.powered(); errno != 0 {
		return nil, errno
	}
	return n.LoopbackNode.Mkdir(ctx, name, mode, out)
}

// Rmdir implements fs.NodeRmdirer.
func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	if errno := n.lfs.powered(); errno != 0 {
		return errno
	}
	return n.LoopbackNode.Rmdir(ctx, name)
}

// Mknod implements fs.NodeMknoder.
func (n *node) Mknod(ctx context.Context, name string, mode, rdev uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if errno := n.lfs.powered(); errno != 0 {
		return nil, errno
	}
	return n.LoopbackNode.Mknod(ctx, name, mode, rdev, out)
}

// Symlink implements fs.NodeSymlinker.
func (n *node) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if errno := n.lfs.powered(); errno != 0 {
		return nil, errno
	}
	return n.LoopbackNode.Symlink(ctx, target, name, out)
}
