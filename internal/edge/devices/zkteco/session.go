package zkteco

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync/atomic"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/edge/devices"
	"github.com/staffcontrol/staffcontrol/internal/zkproto"
)

// session is one protocol session on one connection: requests are
// strictly one at a time (the protocol has no multiplexing), replies are
// matched by reply number, and unsolicited realtime packets met on the way
// go to onEvent.
type session struct {
	conn     net.Conn
	udp      bool
	id       uint16
	reply    uint16
	timeout  time.Duration
	log      *slog.Logger
	badSums  *atomic.Int64
	onEvent  func(zkproto.Packet)
	udpBuf   []byte
	deadline time.Time // the current read deadline (per request)
}

// dial connects and opens the session (CONNECT, then AUTH with the comm
// key when the device asks for it).
func dial(ctx context.Context, addr string, st Settings, log *slog.Logger, badSums *atomic.Int64) (*session, error) {
	network := "tcp"
	if st.Transport == "udp" {
		network = "udp"
	}
	dctx, cancel := context.WithTimeout(ctx, st.timeout())
	defer cancel()
	c, err := (&net.Dialer{}).DialContext(dctx, network, addr)
	if err != nil {
		return nil, fmt.Errorf("zkteco: dial %s: %w", addr, err)
	}
	s := &session{conn: c, udp: network == "udp", timeout: st.timeout(), log: log, badSums: badSums}
	if s.udp {
		s.udpBuf = make([]byte, zkproto.MaxPacket+1)
	}
	if err := s.open(ctx, st.CommKey); err != nil {
		c.Close()
		return nil, err
	}
	return s, nil
}

func (s *session) open(ctx context.Context, key uint32) error {
	s.reply = 0
	p, err := s.roundTrip(ctx, zkproto.CmdConnect, nil)
	if err != nil {
		return fmt.Errorf("zkteco: connect: %w", err)
	}
	s.id = p.Session
	switch p.Cmd {
	case zkproto.CmdAckOK:
		return nil
	case zkproto.CmdAckUnauth:
	default:
		return &devices.ProtocolError{Op: "connect", Err: fmt.Errorf("unexpected reply %s", zkproto.CmdName(p.Cmd))}
	}
	ck := zkproto.CommKey(key, s.id)
	p, err = s.roundTrip(ctx, zkproto.CmdAuth, ck[:])
	if err != nil {
		return fmt.Errorf("zkteco: auth: %w", err)
	}
	switch p.Cmd {
	case zkproto.CmdAckOK:
		return nil
	case zkproto.CmdAckUnauth:
		return &devices.AuthError{Reason: "CMD_ACK_UNAUTH (wrong comm key)", AttemptsLeft: -1}
	}
	return &devices.ProtocolError{Op: "auth", Err: fmt.Errorf("unexpected reply %s", zkproto.CmdName(p.Cmd))}
}

// close sends EXIT (best effort, briefly) and closes the connection.
func (s *session) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), min(s.timeout, time.Second))
	defer cancel()
	_, _ = s.roundTrip(ctx, zkproto.CmdExit, nil)
	return s.conn.Close()
}

