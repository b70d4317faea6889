package gateway

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// startQuick starts a gateway whose server timeouts are short enough for
// tests.
func startQuick(t *testing.T) (*Gateway, ServerTimeouts) {
	t.Helper()
	cloud := newCloud(t)
	to := DefaultServerTimeouts()
	to.ReadHeader, to.Write, to.Idle = 300*time.Millisecond, 500*time.Millisecond, 400*time.Millisecond
	to.BodyMinRate, to.BodyGrace = 4000, 500*time.Millisecond
	to.GRPCHandshake = 300 * time.Millisecond
	g := startWith(t, testConfig(t, t.TempDir(), cloud.URL, nil), Deps{Version: "test", Timeouts: &to})
	t.Cleanup(func() { stop(t, g) })
	return g, to
}

// closedWithin reports whether the peer closes c within d, and what it
// sent first.
func closedWithin(c net.Conn, d time.Duration) (bool, string) {
	_ = c.SetReadDeadline(time.Now().Add(d))
	b, err := io.ReadAll(c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return false, string(b)
	}
	return true, string(b)
}

// eventsBody is a valid one-event batch padded with JSON whitespace to
// about size bytes.
func eventsBody(size int) []byte {
	d := int64(5)
	b, _ := json.Marshal(protocol.EventBatch{AgentUID: "a1", ComputerName: "PC-1", Events: []protocol.Event{{
		EventID: uuid.Must(uuid.NewV7()).String(), Type: protocol.TypeActiveWindow, AgentUID: "a1", ComputerName: "PC-1",
		UserSID: "S-1-5-21-1", Datetime: time.Now().UTC(), DurationSeconds: &d, ProcessName: "code.exe"}}})
	return append(b[:len(b)-1], append(bytes.Repeat([]byte(" "), max(0, size-len(b))), '}')...)
}

func TestGatewayHTTPServerTimeouts(t *testing.T) {
	t.Parallel()
	g, to := startQuick(t)
	cred := enrolAgent(t, g, "a1")
	dial := func() net.Conn {
		c, err := net.Dial("tcp", g.Addr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	t.Run("slow body cut off with 408", func(t *testing.T) {
		c := dial()
		start := time.Now()
		fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n", protocol.PathAgentEvents, cred)
		go func() {
			for i := 0; i < 1000; i++ {
				if _, err := c.Write([]byte(" ")); err != nil {
					return
				}
				time.Sleep(200 * time.Millisecond)
			}
		}()
		closed, answer := closedWithin(c, 5*time.Second)
		if !closed || !strings.HasPrefix(answer, "HTTP/1.1 408") {
			t.Fatalf("closed=%v answer %q, want 408 and a close", closed, answer)
		}
		if d := time.Since(start); d > to.BodyGrace+time.Second {
			t.Fatalf("cut off after %v, want just after the %v grace", d, to.BodyGrace)
		}
	})
	t.Run("slow header cut off", func(t *testing.T) {
		c := dial()
		start := time.Now()
		go func() {
			for _, b := range []byte("GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n") {
				if _, err := c.Write([]byte{b}); err != nil {
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
		}()
		if closed, _ := closedWithin(c, 3*time.Second); !closed || time.Since(start) > to.ReadHeader+time.Second {
			t.Fatalf("a header sent one byte every 100 ms: closed=%v after %v", closed, time.Since(start))
		}
	})
	t.Run("idle keep-alive closed", func(t *testing.T) {
		c := dial()
		fmt.Fprint(c, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		start := time.Now()
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
		if _, err := br.ReadByte(); err != io.EOF || time.Since(start) > to.Idle+time.Second {
			t.Fatalf("idle keep-alive: %v after %v, want closed (EOF) after about %v", err, time.Since(start), to.Idle)
		}
	})
	t.Run("a large body at a healthy rate passes", func(t *testing.T) {
		body := eventsBody(20 << 10)
		pr, pw := io.Pipe()
		go func() {
			for i := 0; i < len(body); i += 1 << 10 {
				if _, err := pw.Write(body[i:min(i+1<<10, len(body))]); err != nil {
					return
				}
				time.Sleep(100 * time.Millisecond) // 10 KiB/s: 2 s, four write timeouts
			}
			pw.Close()
		}()
		req, _ := http.NewRequest(http.MethodPost, "http://"+g.Addr()+protocol.PathAgentEvents, pr)
		req.ContentLength = int64(len(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(protocol.HeaderAuthorization, "Bearer "+cred)
		start := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var ack protocol.EventBatchResponse
		if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &ack) != nil || ack.Accepted != 1 {
			t.Fatalf("%d %s after %v, want the event accepted", resp.StatusCode, b, time.Since(start))
		}
		if d := time.Since(start); d < 3*to.Write {
			t.Fatalf("took %v: not a test of a long upload", d)
		}
	})
	t.Run("gRPC connection without a handshake closed", func(t *testing.T) {
		c, err := net.Dial("tcp", g.GRPCAddr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		start := time.Now()
		if closed, _ := closedWithin(c, 3*time.Second); !closed || time.Since(start) > to.GRPCHandshake+time.Second {
			t.Fatalf("a silent gRPC connection: closed=%v after %v", closed, time.Since(start))
		}
	})
}
