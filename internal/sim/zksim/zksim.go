// Package zksim is a protocol-faithful ZKTeco terminal simulator for tests
// and demos: the binary protocol on TCP and UDP (one port), sessions and
// comm-key authentication, seeded users (with card numbers) and attendance
// records, bulk reads through the 1503/1504 read-with-buffer flow (one
// CMD_DATA for a small dataset, chunks of PREPARE_DATA, CMD_DATA fragments
// and ACK_OK for a large one), realtime EF_ATTLOG events pushed to the
// sessions that registered for them, unlock, restart (sessions dropped, new
// connections refused for a reboot window), time set, and fault injection.
//
// See ../shared/reference/device-protocols.md §2 and §5.
package zksim

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/zkproto"
)

// Fault is an injected misbehaviour (SetFault).
type Fault int

// The faults (§5 of the reference, those that apply to ZKTeco).
const (
	// FaultNone is normal behaviour.
	FaultNone Fault = iota
	// FaultHang accepts connections and reads requests but never answers.
	FaultHang
	// FaultSlowWrite writes every reply in 3-byte pieces with a pause
	// (Options.SlowWriteDelay) between them.
	FaultSlowWrite
	// FaultDropMidTransfer closes the session halfway through the data of
	// a bulk read (a chunk's fragments or a direct CMD_DATA).
	FaultDropMidTransfer
	// FaultBadChecksum sends every reply with a wrong checksum.
	FaultBadChecksum
	// FaultUnauth answers CMD_CONNECT and CMD_AUTH with CMD_ACK_UNAUTH
	// whatever the key.
	FaultUnauth
	// FaultOversize answers with a TCP frame whose length field is far over
	// any sane cap (then closes the connection).
	FaultOversize
	// FaultTruncate sends half of a reply frame, then closes the connection.
	FaultTruncate
)

// Options configures a simulator; the zero value is a device with no comm
// key, 10 users and 100 records, on 127.0.0.1 with a port of the system's
// choice, TCP only.
type Options struct {
	// Addr is the listen address (default 127.0.0.1:0); with UDP the UDP
	// socket takes the same port.
	Addr string
	// UDP also serves the protocol on UDP.
	UDP bool
	// CommKey is the device's comm key (0: none, no AUTH needed).
	CommKey uint32
	// Users seeds this many users when SeedUsers is nil (default 10; -1 none).
	Users int
	// SeedUsers are the users, when given.
	SeedUsers []zkproto.User
	// Records seeds this many past attendance records, one every 7 minutes
	// up to now, when SeedRecords is nil (default 100; -1 none).
	Records int
	// SeedRecords are the records, when given.
	SeedRecords []zkproto.Attendance
	// Serial, Platform, DeviceName, Firmware and MAC are the device's
	// identity (defaults: a serial from the port, "ZEM760_TFT", "F19",
	// "Ver 6.60 Jun 16 2015", 00:17:61:…).
	Serial, Platform, DeviceName, Firmware, MAC string
	// Location is the device's zone (its clock shows local time; default UTC).
	Location *time.Location
	// Now is the wall clock (default time.Now).
	Now func() time.Time
	// DirectMax is the largest dataset answered with one CMD_DATA
	// (default 1024 bytes); larger ones go through 1504 chunks.
	DirectMax int
	// Fragment is the largest CMD_DATA of a chunk (default 1008, as a
	// captured device).
	Fragment int
	// PacketGap pauses between the packets of a multi-packet answer (a
	// chunk's PREPARE_DATA, fragments and ACK_OK). Zero sends them back to
	// back, as a device does; node-zklib parses one packet per socket read
	// and stalls when loopback coalesces them, so its peer test sets a few
	// milliseconds.
	PacketGap time.Duration
	// RebootWindow is how long the device refuses connections after a
	// restart (default 2 s).
	RebootWindow time.Duration
	// BadgeRate starts a generator of live badge-ins (per second, random
	// users) when positive.
	BadgeRate float64
	// SlowWriteDelay is FaultSlowWrite's pause (default 5 ms).
	SlowWriteDelay time.Duration
	// Seed seeds the simulator's randomness (session ids, the generator).
	Seed uint64
	// Logger logs sessions and anomalies (default: discard).
	Logger *slog.Logger
}

