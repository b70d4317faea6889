package storage_test

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
	"syscall"
	"testing"
	"time"
)

// The S3 tests run against SeaweedFS's all-in-one server (weed mini), one
// per test binary, started on first use and stopped by TestMain.
const (
	weedInstall  = "built from source at the pinned version by .ci/run, SEAWEEDFS_VERSION"
	s3AccessKey  = "storagetestaccess"
	s3SecretKey  = "storagetest-0123456789abcdefghij"
	weedStartMax = 60 * time.Second
)

var weed struct {
	once     sync.Once
	endpoint string // host:port of the S3 gateway; "" when not started
	err      error  // why it is not running
	skip     bool   // the binary is absent
	cmd      *exec.Cmd
	dir      string
	log      *bytes.Buffer
}

func TestMain(m *testing.M) {
	code := m.Run()
	if weed.cmd != nil {
		_ = weed.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = weed.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = weed.cmd.Process.Kill()
			<-done
		}
	}
	if weed.dir != "" {
		os.RemoveAll(weed.dir)
	}
	os.Exit(code)
}

// s3Endpoint returns the running gateway's host:port, starting it once;
// it skips the test when weed is not installed, unless STORAGE_REQUIRE_S3=1.
func s3Endpoint(t *testing.T) string {
	t.Helper()
	weed.once.Do(startWeed)
	if weed.skip {
		if os.Getenv("STORAGE_REQUIRE_S3") == "1" {
			t.Fatalf("STORAGE_REQUIRE_S3=1 but %v; install SeaweedFS's weed (%s)", weed.err, weedInstall)
		}
		t.Skipf("S3 tests skipped: %v; install SeaweedFS's weed (%s) or put it on PATH", weed.err, weedInstall)
	}
	if weed.err != nil {
		t.Fatalf("SeaweedFS: %v", weed.err)
	}
	return weed.endpoint
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

func startWeed() {
	bin, err := weedBinary()
	if err != nil {
		weed.skip, weed.err = true, err
		return
	}
	weed.err = func() error {
		dir, err := os.MkdirTemp("", "storagetest-weed-")
		if err != nil {
			return err
		}
		weed.dir = dir
		conf := filepath.Join(dir, "s3.json")
		if err := os.WriteFile(conf, fmt.Appendf(nil, `{"identities":[{"name":"storagetest","credentials":[{"accessKey":%q,"secretKey":%q}],"actions":["Admin","Read","List","Tagging","Write"]}]}`, s3AccessKey, s3SecretKey), 0o600); err != nil {
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
		weed.log = &bytes.Buffer{}
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		cmd.Stdout, cmd.Stderr = syncWriter{buf: weed.log}, syncWriter{buf: weed.log}
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			return err
		}
		weed.cmd = cmd
		endpoint := "127.0.0.1:" + strconv.Itoa(p[6])
		ctx, cancel := context.WithTimeout(context.Background(), weedStartMax)
		defer cancel()
		if err := waitS3(ctx, endpoint); err != nil {
			return fmt.Errorf("weed %s: not ready: %w\n%s", strings.Join(args, " "), err, logTail())
		}
		weed.endpoint = endpoint
		return nil
	}()
}

var logMu sync.Mutex

type syncWriter struct{ buf *bytes.Buffer }

func (w syncWriter) Write(p []byte) (int, error) {
	logMu.Lock()
	defer logMu.Unlock()
	return w.buf.Write(p)
}

func logTail() string {
	logMu.Lock()
	defer logMu.Unlock()
	b := weed.log.Bytes()
	return string(b[max(0, len(b)-4000):])
}
