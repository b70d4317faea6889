//go:build linux

package lazyfs

import (
	"bytes"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
	"unsafe"

	_ "modernc.org/sqlite"

	"github.com/staffcontrol/staffcontrol/internal/logtest"
)

// helperEnv makes the test binary a helper process (TestMain).
const helperEnv = "LAZYFS_TEST_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "lock":
		os.Exit(tryLock(os.Args[len(os.Args)-1]))
	case "mmap", "mmap+fsync":
		os.Exit(mmapWrite(os.Args[len(os.Args)-1], os.Getenv(helperEnv) == "mmap+fsync"))
	}
	os.Exit(m.Run())
}

// tryLock is the helper: it tries a POSIX write lock on path and exits 0
// when it got it, 3 when another process holds a conflicting lock.
func tryLock(path string) int {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer f.Close()
	lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: io.SeekStart}
	switch err := syscall.FcntlFlock(f.Fd(), syscall.F_SETLK, &lk); {
	case err == nil:
		return 0
	case errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EACCES):
		return 3
	default:
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
}

// mmapSize is the size of the file mmapWrite maps.
const mmapSize = 4 * pageSize

// mmapWrite is the helper that writes a file through a shared writable
// mapping, as SQLite does with its -shm index: it sizes the file, fills the
// mapping with pattern(mmapSize, 5), optionally msyncs and fsyncs, and
// exits (which writes the dirty pages back). It runs in its own process:
// this one serves the mount, and a page fault waiting for our own server
// could deadlock.
func mmapWrite(path string, sync bool) int {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer f.Close()
	if err := f.Truncate(mmapSize); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	m, err := syscall.Mmap(int(f.Fd()), 0, mmapSize, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mmap:", err)
		return 1
	}
	copy(m, pattern(mmapSize, 5))
	if sync {
		if _, _, errno := syscall.Syscall(syscall.SYS_MSYNC, uintptr(unsafe.Pointer(&m[0])), mmapSize, syscall.MS_SYNC); errno != 0 {
			fmt.Fprintln(os.Stderr, "msync:", errno)
			return 1
		}
		if err := f.Sync(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	if err := syscall.Munmap(m); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

type env struct {
	fs    *FS
	mnt   string
	under string
}

// mountT mounts a lazy filesystem over a fresh directory for the test,
// skipping when FUSE is unavailable.
func mountT(t *testing.T) *env {
	t.Helper()
	return mountOpts(t, Options{})
}

// mountOpts is mountT with options (the logger is the test's).
func mountOpts(t *testing.T, opts Options) *env {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skipf("FUSE unavailable: %v", err)
	}
	under, mnt := t.TempDir(), t.TempDir()
	log := logtest.New(t)
	opts.Logger = log
	f, err := Mount(mnt, under, opts)
	if err != nil {
		if os.Geteuid() != 0 {
			t.Skipf("FUSE unavailable: not root, and mounting failed: %v", err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := f.Unmount(); err != nil {
			t.Error(err)
		}
	})
	return &env{fs: f, mnt: mnt, under: under}
}

// waitNothingCached waits until no data is cached: the kernel sends the
// release of a file after close(2) returned.
func (e *env) waitNothingCached(t *testing.T, msg string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for st := e.fs.Stats(); st.BytesCached != 0 || st.FilesCached != 0; st = e.fs.Stats() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %+v", msg, st)
		}
		time.Sleep(time.Millisecond)
	}
}

func (e *env) m(name string) string { return filepath.Join(e.mnt, name) }
func (e *env) u(name string) string { return filepath.Join(e.under, name) }

func read(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func size(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func writeAt(t *testing.T, f *os.File, s string, off int64) {
	t.Helper()
	if _, err := f.WriteAt([]byte(s), off); err != nil {
		t.Fatal(err)
	}
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i%251)
	}
	return b
}

// splice returns base with data written at off (growing it with zeros).
func splice(base []byte, off int, data []byte) []byte {
	out := append([]byte(nil), base...)
	if need := off + len(data); need > len(out) {
		out = append(out, make([]byte, need-len(out))...)
	}
	copy(out[off:], data)
	return out
}

func resize(b []byte, n int) []byte {
	if n <= len(b) {
		return append([]byte(nil), b[:n]...)
	}
	return append(append([]byte(nil), b...), make([]byte, n-len(b))...)
}

func equal(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		i := 0
		for i < len(got) && i < len(want) && got[i] == want[i] {
			i++
		}
		t.Fatalf("%s: %d bytes, want %d; first difference at %d", what, len(got), len(want), i)
	}
}