// Unlock is one CMD_UNLOCK the device received.
type Unlock struct {
	// Value is the u32 as sent (pyzk sends seconds×10; the unit is ambiguous).
	Value uint32
	// At is when (device wall clock).
	At time.Time
}

// Sim is one simulated terminal.
type Sim struct {
	opts Options
	log  *slog.Logger

	mu          sync.Mutex
	rng         *rand.Rand
	users       []zkproto.User
	records     []zkproto.Attendance
	sessions    map[*session]struct{}
	udpSessions map[string]*session
	offset      time.Duration
	unlocks     []Unlock
	restarts    int
	rebootUntil time.Time
	fault       Fault
	badSums     int
	requests    map[uint16]int
	started     bool

	ln     net.Listener
	udp    *net.UDPConn
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New builds a simulator (no I/O; Start listens).
func New(opts Options) *Sim {
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	if opts.Location == nil {
		opts.Location = time.UTC
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.DirectMax == 0 {
		opts.DirectMax = 1024
	}
	if opts.Fragment <= 0 {
		opts.Fragment = 1008
	}
	if opts.RebootWindow == 0 {
		opts.RebootWindow = 2 * time.Second
	}
	if opts.SlowWriteDelay == 0 {
		opts.SlowWriteDelay = 5 * time.Millisecond
	}
	if opts.Platform == "" {
		opts.Platform = "ZEM760_TFT"
	}
	if opts.DeviceName == "" {
		opts.DeviceName = "F19"
	}
	if opts.Firmware == "" {
		opts.Firmware = "Ver 6.60 Jun 16 2015"
	}
	if opts.MAC == "" {
		opts.MAC = "00:17:61:12:34:56"
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Sim{opts: opts, log: log, rng: rand.New(rand.NewPCG(opts.Seed, 0x5a4b)), sessions: map[*session]struct{}{},
		udpSessions: map[string]*session{}, requests: map[uint16]int{}}
	s.users = append([]zkproto.User(nil), opts.SeedUsers...)
	if opts.SeedUsers == nil {
		n := opts.Users
		if n == 0 {
			n = 10
		}
		for i := 0; i < n; i++ {
			u := zkproto.User{UID: uint16(i + 1), Name: fmt.Sprintf("User %d", i+1), Card: uint32(100000 + i + 1),
				UserID: strconv.Itoa(1000 + i + 1), Group: "1"}
			if i == 0 {
				u.Privilege = 14
			}
			s.users = append(s.users, u)
		}
	}
	s.records = append([]zkproto.Attendance(nil), opts.SeedRecords...)
	if opts.SeedRecords == nil && len(s.users) > 0 {
		n := opts.Records
		if n == 0 {
			n = 100
		}
		now := s.deviceNow()
		for i := 0; i < n; i++ {
			u := s.users[i%len(s.users)]
			at := now.Add(-time.Duration(n-i) * 7 * time.Minute)
			s.records = append(s.records, zkproto.Attendance{UID: u.UID, UserID: u.UserID, Time: zkproto.TimeOf(at),
				Status: []uint8{1, 2, 15}[i%3], Punch: uint8(i/len(s.users)) % 2})
		}
	}
	return s
}

// Start listens (TCP, and UDP on the same port with Options.UDP) and
// serves until Close.
func (s *Sim) Start(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", s.opts.Addr)
	if err != nil {
		cancel()
		return fmt.Errorf("zksim: listen: %w", err)
	}
	s.ln, s.cancel = ln, cancel
	if s.opts.UDP {
		pc, err := (&net.ListenConfig{}).ListenPacket(ctx, "udp", ln.Addr().String())
		if err != nil {
			cancel()
			ln.Close()
			return fmt.Errorf("zksim: listen udp: %w", err)
		}
		s.udp = pc.(*net.UDPConn)
		s.wg.Add(1)
		go s.serveUDP()
	}
	s.mu.Lock()
	if s.opts.Serial == "" {
		s.opts.Serial = fmt.Sprintf("SIM%010d", ln.Addr().(*net.TCPAddr).Port)
	}
	s.started = true
	s.mu.Unlock()
	s.wg.Add(1)
	go s.acceptLoop(ctx)
	if s.opts.BadgeRate > 0 {
		s.wg.Add(1)
		go s.generate(ctx)
	}
	context.AfterFunc(ctx, func() { ln.Close() })
	return nil
}

// Addr is the listen address (host:port), TCP and UDP alike.
func (s *Sim) Addr() string { return s.ln.Addr().String() }

// Serial is the device's serial number.
func (s *Sim) Serial() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.opts.Serial
}

// Close stops serving and drops every session.
func (s *Sim) Close() error {
	if s.cancel == nil {
		return nil
	}
	s.cancel()
	s.ln.Close()
	if s.udp != nil {
		s.udp.Close()
	}
	s.dropSessions()
	s.wg.Wait()
	return nil
}

// SetFault injects f from now on (FaultNone ends it).
func (s *Sim) SetFault(f Fault) {
	s.mu.Lock()
	s.fault = f
	s.mu.Unlock()
}

func (s *Sim) currentFault() Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fault
}

// Users returns a copy of the device's users.
func (s *Sim) Users() []zkproto.User {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]zkproto.User(nil), s.users...)
}

