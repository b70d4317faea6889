// Package hiksim is a protocol-faithful Hikvision ISAPI access terminal on
// 127.0.0.1 for tests and demos: Digest authentication with server nonces
// that expire (stale="TRUE"), the illegal-login lockout (N bad logins lock
// the account for a configurable time, the userCheck body counting down),
// deviceInfo, RemoteControl door with observable door state, reboot (a
// window in which connections are refused), the AcsEvent search with the
// device's paging rules (searchID, position, maxResults ≤ 30, MORE / OK /
// NO MATCH), seeded users and past events with increasing serialNo, the
// alertStream with heartbeats and live AccessControllerEvents, the device
// clock, and the faults of device-protocols.md §5 that concern ISAPI.
//
// It imports only the shared leaf isapi, which the gateway's adapter also
// uses; the curl peer test keeps both honest.
package hiksim

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/isapi"
)

// Fault is a misbehaviour the simulator can be told to show.
type Fault string

// Faults (SetFault). Stale nonces are ExpireNonces; the lockout is reached
// by bad logins; the reboot window by Reboot or PUT /ISAPI/System/reboot;
// the paging limits are always enforced.
const (
	// FaultHang accepts every request and never answers it.
	FaultHang Fault = "hang"
	// FaultDrop answers every request with headers and half a body, then
	// closes the connection.
	FaultDrop Fault = "drop"
	// FaultUnauthorized refuses every authenticated request as a bad login
	// (each counts towards the lockout, as a changed password would).
	FaultUnauthorized Fault = "unauthorized"
	// FaultHeartbeatStop makes every alertStream go silent (no heartbeat,
	// no event) while keeping its connection open.
	FaultHeartbeatStop Fault = "heartbeat-stop"
	// FaultDoubleBoundary writes every alertStream part after a bogus
	// duplicated boundary line (a quirk real firmwares show; tolerated).
	FaultDoubleBoundary Fault = "double-boundary"
	// FaultOversizedPart announces a 4 MiB part on every alertStream.
	FaultOversizedPart Fault = "oversized-part"
	// FaultMalformedPart sends an alert part whose JSON is broken.
	FaultMalformedPart Fault = "malformed-part"
)

// Boundary is the alertStream's multipart boundary (as DS-K1A340FWX).
const Boundary = "MIME_boundary"

// User is one person enrolled on the device.
type User struct {
	EmployeeNo string
	Name       string
	CardNo     string
}

// Options configures a Sim; zero values take the defaults named.
type Options struct {
	// Addr to listen on (default 127.0.0.1:0).
	Addr string
	// User and Password of the device account (default admin / Admin12345).
	User, Password string
	// Model, Serial, Firmware, MAC and DeviceName of deviceInfo (defaults
	// resemble a DS-K1T671M); Realm of the challenge (default the model).
	Model, Serial, Firmware, MAC, DeviceName, Realm string
	// Algorithm of the challenge: isapi.AlgMD5 (default) or isapi.AlgSHA256.
	Algorithm string
	// NonceTTL is how long a nonce is accepted (default 5 min); then the
	// device answers stale="TRUE".
	NonceTTL time.Duration
	// MaxLoginFailures before the lockout (default 5) and LockDuration of it
	// (default 30 min).
	MaxLoginFailures int
	LockDuration     time.Duration
	// RebootDuration is the window after a reboot in which connections are
	// refused (default 2 s).
	RebootDuration time.Duration
	// HeartbeatInterval of the alertStream (default 10 s).
	HeartbeatInterval time.Duration
	// Doors is the number of doors (default 2).
	Doors int
	// Users seeded (default three).
	Users []User
	// PastEvents is how many badge events the log holds at start.
	PastEvents int
	// PageSize caps the events of one search page below maxResults, as
	// some firmwares do (default 30).
	PageSize int
	// BadgeRate, when positive, generates that many badges per second from
	// the seeded users.
	BadgeRate float64
	// Location is the device's time zone (default UTC+03:00, fixed).
	Location *time.Location
	// XMLAlerts sends alertStream parts as XML instead of JSON.
	XMLAlerts bool
	// NoStale answers an expired or unknown nonce with a plain 401 (no
	// stale="TRUE"), as some firmwares may; it is not counted as a failed
	// login.
	NoStale bool
	// NoSerialFilter refuses beginSerialNo and endSerialNo in a search
	// (400, statusCode 6 badParameters), as firmwares without them do.
	NoSerialFilter bool
	// Logger (default discards).
	Logger *slog.Logger
}

