package control

import (
	"context"
	"encoding/json"
	"io"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/cloud/auth"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// conn is one gateway's socket. An idle socket costs one goroutine (the
// reader), one timer (pings) and small buffers: writes take a buffer from
// the hub's pool only while they write, and are made by whoever has
// something to send — the reader its error frames, a delivery goroutine
// started on demand (when the gateway is woken, it ends when nothing is
// due) the commands, the ping timer its pings — one at a time (wmu). A
// write that cannot finish within writeWait (a gateway that does not read)
// closes the socket; its commands stay in the queue.
type conn struct {
	hub    *Hub
	gw     auth.Gateway
	apiKey string
	ws     *websocket.Conn
	// ctx is the request's context without its cancellation (the request
	// ends when the handler returns; the socket lives on).
	ctx context.Context

	wmu  sync.Mutex  // one data message written at a time
	ping *time.Timer // the next ping

	mu         sync.Mutex
	delivering bool // a delivery goroutine runs
	woken      bool // woken since the delivery goroutine last claimed

	done chan struct{}
	once sync.Once
}

const (
	writeWait    = 10 * time.Second
	maxMessage   = 1 << 20
	maxDiscarded = 8 << 20
	// readBuffer is the socket's read buffer: a gateway's messages
	// (heartbeats, acknowledgements) are a few hundred bytes; larger ones
	// are read through it in pieces.
	readBuffer = 512
	// writeBuffer is the size of the pooled write buffers (a larger
	// message is written as several frames).
	writeBuffer = 2048
)

// poke wakes the gateway: a delivery goroutine claims its due commands
// (one is started unless one runs; a running one claims again).
func (c *conn) poke() {
	c.mu.Lock()
	c.woken = true
	if c.delivering || c.closed() {
		c.mu.Unlock()
		return
	}
	c.delivering = true
	c.mu.Unlock()
	go c.deliver()
}

// deliver claims and sends the gateway's due commands until it has not
// been woken since its last claim.
func (c *conn) deliver() {
	for {
		c.mu.Lock()
		if !c.woken || c.closed() {
			// Replaced or revoked meanwhile: claiming now would mark
			// commands delivered to a socket nobody reads (they would wait
			// for the ack deadline); the new connection claims them.
			c.delivering = false
			c.mu.Unlock()
			return
		}
		c.woken = false
		c.mu.Unlock()
		for {
			cmds, err := c.hub.claim(c.ctx, c.gw)
			if err != nil {
				c.hub.logger.ErrorContext(c.ctx, "claim commands", "gateway", c.gw.ID, "err", err)
				break
			}
			sent := true
			for _, cmd := range cmds {
				if sent = c.send(protocol.MsgCommand, cmd); !sent {
					break
				}
				c.hub.delivered.WithLabelValues("websocket").Inc()
			}
			if !sent || len(cmds) < c.hub.opts.ClaimBatch {
				break
			}
		}
	}
}

// send writes a message; false when the socket is closed or the write
// failed (the socket is then closed).
func (c *conn) send(typ string, v any) bool {
	data, err := json.Marshal(v)
	if err != nil {
		return false
	}
	msg, _ := json.Marshal(protocol.Envelope{V: protocol.ControlVersion, Type: typ, Data: data})
	if c.closed() {
		return false
	}
	c.wmu.Lock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(writeWait))
	err = c.ws.WriteMessage(websocket.TextMessage, msg)
	c.wmu.Unlock()
	if err != nil {
		c.close(websocket.CloseAbnormalClosure, "")
		return false
	}
	return true
}

// schedulePing starts the ping timer: every HeartbeatInterval a ping
// (WriteControl may run beside a data write).
func (c *conn) schedulePing() {
	interval := c.hub.opts.HeartbeatInterval
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ping = time.AfterFunc(interval, func() {
		if c.closed() {
			return
		}
		if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeWait)); err != nil {
			c.close(websocket.CloseAbnormalClosure, "")
			return
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if !c.closed() {
			c.ping.Reset(interval)
		}
	})
}

// closed reports whether the connection was closed (replaced, revoked,
// failed).
func (c *conn) closed() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

func (c *conn) close(code int, reason string) {
	c.once.Do(func() {
		c.mu.Lock()
		close(c.done)
		if c.ping != nil {
			c.ping.Stop()
		}
		c.mu.Unlock() // before the write: poke must not wait for it
		_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(time.Second))
		_ = c.ws.Close()
	})
}

func (c *conn) readLoop(ctx context.Context) {
	// Messages up to maxMessage are read; larger ones, up to
	// maxDiscarded, are skipped and answered with an error frame; beyond
	// that the socket closes (1009, message too big).
	c.ws.SetReadLimit(maxDiscarded)
	deadline := 3*c.hub.opts.HeartbeatInterval + 10*time.Second
	_ = c.ws.SetReadDeadline(time.Now().Add(deadline))
	c.ws.SetPongHandler(func(string) error { return c.ws.SetReadDeadline(time.Now().Add(deadline)) })
	for {
		_, r, err := c.ws.NextReader()
		if err != nil {
			return
		}
		data, err := io.ReadAll(io.LimitReader(r, maxMessage+1))
		if err != nil {
			return
		}
		var ce *protocol.ControlError
		if len(data) > maxMessage {
			n, err := io.Copy(io.Discard, r)
			if err != nil {
				return
			}
			ce = errorFrame("", "", apperr.New(apperr.TooLarge, "", "a message of %d bytes; the limit is %d", int64(len(data))+n, maxMessage))
		}
		_ = c.ws.SetReadDeadline(time.Now().Add(deadline))
		if ce == nil {
			ce = c.hub.receive(ctx, c.gw, data)
		}
		if ce != nil {
			c.hub.refused.WithLabelValues(ce.Code).Inc()
			if !c.send(protocol.MsgError, ce) {
				return
			}
		}
	}
}