// Records returns a copy of the attendance log, oldest first.
func (s *Sim) Records() []zkproto.Attendance {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]zkproto.Attendance(nil), s.records...)
}

// Unlocks returns the CMD_UNLOCKs received.
func (s *Sim) Unlocks() []Unlock {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Unlock(nil), s.unlocks...)
}

// Restarts counts the CMD_RESTARTs carried out.
func (s *Sim) Restarts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.restarts
}

// BadChecksums counts the inbound packets with a wrong checksum (logged,
// not rejected, as the reference advises).
func (s *Sim) BadChecksums() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.badSums
}

// Requests counts the requests received with command cmd.
func (s *Sim) Requests(cmd uint16) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[cmd]
}

// Sessions counts the open sessions (TCP connections and UDP peers).
func (s *Sim) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// Listeners counts the authenticated sessions registered for EF_ATTLOG
// events (the ones Badge pushes to).
func (s *Sim) Listeners() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for ss := range s.sessions {
		if ss.authed && ss.events&zkproto.EFAttLog != 0 {
			n++
		}
	}
	return n
}

// Now is the device's clock (wall time in its zone, moved by SET_TIME).
func (s *Sim) Now() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.deviceNow()
}

func (s *Sim) deviceNow() time.Time {
	return s.opts.Now().Add(s.offset).In(s.opts.Location)
}

// Badge records a badge-in by the user with device user id userID now
// (device clock) and pushes the EF_ATTLOG event to every session that
// registered for it. The record is returned.
func (s *Sim) Badge(userID string) (zkproto.Attendance, error) {
	s.mu.Lock()
	var u *zkproto.User
	for i := range s.users {
		if s.users[i].UserID == userID {
			u = &s.users[i]
		}
	}
	if u == nil {
		s.mu.Unlock()
		return zkproto.Attendance{}, fmt.Errorf("zksim: no user %q", userID)
	}
	now := s.deviceNow()
	var status uint8 = 1 // fingerprint
	if u.Card != 0 {
		status = 2 // card
	}
	var punch uint8
	for _, r := range s.records { // alternate in and out per user
		if r.UserID == userID {
			punch = 1 - r.Punch%2
		}
	}
	rec := zkproto.Attendance{UID: u.UID, UserID: u.UserID, Time: zkproto.TimeOf(now), Status: status, Punch: punch}
	s.records = append(s.records, rec)
	var targets []*session
	for ss := range s.sessions {
		if ss.authed && ss.events&zkproto.EFAttLog != 0 {
			targets = append(targets, ss)
		}
	}
	s.mu.Unlock()
	ev := zkproto.EventPacket(zkproto.EFAttLog, zkproto.LiveAttLog{UserID: rec.UserID, Status: rec.Status, Punch: rec.Punch,
		Time: zkproto.TimeHexOf(now)}.Encode32())
	for _, ss := range targets {
		if err := ss.send(ev); err != nil {
			s.log.Debug("zksim: event not delivered", "session", ss.id, "err", err)
		}
	}
	return rec, nil
}

