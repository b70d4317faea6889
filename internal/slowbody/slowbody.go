// Package slowbody keeps a request body from holding a connection at a
// trickle without cutting off a large upload on a slow but honest link: a
// body must arrive at a minimum average rate once a grace period has passed
// (by default 16 KiB/s after 10 s), enforced with per-request read
// deadlines (http.ResponseController), and the write deadline moves with
// the body so that the answer to a long upload can still be written. A
// body that falls behind is cut off: the handler's read fails with
// ErrTooSlow and the client gets 408 if nothing was answered yet.
//
// It imports only the standard library, so that the gateway (edge) and the
// cloud services share it.
package slowbody

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync/atomic"
	"time"
)

// Defaults of Options.
const (
	DefaultMinRate      = 16 << 10 // bytes per second
	DefaultGrace        = 10 * time.Second
	DefaultWriteTimeout = 60 * time.Second
)

// ErrTooSlow is the handler's read error for a body cut off for arriving
// too slowly.
var ErrTooSlow = errors.New("request body arrived too slowly")

// Options bound how slowly a body may arrive.
type Options struct {
	// MinRate is the slowest average rate, in bytes per second, at which a
	// body may arrive once Grace has passed (default 16 KiB/s): by any time
	// t after the request's headers, at least (t − Grace) × MinRate bytes
	// must have arrived.
	MinRate int64
	// Grace is how long a body may take before MinRate applies (default
	// 10 s).
	Grace time.Duration
	// WriteTimeout is how long the handler has to answer once the body
	// has arrived (default 60 s): the write deadline is kept at the
	// current read deadline plus WriteTimeout while the body arrives, so a
	// long upload is not refused an answer. Set the server's WriteTimeout
	// to the same value for requests without a body.
	WriteTimeout time.Duration
	// OnCutOff, when set, is called once for each body cut off, with the
	// bytes that had arrived.
	OnCutOff func(r *http.Request, received int64)
}

func (o Options) withDefaults() Options {
	if o.MinRate <= 0 {
		o.MinRate = DefaultMinRate
	}
	if o.Grace <= 0 {
		o.Grace = DefaultGrace
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	return o
}

// Handler returns h with the minimum body rate enforced on every request
// that has a body. Requests without one (a WebSocket upgrade, a long-poll)
// pass through untouched.
func Handler(h http.Handler, o Options) http.Handler {
	o = o.withDefaults()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody {
			h.ServeHTTP(w, r)
			return
		}
		b := &body{rc: http.NewResponseController(w), r: r, src: r.Body, start: time.Now(), o: o}
		// A deadline before the first read also bounds a body the handler
		// never reads, which the server discards after the handler.
		if !b.arm() {
			h.ServeHTTP(w, r) // deadlines unsupported here: nothing to enforce
			return
		}
		bw := &writer{ResponseWriter: w, b: b}
		r2 := *r
		r2.Body = b
		h.ServeHTTP(bw, &r2)
		if b.cut.Load() && !bw.wrote.Load() {
			// Best effort: the client may be too slow to read it too.
			_ = b.rc.SetWriteDeadline(time.Now().Add(5 * time.Second))
			w.Header().Set("Connection", "close")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusRequestTimeout)
			_, _ = fmt.Fprintf(w, `{"error":"request_timeout","message":"the request body arrived slower than %d bytes per second after %s; resend it"}`+"\n",
				o.MinRate, o.Grace)
		}
	})
}

// body enforces the rate on one request body. Handlers read a body from
// one goroutine; cut is read by the writer from the handler's goroutine.
type body struct {
	rc    *http.ResponseController
	r     *http.Request
	src   io.ReadCloser
	start time.Time
	o     Options
	n     int64
	eof   bool
	cut   atomic.Bool
}

// deadline is when the next byte must have arrived.
func (b *body) deadline() time.Time {
	return b.start.Add(b.o.Grace + time.Duration(float64(b.n+1)/float64(b.o.MinRate)*float64(time.Second)))
}

// arm sets the read deadline for the next byte and moves the write
// deadline with it; false when the connection does not support deadlines.
func (b *body) arm() bool {
	d := b.deadline()
	if err := b.rc.SetReadDeadline(d); err != nil {
		return false
	}
	_ = b.rc.SetWriteDeadline(d.Add(b.o.WriteTimeout))
	return true
}

// Read reads from the body within its deadline.
func (b *body) Read(p []byte) (int, error) {
	if b.cut.Load() {
		return 0, ErrTooSlow
	}
	if b.eof {
		return 0, io.EOF
	}
	b.arm()
	n, err := b.src.Read(p)
	b.n += int64(n)
	switch {
	case err == nil:
	case errors.Is(err, io.EOF):
		// Done: the connection's read deadline returns to the server (it
		// reads the next request, or watches for the client going away).
		b.eof = true
		_ = b.rc.SetReadDeadline(time.Time{})
		_ = b.rc.SetWriteDeadline(time.Now().Add(b.o.WriteTimeout))
	case errors.Is(err, os.ErrDeadlineExceeded):
		b.cut.Store(true)
		if b.o.OnCutOff != nil {
			b.o.OnCutOff(b.r, b.n)
		}
		return n, fmt.Errorf("%w: %d bytes in %s", ErrTooSlow, b.n, time.Since(b.start).Round(time.Millisecond))
	}
	return n, err
}

// Close closes the body.
func (b *body) Close() error { return b.src.Close() }

// writer notes whether the handler answered, and once the body is cut off
// keeps the handler's answer (written for a read error it cannot tell from
// a malformed body) from replacing the 408.
type writer struct {
	http.ResponseWriter
	b     *body
	wrote atomic.Bool
}

// WriteHeader sends the handler's status unless the body was cut off.
func (w *writer) WriteHeader(code int) {
	if w.b.cut.Load() && !w.wrote.Load() {
		return
	}
	w.wrote.Store(true)
	w.ResponseWriter.WriteHeader(code)
}

// Write writes the handler's answer unless the body was cut off first.
func (w *writer) Write(p []byte) (int, error) {
	if w.b.cut.Load() && !w.wrote.Load() {
		return 0, ErrTooSlow
	}
	w.wrote.Store(true)
	return w.ResponseWriter.Write(p)
}

// Flush flushes the underlying writer.
func (w *writer) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (w *writer) Unwrap() http.ResponseWriter { return w.ResponseWriter }