// Sim is one simulated terminal.
type Sim struct {
	opts Options
	log  *slog.Logger

	mu          sync.Mutex
	srv         *http.Server
	addr        string
	started     bool
	closed      bool
	nonces      map[string]time.Time
	nonceOrder  []string
	failures    int // consecutive bad logins
	lockedUntil time.Time
	failedTotal int
	authOK      int
	doors       []string
	events      []isapi.AcsEventInfo
	nextSerial  int64
	searches    map[string][]isapi.AcsEventInfo
	searchOrder []string
	searchReqs  int
	subs        map[chan isapi.EventNotificationAlert]struct{}
	faults      map[Fault]bool
	rebooting   bool
	reboots     int
	clockSkew   time.Duration
	stop        chan struct{}
	down        chan struct{} // closed at each reboot: streams end
	wg          sync.WaitGroup
}

// Door states (Door).
const (
	DoorClosed      = "closed"
	DoorOpen        = "open"
	DoorAlwaysOpen  = "alwaysOpen"
	DoorAlwaysClose = "alwaysClose"
)

// New builds a simulator; Start listens.
func New(opts Options) *Sim {
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	if opts.User == "" {
		opts.User = "admin"
	}
	if opts.Password == "" {
		opts.Password = "Admin12345"
	}
	if opts.Model == "" {
		opts.Model = "DS-K1T671M"
	}
	if opts.Serial == "" {
		opts.Serial = opts.Model + "20260101V030200ENK00000001"
	}
	if opts.Firmware == "" {
		opts.Firmware = "V3.2.0"
	}
	if opts.MAC == "" {
		opts.MAC = "40:24:b2:00:00:01"
	}
	if opts.DeviceName == "" {
		opts.DeviceName = "Access Controller"
	}
	if opts.Realm == "" {
		opts.Realm = opts.Model
	}
	if opts.Algorithm == "" {
		opts.Algorithm = isapi.AlgMD5
	}
	if opts.NonceTTL <= 0 {
		opts.NonceTTL = 5 * time.Minute
	}
	if opts.MaxLoginFailures <= 0 {
		opts.MaxLoginFailures = 5
	}
	if opts.LockDuration <= 0 {
		opts.LockDuration = 30 * time.Minute
	}
	if opts.RebootDuration <= 0 {
		opts.RebootDuration = 2 * time.Second
	}
	if opts.HeartbeatInterval <= 0 {
		opts.HeartbeatInterval = 10 * time.Second
	}
	if opts.Doors <= 0 {
		opts.Doors = 2
	}
	if opts.Users == nil {
		opts.Users = []User{{"1001", "Ana Ruiz", "3308812528"}, {"1002", "Ben Okafor", "3308812529"}, {"1003", "Chen Wei", ""}}
	}
	if opts.PageSize <= 0 || opts.PageSize > isapi.MaxSearchResults {
		opts.PageSize = isapi.MaxSearchResults
	}
	if opts.Location == nil {
		opts.Location = time.FixedZone("UTC+03:00", 3*3600)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Sim{
		opts: opts, log: opts.Logger.With("sim", "hikvision"),
		nonces: map[string]time.Time{}, searches: map[string][]isapi.AcsEventInfo{},
		subs: map[chan isapi.EventNotificationAlert]struct{}{}, faults: map[Fault]bool{},
		stop: make(chan struct{}), down: make(chan struct{}), nextSerial: 1,
	}
	s.doors = make([]string, opts.Doors)
	for i := range s.doors {
		s.doors[i] = DoorClosed
	}
	start := time.Now().Add(-time.Duration(opts.PastEvents+1) * time.Minute)
	for i := 0; i < opts.PastEvents; i++ {
		u := opts.Users[i%len(opts.Users)]
		s.appendEventLocked(s.badgeInfo(u.EmployeeNo, u.CardNo, start.Add(time.Duration(i)*time.Minute)))
	}
	return s
}

// Start listens and serves; it returns once the listener is open.
func (s *Sim) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errors.New("hiksim: already started")
	}
	if err := s.listenLocked(s.opts.Addr); err != nil {
		return err
	}
	s.started = true
	if s.opts.BadgeRate > 0 {
		s.wg.Add(1)
		go s.generate()
	}
	return nil
}