// TestCrashKeepsExactlyTheSyncedData runs write/sync/truncate sequences on
// one file and checks the content seen through the mount, in the
// underlying file before the crash, and after it.
func TestCrashKeepsExactlyTheSyncedData(t *testing.T) {
	base := pattern(3*pageSize+100, 1) // three and a bit pages, synced first
	tests := []struct {
		name string
		// ops runs on a file that holds base, synced.
		ops func(t *testing.T, f *os.File)
		// mount is what a reader sees before the crash; crash what is
		// left after it.
		mount, crash []byte
	}{
		{
			name:  "unsynced write is lost",
			ops:   func(t *testing.T, f *os.File) { writeAt(t, f, "hello", 10) },
			mount: splice(base, 10, []byte("hello")),
			crash: base,
		},
		{
			name:  "synced write is kept",
			ops:   func(t *testing.T, f *os.File) { writeAt(t, f, "hello", 10); must(t, f.Sync()) },
			mount: splice(base, 10, []byte("hello")),
			crash: splice(base, 10, []byte("hello")),
		},
		{
			name: "fdatasync keeps data too",
			ops: func(t *testing.T, f *os.File) {
				writeAt(t, f, "hello", 10)
				must(t, syscall.Fdatasync(int(f.Fd())))
			},
			mount: splice(base, 10, []byte("hello")),
			crash: splice(base, 10, []byte("hello")),
		},
		{
			name: "only the writes before the sync survive",
			ops: func(t *testing.T, f *os.File) {
				writeAt(t, f, "first", 5000)
				must(t, f.Sync())
				writeAt(t, f, "second", 5000)
				writeAt(t, f, "third", 100)
			},
			mount: splice(splice(splice(base, 5000, []byte("first")), 5000, []byte("second")), 100, []byte("third")),
			crash: splice(base, 5000, []byte("first")),
		},
		{
			name: "write across a page boundary",
			ops: func(t *testing.T, f *os.File) {
				writeAt(t, f, "straddle", pageSize-3)
			},
			mount: splice(base, pageSize-3, []byte("straddle")),
			crash: base,
		},
		{
			name:  "growth past the end is lost",
			ops:   func(t *testing.T, f *os.File) { writeAt(t, f, "tail", 20000) },
			mount: splice(base, 20000, []byte("tail")),
			crash: base,
		},
		{
			name:  "synced growth leaves a zero gap",
			ops:   func(t *testing.T, f *os.File) { writeAt(t, f, "tail", 20000); must(t, f.Sync()) },
			mount: splice(base, 20000, []byte("tail")),
			crash: splice(base, 20000, []byte("tail")),
		},
		{
			name: "truncate shrinks at once, cached data above it is gone",
			ops: func(t *testing.T, f *os.File) {
				writeAt(t, f, "new", 0)
				writeAt(t, f, "gone", 3000)
				must(t, f.Truncate(2000))
			},
			mount: resize(splice(base, 0, []byte("new")), 2000),
			crash: resize(base, 2000),
		},
		{
			name: "truncate in a cached page then sync",
			ops: func(t *testing.T, f *os.File) {
				writeAt(t, f, "0123456789", 1995)
				must(t, f.Truncate(2000))
				must(t, f.Sync())
			},
			mount: resize(splice(base, 1995, []byte("01234")), 2000),
			crash: resize(splice(base, 1995, []byte("01234")), 2000),
		},
		{
			name: "truncate then grow again reads zeros",
			ops: func(t *testing.T, f *os.File) {
				writeAt(t, f, "abc", 100)
				must(t, f.Truncate(50))
				must(t, f.Truncate(6000))
			},
			mount: resize(resize(base, 50), 6000),
			crash: resize(resize(base, 50), 6000),
		},
		{
			name: "extending truncate is metadata, the data written before it is not",
			ops: func(t *testing.T, f *os.File) {
				writeAt(t, f, "grown", int64(len(base)))
				must(t, f.Truncate(20000))
			},
			mount: resize(splice(base, len(base), []byte("grown")), 20000),
			crash: resize(base, 20000),
		},
		{
			name: "write after truncate to zero",
			ops: func(t *testing.T, f *os.File) {
				must(t, f.Truncate(0))
				writeAt(t, f, "fresh", 0)
			},
			mount: []byte("fresh"),
			crash: []byte{},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := mountT(t)
			must(t, os.WriteFile(e.u("f"), base, 0o644)) // already durable
			f, err := os.OpenFile(e.m("f"), os.O_RDWR, 0)
			must(t, err)
			defer f.Close()
			tc.ops(t, f)
			equal(t, "through the mount", read(t, e.m("f")), tc.mount)
			if got := size(t, e.m("f")); got != int64(len(tc.mount)) {
				t.Fatalf("stat size %d, want %d", got, len(tc.mount))
			}
			// The same handle reads the same.
			got := make([]byte, len(tc.mount)+10)
			n, err := f.ReadAt(got, 0)
			if err != nil && err != io.EOF {
				t.Fatal(err)
			}
			equal(t, "through the open handle", got[:n], tc.mount)
			e.fs.Crash()
			equal(t, "underlying after the crash", read(t, e.u("f")), tc.crash)
			// The handle read the file before; the kernel's cached pages
			// of it are gone too.
			n, err = f.ReadAt(got, 0)
			if err != nil && err != io.EOF {
				t.Fatal(err)
			}
			equal(t, "through the open handle after the crash", got[:n], tc.crash)
			equal(t, "through the mount after the crash", read(t, e.m("f")), tc.crash)
			if got := size(t, e.m("f")); got != int64(len(tc.crash)) {
				t.Fatalf("stat size after the crash %d, want %d", got, len(tc.crash))
			}
		})
	}
}