// send writes one request with the next reply number and returns it.
func (s *session) send(ctx context.Context, cmd uint16, data []byte) (uint16, error) {
	if s.reply == 0xFFFF {
		s.reply = 0
	}
	if cmd != zkproto.CmdConnect {
		s.reply++
	}
	p := zkproto.Packet{Cmd: cmd, Session: s.id, Reply: s.reply, Data: data}
	var b []byte
	if s.udp {
		b = p.Marshal()
	} else {
		b = p.MarshalTCP()
	}
	dl := time.Now().Add(s.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(dl) {
		dl = d
	}
	s.deadline = dl
	_ = s.conn.SetDeadline(dl)
	stop := context.AfterFunc(ctx, func() { _ = s.conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := s.conn.Write(b); err != nil {
		return 0, s.ioErr(ctx, "write "+zkproto.CmdName(cmd), err)
	}
	return s.reply, nil
}

// roundTrip sends a request and reads its reply.
func (s *session) roundTrip(ctx context.Context, cmd uint16, data []byte) (zkproto.Packet, error) {
	r, err := s.send(ctx, cmd, data)
	if err != nil {
		return zkproto.Packet{}, err
	}
	return s.readReply(ctx, r, zkproto.CmdName(cmd))
}

// readReply reads packets until the one answering reply number r,
// passing realtime events to onEvent; the deadline is the request's.
func (s *session) readReply(ctx context.Context, r uint16, op string) (zkproto.Packet, error) {
	_ = s.conn.SetReadDeadline(s.deadline)
	stop := context.AfterFunc(ctx, func() { _ = s.conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	for {
		p, err := s.readPacket(ctx, op)
		if err != nil {
			return p, err
		}
		if p.Cmd == zkproto.CmdRegEvent && p.Reply == 0 {
			s.event(p)
			continue
		}
		if p.Reply != r {
			s.log.Debug("zkteco: stray reply skipped", "cmd", zkproto.CmdName(p.Cmd), "reply", p.Reply, "want", r)
			continue
		}
		return p, nil
	}
}

func (s *session) event(p zkproto.Packet) {
	if s.onEvent != nil {
		s.onEvent(p)
	}
}

// readPacket reads one packet; decoding failures are ProtocolErrors, a bad
// checksum is logged and counted too.
func (s *session) readPacket(ctx context.Context, op string) (zkproto.Packet, error) {
	var p zkproto.Packet
	var err error
	if s.udp {
		var n int
		n, err = s.conn.Read(s.udpBuf)
		if err == nil {
			p, err = zkproto.ParsePacket(s.udpBuf[:n])
			p.Data = append([]byte(nil), p.Data...)
		}
	} else {
		p, err = zkproto.ReadTCPFrame(s.conn)
	}
	if err == nil {
		return p, nil
	}
	if errors.Is(err, zkproto.ErrChecksum) {
		n := s.badSums.Add(1)
		s.log.Warn("zkteco: reply with a bad checksum", "op", op, "cmd", zkproto.CmdName(p.Cmd), "bad_checksums", n)
	}
	for _, e := range []error{zkproto.ErrChecksum, zkproto.ErrBadMagic, zkproto.ErrTooLarge, zkproto.ErrTruncated, zkproto.ErrMalformed} {
		if errors.Is(err, e) {
			return p, &devices.ProtocolError{Op: op, Err: err}
		}
	}
	return p, s.ioErr(ctx, "read "+op, err)
}

// ioErr wraps a network error, naming the context's end when that is why.
func (s *session) ioErr(ctx context.Context, op string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("zkteco: %s: %w", op, context.Cause(ctx))
	}
	if d, ok := ctx.Deadline(); ok && errors.Is(err, os.ErrDeadlineExceeded) && !time.Now().Before(d) {
		return fmt.Errorf("zkteco: %s: %w", op, context.DeadlineExceeded) // the context's deadline, a moment before ctx.Err says so
	}
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("zkteco: %s: connection closed by the device: %w", op, err)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("zkteco: %s: no answer within %s: %w", op, s.timeout, err)
	}
	return fmt.Errorf("zkteco: %s: %w", op, err)
}

// command runs a request and wants ACK_OK; the reply's data is returned.
func (s *session) command(ctx context.Context, cmd uint16, data []byte) ([]byte, error) {
	p, err := s.roundTrip(ctx, cmd, data)
	if err != nil {
		return nil, err
	}
	switch p.Cmd {
	case zkproto.CmdAckOK, zkproto.CmdAckData:
		return p.Data, nil
	case zkproto.CmdAckUnauth:
		return nil, &devices.AuthError{Reason: "CMD_ACK_UNAUTH on " + zkproto.CmdName(cmd), AttemptsLeft: -1}
	}
	return nil, fmt.Errorf("zkteco: %s: device answered %s", zkproto.CmdName(cmd), zkproto.CmdName(p.Cmd))
}

// readBuffer runs the read-with-buffer flow for command cmd: DATA_WRRQ,
// then either one CMD_DATA, or the buffer size and DATA_RDY chunks (each
// PREPARE_DATA, CMD_DATA fragments, ACK_OK), then FREE_DATA. The result is
// capped at zkproto.MaxBuffer.
func (s *session) readBuffer(ctx context.Context, cmd uint16, fct uint32) ([]byte, error) {
	op := "read buffer " + zkproto.CmdName(cmd)
	p, err := s.roundTrip(ctx, zkproto.CmdDataWRRQ, zkproto.ReadRequest{Cmd: cmd, Fct: fct}.Encode())
	if err != nil {
		return nil, err
	}
	var out []byte
	switch p.Cmd {
	case zkproto.CmdData:
		out = p.Data
	case zkproto.CmdAckOK, zkproto.CmdPrepareData:
		size, err := zkproto.ParseBufferInfo(p.Data)
		if err != nil {
			return nil, &devices.ProtocolError{Op: op, Err: err}
		}
		chunk := uint32(zkproto.ChunkTCP)
		if s.udp {
			chunk = zkproto.ChunkUDP
		}
		out = make([]byte, 0, size)
		for start := uint32(0); start < size; {
			n := min(chunk, size-start)
			got, err := s.readChunk(ctx, start, n, op)
			if err != nil {
				return nil, err
			}
			out = append(out, got...)
			start += n
		}
	case zkproto.CmdAckUnauth:
		return nil, &devices.AuthError{Reason: "CMD_ACK_UNAUTH on " + op, AttemptsLeft: -1}
	default:
		return nil, fmt.Errorf("zkteco: %s: device answered %s", op, zkproto.CmdName(p.Cmd))
	}
	if _, err := s.command(ctx, zkproto.CmdFreeData, nil); err != nil {
		return nil, fmt.Errorf("zkteco: free data: %w", err)
	}
	return out, nil
}

func (s *session) readChunk(ctx context.Context, start, size uint32, op string) ([]byte, error) {
	r, err := s.send(ctx, zkproto.CmdDataRdy, zkproto.ChunkRequest{Start: start, Size: size}.Encode())
	if err != nil {
		return nil, err
	}
	p, err := s.readReply(ctx, r, op)
	if err != nil {
		return nil, err
	}
	switch p.Cmd {
	case zkproto.CmdData: // the whole chunk at once
		if uint32(len(p.Data)) != size {
			return nil, &devices.ProtocolError{Op: op, Err: fmt.Errorf("chunk of %d bytes, asked %d", len(p.Data), size)}
		}
		return p.Data, nil
	case zkproto.CmdPrepareData:
	default:
		return nil, fmt.Errorf("zkteco: %s: chunk at %d: device answered %s", op, start, zkproto.CmdName(p.Cmd))
	}
	n, err := zkproto.ParsePrepareData(p.Data)
	if err != nil || n != size {
		return nil, &devices.ProtocolError{Op: op, Err: fmt.Errorf("prepared %d bytes for a chunk of %d: %v", n, size, err)}
	}
	out := make([]byte, 0, size)
	for {
		p, err := s.readReply(ctx, r, op)
		if err != nil {
			return nil, err
		}
		switch p.Cmd {
		case zkproto.CmdData:
			if uint32(len(out)+len(p.Data)) > size {
				return nil, &devices.ProtocolError{Op: op, Err: fmt.Errorf("chunk data over the %d bytes prepared", size)}
			}
			out = append(out, p.Data...)
		case zkproto.CmdAckOK:
			if uint32(len(out)) != size {
				return nil, &devices.ProtocolError{Op: op, Err: fmt.Errorf("chunk ended at %d of %d bytes", len(out), size)}
			}
			return out, nil
		default:
			return nil, fmt.Errorf("zkteco: %s: in a chunk: device answered %s", op, zkproto.CmdName(p.Cmd))
		}
	}
}