// AddRecords appends records to the log without events (a backlog
// written while nobody listened).
func (s *Sim) AddRecords(recs ...zkproto.Attendance) {
	s.mu.Lock()
	s.records = append(s.records, recs...)
	s.mu.Unlock()
}

func (s *Sim) generate(ctx context.Context) {
	defer s.wg.Done()
	for {
		s.mu.Lock()
		d := time.Duration(s.rng.ExpFloat64() / s.opts.BadgeRate * float64(time.Second))
		var id string
		if len(s.users) > 0 {
			id = s.users[s.rng.IntN(len(s.users))].UserID
		}
		s.mu.Unlock()
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if id != "" && !s.rebooting() {
			_, _ = s.Badge(id)
		}
	}
}

func (s *Sim) rebooting() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return time.Now().Before(s.rebootUntil)
}

func (s *Sim) newSessionID() uint16 {
	for {
		if id := uint16(s.rng.Uint32()); id != 0 {
			return id
		}
	}
}

// session is one client session on TCP or UDP.
type session struct {
	id     uint16
	authed bool   // under Sim.mu
	events uint32 // under Sim.mu
	buf    []byte // prepared 1503 buffer (handler goroutine only)
	write  func(b []byte) error
	close  func()
	udp    bool
	wmu    sync.Mutex
}

func (ss *session) send(p zkproto.Packet) error {
	var b []byte
	if ss.udp {
		b = p.Marshal()
	} else {
		b = p.MarshalTCP()
	}
	ss.wmu.Lock()
	defer ss.wmu.Unlock()
	return ss.write(b)
}

func (s *Sim) dropSessions() {
	s.mu.Lock()
	ss := make([]*session, 0, len(s.sessions))
	for x := range s.sessions {
		ss = append(ss, x)
	}
	s.sessions = map[*session]struct{}{}
	s.udpSessions = map[string]*session{}
	s.mu.Unlock()
	for _, x := range ss {
		x.close()
	}
}

func (s *Sim) acceptLoop(ctx context.Context) {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return
		}
		if s.rebooting() {
			c.Close() // the device is booting: refused
			continue
		}
		s.wg.Add(1)
		go s.serveTCP(ctx, c)
	}
}

func (s *Sim) serveTCP(ctx context.Context, c net.Conn) {
	defer s.wg.Done()
	defer c.Close()
	ss := &session{close: func() { c.Close() }}
	ss.write = func(b []byte) error { return s.writeTCP(c, b) }
	s.mu.Lock()
	s.sessions[ss] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.sessions, ss)
		s.mu.Unlock()
	}()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	for {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Minute))
		p, err := zkproto.ReadTCPFrame(c)
		if errors.Is(err, zkproto.ErrChecksum) {
			s.countBadSum(p)
		} else if err != nil {
			return
		}
		if !s.handle(ss, p) {
			return
		}
	}
}

// writeTCP writes one frame, in a single Write unless a fault says
// otherwise.
func (s *Sim) writeTCP(c net.Conn, b []byte) error {
	_ = c.SetWriteDeadline(time.Now().Add(30 * time.Second))
	switch s.currentFault() {
	case FaultSlowWrite:
		for len(b) > 0 {
			n := min(3, len(b))
			if _, err := c.Write(b[:n]); err != nil {
				return err
			}
			b = b[n:]
			time.Sleep(s.opts.SlowWriteDelay)
		}
		return nil
	case FaultBadChecksum:
		b[10] ^= 0x5A
	case FaultOversize:
		binary.LittleEndian.PutUint32(b[4:], 0x7FFFFFF0)
		_, _ = c.Write(b)
		c.Close()
		return errors.New("zksim: oversize fault")
	case FaultTruncate:
		_, _ = c.Write(b[:len(b)/2])
		c.Close()
		return errors.New("zksim: truncate fault")
	}
	_, err := c.Write(b)
	return err
}