func TestNewFileWithoutSyncIsEmptyAfterCrash(t *testing.T) {
	e := mountT(t)
	data := pattern(50000, 7)
	must(t, os.WriteFile(e.m("new"), data, 0o600))
	equal(t, "through the mount", read(t, e.m("new")), data)
	if st := e.fs.Stats(); st.BytesCached < int64(len(data)) || st.FilesCached != 1 {
		t.Fatalf("stats %+v: the data should be cached", st)
	}
	if u := e.fs.Unsynced(); len(u) != 1 || u["new"] < int64(len(data)) {
		t.Fatalf("unsynced %v, want new with %d bytes", u, len(data))
	}
	if n := size(t, e.u("new")); n != 0 {
		t.Fatalf("underlying file has %d bytes before any sync", n)
	}
	rep := e.fs.Crash()
	dropped := rep.Bytes
	if rep.Files["new"] != dropped || len(rep.Files) != 1 {
		t.Fatalf("crash report %+v: only %q lost data", rep, "new")
	}
	if dropped < int64(len(data)) {
		t.Fatalf("crash dropped %d bytes, want at least %d", dropped, len(data))
	}
	if st := e.fs.Stats(); st.LastCrashDropped != dropped || st.BytesCached != 0 || st.Crashes != 1 {
		t.Fatalf("stats after the crash: %+v", st)
	}
	// Creation is metadata: the name survives, empty.
	if got := read(t, e.m("new")); len(got) != 0 {
		t.Fatalf("%d bytes survived", len(got))
	}
}

func TestSyncedFileSurvives(t *testing.T) {
	e := mountT(t)
	data := pattern(70000, 3)
	f, err := os.Create(e.m("synced"))
	must(t, err)
	_, err = f.Write(data)
	must(t, err)
	must(t, f.Sync())
	must(t, f.Close())
	st := e.fs.Stats()
	if st.Fsyncs != 1 || st.BytesSynced < int64(len(data)) || st.BytesCached != 0 {
		t.Fatalf("stats %+v", st)
	}
	if rep := e.fs.Crash(); rep.Bytes != 0 || len(rep.Files) != 0 {
		t.Fatalf("crash dropped data of a synced file: %+v", rep)
	}
	equal(t, "after the crash", read(t, e.u("synced")), data)
}

