package slowbody_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/slowbody"
)

// server serves h behind slowbody on loopback with a short server write
// timeout, as the services do.
func server(t *testing.T, o slowbody.Options, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(slowbody.Handler(h, o))
	srv.Config.ReadHeaderTimeout = 2 * time.Second
	srv.Config.WriteTimeout = o.WriteTimeout
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// readAll is a handler that reads the whole body and answers 200 with its
// size, or 400 with the read error (as a handler that cannot tell a cut-off
// from a malformed body does).
func readAll(readErr *atomic.Value) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			readErr.Store(err)
			http.Error(w, "malformed body", http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "%d", n)
	}
}

// trickle sends a request whose body of size bytes arrives one byte every
// gap, and returns the status line answered (or "" when the connection was
// closed without one) and when.
func trickle(t *testing.T, addr string, size int, gap time.Duration) (string, time.Duration) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	fmt.Fprintf(c, "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", size)
	status := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(c).ReadString('\n')
		status <- strings.TrimSpace(line)
	}()
	for i := 0; i < size; i++ {
		select {
		case s := <-status:
			return s, time.Since(start)
		case <-time.After(gap):
		}
		if _, err := c.Write([]byte("x")); err != nil {
			break
		}
	}
	select {
	case s := <-status:
		return s, time.Since(start)
	case <-time.After(10 * time.Second):
		t.Fatal("no answer and no close 10 s after the body was sent")
		return "", 0
	}
}

func TestABodyArrivingTooSlowlyIsCutOffWith408(t *testing.T) {
	t.Parallel()
	var readErr atomic.Value
	var cut atomic.Int64
	o := slowbody.Options{MinRate: 1000, Grace: 500 * time.Millisecond, WriteTimeout: time.Second,
		OnCutOff: func(_ *http.Request, n int64) { cut.Store(n + 1) }}
	srv := server(t, o, readAll(&readErr))
	// One byte every 200 ms: 5 B/s, far under 1000 B/s.
	status, took := trickle(t, srv.Listener.Addr().String(), 1000, 200*time.Millisecond)
	if !strings.Contains(status, "408") {
		t.Fatalf("answer %q, want 408", status)
	}
	if took < o.Grace || took > o.Grace+time.Second {
		t.Errorf("cut off after %v, want just after the %v grace", took, o.Grace)
	}
	if err, _ := readErr.Load().(error); !errors.Is(err, slowbody.ErrTooSlow) {
		t.Errorf("the handler read %v, want ErrTooSlow", err)
	}
	if n := cut.Load() - 1; n < 1 || n > 5 {
		t.Errorf("OnCutOff saw %d bytes, want the 2-4 that arrived", n)
	}
}

func TestABodyTheHandlerNeverReadsStillCannotHoldTheConnection(t *testing.T) {
	t.Parallel()
	o := slowbody.Options{MinRate: 1000, Grace: 300 * time.Millisecond, WriteTimeout: time.Second}
	srv := server(t, o, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized) // refused before the body is read
	})
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\nabc")
	start := time.Now()
	br := bufio.NewReader(c)
	if line, _ := br.ReadString('\n'); !strings.Contains(line, "401") {
		t.Fatalf("answer %q, want 401", line)
	}
	// The server discards the rest of the body to reuse the connection:
	// trickled, that ends at the deadline with the connection closed.
	done := make(chan error, 1)
	go func() { _, err := io.Copy(io.Discard, br); done <- err }()
	for {
		select {
		case <-done:
			if d := time.Since(start); d > 3*time.Second {
				t.Fatalf("connection held %v", d)
			}
			return
		case <-time.After(200 * time.Millisecond):
			_, _ = c.Write([]byte("x"))
		}
		if time.Since(start) > 5*time.Second {
			t.Fatal("a body trickled to a handler that did not read it held the connection for 5 s")
		}
	}
}

