// Package zkteco is the devices.Adapter of ZKTeco standalone terminals (the
// binary protocol on port 4370, TCP or UDP, codec in internal/zkproto):
// connect and comm-key auth, device info and free sizes, users, the
// attendance log read through the chunked 1503/1504 flow and filtered
// locally after a cursor, live EF_ATTLOG events, and the door, restart and
// time commands.
//
// Two connections: Info, Execute and Fetch share one session (the
// supervisor serialises them); Subscribe opens its own. A ZK session is a
// single request/response stream with no way to tell two requests' replies
// apart but the reply number, and live events arrive unsolicited between
// replies; giving the live stream its own session keeps a long attendance
// read from starving the liveness probe and an event from being read by a
// command, and is what the official SDK does (one session listening, one
// pulling).
package zkteco

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/edge/devices"
	"github.com/staffcontrol/staffcontrol/internal/zkproto"
)

// Type is the adapter type name.
const Type = "zkteco"

// Settings is the adapter-specific part of a device's configuration
// (devices.Config.Settings).
type Settings struct {
	// CommKey is the device's communication password (0..999999; 0: none).
	CommKey uint32 `json:"comm_key,omitempty"`
	// Transport is "tcp" (default) or "udp".
	Transport string `json:"transport,omitempty"`
	// TimeZone is the IANA zone of the device's clock (default UTC): its
	// records carry local wall time.
	TimeZone string `json:"time_zone,omitempty"`
	// TimeoutMS is the per-request timeout (default 5000).
	TimeoutMS int `json:"timeout_ms,omitempty"`
	// UnlockSeconds is how long open_door unlocks (default 3).
	UnlockSeconds int `json:"unlock_seconds,omitempty"`
	// UnlockUnitsPerSecond scales UnlockSeconds into CMD_UNLOCK's u32
	// (default 10, as pyzk: many firmwares count tenths of a second; 1 for
	// those that count seconds).
	UnlockUnitsPerSecond int `json:"unlock_units_per_second,omitempty"`
	// IdleTimeoutMS is how long Subscribe waits on a silent session before
	// it probes it with CMD_GET_TIME (default 30000).
	IdleTimeoutMS int `json:"idle_timeout_ms,omitempty"`
	// PageSize is how many events Fetch hands over per page (default 500).
	PageSize int `json:"page_size,omitempty"`
}

func (s Settings) timeout() time.Duration { return time.Duration(s.TimeoutMS) * time.Millisecond }
func (s Settings) idle() time.Duration    { return time.Duration(s.IdleTimeoutMS) * time.Millisecond }