func TestHandlesShareTheCache(t *testing.T) {
	e := mountT(t)
	a, err := os.Create(e.m("shared"))
	must(t, err)
	b, err := os.OpenFile(e.m("shared"), os.O_RDWR, 0)
	must(t, err)
	defer b.Close()
	writeAt(t, a, "written by a", 0)
	got := make([]byte, 12)
	_, err = b.ReadAt(got, 0)
	must(t, err)
	if string(got) != "written by a" {
		t.Fatalf("b reads %q", got)
	}
	// a closes without syncing; b's fsync makes a's write durable.
	must(t, a.Close())
	if n := size(t, e.m("shared")); n != 12 {
		t.Fatalf("size %d after the writer closed", n)
	}
	writeAt(t, b, "B", 0)
	must(t, b.Sync())
	e.fs.Crash()
	if got := string(read(t, e.u("shared"))); got != "Britten by a" {
		t.Fatalf("after the crash: %q", got)
	}
}

func TestDataCachedAfterCloseIsSyncedByALaterOpen(t *testing.T) {
	e := mountT(t)
	must(t, os.WriteFile(e.m("later"), []byte("cached"), 0o644))
	equal(t, "after close", read(t, e.m("later")), []byte("cached"))
	f, err := os.Open(e.m("later")) // read-only: fsync still writes back
	must(t, err)
	must(t, f.Sync())
	must(t, f.Close())
	e.fs.Crash()
	equal(t, "after the crash", read(t, e.u("later")), []byte("cached"))
}

func TestRename(t *testing.T) {
	for _, synced := range []bool{false, true} {
		t.Run(fmt.Sprintf("synced=%v", synced), func(t *testing.T) {
			e := mountT(t)
			must(t, os.WriteFile(e.u("target"), []byte("old target"), 0o644))
			f, err := os.Create(e.m("tmp"))
			must(t, err)
			_, err = f.Write([]byte("new content"))
			must(t, err)
			if synced {
				must(t, f.Sync())
			}
			must(t, f.Close())
			must(t, os.Rename(e.m("tmp"), e.m("target")))
			equal(t, "renamed, through the mount", read(t, e.m("target")), []byte("new content"))
			if _, err := os.Stat(e.u("tmp")); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("rename is not applied at once: %v", err)
			}
			e.fs.Crash()
			want := []byte("new content")
			if !synced {
				want = []byte{} // the rename survived, the data did not
			}
			equal(t, "after the crash", read(t, e.m("target")), want)
		})
	}
}

func TestRenameOverAFileWithCachedData(t *testing.T) {
	e := mountT(t)
	must(t, os.WriteFile(e.m("victim"), pattern(9000, 9), 0o644)) // cached
	must(t, os.WriteFile(e.m("src"), []byte("src"), 0o644))
	f, err := os.OpenFile(e.m("src"), os.O_RDWR, 0)
	must(t, err)
	must(t, f.Sync())
	must(t, f.Close())
	must(t, os.Rename(e.m("src"), e.m("victim")))
	equal(t, "replaced", read(t, e.m("victim")), []byte("src"))
	e.waitNothingCached(t, "the replaced file's data is still cached")
}

func TestUnlink(t *testing.T) {
	e := mountT(t)
	f, err := os.Create(e.m("doomed"))
	must(t, err)
	writeAt(t, f, "still readable", 0)
	must(t, os.Remove(e.m("doomed")))
	// The open handle still reads its data.
	got := make([]byte, 14)
	_, err = f.ReadAt(got, 0)
	must(t, err)
	if string(got) != "still readable" {
		t.Fatalf("open handle of an unlinked file reads %q", got)
	}
	must(t, f.Close())
	e.waitNothingCached(t, "an unlinked, closed file keeps cached data")
	// Files created afterwards (perhaps with the same inode number) start
	// empty.
	for i := range 5 {
		name := e.m(fmt.Sprintf("new%d", i))
		must(t, os.WriteFile(name, nil, 0o644))
		if got := read(t, name); len(got) != 0 {
			t.Fatalf("new file reads %q", got)
		}
	}
	if rep := e.fs.Crash(); rep.Bytes != 0 {
		t.Fatalf("crash dropped data of a deleted file: %+v", rep)
	}
}