func TestALargeBodyAtAHealthyRatePassesPastTheWriteTimeout(t *testing.T) {
	t.Parallel()
	var readErr atomic.Value
	// 256 KiB/s minimum; the upload runs at about 1 MiB/s for 2 s, nearly four
	// times the server's write timeout: a fixed ReadTimeout or WriteTimeout
	// of that size would kill it.
	o := slowbody.Options{MinRate: 256 << 10, Grace: 200 * time.Millisecond, WriteTimeout: 500 * time.Millisecond}
	srv := server(t, o, readAll(&readErr))
	const size = 2 << 20
	pr, pw := io.Pipe()
	go func() {
		chunk := bytes.Repeat([]byte("y"), 32<<10)
		for sent := 0; sent < size; sent += len(chunk) {
			if _, err := pw.Write(chunk); err != nil {
				return
			}
			time.Sleep(30 * time.Millisecond)
		}
		pw.Close()
	}()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/upload", pr)
	req.ContentLength = size
	start := time.Now()
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || string(b) != fmt.Sprint(size) {
		t.Fatalf("%d %q after %v (read error %v), want 200 %d", resp.StatusCode, b, time.Since(start), readErr.Load(), size)
	}
	if d := time.Since(start); d < 3*o.WriteTimeout {
		t.Fatalf("the upload took only %v: not a test of a long upload", d)
	}
}

func TestABurstyBodyKeepsItsCreditAndTheConnectionIsReused(t *testing.T) {
	t.Parallel()
	var readErr atomic.Value
	o := slowbody.Options{MinRate: 1000, Grace: 300 * time.Millisecond, WriteTimeout: time.Second}
	srv := server(t, o, readAll(&readErr))
	// 2,000 bytes at once, then a pause of 1 s: still ahead of 1000 B/s
	// after the grace (2,000 bytes are due by 2.3 s).
	pr, pw := io.Pipe()
	go func() {
		pw.Write(bytes.Repeat([]byte("z"), 2000))
		time.Sleep(time.Second)
		pw.Write([]byte("end"))
		pw.Close()
	}()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/upload", pr)
	req.ContentLength = 2003
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(b) != "2003" {
		t.Fatalf("%d %q (read error %v), want 200 2003", resp.StatusCode, b, readErr.Load())
	}
	// The read deadline was cleared at the end of the body: a request
	// without one on the same connection, after longer than the grace,
	// works.
	time.Sleep(2 * o.Grace)
	resp, err = srv.Client().Post(srv.URL+"/upload", "text/plain", strings.NewReader("ok"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(b) != "2" {
		t.Fatalf("second request: %d %q", resp.StatusCode, b)
	}
}

func TestRequestsWithoutABodyPassUntouched(t *testing.T) {
	t.Parallel()
	o := slowbody.Options{MinRate: 1000, Grace: 100 * time.Millisecond, WriteTimeout: 5 * time.Second}
	srv := server(t, o, func(w http.ResponseWriter, r *http.Request) {
		if _, ok := w.(http.Hijacker); !ok {
			t.Error("a request without a body lost http.Hijacker (a WebSocket upgrade needs it)")
		}
		time.Sleep(300 * time.Millisecond) // longer than the grace
		fmt.Fprint(w, "ok")
	})
	resp, err := srv.Client().Get(srv.URL + "/poll")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(b) != "ok" {
		t.Fatalf("%d %q", resp.StatusCode, b)
	}
}

func TestAHandlerWorkingLongAfterTheBodyKeepsItsContext(t *testing.T) {
	t.Parallel()
	o := slowbody.Options{MinRate: 1000, Grace: 200 * time.Millisecond, WriteTimeout: 5 * time.Second}
	srv := server(t, o, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		time.Sleep(3 * o.Grace) // past the body's deadline
		if err := r.Context().Err(); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprint(w, "ok")
	})
	resp, err := srv.Client().Post(srv.URL+"/x", "text/plain", strings.NewReader("0123456789"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%d %q: the body's read deadline outlived the body", resp.StatusCode, b)
	}
}

// BenchmarkUpload posts 4 MiB bodies over loopback with and without the
// rate check: its cost is two deadline updates per body read.
func BenchmarkUpload(b *testing.B) {
	body := bytes.Repeat([]byte("x"), 4<<20)
	sink := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.Copy(io.Discard, r.Body) })
	for _, bc := range []struct {
		name string
		h    http.Handler
	}{{"plain", sink}, {"slowbody", slowbody.Handler(sink, slowbody.Options{})}} {
		b.Run(bc.name, func(b *testing.B) {
			srv := httptest.NewServer(bc.h)
			defer srv.Close()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				resp, err := srv.Client().Post(srv.URL, "application/octet-stream", bytes.NewReader(body))
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
}