func (s *Sim) listenLocked(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("hiksim: listen: %w", err)
	}
	s.addr = ln.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(s.serve), ReadHeaderTimeout: 10 * time.Second}
	s.srv = srv
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		_ = srv.Serve(ln)
	}()
	return nil
}

// URL is the device's base URL (http://127.0.0.1:port).
func (s *Sim) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return "http://" + s.addr
}

// Addr is host:port.
func (s *Sim) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Close stops the simulator and waits for its goroutines.
func (s *Sim) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.stop)
	srv := s.srv
	s.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
	s.wg.Wait()
	return nil
}

// SetFault turns a fault on or off.
func (s *Sim) SetFault(f Fault, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[f] = on
}

func (s *Sim) fault(f Fault) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults[f]
}

// ExpireNonces makes every nonce issued so far stale: the next request
// under one is answered 401 stale="TRUE".
func (s *Sim) ExpireNonces() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for n := range s.nonces {
		s.nonces[n] = time.Time{}
	}
}

// FailedLogins is the number of refused credentials since start (probes
// without credentials and stale nonces do not count).
func (s *Sim) FailedLogins() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failedTotal
}

// Locked reports whether the account is locked now.
func (s *Sim) Locked() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return time.Now().Before(s.lockedUntil)
}

// Door is door n's state (DoorClosed, DoorOpen, …; "" for no such door).
func (s *Sim) Door(n int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n < 1 || n > len(s.doors) {
		return ""
	}
	return s.doors[n-1]
}

// Reboots is the number of reboots done.
func (s *Sim) Reboots() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reboots
}

// Clock is the device's clock now (moved by PUT /ISAPI/System/time).
func (s *Sim) Clock() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return time.Now().Add(s.clockSkew)
}

// SetClockSkew moves the device clock by d from real time.
func (s *Sim) SetClockSkew(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clockSkew = d
}

// SearchRequests is the number of AcsEvent search requests answered.
func (s *Sim) SearchRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.searchReqs
}

// Events is a copy of the event log, oldest first.
func (s *Sim) Events() []isapi.AcsEventInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]isapi.AcsEventInfo(nil), s.events...)
}

// Badge records a badge of employeeNo (with card, or a face when card is
// empty) at door 1, appends it to the log and pushes it to every
// alertStream; it returns the stored event.
func (s *Sim) Badge(employeeNo, card string) isapi.AcsEventInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.appendEventLocked(s.badgeInfo(employeeNo, card, time.Now().Add(s.clockSkew)))
}

func (s *Sim) badgeInfo(employeeNo, card string, at time.Time) isapi.AcsEventInfo {
	e := isapi.AcsEventInfo{Major: 5, Minor: 75, Time: at.In(s.opts.Location).Format(isapi.TimeLayout),
		EmployeeNoString: employeeNo, CardNo: card, DoorNo: 1, CardReaderNo: 1, UserType: "normal",
		CurrentVerifyMode: "cardOrFace", AttendanceStatus: "undefined"}
	if card != "" {
		e.Minor, e.CardType = 1, 1
	}
	for _, u := range s.opts.Users {
		if u.EmployeeNo == employeeNo {
			e.Name = u.Name
		}
	}
	return e
}

