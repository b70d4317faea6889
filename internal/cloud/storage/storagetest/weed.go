package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/cloud/storage"
)

// The S3 tests run against SeaweedFS's all-in-one server (weed mini): one
// per test binary, started on first use (Weed.Config) and stopped by the
// binary's TestMain (Weed.Stop).
const (
	// WeedInstall says where weed comes from.
	WeedInstall = "built from source at the pinned version by .ci/run, SEAWEEDFS_VERSION"
	// S3AccessKey and S3SecretKey are the test server's credentials.
	S3AccessKey  = "storagetestaccess"
	S3SecretKey  = "storagetest-0123456789abcdefghij"
	weedStartMax = 60 * time.Second
)

// Weed is a test binary's SeaweedFS S3 server. The zero value is ready:
// the first Config starts it; TestMain calls Stop after m.Run.
type Weed struct {
	once     sync.Once
	endpoint string // host:port of the S3 gateway; "" when not started
	err      error  // why it is not running
	skip     bool   // the binary is absent
	cmd      *exec.Cmd
	exited   chan struct{}
	dir      string
	log      syncBuffer
	buckets  atomic.Int64
}

// Endpoint returns the running gateway's host:port, starting it once; it
// skips the test when weed is not installed, unless STORAGE_REQUIRE_S3=1.
func (w *Weed) Endpoint(t testing.TB) string {
	t.Helper()
	w.once.Do(w.start)
	if w.skip {
		if os.Getenv("STORAGE_REQUIRE_S3") == "1" {
			t.Fatalf("STORAGE_REQUIRE_S3=1 but %v; install SeaweedFS's weed (%s)", w.err, WeedInstall)
		}
		t.Skipf("S3 tests skipped: %v; install SeaweedFS's weed (%s) or put it on PATH", w.err, WeedInstall)
	}
	if w.err != nil {
		t.Fatalf("SeaweedFS: %v", w.err)
	}
	return w.endpoint
}

// Config returns an S3 config for the running gateway (started once, or
// the test skipped as Endpoint says) with a fresh bucket that NewS3
// creates.
func (w *Weed) Config(t testing.TB) storage.S3Config {
	t.Helper()
	return storage.S3Config{
		Endpoint:     w.Endpoint(t),
		Region:       "us-east-1",
		Bucket:       fmt.Sprintf("storagetest-%d-%d", time.Now().UnixNano()%1e9, w.buckets.Add(1)),
		AccessKey:    S3AccessKey,
		SecretKey:    S3SecretKey,
		PathStyle:    true,
		CreateBucket: true,
	}
}

// Running reports whether the server was started and has not exited.
func (w *Weed) Running() bool {
	if w.cmd == nil {
		return false
	}
	select {
	case <-w.exited:
		return false
	default:
		return true
	}
}

// Stop stops the server (if started) and removes its files.
func (w *Weed) Stop() {
	if w.cmd != nil {
		_ = w.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-w.exited:
		case <-time.After(5 * time.Second):
			_ = w.cmd.Process.Kill()
			<-w.exited
		}
	}
	if w.dir != "" {
		os.RemoveAll(w.dir)
	}
}

func weedBinary() (string, error) {
	if p, err := exec.LookPath("weed"); err == nil {
		return p, nil
	}
	gopath, err := exec.Command("go", "env", "GOPATH").Output()
	if err == nil {
		p := filepath.Join(strings.TrimSpace(string(gopath)), "bin", "weed")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("weed is neither on PATH nor in $(go env GOPATH)/bin")
}

// freePorts reserves n distinct loopback ports (released just before weed
// binds them: a small race other tests could lose, not a correctness one).
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func (w *Weed) start() {
	bin, err := weedBinary()
	if err != nil {
		w.skip, w.err = true, err
		return
	}
	w.err = func() error {
		dir, err := os.MkdirTemp("", "storagetest-weed-")
		if err != nil {
			return err
		}
		w.dir = dir
		conf := filepath.Join(dir, "s3.json")
		if err := os.WriteFile(conf, fmt.Appendf(nil, `{"identities":[{"name":"storagetest","credentials":[{"accessKey":%q,"secretKey":%q}],"actions":["Admin","Read","List","Tagging","Write"]}]}`, S3AccessKey, S3SecretKey), 0o600); err != nil {
			return err
		}
		data := filepath.Join(dir, "data")
		if err := os.Mkdir(data, 0o700); err != nil {
			return err
		}
		p, err := freePorts(8)
		if err != nil {
			return err
		}
		args := []string{"mini", "-dir=" + data, "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
			"-master.port=" + strconv.Itoa(p[0]), "-master.port.grpc=" + strconv.Itoa(p[1]),
			"-volume.port=" + strconv.Itoa(p[2]), "-volume.port.grpc=" + strconv.Itoa(p[3]),
			"-filer.port=" + strconv.Itoa(p[4]), "-filer.port.grpc=" + strconv.Itoa(p[5]),
			"-s3.port=" + strconv.Itoa(p[6]), "-s3.port.grpc=" + strconv.Itoa(p[7]),
			"-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false", "-admin.ui=false",
			"-s3.config=" + conf}
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		cmd.Stdout, cmd.Stderr = &w.log, &w.log
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			return err
		}
		w.cmd, w.exited = cmd, make(chan struct{})
		go func() { _ = cmd.Wait(); close(w.exited) }()
		endpoint := "127.0.0.1:" + strconv.Itoa(p[6])
		ctx, cancel := context.WithTimeout(context.Background(), weedStartMax)
		defer cancel()
		if err := w.waitS3(ctx, endpoint); err != nil {
			return fmt.Errorf("weed %s: not ready: %w\n%s", strings.Join(args, " "), err, w.log.tail(4000))
		}
		w.endpoint = endpoint
		return nil
	}()
}

// waitS3 waits until the gateway stores and deletes an object.
func (w *Weed) waitS3(ctx context.Context, endpoint string) error {
	var last error
	for {
		last = func() error {
			ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			s, err := storage.NewS3(ctx, storage.S3Config{Endpoint: endpoint, Region: "us-east-1", Bucket: "ready",
				AccessKey: S3AccessKey, SecretKey: S3SecretKey, PathStyle: true, CreateBucket: true})
			if err != nil {
				return err
			}
			if err := s.Put(ctx, "probe", strings.NewReader("ok")); err != nil {
				return err
			}
			return s.Delete(ctx, "probe")
		}()
		if last == nil {
			return nil
		}
		if !w.Running() {
			return fmt.Errorf("exited: %w", last)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// syncBuffer is the server's log, written by its two output streams.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// tail is the last n bytes of the log.
func (b *syncBuffer) tail(n int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.buf.Bytes()
	return string(s[max(0, len(s)-n):])
}