func TestHardLinkSharesData(t *testing.T) {
	e := mountT(t)
	must(t, os.WriteFile(e.m("a"), []byte("linked"), 0o644))
	must(t, os.Link(e.m("a"), e.m("b")))
	equal(t, "second name", read(t, e.m("b")), []byte("linked"))
	must(t, os.Remove(e.m("a")))
	equal(t, "after removing the first name", read(t, e.m("b")), []byte("linked"))
	f, err := os.OpenFile(e.m("b"), os.O_RDWR, 0)
	must(t, err)
	must(t, f.Sync())
	must(t, f.Close())
	e.fs.Crash()
	equal(t, "after the crash", read(t, e.u("b")), []byte("linked"))
}

func TestAppendAndOTrunc(t *testing.T) {
	e := mountT(t)
	must(t, os.WriteFile(e.u("log"), []byte("durable;"), 0o644))
	f, err := os.OpenFile(e.m("log"), os.O_WRONLY|os.O_APPEND, 0)
	must(t, err)
	for _, s := range []string{"one;", "two;"} {
		_, err := f.Write([]byte(s))
		must(t, err)
	}
	must(t, f.Close())
	equal(t, "appended", read(t, e.m("log")), []byte("durable;one;two;"))
	// O_TRUNC applies at once (metadata); the new data is cached.
	must(t, os.WriteFile(e.m("log"), []byte("rewritten"), 0o644))
	equal(t, "rewritten", read(t, e.m("log")), []byte("rewritten"))
	e.fs.Crash()
	equal(t, "after the crash", read(t, e.u("log")), []byte{})
}

func TestOSyncWritesAreDurable(t *testing.T) {
	e := mountT(t)
	f, err := os.OpenFile(e.m("osync"), os.O_CREATE|os.O_RDWR|os.O_SYNC, 0o644)
	must(t, err)
	_, err = f.Write([]byte("durable"))
	must(t, err)
	e.fs.Crash()
	must(t, f.Close())
	equal(t, "after the crash", read(t, e.u("osync")), []byte("durable"))
}

func TestDirectoryFsync(t *testing.T) {
	e := mountT(t)
	must(t, os.Mkdir(e.m("dir"), 0o755))
	d, err := os.Open(e.m("dir"))
	must(t, err)
	defer d.Close()
	must(t, d.Sync())
}

// TestPOSIXLocksAcrossProcesses checks that fcntl locks, which SQLite
// uses, work through the mount: the kernel handles them locally.
func TestPOSIXLocksAcrossProcesses(t *testing.T) {
	e := mountT(t)
	must(t, os.WriteFile(e.m("locked"), []byte("x"), 0o644))
	helper := func() int { return runHelper(t, "lock", e.m("locked")) }
	f, err := os.OpenFile(e.m("locked"), os.O_RDWR, 0)
	must(t, err)
	defer f.Close()
	lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: io.SeekStart}
	must(t, syscall.FcntlFlock(f.Fd(), syscall.F_SETLK, &lk))
	if code := helper(); code != 3 {
		t.Fatalf("another process got a write lock held by this one (exit %d)", code)
	}
	lk.Type = syscall.F_UNLCK
	must(t, syscall.FcntlFlock(f.Fd(), syscall.F_SETLK, &lk))
	if code := helper(); code != 0 {
		t.Fatalf("another process could not lock an unlocked file (exit %d)", code)
	}
}

