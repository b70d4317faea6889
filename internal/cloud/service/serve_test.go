package service

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/logtest"
)

// quick are timeouts short enough for tests.
var quick = HTTPTimeouts{ReadHeader: 300 * time.Millisecond, BodyMinRate: 1000, BodyGrace: 500 * time.Millisecond,
	Write: 500 * time.Millisecond, Idle: 400 * time.Millisecond}

// serve runs Serve on loopback with t until the test ends and returns the
// address.
func serve(t *testing.T, timeouts HTTPTimeouts, h http.Handler) string {
	t.Helper()
	l, err := Listen("127.0.0.1:0", "TEST_ADDR")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, l, h, logtest.New(t), timeouts) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return l.Addr().String()
}

func echoSize() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			http.Error(w, "malformed body", http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "%d", n)
	})
}

// closedWithin reports whether the server closes c (after answering
// anything) within d, and what it answered first.
func closedWithin(t *testing.T, c net.Conn, d time.Duration) (bool, string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(d))
	b, err := io.ReadAll(c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return false, string(b)
	}
	return true, string(b)
}

func TestServeCutsOffASlowHeader(t *testing.T) {
	t.Parallel()
	addr := serve(t, quick, echoSize())
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	// One header byte every 100 ms: never finishes within 300 ms.
	go func() {
		for _, b := range []byte("GET / HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n") {
			if _, err := c.Write([]byte{b}); err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	closed, _ := closedWithin(t, c, 3*time.Second)
	if !closed {
		t.Fatal("a header sent one byte every 100 ms held the connection for 3 s")
	}
	if d := time.Since(start); d > quick.ReadHeader+time.Second {
		t.Fatalf("closed after %v, want about %v", d, quick.ReadHeader)
	}
}

func TestServeClosesAnIdleKeepAlive(t *testing.T) {
	t.Parallel()
	addr := serve(t, quick, echoSize())
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprint(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "3" || resp.Close {
		t.Fatalf("%d %q close=%v, want a kept-alive 200", resp.StatusCode, b, resp.Close)
	}
	start := time.Now()
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection: %v, want it closed (EOF)", err)
	}
	if d := time.Since(start); d < quick.Idle-100*time.Millisecond || d > quick.Idle+time.Second {
		t.Fatalf("idle connection closed after %v, want about %v", d, quick.Idle)
	}
}

func TestServeCutsOffASlowBodyWith408(t *testing.T) {
	t.Parallel()
	addr := serve(t, quick, echoSize())
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	fmt.Fprint(c, "POST /v2/gateway/provision HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n")
	go func() {
		for i := 0; i < 100; i++ {
			if _, err := c.Write([]byte(" ")); err != nil {
				return
			}
			time.Sleep(200 * time.Millisecond) // 5 B/s
		}
	}()
	closed, answer := closedWithin(t, c, 5*time.Second)
	if !closed || !strings.HasPrefix(answer, "HTTP/1.1 408") || !strings.Contains(answer, "request_timeout") {
		t.Fatalf("closed=%v answer %q, want 408 and a close", closed, answer)
	}
	if d := time.Since(start); d > quick.BodyGrace+time.Second {
		t.Fatalf("cut off after %v, want just after the %v grace", d, quick.BodyGrace)
	}
}

func TestServeLetsALargeBodyAtAHealthyRateThrough(t *testing.T) {
	t.Parallel()
	tm := quick
	tm.BodyMinRate = 256 << 10
	addr := serve(t, tm, echoSize())
	const size = 1 << 20
	pr, pw := io.Pipe()
	go func() {
		chunk := bytes.Repeat([]byte("y"), 32<<10)
		for sent := 0; sent < size; sent += len(chunk) {
			if _, err := pw.Write(chunk); err != nil {
				return
			}
			time.Sleep(40 * time.Millisecond) // about 800 KiB/s
		}
		pw.Close()
	}()
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/upload", pr)
	req.ContentLength = size
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != fmt.Sprint(size) {
		t.Fatalf("%d %q", resp.StatusCode, b)
	}
	if d := time.Since(start); d < 2*tm.Write {
		t.Fatalf("took %v: shorter than twice the write timeout, not a test of a long upload", d)
	}
}

func TestServeWriteTimeoutAndAnExtendedLongPoll(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(2 * quick.Write)
		fmt.Fprint(w, "late")
	})
	mux.HandleFunc("GET /poll", func(w http.ResponseWriter, r *http.Request) {
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(2*quick.Write + quick.Write))
		time.Sleep(2 * quick.Write)
		fmt.Fprint(w, "polled")
	})
	addr := serve(t, quick, mux)
	if resp, err := http.Get("http://" + addr + "/slow"); err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("a handler slower than the write timeout answered %d %q", resp.StatusCode, b)
	}
	resp, err := http.Get("http://" + addr + "/poll")
	if err != nil {
		t.Fatalf("long-poll that extends its write deadline: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "polled" {
		t.Fatalf("long-poll answered %q", b)
	}
}