func (s *Sim) countBadSum(p zkproto.Packet) {
	s.mu.Lock()
	s.badSums++
	s.mu.Unlock()
	s.log.Warn("zksim: inbound packet with a bad checksum (accepted)", "cmd", zkproto.CmdName(p.Cmd))
}

func (s *Sim) serveUDP() {
	defer s.wg.Done()
	buf := make([]byte, zkproto.MaxPacket)
	for {
		n, from, err := s.udp.ReadFromUDP(buf)
		if err != nil {
			return
		}
		if s.rebooting() {
			continue
		}
		p, err := zkproto.ParsePacket(append([]byte(nil), buf[:n]...))
		if errors.Is(err, zkproto.ErrChecksum) {
			s.countBadSum(p)
		} else if err != nil {
			continue
		}
		key := from.String()
		s.mu.Lock()
		ss := s.udpSessions[key]
		if ss == nil || p.Cmd == zkproto.CmdConnect {
			if ss != nil {
				delete(s.sessions, ss)
			}
			ss = &session{udp: true}
			addr := from
			ss.write = func(b []byte) error {
				switch s.currentFault() {
				case FaultBadChecksum:
					b[2] ^= 0x5A
				case FaultSlowWrite:
					time.Sleep(s.opts.SlowWriteDelay)
				case FaultTruncate:
					b = b[:len(b)/2]
				}
				_, err := s.udp.WriteToUDP(b, addr)
				return err
			}
			ss.close = func() {
				s.mu.Lock()
				if s.udpSessions[key] == ss {
					delete(s.udpSessions, key)
				}
				delete(s.sessions, ss)
				s.mu.Unlock()
			}
			s.udpSessions[key] = ss
			s.sessions[ss] = struct{}{}
		}
		s.mu.Unlock()
		if !s.handle(ss, p) {
			ss.close()
		}
	}
}

func ack(ss *session, p zkproto.Packet, cmd uint16, data []byte) zkproto.Packet {
	return zkproto.Packet{Cmd: cmd, Session: ss.id, Reply: p.Reply, Data: data}
}