// Schema is the JSON Schema (draft 2020-12) of Settings.
const Schema = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "ZKTeco terminal settings",
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "comm_key": {"type": "integer", "minimum": 0, "maximum": 999999, "default": 0, "writeOnly": true, "description": "the device's communication password (0: none)"},
    "transport": {"enum": ["tcp", "udp"], "default": "tcp"},
    "time_zone": {"type": "string", "minLength": 1, "default": "UTC", "description": "IANA zone of the device clock"},
    "timeout_ms": {"type": "integer", "minimum": 100, "maximum": 120000, "default": 5000, "description": "per-request timeout"},
    "unlock_seconds": {"type": "integer", "minimum": 1, "maximum": 60, "default": 3},
    "unlock_units_per_second": {"type": "integer", "enum": [1, 10], "default": 10, "description": "CMD_UNLOCK units: 10 (tenths, pyzk) or 1 (seconds)"},
    "idle_timeout_ms": {"type": "integer", "minimum": 100, "maximum": 600000, "default": 30000, "description": "live-session silence before a liveness probe"},
    "page_size": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 500}
  }
}`

// ParseSettings decodes and validates settings, filling the defaults.
func ParseSettings(raw json.RawMessage) (Settings, *time.Location, error) {
	var st Settings
	if len(bytes.TrimSpace(raw)) > 0 && !bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&st); err != nil {
			return st, nil, fmt.Errorf("zkteco: settings: %w", err)
		}
	}
	if st.CommKey > 999999 {
		return st, nil, fmt.Errorf("zkteco: settings: comm_key %d over 999999", st.CommKey)
	}
	switch st.Transport {
	case "":
		st.Transport = "tcp"
	case "tcp", "udp":
	default:
		return st, nil, fmt.Errorf("zkteco: settings: transport %q (tcp or udp)", st.Transport)
	}
	if st.TimeZone == "" {
		st.TimeZone = "UTC"
	}
	loc, err := time.LoadLocation(st.TimeZone)
	if err != nil {
		return st, nil, fmt.Errorf("zkteco: settings: time_zone: %w", err)
	}
	def := func(v *int, d, lo, hi int, name string) error {
		if *v == 0 {
			*v = d
		}
		if *v < lo || *v > hi {
			return fmt.Errorf("zkteco: settings: %s %d out of %d..%d", name, *v, lo, hi)
		}
		return nil
	}
	for _, e := range []error{
		def(&st.TimeoutMS, 5000, 100, 120000, "timeout_ms"),
		def(&st.UnlockSeconds, 3, 1, 60, "unlock_seconds"),
		def(&st.UnlockUnitsPerSecond, 10, 1, 10, "unlock_units_per_second"),
		def(&st.IdleTimeoutMS, 30000, 100, 600000, "idle_timeout_ms"),
		def(&st.PageSize, 500, 1, 10000, "page_size"),
	} {
		if e != nil {
			return st, nil, e
		}
	}
	return st, loc, nil
}

// Factory is the ZKTeco adapter's factory; log may be nil.
func Factory(log *slog.Logger) devices.Factory {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return devices.Factory{Type: Type, Vendor: "ZKTeco", Version: "1", Schema: json.RawMessage(Schema),
		New: func(cfg devices.Config) (devices.Adapter, error) { return New(cfg, log) }}
}

// Adapter is one ZKTeco terminal.
type Adapter struct {
	cfg     devices.Config
	st      Settings
	loc     *time.Location
	addr    string
	log     *slog.Logger
	sess    *session
	badSums atomic.Int64
	// users is the user list of the last Fetch (by user id), so live events
	// carry card numbers too; Subscribe reads it from its own goroutine.
	users atomic.Pointer[map[string]zkproto.User]
}

// New builds an adapter (no I/O).
func New(cfg devices.Config, log *slog.Logger) (*Adapter, error) {
	st, loc, err := ParseSettings(cfg.Settings)
	if err != nil {
		return nil, err
	}
	if cfg.Host == "" {
		return nil, errors.New("zkteco: no host")
	}
	port := cfg.Port
	if port == 0 {
		port = 4370
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Adapter{cfg: cfg, st: st, loc: loc, addr: net.JoinHostPort(cfg.Host, strconv.Itoa(port)),
		log: log.With("device", cfg.Name, "adapter", Type)}, nil
}

// BadChecksums counts the replies with a wrong checksum seen so far.
func (a *Adapter) BadChecksums() int64 { return a.badSums.Load() }

// ErrNotConnected is returned by an operation without a session (before
// Connect, after Close, or after a failure or restart dropped it).
var ErrNotConnected = errors.New("zkteco: not connected")

// Connect opens the command session (CONNECT, AUTH with the comm key).
func (a *Adapter) Connect(ctx context.Context) error {
	if a.sess != nil {
		_ = a.sess.close()
		a.sess = nil
	}
	s, err := dial(ctx, a.addr, a.st, a.log, &a.badSums)
	if err != nil {
		return err
	}
	a.sess = s
	return nil
}

// Close ends the command session.
func (a *Adapter) Close() error {
	if a.sess == nil {
		return nil
	}
	err := a.sess.close()
	a.sess = nil
	return err
}

// do runs f on the session; a failure that leaves the stream in an unknown
// state (I/O, protocol) drops the session, so the supervisor reconnects.
func (a *Adapter) do(f func(s *session) error) error {
	if a.sess == nil {
		return ErrNotConnected
	}
	err := f(a.sess)
	var ae *devices.AuthError
	if err != nil && !errors.Is(err, devices.ErrUnsupported) && !errors.As(err, &ae) {
		var ne net.Error
		var pe *devices.ProtocolError
		if errors.As(err, &ne) || errors.As(err, &pe) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || isIO(err) {
			a.sess.conn.Close()
			a.sess = nil
		}
	}
	return err
}

func isIO(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) || errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF)
}

// Info reads the device's identity: serial, platform, name, MAC, firmware
// and the free sizes.
func (a *Adapter) Info(ctx context.Context) (devices.Info, error) {
	var info devices.Info
	err := a.do(func(s *session) error {
		var err error
		info, err = readInfo(ctx, s)
		return err
	})
	return info, err
}

func readInfo(ctx context.Context, s *session) (devices.Info, error) {
	info := devices.Info{Extra: map[string]string{}}
	ver, err := s.command(ctx, zkproto.CmdGetVersion, nil)
	if err != nil {
		return info, fmt.Errorf("zkteco: info: %w", err)
	}
	info.Firmware = cstr(ver)
	opt := func(key string) (string, error) {
		p, err := s.roundTrip(ctx, zkproto.CmdOptionsRRQ, zkproto.Option(key))
		if err != nil {
			return "", err
		}
		if p.Cmd != zkproto.CmdAckOK {
			return "", nil // unknown key: ACK_ERROR
		}
		_, v, _ := zkproto.ParseOption(p.Data)
		return v, nil
	}
	for _, k := range []string{"~SerialNumber", "~Platform", "~DeviceName", "MAC"} {
		v, err := opt(k)
		if err != nil {
			return info, fmt.Errorf("zkteco: info: option %s: %w", k, err)
		}
		switch k {
		case "~SerialNumber":
			info.Serial = v
		case "~Platform":
			info.Extra["platform"] = v
		case "~DeviceName":
			info.Model = v
		case "MAC":
			info.MAC = v
		}
	}
	if info.Model == "" {
		info.Model = info.Extra["platform"]
	}
	sz, err := readSizes(ctx, s)
	if err != nil {
		return info, err
	}
	for k, v := range map[string]int32{"users": sz.Users, "records": sz.Records, "fingerprints": sz.Fingers,
		"user_capacity": sz.UserCap, "record_capacity": sz.RecordCap, "records_free": sz.RecordAvail} {
		info.Extra[k] = strconv.Itoa(int(v))
	}
	return info, nil
}

func readSizes(ctx context.Context, s *session) (zkproto.Sizes, error) {
	b, err := s.command(ctx, zkproto.CmdGetFreeSizes, nil)
	if err != nil {
		return zkproto.Sizes{}, fmt.Errorf("zkteco: free sizes: %w", err)
	}
	sz, err := zkproto.ParseSizes(b)
	if err != nil {
		return sz, &devices.ProtocolError{Op: "free sizes", Err: err}
	}
	return sz, nil
}

func cstr(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// Users reads the device's users (the 1503 flow).
func (a *Adapter) Users(ctx context.Context) ([]zkproto.User, error) {
	var users []zkproto.User
	err := a.do(func(s *session) error {
		var err error
		users, err = readUsers(ctx, s)
		return err
	})
	return users, err
}

func readUsers(ctx context.Context, s *session) ([]zkproto.User, error) {
	sz, err := readSizes(ctx, s)
	if err != nil {
		return nil, err
	}
	buf, err := s.readBuffer(ctx, zkproto.CmdUserTempRRQ, zkproto.FctUser)
	if err != nil {
		return nil, fmt.Errorf("zkteco: read users: %w", err)
	}
	recs, err := zkproto.Dataset(buf)
	if err != nil {
		return nil, &devices.ProtocolError{Op: "users", Err: err}
	}
	users, err := zkproto.DecodeUsers(recs, int(sz.Users))
	if err != nil {
		return nil, &devices.ProtocolError{Op: "users", Err: err}
	}
	return users, nil
}

// Attendance reads the whole attendance log (the 1503 flow), in the
// device's order.
func (a *Adapter) Attendance(ctx context.Context) ([]zkproto.Attendance, error) {
	var recs []zkproto.Attendance
	err := a.do(func(s *session) error {
		var err error
		recs, err = readAttendance(ctx, s)
		return err
	})
	return recs, err
}

func readAttendance(ctx context.Context, s *session) ([]zkproto.Attendance, error) {
	sz, err := readSizes(ctx, s)
	if err != nil {
		return nil, err
	}
	buf, err := s.readBuffer(ctx, zkproto.CmdAttLogRRQ, 0)
	if err != nil {
		return nil, fmt.Errorf("zkteco: read attendance: %w", err)
	}
	body, err := zkproto.Dataset(buf)
	if err != nil {
		return nil, &devices.ProtocolError{Op: "attendance", Err: err}
	}
	recs, err := zkproto.DecodeAttendances(body, int(sz.Records))
	if err != nil {
		return nil, &devices.ProtocolError{Op: "attendance", Err: err}
	}
	return recs, nil
}

// cursor is the decoded Cursor: the device time of the newest record
// handed over and the keys of the records handed over at that time.
type cursor struct {
	T    uint32   `json:"t"`
	Keys []string `json:"k,omitempty"`
}

func parseCursor(c devices.Cursor) (cursor, bool, error) {
	if c == "" {
		return cursor{}, false, nil
	}
	var cur cursor
	if err := json.Unmarshal([]byte(c), &cur); err != nil {
		return cur, false, fmt.Errorf("zkteco: bad cursor %q: %w", c, err)
	}
	return cur, true, nil
}

func (c cursor) encode() devices.Cursor {
	b, _ := json.Marshal(c)
	return devices.Cursor(b)
}

// key is an event's Key: user id, device wall time, status, punch.
func key(userID string, t zkproto.Time, status, punch uint8) string {
	return fmt.Sprintf("%s|%s|%d|%d", userID, t, status, punch)
}

// Fetch reads the attendance log and hands over the records after since,
// oldest first, in pages of PageSize. The device has no time filter: the
// whole log is read and filtered here. A record newer than the cursor's
// time, or at that time with a key not in the cursor, is new; so records
// written in the same second as the last one handed over are neither
// skipped nor repeated. (A record written with a clock set back before
// the cursor is not seen: the device has no record numbers.)
func (a *Adapter) Fetch(ctx context.Context, since devices.Cursor, page func([]devices.Event, devices.Cursor) error) error {
	cur, _, err := parseCursor(since)
	if err != nil {
		return err
	}
	var users []zkproto.User
	var recs []zkproto.Attendance
	err = a.do(func(s *session) error {
		var err error
		if users, err = readUsers(ctx, s); err != nil {
			return err
		}
		recs, err = readAttendance(ctx, s)
		return err
	})
	if err != nil {
		return err
	}
	byUID := map[uint16]zkproto.User{}
	byID := map[string]zkproto.User{}
	for _, u := range users {
		byUID[u.UID] = u
		byID[u.UserID] = u
	}
	a.users.Store(&byID)
	sort.SliceStable(recs, func(i, j int) bool { return recs[i].Time < recs[j].Time })
	seen := map[string]bool{}
	for _, k := range cur.Keys {
		seen[k] = true
	}
	var batch []devices.Event
	next := cur
	for _, r := range recs {
		if r.UserID == "" { // 8-byte records name the internal uid
			if u, ok := byUID[r.UID]; ok {
				r.UserID = u.UserID
			} else {
				r.UserID = strconv.Itoa(int(r.UID))
			}
		}
		if uint32(r.Time) < cur.T {
			continue
		}
		k := key(r.UserID, r.Time, r.Status, r.Punch)
		if seen[k] {
			continue
		}
		seen[k] = true
		ev := a.event(k, r.UserID, r.Time, r.Status, r.Punch, byID)
		batch = append(batch, ev)
		if uint32(r.Time) != next.T {
			next = cursor{T: uint32(r.Time)}
		}
		next.Keys = append(next.Keys, k)
		if len(batch) == a.st.PageSize {
			if err := page(batch, next.encode()); err != nil {
				return err
			}
			batch = nil
			next.Keys = append([]string(nil), next.Keys...)
		}
	}
	if len(batch) > 0 {
		return page(batch, next.encode())
	}
	return nil
}

// event builds a devices.Event: time from the device's wall clock in its
// zone, major 5, minor the attendance state (punch), the verify mode from
// the status byte.
func (a *Adapter) event(k, userID string, t zkproto.Time, status, punch uint8, users map[string]zkproto.User) devices.Event {
	ev := devices.Event{Key: k, Time: t.In(a.loc).UTC(), EmployeeNumber: userID, MajorCode: 5, MinorCode: int(punch),
		VerifyMode: verifyMode(status), Direction: direction(punch)}
	if u, ok := users[userID]; ok && u.Card != 0 {
		ev.CardNumber = strconv.FormatUint(uint64(u.Card), 10)
	}
	return ev
}

func verifyMode(v uint8) string {
	switch v {
	case 0:
		return "password"
	case 1:
		return "fingerprint"
	case 2:
		return "card"
	case 15:
		return "face"
	}
	return "other:" + strconv.Itoa(int(v))
}

func direction(punch uint8) string {
	switch punch {
	case 0, 3, 4:
		return "in"
	case 1, 2, 5:
		return "out"
	}
	return ""
}

// Execute runs open_door (CMD_UNLOCK), reboot (CMD_RESTART), get_info and
// sync_time (CMD_SET_TIME with the gateway's clock in the device's zone,
// then CMD_REFRESHDATA); other commands are devices.ErrUnsupported.
func (a *Adapter) Execute(ctx context.Context, cmd devices.Command) (devices.Result, error) {
	switch cmd.Type {
	case devices.CmdOpenDoor:
		secs := a.st.UnlockSeconds
		if len(cmd.Params) > 0 {
			var p struct {
				Seconds int `json:"seconds"`
			}
			if err := json.Unmarshal(cmd.Params, &p); err != nil || p.Seconds < 0 || p.Seconds > 60 {
				return devices.Result{}, fmt.Errorf("zkteco: open_door: bad params %s: %w", cmd.Params, devices.ErrUnsupported)
			}
			if p.Seconds > 0 {
				secs = p.Seconds
			}
		}
		v := uint32(secs * a.st.UnlockUnitsPerSecond)
		err := a.do(func(s *session) error {
			_, err := s.command(ctx, zkproto.CmdUnlock, zkproto.U32(v))
			return err
		})
		if err != nil {
			return devices.Result{}, fmt.Errorf("zkteco: open_door: %w", err)
		}
		return devices.Result{Message: fmt.Sprintf("CMD_ACK_OK (unlocked %d s)", secs)}, nil
	case devices.CmdReboot:
		if a.sess == nil {
			return devices.Result{}, ErrNotConnected
		}
		s := a.sess
		a.sess = nil
		_, err := s.command(ctx, zkproto.CmdRestart, nil)
		s.conn.Close()
		// Devices differ: some ACK, some close, some stay silent. Only a
		// refusal or a context end is a failure.
		var pe *devices.ProtocolError
		if err != nil && (ctx.Err() != nil || errors.As(err, &pe) || (!isIO(err) && !isTimeout(err))) {
			return devices.Result{}, fmt.Errorf("zkteco: reboot: %w", err)
		}
		return devices.Result{Message: "restarting"}, nil
	case devices.CmdGetInfo:
		info, err := a.Info(ctx)
		if err != nil {
			return devices.Result{}, err
		}
		b, _ := json.Marshal(info)
		return devices.Result{Message: "CMD_ACK_OK", Data: b}, nil
	case devices.CmdSyncTime:
		now := time.Now().In(a.loc)
		err := a.do(func(s *session) error {
			if _, err := s.command(ctx, zkproto.CmdSetTime, zkproto.U32(uint32(zkproto.TimeOf(now)))); err != nil {
				return err
			}
			_, err := s.command(ctx, zkproto.CmdRefreshData, nil)
			return err
		})
		if err != nil {
			return devices.Result{}, fmt.Errorf("zkteco: sync_time: %w", err)
		}
		return devices.Result{Message: "CMD_ACK_OK (set to " + now.Format(time.RFC3339) + ")"}, nil
	}
	return devices.Result{}, fmt.Errorf("zkteco: %s: %w", cmd.Type, devices.ErrUnsupported)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Subscribe opens its own session, registers for EF_ATTLOG and delivers
// the live attendance events until ctx ends or the session dies. The
// session is probed with CMD_GET_TIME after IdleTimeoutMS of silence; a
// probe without an answer within the request timeout ends it with an
// error.
func (a *Adapter) Subscribe(ctx context.Context, out func(devices.Event)) error {
	s, err := dial(ctx, a.addr, a.st, a.log, &a.badSums)
	if err != nil {
		return err
	}
	defer s.conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = s.conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	var evErr error
	s.onEvent = func(p zkproto.Packet) {
		if uint32(p.Session) != zkproto.EFAttLog {
			return
		}
		e, err := zkproto.DecodeLiveAttLog(p.Data)
		if err != nil {
			a.log.Warn("zkteco: undecodable live event", "err", err)
			evErr = &devices.ProtocolError{Op: "live event", Err: err}
			return
		}
		t := e.Time.Time()
		var users map[string]zkproto.User
		if m := a.users.Load(); m != nil {
			users = *m
		}
		out(a.event(key(e.UserID, t, e.Status, e.Punch), e.UserID, t, e.Status, e.Punch, users))
		// pyzk acknowledges each event; devices that do not expect it ignore it.
		ack := zkproto.Packet{Cmd: zkproto.CmdAckOK, Session: s.id, Reply: 0}
		b := ack.MarshalTCP()
		if s.udp {
			b = ack.Marshal()
		}
		_, _ = s.conn.Write(b)
	}
	if _, err := s.command(ctx, zkproto.CmdRegEvent, zkproto.U32(zkproto.EFAttLog)); err != nil {
		return fmt.Errorf("zkteco: register events: %w", err)
	}
	for {
		_ = s.conn.SetReadDeadline(time.Now().Add(a.st.idle()))
		if ctx.Err() != nil {
			return ctx.Err()
		}
		p, err := s.readPacket(ctx, "live events")
		if err == nil {
			if p.Cmd == zkproto.CmdRegEvent && p.Reply == 0 {
				s.event(p)
				if evErr != nil {
					return evErr
				}
			}
			continue
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !isTimeout(err) {
			return fmt.Errorf("zkteco: live events: %w", err)
		}
		// Silence: is the session alive?
		if _, err := s.command(ctx, zkproto.CmdGetTime, nil); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("zkteco: live session probe: %w", err)
		}
		if evErr != nil {
			return evErr
		}
	}
}