// record appends an operation or exception event (door, reboot, power on).
func (s *Sim) recordLocked(major, minor, door int) {
	s.appendEventLocked(isapi.AcsEventInfo{Major: major, Minor: minor, DoorNo: door,
		Time: time.Now().Add(s.clockSkew).In(s.opts.Location).Format(isapi.TimeLayout)})
}

func (s *Sim) appendEventLocked(e isapi.AcsEventInfo) isapi.AcsEventInfo {
	e.SerialNo = s.nextSerial
	s.nextSerial++
	s.events = append(s.events, e)
	cur := true
	alert := isapi.EventNotificationAlert{
		IPAddress: "127.0.0.1", PortNo: 80, Protocol: "HTTP", MACAddress: s.opts.MAC, DateTime: e.Time,
		ActivePostCount: 1, EventType: isapi.EventAccessController, EventState: "active",
		EventDescription: "Access Controller Event",
		Access: &isapi.AccessControllerEvent{DeviceName: s.opts.DeviceName, MajorEventType: e.Major, SubEventType: e.Minor,
			CardNo: e.CardNo, CardType: e.CardType, Name: e.Name, CardReaderNo: e.CardReaderNo, DoorNo: e.DoorNo,
			EmployeeNoString: e.EmployeeNoString, SerialNo: e.SerialNo, UserType: e.UserType,
			CurrentVerifyMode: e.CurrentVerifyMode, AttendanceStatus: e.AttendanceStatus, CurrentEvent: &cur},
	}
	for ch := range s.subs {
		select {
		case ch <- alert:
		default: // a stream that does not keep up loses live events, as on a device; the log keeps them
		}
	}
	return e
}

// generate badges random seeded users at BadgeRate.
func (s *Sim) generate() {
	defer s.wg.Done()
	every := time.Duration(float64(time.Second) / s.opts.BadgeRate)
	t := time.NewTimer(every)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			u := s.opts.Users[mrand.IntN(len(s.opts.Users))]
			card := u.CardNo
			if mrand.IntN(2) == 0 {
				card = ""
			}
			s.Badge(u.EmployeeNo, card)
			t.Reset(every)
		}
	}
}

// Reboot records the reboot, drops every connection and refuses new ones
// for RebootDuration, then serves again on the same address (recording
// the power-on). It returns at once.
func (s *Sim) Reboot() {
	s.mu.Lock()
	if s.rebooting || s.closed || !s.started {
		s.mu.Unlock()
		return
	}
	s.rebooting = true
	s.reboots++
	s.recordLocked(3, 0x7b, 0)
	srv, addr := s.srv, s.addr
	close(s.down)
	s.wg.Add(1) // under the lock: Close cannot be waiting yet
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		_ = srv.Close()
		select {
		case <-s.stop:
			return
		case <-time.After(s.opts.RebootDuration):
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.closed {
			return
		}
		s.down = make(chan struct{})
		s.nonces, s.nonceOrder = map[string]time.Time{}, nil
		s.searches, s.searchOrder = map[string][]isapi.AcsEventInfo{}, nil
		for i := range s.doors {
			s.doors[i] = DoorClosed
		}
		if err := s.listenLocked(addr); err != nil {
			s.log.Error("listen after reboot", "err", err)
		}
		s.rebooting = false
		s.recordLocked(2, 0x400, 0)
	}()
}

