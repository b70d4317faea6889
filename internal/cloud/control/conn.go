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

// conn is one gateway's socket. readLoop runs on the HTTP handler's
// goroutine; writeLoop owns all writes. send is bounded: a gateway that
// does not read is disconnected, its commands stay in the queue.
type conn struct {
	hub    *Hub
	gw     auth.Gateway
	apiKey string
	ws     *websocket.Conn
	send   chan []byte
	wakeCh chan struct{}
	done   chan struct{}
	once   sync.Once
}

const (
	writeWait    = 10 * time.Second
	maxMessage   = 1 << 20
	maxDiscarded = 8 << 20
)

func (c *conn) poke() {
	select {
	case c.wakeCh <- struct{}{}:
	default:
	}
}

// enqueue queues a message for the writer; false when the queue is full
// (the connection is then closed).
func (c *conn) enqueue(typ string, v any) bool {
	data, err := json.Marshal(v)
	if err != nil {
		return false
	}
	msg, _ := json.Marshal(protocol.Envelope{V: protocol.ControlVersion, Type: typ, Data: data})
	if c.closed() {
		return false
	}
	select {
	case c.send <- msg:
		return true
	case <-c.done:
		return false
	default:
		c.close(websocket.CloseTryAgainLater, "gateway too slow to read")
		return false
	}
}

// closed reports whether the connection was closed (replaced, revoked,
// failed). A select with a ready send and a closed done picks at random;
// checking first keeps a closed connection from taking commands.
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
		close(c.done)
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
			c.enqueue(protocol.MsgError, ce)
		}
	}
}

func (c *conn) writeLoop(ctx context.Context) {
	ping := time.NewTicker(c.hub.opts.HeartbeatInterval)
	defer ping.Stop()
	write := func(msg []byte) bool {
		_ = c.ws.SetWriteDeadline(time.Now().Add(writeWait))
		return c.ws.WriteMessage(websocket.TextMessage, msg) == nil
	}
	for {
		select {
		case <-c.done:
			return
		case msg := <-c.send:
			if !write(msg) {
				c.close(websocket.CloseAbnormalClosure, "")
				return
			}
		case <-c.wakeCh:
			if c.closed() {
				// Replaced or revoked meanwhile: claiming now would mark
				// commands delivered to a socket nobody reads (they would
				// wait for the ack deadline); the new connection claims them.
				return
			}
			for {
				cmds, err := c.hub.claim(ctx, c.gw)
				if err != nil {
					c.hub.logger.ErrorContext(ctx, "claim commands", "gateway", c.gw.ID, "err", err)
					break
				}
				for _, cmd := range cmds {
					if !c.enqueue(protocol.MsgCommand, cmd) {
						return
					}
					c.hub.delivered.WithLabelValues("websocket").Inc()
				}
				if len(cmds) < c.hub.opts.ClaimBatch {
					break
				}
				// Drain what is queued before claiming more.
				for len(c.send) > 0 {
					if !write(<-c.send) {
						c.close(websocket.CloseAbnormalClosure, "")
						return
					}
				}
			}
		case <-ping.C:
			_ = c.ws.SetWriteDeadline(time.Now().Add(writeWait))
			if err := c.ws.WriteMessage(websocket.PingMessage, nil); err != nil {
				c.close(websocket.CloseAbnormalClosure, "")
				return
			}
		}
	}
}