// handle answers one request; false ends the session.
func (s *Sim) handle(ss *session, p zkproto.Packet) bool {
	s.mu.Lock()
	s.requests[p.Cmd]++
	fault := s.fault
	authed := ss.authed
	s.mu.Unlock()
	if fault == FaultHang {
		return true
	}
	reply := func(cmd uint16, data []byte) bool {
		return ss.send(ack(ss, p, cmd, data)) == nil
	}
	switch p.Cmd {
	case zkproto.CmdConnect:
		s.mu.Lock()
		if ss.id == 0 {
			ss.id = s.newSessionID()
		}
		ss.authed = s.opts.CommKey == 0 && fault != FaultUnauth
		ok := ss.authed
		s.mu.Unlock()
		if ok {
			return reply(zkproto.CmdAckOK, nil)
		}
		return reply(zkproto.CmdAckUnauth, nil)
	case zkproto.CmdAuth:
		want := zkproto.CommKey(s.opts.CommKey, ss.id)
		ok := len(p.Data) >= 4 && [4]byte(p.Data[:4]) == want && fault != FaultUnauth
		s.mu.Lock()
		ss.authed = ok
		s.mu.Unlock()
		if !ok {
			s.log.Info("zksim: AUTH refused", "session", ss.id)
			return reply(zkproto.CmdAckUnauth, nil)
		}
		return reply(zkproto.CmdAckOK, nil)
	case zkproto.CmdExit:
		reply(zkproto.CmdAckOK, nil)
		return false
	case zkproto.CmdAckOK, zkproto.CmdAckData, zkproto.CmdAckRepeat, zkproto.CmdAckRetry:
		return true // a client's ACK of an event: no answer
	}
	if !authed {
		return reply(zkproto.CmdAckUnauth, nil)
	}
	switch p.Cmd {
	case zkproto.CmdAckError, zkproto.CmdAckUnknown:
		return reply(zkproto.CmdAckUnknown, nil) // pyzk's _clear_error
	case zkproto.CmdGetVersion:
		return reply(zkproto.CmdAckOK, zkproto.Option(s.opts.Firmware))
	case zkproto.CmdOptionsRRQ:
		key := string(p.Data)
		if i := indexNUL(p.Data); i >= 0 {
			key = string(p.Data[:i])
		}
		v, ok := s.option(key)
		if !ok {
			return reply(zkproto.CmdAckError, nil)
		}
		return reply(zkproto.CmdAckOK, zkproto.Option(key+"="+v))
	case zkproto.CmdGetFreeSizes:
		return reply(zkproto.CmdAckOK, s.sizes().Encode())
	case zkproto.CmdGetTime:
		return reply(zkproto.CmdAckOK, zkproto.U32(uint32(zkproto.TimeOf(s.Now()))))
	case zkproto.CmdSetTime:
		v, err := zkproto.ParseU32(p.Data)
		if err != nil {
			return reply(zkproto.CmdAckError, nil)
		}
		s.mu.Lock()
		want := zkproto.Time(v).In(s.opts.Location)
		s.offset = want.Sub(s.opts.Now())
		s.mu.Unlock()
		return reply(zkproto.CmdAckOK, nil)
	case zkproto.CmdUnlock:
		v, err := zkproto.ParseU32(p.Data)
		if err != nil {
			return reply(zkproto.CmdAckError, nil)
		}
		s.mu.Lock()
		s.unlocks = append(s.unlocks, Unlock{Value: v, At: s.deviceNow()})
		s.mu.Unlock()
		return reply(zkproto.CmdAckOK, nil)
	case zkproto.CmdDoorStateRRQ:
		s.mu.Lock()
		open := byte(0)
		if n := len(s.unlocks); n > 0 && s.deviceNow().Sub(s.unlocks[n-1].At) < time.Duration(s.unlocks[n-1].Value)*100*time.Millisecond {
			open = 1
		}
		s.mu.Unlock()
		return reply(zkproto.CmdAckOK, []byte{open})
	case zkproto.CmdRegEvent:
		v, _ := zkproto.ParseU32(append(append([]byte(nil), p.Data...), 0, 0, 0, 0))
		s.mu.Lock()
		ss.events = v
		s.mu.Unlock()
		return reply(zkproto.CmdAckOK, nil)
	case zkproto.CmdRestart:
		// The reboot is under way before the ACK leaves: a client that
		// reconnects the moment it reads the ACK finds the device down
		// (recorded after the reply, a fast client raced it: CI saw
		// "restarts 0" and a connect inside the window).
		s.mu.Lock()
		s.restarts++
		s.rebootUntil = time.Now().Add(s.opts.RebootWindow)
		s.mu.Unlock()
		reply(zkproto.CmdAckOK, nil)
		s.log.Info("zksim: restarting", "window", s.opts.RebootWindow)
		go s.dropSessions()
		return false
	case zkproto.CmdClearAttLog:
		s.mu.Lock()
		s.records = nil
		s.mu.Unlock()
		return reply(zkproto.CmdAckOK, nil)
	case zkproto.CmdEnableDevice, zkproto.CmdDisableDevice, zkproto.CmdRefreshData, zkproto.CmdRefreshOption,
		zkproto.CmdCancelCapture, zkproto.CmdStartVerify, zkproto.CmdEnableClock, zkproto.CmdTestVoice,
		zkproto.CmdOptionsWRQ, zkproto.CmdClearLCD, zkproto.CmdWriteLCD:
		return reply(zkproto.CmdAckOK, nil)
	case zkproto.CmdStateRRQ:
		return ss.send(zkproto.Packet{Cmd: zkproto.CmdAckOK, Session: 0, Reply: p.Reply}) == nil
	case zkproto.CmdFreeData:
		ss.buf = nil
		return reply(zkproto.CmdAckOK, nil)
	case zkproto.CmdDataWRRQ:
		req, err := zkproto.ParseReadRequest(p.Data)
		if err != nil {
			return reply(zkproto.CmdAckError, nil)
		}
		ds, ok := s.dataset(req.Cmd)
		if !ok {
			return reply(zkproto.CmdAckError, nil)
		}
		if len(ds) <= s.opts.DirectMax {
			if fault == FaultDropMidTransfer {
				return false
			}
			return reply(zkproto.CmdData, ds)
		}
		ss.buf = ds
		return reply(zkproto.CmdAckOK, zkproto.BufferInfo(uint32(len(ds))))
	case zkproto.CmdDataRdy:
		c, err := zkproto.ParseChunkRequest(p.Data)
		if err != nil || ss.buf == nil || uint64(c.Start)+uint64(c.Size) > uint64(len(ss.buf)) {
			return reply(zkproto.CmdAckError, nil)
		}
		return s.sendChunk(ss, p, ss.buf[c.Start:c.Start+c.Size], fault)
	case zkproto.CmdUserTempRRQ, zkproto.CmdAttLogRRQ: // the legacy direct flow
		ds, _ := s.dataset(p.Cmd)
		return s.sendChunk(ss, p, ds, fault)
	}
	return reply(zkproto.CmdAckUnknown, nil)
}