// newNonceLocked issues a nonce in the guide's shape, hex(base64("<hex>:<n>")).
func (s *Sim) newNonceLocked() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	raw := fmt.Sprintf("%s:%d", hex.EncodeToString(b[:]), time.Now().UnixNano()%1e8)
	n := hex.EncodeToString([]byte(base64.StdEncoding.EncodeToString([]byte(raw))))
	s.nonces[n] = time.Now().Add(s.opts.NonceTTL)
	s.nonceOrder = append(s.nonceOrder, n)
	if len(s.nonceOrder) > 256 {
		delete(s.nonces, s.nonceOrder[0])
		s.nonceOrder = s.nonceOrder[1:]
	}
	return n
}

// serve is every request's entry.
func (s *Sim) serve(w http.ResponseWriter, r *http.Request) {
	if s.fault(FaultHang) {
		select {
		case <-r.Context().Done():
		case <-s.stop:
		}
		return
	}
	if !s.authorize(w, r) {
		return
	}
	if s.fault(FaultDrop) {
		s.drop(w)
		return
	}
	path := r.URL.Path
	switch {
	case path == "/ISAPI/System/deviceInfo" && r.Method == http.MethodGet:
		s.deviceInfo(w, r)
	case path == "/ISAPI/AccessControl/RemoteControl/door/capabilities" && r.Method == http.MethodGet:
		writeXML(w, http.StatusOK, fmt.Appendf(nil, `<?xml version="1.0" encoding="UTF-8"?><RemoteControlDoor version="2.0" xmlns="%s"><doorNo min="1" max="%d"/><cmd opt="open,close,alwaysOpen,alwaysClose"/></RemoteControlDoor>`, isapi.Namespace, s.opts.Doors))
	case strings.HasPrefix(path, "/ISAPI/AccessControl/RemoteControl/door/") && r.Method == http.MethodPut:
		s.door(w, r)
	case path == "/ISAPI/System/reboot" && r.Method == http.MethodPut:
		s.status(w, r, http.StatusOK, isapi.StatusOK, "OK", isapi.SubStatusOK)
		// The answer leaves before the device goes down.
		time.AfterFunc(100*time.Millisecond, s.Reboot)
	case path == "/ISAPI/System/time" && (r.Method == http.MethodGet || r.Method == http.MethodPut):
		s.clock(w, r)
	case path == "/ISAPI/AccessControl/AcsEvent" && r.Method == http.MethodPost:
		s.search(w, r)
	case path == "/ISAPI/Event/notification/alertStream" && r.Method == http.MethodGet:
		s.alertStream(w, r)
	default:
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, "<html><head><title>Document Error: Not Found</title></head><body><h2>Access Error: 404 -- Not Found</h2></body></html>")
	}
}

// authorize checks the Digest credentials; on refusal it has answered.
func (s *Sim) authorize(w http.ResponseWriter, r *http.Request) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	ch := isapi.Challenge{QOP: []string{"auth"}, Realm: s.opts.Realm, Algorithm: s.opts.Algorithm}
	check := isapi.UserCheck{Version: "2.0", XMLNS: isapi.Namespace, StatusValue: 401, StatusString: "Unauthorized", LockStatus: "unlock"}
	refuse := func() bool {
		left := s.opts.MaxLoginFailures - s.failures
		check.RetryLoginTime = &left
		if now.Before(s.lockedUntil) {
			check.LockStatus = "lock"
			check.UnlockTime = int(s.lockedUntil.Sub(now).Seconds() + 0.999)
			zero := 0
			check.RetryLoginTime = &zero
		}
		ch.Nonce = s.newNonceLocked()
		w.Header().Set("WWW-Authenticate", ch.String())
		writeXML(w, http.StatusUnauthorized, isapi.EncodeXML(check))
		return false
	}
	if now.Before(s.lockedUntil) {
		return refuse()
	}
	h := r.Header.Get("Authorization")
	if h == "" {
		return refuse()
	}
	a, err := isapi.ParseAuthorization(h)
	good := err == nil && a.Username == s.opts.User && a.Realm == s.opts.Realm && a.URI == r.URL.RequestURI() &&
		a.Algorithm == s.opts.Algorithm && a.Verify(s.opts.Password, r.Method) && !s.faults[FaultUnauthorized]
	if !good {
		s.failures++
		s.failedTotal++
		s.log.Info("illegal login", "failures", s.failures)
		if s.failures >= s.opts.MaxLoginFailures {
			s.lockedUntil = now.Add(s.opts.LockDuration)
			s.failures = 0
		}
		check.IsIllegalLogin = new(true)
		return refuse()
	}
	if exp, ok := s.nonces[a.Nonce]; !ok || now.After(exp) {
		ch.Stale = !s.opts.NoStale
		return refuse()
	}
	s.failures = 0
	s.authOK++
	return true
}