// runHelper runs this test binary as a helper process in mode on path and
// returns its exit code (1, its own failure, fails the test).
func runHelper(t *testing.T, mode, path string) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$", path)
	cmd.Env = append(os.Environ(), helperEnv+"="+mode)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ee.ExitCode() == 1 {
			t.Fatalf("helper %s: %s", mode, out)
		}
		return ee.ExitCode()
	}
	must(t, err)
	return 0
}

// TestSharedMmap writes a file through a shared writable mapping in another
// process (SQLite's -shm works so): the data is visible through the mount,
// and lost at a crash unless msynced and fsynced.
func TestSharedMmap(t *testing.T) {
	for _, mode := range []string{"mmap", "mmap+fsync"} {
		t.Run(mode, func(t *testing.T) {
			e := mountT(t)
			must(t, os.WriteFile(e.m("shm"), nil, 0o644))
			if code := runHelper(t, mode, e.m("shm")); code != 0 {
				t.Fatalf("helper exit %d", code)
			}
			equal(t, "written through the mapping", read(t, e.m("shm")), pattern(mmapSize, 5))
			e.fs.Crash()
			want := make([]byte, mmapSize) // the size is metadata, the data is not
			if mode == "mmap+fsync" {
				want = pattern(mmapSize, 5)
			}
			equal(t, "after the crash", read(t, e.m("shm")), want)
		})
	}
}

// copyDB copies a SQLite database and its WAL from dir to a fresh
// directory (without touching dir) and returns the new path.
func copyDB(t *testing.T, dir, name string) string {
	t.Helper()
	dst := t.TempDir()
	for _, suffix := range []string{"", "-wal"} {
		b, err := os.ReadFile(filepath.Join(dir, name+suffix))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		must(t, err)
		must(t, os.WriteFile(filepath.Join(dst, name+suffix), b, 0o600))
	}
	return filepath.Join(dst, name)
}

// TestSQLiteWAL commits rows in WAL mode with an exclusive lock (as the
// gateway's buffer does), crashes, and counts the rows left: all with
// synchronous=FULL, not all with NORMAL (the WAL is not synced at commit).
func TestSQLiteWAL(t *testing.T) {
	for _, sync := range []string{"FULL", "NORMAL"} {
		t.Run(sync, func(t *testing.T) {
			e := mountT(t)
			dsn := "file:" + e.m("db.sqlite") + "?_pragma=locking_mode(EXCLUSIVE)&_pragma=journal_mode(WAL)&_pragma=synchronous(" + sync + ")"
			db, err := sql.Open("sqlite", dsn)
			must(t, err)
			defer db.Close()
			db.SetMaxOpenConns(1)
			_, err = db.Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
			must(t, err)
			const rows = 50
			for i := range rows {
				_, err := db.Exec("INSERT INTO t (id, v) VALUES (?, ?)", i, pattern(300, byte(i)))
				must(t, err)
			}
			// A second connection cannot get in while the first holds the
			// exclusive lock.
			other, err := sql.Open("sqlite", "file:"+e.m("db.sqlite")+"?_pragma=busy_timeout(0)")
			must(t, err)
			var n int
			if err := other.QueryRow("SELECT count(*) FROM t").Scan(&n); err == nil {
				t.Errorf("a second connection read %d rows despite the exclusive lock", n)
			}
			other.Close()
			dropped := e.fs.Crash().Bytes
			cp := copyDB(t, e.under, "db.sqlite")
			after, err := sql.Open("sqlite", "file:"+cp)
			must(t, err)
			defer after.Close()
			var check string
			must(t, after.QueryRow("PRAGMA integrity_check").Scan(&check))
			if check != "ok" {
				t.Fatalf("integrity_check: %s", check)
			}
			if err := after.QueryRow("SELECT count(*) FROM t").Scan(&n); err != nil {
				if sync == "FULL" {
					t.Fatalf("count after the crash: %v", err)
				}
				n = 0 // the table itself was lost
			}
			t.Logf("synchronous=%s: %d of %d rows survived; %d bytes dropped", sync, n, rows, dropped)
			switch {
			case sync == "FULL" && (n != rows || dropped != 0):
				t.Fatalf("synchronous=FULL lost rows: %d of %d survived, %d bytes dropped", n, rows, dropped)
			case sync == "NORMAL" && (n == rows || dropped == 0):
				t.Fatalf("synchronous=NORMAL kept every row (%d bytes dropped): the crash had nothing to drop", dropped)
			}
		})
	}
}