// sendChunk sends PREPARE_DATA, the data in fragments (their session field
// a counter, as a captured device) and ACK_OK, all with the request's
// reply number.
func (s *Sim) sendChunk(ss *session, p zkproto.Packet, chunk []byte, fault Fault) bool {
	gap := func() {
		if s.opts.PacketGap > 0 {
			time.Sleep(s.opts.PacketGap)
		}
	}
	if ss.send(ack(ss, p, zkproto.CmdPrepareData, zkproto.PrepareData(uint32(len(chunk)), uint32(s.opts.Fragment)))) != nil {
		return false
	}
	gap()
	for i, off := 0, 0; off < len(chunk); i++ {
		if fault == FaultDropMidTransfer && off >= len(chunk)/2 {
			s.log.Info("zksim: dropping the session mid-transfer", "session", ss.id)
			return false
		}
		n := min(s.opts.Fragment, len(chunk)-off)
		if ss.send(zkproto.Packet{Cmd: zkproto.CmdData, Session: uint16(i), Reply: p.Reply, Data: chunk[off : off+n]}) != nil {
			return false
		}
		off += n
		gap()
	}
	return ss.send(ack(ss, p, zkproto.CmdAckOK, nil)) == nil
}

func indexNUL(b []byte) int {
	for i, c := range b {
		if c == 0 {
			return i
		}
	}
	return -1
}

func (s *Sim) option(key string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch key {
	case "~SerialNumber":
		return s.opts.Serial, true
	case "~Platform":
		return s.opts.Platform, true
	case "~DeviceName":
		return s.opts.DeviceName, true
	case "MAC":
		return s.opts.MAC, true
	case "~OEMVendor":
		return "ZKTeco Inc.", true
	case "~ZKFPVersion":
		return "10", true
	case "~ExtendFmt", "~UserExtFmt":
		return "1", true
	case "~PIN2Width":
		return "9", true
	case "WorkCode":
		return "0", true
	}
	return "", false
}

func (s *Sim) sizes() zkproto.Sizes {
	s.mu.Lock()
	defer s.mu.Unlock()
	const userCap, recCap, fpCap = 10000, 100000, 3000
	admins := 0
	for _, u := range s.users {
		if u.Privilege&^1 != 0 {
			admins++
		}
	}
	return zkproto.Sizes{Users: int32(len(s.users)), Records: int32(len(s.records)), Admins: int32(admins),
		FingerCap: fpCap, UserCap: userCap, RecordCap: recCap, FingerAvail: fpCap,
		UserAvail: int32(userCap - len(s.users)), RecordAvail: int32(recCap - len(s.records))}
}

// dataset builds the buffer of a bulk read: 72-byte users or 40-byte
// attendance records behind their u32 byte count.
func (s *Sim) dataset(cmd uint16) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var recs []byte
	switch cmd {
	case zkproto.CmdUserTempRRQ:
		for _, u := range s.users {
			recs = append(recs, u.Encode72()...)
		}
	case zkproto.CmdAttLogRRQ:
		for _, r := range s.records {
			recs = append(recs, r.Encode40()...)
		}
	default:
		return nil, false
	}
	if len(recs)+4 > zkproto.MaxBuffer {
		recs = recs[:0]
	}
	return zkproto.EncodeDataset(recs), true
}