func writeXML(w http.ResponseWriter, code int, body []byte) {
	w.Header().Set("Content-Type", `application/xml; charset="UTF-8"`)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	_, _ = w.Write(body)
}

func writeJSON(w http.ResponseWriter, code int, body []byte) {
	w.Header().Set("Content-Type", `application/json; charset="UTF-8"`)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	_, _ = w.Write(body)
}

// status answers a ResponseStatus, JSON when the request asked format=json.
func (s *Sim) status(w http.ResponseWriter, r *http.Request, httpCode, code int, str, sub string) {
	st := isapi.NewResponseStatus(r.URL.Path, code, str, sub)
	if code != isapi.StatusOK {
		st.ErrorMsg = sub
	}
	if r.URL.Query().Get("format") == "json" {
		writeJSON(w, httpCode, isapi.EncodeJSON(st))
		return
	}
	writeXML(w, httpCode, isapi.EncodeXML(st))
}

// drop writes headers and half a body, then cuts the connection.
func (s *Sim) drop(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, buf, err := hj.Hijack()
	if err != nil {
		return
	}
	_, _ = buf.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nContent-Length: 400\r\n\r\n<?xml version=\"1.0\"?><DeviceInfo><deviceName>Acc")
	_ = buf.Flush()
	_ = conn.Close()
}

func (s *Sim) deviceInfo(w http.ResponseWriter, r *http.Request) {
	d := isapi.DeviceInfo{Version: "2.0", XMLNS: isapi.Namespace, DeviceName: s.opts.DeviceName, DeviceID: "255",
		Model: s.opts.Model, SerialNumber: s.opts.Serial, MACAddress: s.opts.MAC, FirmwareVersion: s.opts.Firmware,
		FirmwareReleased: "build 260101", HardwareVersion: "0x10000", DeviceType: "ACS"}
	if r.URL.Query().Get("format") == "json" {
		writeJSON(w, http.StatusOK, isapi.DeviceInfoJSON(d))
		return
	}
	writeXML(w, http.StatusOK, isapi.EncodeXML(d))
}

func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r.Body, isapi.MaxDocument+1))
	if err == nil && len(b) > isapi.MaxDocument {
		err = errors.New("body too large")
	}
	return b, err
}

func (s *Sim) door(w http.ResponseWriter, r *http.Request) {
	n, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/ISAPI/AccessControl/RemoteControl/door/"))
	if err != nil || n < 1 || n > s.opts.Doors {
		s.status(w, r, http.StatusBadRequest, isapi.StatusInvalidContent, "Invalid Content", isapi.SubStatusBadParameter)
		return
	}
	body, err := readBody(r)
	if err != nil {
		s.status(w, r, http.StatusBadRequest, isapi.StatusInvalidXML, "Invalid XML Format", "badXmlFormat")
		return
	}
	cmd, err := isapi.DecodeRemoteControlDoor(body)
	if err != nil {
		s.status(w, r, http.StatusBadRequest, isapi.StatusInvalidXML, "Invalid XML Format", "badXmlFormat")
		return
	}
	s.mu.Lock()
	state, minor := DoorOpen, 0x400
	switch cmd.Cmd {
	case isapi.DoorClose:
		state, minor = DoorClosed, 0x401
	case isapi.DoorAlwaysOpen:
		state, minor = DoorAlwaysOpen, 0x402
	case isapi.DoorAlwaysClose:
		state, minor = DoorAlwaysClose, 0x403
	}
	s.doors[n-1] = state
	s.recordLocked(3, minor, n)
	s.mu.Unlock()
	s.status(w, r, http.StatusOK, isapi.StatusOK, "OK", isapi.SubStatusOK)
}