// TestUnmountWhileBusy unmounts with a file still open on the mount: the
// connection is aborted instead of waiting, and the mount point is free.
func TestUnmountWhileBusy(t *testing.T) {
	e := mountT(t)
	f, err := os.Create(e.m("busy"))
	must(t, err)
	defer f.Close()
	writeAt(t, f, "x", 0)
	done := make(chan error, 1)
	go func() { done <- e.fs.Unmount() }()
	select {
	case err := <-done:
		must(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("Unmount of a busy mount did not return")
	}
	if _, err := f.WriteAt([]byte("y"), 0); err == nil {
		t.Fatal("a write to the aborted mount succeeded")
	}
	var st, parent syscall.Stat_t
	must(t, syscall.Stat(e.mnt, &st))
	must(t, syscall.Stat(filepath.Dir(e.mnt), &parent))
	if st.Dev != parent.Dev {
		t.Fatalf("%s is still a mount point", e.mnt)
	}
}

// TestPowerOff cuts the power while a file is open: everything that would
// change the directory fails until PowerOn, and nothing of it reaches the
// underlying directory.
func TestPowerOff(t *testing.T) {
	e := mountT(t)
	must(t, os.WriteFile(e.u("keep"), []byte("durable"), 0o644))
	must(t, os.Mkdir(e.u("dir"), 0o755))
	f, err := os.OpenFile(e.m("keep"), os.O_RDWR, 0)
	must(t, err)
	defer f.Close()
	writeAt(t, f, "DURABLE", 0)
	rep := e.fs.PowerOff()
	if rep.Bytes == 0 || rep.Files["keep"] == 0 {
		t.Fatalf("power off dropped %+v", rep)
	}
	attempts := map[string]error{
		"write":  func() error { _, err := f.WriteAt([]byte("late"), 0); return err }(),
		"fsync":  f.Sync(),
		"create": os.WriteFile(e.m("new"), []byte("x"), 0o644),
		"rename": os.Rename(e.m("keep"), e.m("moved")),
		"unlink": os.Remove(e.m("keep")),
		"mkdir":  os.Mkdir(e.m("newdir"), 0o755),
		"rmdir":  os.Remove(e.m("dir")),
		"trunc":  f.Truncate(0),
	}
	for op, err := range attempts {
		if err == nil {
			t.Errorf("%s succeeded while the power was off", op)
		}
	}
	e.fs.PowerOn()
	equal(t, "after power on", read(t, e.m("keep")), []byte("durable"))
	ents, err := os.ReadDir(e.under)
	must(t, err)
	if len(ents) != 2 {
		t.Fatalf("the underlying directory changed while the power was off: %v", ents)
	}
	writeAt(t, f, "again", 0)
	must(t, f.Sync())
	equal(t, "written after power on", read(t, e.u("keep")), []byte("againle"))
}

// TestFsyncInFlightAtPowerOffIsLost cuts the power while an fsync waits
// out SyncDelay: the fsync fails and its data is lost, as on a disk that
// lost power before the flush completed.
func TestFsyncInFlightAtPowerOffIsLost(t *testing.T) {
	e := mountOpts(t, Options{SyncDelay: 300 * time.Millisecond})
	f, err := os.Create(e.m("slow"))
	must(t, err)
	defer f.Close()
	writeAt(t, f, "in flight", 0)
	synced := make(chan error, 1)
	go func() { synced <- f.Sync() }()
	time.Sleep(100 * time.Millisecond) // the fsync is waiting
	rep := e.fs.PowerOff()
	if err := <-synced; err == nil {
		t.Fatal("an fsync in flight at the power cut succeeded")
	}
	e.fs.PowerOn()
	if rep.Files["slow"] == 0 {
		t.Fatalf("power off dropped %+v", rep)
	}
	equal(t, "after the cut", read(t, e.u("slow")), []byte{})
}