func (s *Sim) clock(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPut {
		body, err := readBody(r)
		var t isapi.Time
		if err == nil {
			t, err = isapi.DecodeTime(body)
		}
		var at time.Time
		if err == nil {
			at, err = isapi.ParseTime(t.LocalTime, s.opts.Location)
		}
		if err != nil {
			s.status(w, r, http.StatusBadRequest, isapi.StatusInvalidXML, "Invalid XML Format", "badXmlFormat")
			return
		}
		s.mu.Lock()
		s.clockSkew = time.Until(at)
		s.mu.Unlock()
		s.status(w, r, http.StatusOK, isapi.StatusOK, "OK", isapi.SubStatusOK)
		return
	}
	t := isapi.Time{Version: "2.0", XMLNS: isapi.Namespace, TimeMode: "manual",
		LocalTime: s.Clock().In(s.opts.Location).Format(isapi.TimeLayout), TimeZone: "CST-3:00:00"}
	writeXML(w, http.StatusOK, isapi.EncodeXML(t))
}

// search is the AcsEvent search with the device's paging rules: a
// searchID's matches are fixed by its first page (position 0 or an unknown
// ID), pages are addressed by position, at most min(maxResults, PageSize)
// events each.
func (s *Sim) search(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(r)
	var cond isapi.AcsEventCond
	if err == nil {
		cond, err = isapi.DecodeAcsEventCond(body)
	}
	if err != nil {
		s.status(w, r, http.StatusBadRequest, isapi.StatusInvalidContent, "Invalid Content", "badJsonFormat")
		return
	}
	s.mu.Lock()
	s.searchReqs++
	s.mu.Unlock()
	if s.opts.NoSerialFilter && (cond.BeginSerialNo != 0 || cond.EndSerialNo != 0) {
		s.status(w, r, http.StatusBadRequest, isapi.StatusInvalidContent, "Invalid Content", isapi.SubStatusBadParameter)
		return
	}
	if err := cond.Validate(); err != nil {
		s.log.Info("search refused", "err", err)
		s.status(w, r, http.StatusBadRequest, isapi.StatusInvalidContent, "Invalid Content", isapi.SubStatusBadParameter)
		return
	}
	var start, end time.Time
	if cond.StartTime != "" {
		start, _ = isapi.ParseTime(cond.StartTime, s.opts.Location)
	}
	if cond.EndTime != "" {
		end, _ = isapi.ParseTime(cond.EndTime, s.opts.Location)
	}
	s.mu.Lock()
	matches, known := s.searches[cond.SearchID]
	if !known || cond.SearchResultPosition == 0 {
		matches = nil
		for _, e := range s.events {
			if (cond.Major != 0 && e.Major != cond.Major) || (cond.Minor != 0 && e.Minor != cond.Minor) ||
				(cond.BeginSerialNo != 0 && e.SerialNo < cond.BeginSerialNo) || (cond.EndSerialNo != 0 && e.SerialNo > cond.EndSerialNo) ||
				(cond.EmployeeNoString != "" && e.EmployeeNoString != cond.EmployeeNoString) {
				continue
			}
			if !start.IsZero() || !end.IsZero() {
				at, _ := isapi.ParseTime(e.Time, s.opts.Location)
				if (!start.IsZero() && at.Before(start)) || (!end.IsZero() && at.After(end)) {
					continue
				}
			}
			matches = append(matches, e)
		}
		if cond.TimeReverseOrder {
			sort.SliceStable(matches, func(i, j int) bool { return matches[i].SerialNo > matches[j].SerialNo })
		}
		if !known {
			s.searchOrder = append(s.searchOrder, cond.SearchID)
			if len(s.searchOrder) > 16 {
				delete(s.searches, s.searchOrder[0])
				s.searchOrder = s.searchOrder[1:]
			}
		}
		s.searches[cond.SearchID] = matches
	}
	s.mu.Unlock()
	ans := isapi.AcsEvent{SearchID: cond.SearchID, TotalMatches: len(matches)}
	pos := cond.SearchResultPosition
	if pos >= len(matches) {
		ans.ResponseStatusStrg = isapi.SearchNoMatch
		if len(matches) == 0 {
			ans.TotalMatches = 0
		}
	} else {
		n := min(cond.MaxResults, s.opts.PageSize, len(matches)-pos)
		ans.InfoList = matches[pos : pos+n]
		ans.NumOfMatches = n
		ans.ResponseStatusStrg = isapi.SearchOK
		if pos+n < len(matches) {
			ans.ResponseStatusStrg = isapi.SearchMore
		}
	}
	writeJSON(w, http.StatusOK, ans.Encode())
}

// alertStream serves the multipart/mixed event stream: a heartbeat every
// HeartbeatInterval (videoloss inactive, as terminals send) and each new
// AccessControllerEvent, until the client leaves, the device reboots or
// the simulator closes.
func (s *Sim) alertStream(w http.ResponseWriter, r *http.Request) {
	ch := make(chan isapi.EventNotificationAlert, 64)
	s.mu.Lock()
	s.subs[ch] = struct{}{}
	down := s.down
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.subs, ch)
		s.mu.Unlock()
	}()
	rc := http.NewResponseController(w)
	w.Header().Set("MIME-Version", "1.0")
	w.Header().Set("Connection", "close")
	w.Header().Set("Content-Type", "multipart/mixed; boundary="+Boundary)
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		return
	}
	hb := time.NewTimer(s.opts.HeartbeatInterval) // per-connection heartbeat
	defer hb.Stop()
	ctx := r.Context()
	for {
		var alert isapi.EventNotificationAlert
		select {
		case <-ctx.Done():
			return
		case <-s.stop:
			return
		case <-down:
			return
		case alert = <-ch:
		case <-hb.C:
			hb.Reset(s.opts.HeartbeatInterval)
			alert = isapi.EventNotificationAlert{IPAddress: "127.0.0.1", PortNo: 80, Protocol: "HTTP", MACAddress: s.opts.MAC,
				ChannelID: 1, DateTime: s.Clock().In(s.opts.Location).Format(isapi.TimeLayout), ActivePostCount: 1,
				EventType: isapi.EventVideoLoss, EventState: "inactive", EventDescription: "videoloss alarm"}
		}
		if s.fault(FaultHeartbeatStop) {
			continue
		}
		if err := s.writeAlert(ctx, w, alert); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}

func (s *Sim) writeAlert(_ context.Context, w io.Writer, a isapi.EventNotificationAlert) error {
	if s.fault(FaultDoubleBoundary) {
		if _, err := io.WriteString(w, "--"+Boundary+"\r\n"); err != nil {
			return err
		}
	}
	if s.fault(FaultOversizedPart) {
		_, err := fmt.Fprintf(w, "--%s\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n", Boundary, 4<<20)
		return err
	}
	if s.fault(FaultMalformedPart) {
		return isapi.WritePart(w, Boundary, `application/json; charset="UTF-8"`, []byte(`{"eventType":"AccessControllerEvent","AccessControllerEvent":{"serialNo":`))
	}
	if s.opts.XMLAlerts {
		a.Version, a.XMLNS = "2.0", isapi.Namespace
		return isapi.WritePart(w, Boundary, `application/xml; charset="UTF-8"`, isapi.EncodeXML(a))
	}
	return isapi.WritePart(w, Boundary, `application/json; charset="UTF-8"`, isapi.EncodeJSON(a))
}
