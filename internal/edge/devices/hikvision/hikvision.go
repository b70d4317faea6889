// Package hikvision is the gateway's adapter for Hikvision access-control
// and time-attendance terminals over ISAPI (HTTP with Digest): Connect
// verifies deviceInfo; Execute drives RemoteControl door (open, close,
// always open, always closed), reboot, device info and the clock; Fetch
// pages the AcsEvent search from a serialNo cursor; Subscribe follows the
// alertStream with an idle watchdog. A refused credential is a
// *devices.AuthError after one attempt (never a loop: each attempt counts
// towards the device's lockout), with the lockout's remaining time and the
// attempts left from the device's userCheck; malformed answers are
// *devices.ProtocolError.
//
// See ../shared/reference/device-protocols.md §1 and §5.
package hikvision

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/edge/devices"
	"github.com/staffcontrol/staffcontrol/internal/isapi"
)

// Type is the adapter type name.
const Type = "hikvision"

// ErrStreamDead is returned (wrapped) by Subscribe when no byte arrived on
// the alertStream for the idle timeout.
var ErrStreamDead = errors.New("hikvision: stream dead")

// maxBody bounds an ordinary answer.
const maxBody = 1 << 20

// Factory describes the adapter for the registry.
func Factory() devices.Factory {
	return devices.Factory{
		Type: Type, Vendor: "Hikvision", Version: "1", Schema: json.RawMessage(Schema),
		New: func(cfg devices.Config) (devices.Adapter, error) { return New(cfg) },
	}
}

// Adapter talks to one Hikvision terminal.
type Adapter struct {
	cfg    devices.Config
	set    Settings
	loc    *time.Location
	client *isapi.Client
	hc     *http.Client // ordinary calls, bounded by timeout_ms
	stream *http.Client // the alertStream: no overall timeout, idle watchdog instead
	idle   time.Duration

	// noSerialFilter is set once the device refused beginSerialNo.
	noSerialFilter atomic.Bool
}

var _ devices.Adapter = (*Adapter)(nil)

// New builds an adapter for cfg without I/O.
func New(cfg devices.Config) (*Adapter, error) {
	set, loc, err := parseSettings(cfg.Settings)
	if err != nil {
		return nil, fmt.Errorf("hikvision %s: %w", cfg.Name, err)
	}
	if cfg.Host == "" {
		return nil, fmt.Errorf("hikvision %s: host is required", cfg.Name)
	}
	port := cfg.Port
	if port < 0 || port > 65535 {
		return nil, fmt.Errorf("hikvision %s: port %d out of 0..65535", cfg.Name, port)
	}
	if port == 0 {
		port = 80
		if set.Scheme == "https" {
			port = 443
		}
	}
	timeout := time.Duration(set.TimeoutMS) * time.Millisecond
	newTransport := func() *http.Transport {
		return &http.Transport{
			DialContext:            (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext,
			TLSClientConfig:        &tls.Config{InsecureSkipVerify: set.InsecureSkipVerify, MinVersion: tls.VersionTLS12}, //nolint:gosec // per-device setting for self-signed terminals
			TLSHandshakeTimeout:    timeout,
			ResponseHeaderTimeout:  timeout,
			MaxIdleConnsPerHost:    2,
			IdleConnTimeout:        30 * time.Second,
			MaxResponseHeaderBytes: 64 << 10,
		}
	}
	return &Adapter{
		cfg: cfg, set: set, loc: loc,
		client: &isapi.Client{BaseURL: set.Scheme + "://" + net.JoinHostPort(cfg.Host, strconv.Itoa(port)), Username: set.Username, Password: set.Password},
		hc:     &http.Client{Transport: newTransport(), Timeout: timeout, CheckRedirect: noRedirect},
		stream: &http.Client{Transport: newTransport(), CheckRedirect: noRedirect},
		idle:   time.Duration(set.StreamIdleSeconds) * time.Second,
	}, nil
}

func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// Connect verifies the device answers deviceInfo with these credentials.
func (a *Adapter) Connect(ctx context.Context) error {
	_, err := a.Info(ctx)
	return err
}

// Close drops idle connections; safe to call more than once.
func (a *Adapter) Close() error {
	a.hc.CloseIdleConnections()
	a.stream.CloseIdleConnections()
	return nil
}

// fail classifies err of op: an *isapi.AuthFailure becomes a
// *devices.AuthError, malformed input a *devices.ProtocolError.
func (a *Adapter) fail(op string, err error) error {
	var af *isapi.AuthFailure
	switch {
	case errors.As(err, &af):
		ae := &devices.AuthError{Reason: fmt.Sprintf("HTTP %d", af.HTTPStatus), AttemptsLeft: -1}
		if af.HasCheck {
			ae.Reason = fmt.Sprintf("HTTP %d userCheck %d %s, lockStatus %s", af.HTTPStatus, af.Check.StatusValue, af.Check.StatusString, af.Check.LockStatus)
			if af.Check.RetryLoginTime != nil {
				ae.AttemptsLeft = *af.Check.RetryLoginTime
			}
			if af.Check.Locked() {
				ae.RetryAfter = time.Duration(max(af.Check.UnlockTime, 1)) * time.Second
				ae.AttemptsLeft = 0
			}
		}
		return fmt.Errorf("hikvision %s: %s: %w", a.cfg.Name, op, ae)
	case errors.Is(err, isapi.ErrMalformed), errors.Is(err, isapi.ErrStream), errors.Is(err, isapi.ErrPartTooLarge), errors.Is(err, isapi.ErrBadChallenge):
		return fmt.Errorf("hikvision %s: %w", a.cfg.Name, &devices.ProtocolError{Op: op, Err: err})
	}
	return fmt.Errorf("hikvision %s: %s: %w", a.cfg.Name, op, err)
}

// call sends one request and reads the whole answer.
func (a *Adapter) call(ctx context.Context, op, method, uri string, body []byte, contentType string) (int, []byte, error) {
	resp, err := a.client.Do(ctx, a.hc, method, uri, body, contentType)
	if err != nil {
		return 0, nil, a.fail(op, err)
	}
	b, err := isapi.ReadBody(resp, maxBody)
	if err != nil {
		if errors.Is(err, isapi.ErrMalformed) {
			return 0, nil, a.fail(op, err)
		}
		// A connection cut mid-answer: a network failure, retried.
		return 0, nil, a.fail(op, fmt.Errorf("read answer: %w", err))
	}
	return resp.StatusCode, b, nil
}

// refused turns a non-2xx answer (or a 200 whose ResponseStatus is not OK)
// into an error naming the device's subStatusCode; a 404 or notSupport
// wraps devices.ErrUnsupported.
func (a *Adapter) refused(op string, code int, body []byte) error {
	re := &isapi.ResponseError{HTTPStatus: code}
	if st, err := isapi.DecodeResponseStatus(body); err == nil {
		re.Status = st
	} else if code == http.StatusOK {
		return a.fail(op, err)
	}
	if re.NotSupported() {
		return fmt.Errorf("hikvision %s: %s: %w: %w", a.cfg.Name, op, devices.ErrUnsupported, re)
	}
	return fmt.Errorf("hikvision %s: %s: %w", a.cfg.Name, op, re)
}

// Info reads deviceInfo (XML; the JSON form is not on every firmware).
func (a *Adapter) Info(ctx context.Context) (devices.Info, error) {
	const op = "deviceInfo"
	code, body, err := a.call(ctx, op, http.MethodGet, "/ISAPI/System/deviceInfo", nil, "")
	if err != nil {
		return devices.Info{}, err
	}
	if code != http.StatusOK {
		return devices.Info{}, a.refused(op, code, body)
	}
	d, err := isapi.DecodeDeviceInfo(body)
	if err != nil {
		return devices.Info{}, a.fail(op, err)
	}
	info := devices.Info{Serial: d.SerialNumber, Model: d.Model, Firmware: d.FirmwareVersion, MAC: d.MACAddress, Extra: map[string]string{}}
	for k, v := range map[string]string{"device_name": d.DeviceName, "device_type": d.DeviceType, "hardware_version": d.HardwareVersion, "firmware_released": d.FirmwareReleased} {
		if v != "" {
			info.Extra[k] = v
		}
	}
	return info, nil
}

// put sends a PUT expecting a ResponseStatus with statusCode 1.
func (a *Adapter) put(ctx context.Context, op, uri string, body []byte) (devices.Result, error) {
	code, ans, err := a.call(ctx, op, http.MethodPut, uri, body, `application/xml; charset="UTF-8"`)
	if err != nil {
		return devices.Result{}, err
	}
	st, derr := isapi.DecodeResponseStatus(ans)
	if code != http.StatusOK || derr != nil || !st.OK() {
		return devices.Result{}, a.refused(op, code, ans)
	}
	msg := st.StatusString
	if msg == "" {
		msg = st.SubStatusCode
	}
	return devices.Result{Message: msg}, nil
}

// Execute runs one command: the door commands, reboot, get_info and
// sync_time (params {"time": RFC 3339}, default now).
func (a *Adapter) Execute(ctx context.Context, cmd devices.Command) (devices.Result, error) {
	doorCmd := map[string]string{
		devices.CmdOpenDoor: isapi.DoorOpen, devices.CmdCloseDoor: isapi.DoorClose,
		devices.CmdDoorAlwaysOpen: isapi.DoorAlwaysOpen, devices.CmdDoorAlwaysClosed: isapi.DoorAlwaysClose,
	}
	if c, ok := doorCmd[cmd.Type]; ok {
		door := cmd.Door
		if door == 0 {
			door = 1
		}
		allowed := false
		for _, d := range a.set.Doors {
			allowed = allowed || d == door
		}
		if !allowed {
			return devices.Result{}, fmt.Errorf("hikvision %s: %s: %w: door %d is not in the configured doors %v", a.cfg.Name, cmd.Type, devices.ErrUnsupported, door, a.set.Doors)
		}
		return a.put(ctx, cmd.Type, "/ISAPI/AccessControl/RemoteControl/door/"+strconv.Itoa(door), isapi.DoorCommandXML(c))
	}
	switch cmd.Type {
	case devices.CmdReboot:
		return a.put(ctx, cmd.Type, "/ISAPI/System/reboot", nil)
	case devices.CmdGetInfo:
		info, err := a.Info(ctx)
		if err != nil {
			return devices.Result{}, err
		}
		data, err := json.Marshal(info)
		if err != nil {
			return devices.Result{}, fmt.Errorf("hikvision %s: get_info: %w", a.cfg.Name, err)
		}
		return devices.Result{Message: "OK", Data: data}, nil
	case devices.CmdSyncTime:
		at := time.Now()
		if len(cmd.Params) > 0 {
			var p struct {
				Time time.Time `json:"time"`
			}
			if err := json.Unmarshal(cmd.Params, &p); err != nil {
				return devices.Result{}, fmt.Errorf("hikvision %s: sync_time: params: %w", a.cfg.Name, err)
			}
			if !p.Time.IsZero() {
				at = p.Time
			}
		}
		body := isapi.EncodeXML(isapi.Time{Version: "2.0", XMLNS: isapi.Namespace, TimeMode: "manual", LocalTime: at.In(a.loc).Format(isapi.TimeLayout)})
		return a.put(ctx, cmd.Type, "/ISAPI/System/time", body)
	}
	return devices.Result{}, fmt.Errorf("hikvision %s: %q: %w", a.cfg.Name, cmd.Type, devices.ErrUnsupported)
}

// parseCursor reads a cursor: the highest serialNo delivered ("" is 0).
func parseCursor(c devices.Cursor) (int64, error) {
	if c == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(string(c), 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("hikvision: cursor %q is not a serial number", c)
	}
	return n, nil
}

// maxPosition is the largest searchResultPosition a device accepts.
const maxPosition = 300000

// Fetch pages the AcsEvent search for the events after since (a serialNo):
// one searchID per search, beginSerialNo = since+1, maxResults page_size,
// the next page at position + numOfMatches while the device says MORE.
// Each page is sorted by serialNo (devices do not promise the order) and
// filtered against since and the events already delivered; its cursor is
// the highest serialNo delivered so far.
//
// A firmware that refuses beginSerialNo (statusCode 4 or 6 to the first
// page) is remembered, and its catch-ups search newest first instead
// (timeReverseOrder) until a whole page is at or below the cursor, then
// deliver what they found oldest first.
func (a *Adapter) Fetch(ctx context.Context, since devices.Cursor, page func([]devices.Event, devices.Cursor) error) error {
	from, err := parseCursor(since)
	if err != nil {
		return err
	}
	if from > 0 && a.noSerialFilter.Load() {
		return a.fetchReverse(ctx, from, page)
	}
	cond := a.newSearch()
	if from > 0 {
		cond.BeginSerialNo = from + 1
	}
	cursor, seen := from, map[int64]bool{}
	for {
		ans, err := a.searchPage(ctx, cond)
		var re *isapi.ResponseError
		if errors.As(err, &re) && cond.BeginSerialNo != 0 && cond.SearchResultPosition == 0 &&
			(re.Status.StatusCode == isapi.StatusInvalidOp || re.Status.StatusCode == isapi.StatusInvalidContent) {
			a.noSerialFilter.Store(true)
			return a.fetchReverse(ctx, from, page)
		}
		if err != nil {
			return err
		}
		evs := make([]devices.Event, 0, len(ans.InfoList))
		for _, info := range ans.InfoList {
			if info.SerialNo <= from || seen[info.SerialNo] {
				continue
			}
			ev, err := a.eventOf(info)
			if err != nil {
				return a.fail(searchOp, err)
			}
			seen[info.SerialNo] = true
			cursor = max(cursor, info.SerialNo)
			evs = append(evs, ev)
		}
		if len(evs) > 0 {
			if err := page(evs, devices.Cursor(strconv.FormatInt(cursor, 10))); err != nil {
				return err
			}
		}
		if ans.ResponseStatusStrg != isapi.SearchMore {
			return nil
		}
		cond.SearchResultPosition += ans.NumOfMatches
		if cond.SearchResultPosition > maxPosition {
			// The device's limit; the next Fetch continues from the cursor.
			return nil
		}
	}
}

const searchOp = "AcsEvent search"

// newSearch is a search condition with a new searchID over every time.
func (a *Adapter) newSearch() isapi.AcsEventCond {
	var id [8]byte
	_, _ = rand.Read(id[:])
	return isapi.AcsEventCond{
		SearchID: hex.EncodeToString(id[:]), MaxResults: a.set.PageSize,
		StartTime: time.Date(2000, 1, 1, 0, 0, 0, 0, a.loc).Format(isapi.TimeLayout),
		EndTime:   time.Date(2037, 12, 31, 23, 59, 59, 0, a.loc).Format(isapi.TimeLayout),
		PicEnable: new(false),
	}
}

// searchPage asks for one page and checks the answer; the events come
// back sorted by serialNo. NO MATCH, or no events, is an answer with an
// empty list and status OK; MORE with no events is a protocol error (it
// could loop).
func (a *Adapter) searchPage(ctx context.Context, cond isapi.AcsEventCond) (isapi.AcsEvent, error) {
	code, body, err := a.call(ctx, searchOp, http.MethodPost, "/ISAPI/AccessControl/AcsEvent?format=json", cond.Encode(), "application/json")
	if err != nil {
		return isapi.AcsEvent{}, err
	}
	if code != http.StatusOK {
		return isapi.AcsEvent{}, a.refused(searchOp, code, body)
	}
	ans, err := isapi.DecodeAcsEvent(body, cond.MaxResults)
	if err != nil {
		return isapi.AcsEvent{}, a.fail(searchOp, err)
	}
	if ans.NumOfMatches == 0 {
		if ans.ResponseStatusStrg == isapi.SearchMore {
			return isapi.AcsEvent{}, a.fail(searchOp, fmt.Errorf("%w: MORE with no events at position %d", isapi.ErrMalformed, cond.SearchResultPosition))
		}
		ans.ResponseStatusStrg = isapi.SearchOK
	}
	sort.SliceStable(ans.InfoList, func(i, j int) bool { return ans.InfoList[i].SerialNo < ans.InfoList[j].SerialNo })
	return ans, nil
}

// fetchReverse is the catch-up for firmwares without beginSerialNo: pages
// newest first until one lies wholly at or below from (a margin for
// devices that do not order strictly), then the events above from, oldest
// first, in pages of page_size.
func (a *Adapter) fetchReverse(ctx context.Context, from int64, page func([]devices.Event, devices.Cursor) error) error {
	cond := a.newSearch()
	cond.TimeReverseOrder = true
	var found []devices.Event
	seen := map[int64]bool{}
	for {
		ans, err := a.searchPage(ctx, cond)
		if err != nil {
			return err
		}
		newer := 0
		for _, info := range ans.InfoList {
			if info.SerialNo <= from || seen[info.SerialNo] {
				continue
			}
			ev, err := a.eventOf(info)
			if err != nil {
				return a.fail(searchOp, err)
			}
			seen[info.SerialNo] = true
			found = append(found, ev)
			newer++
		}
		if ans.ResponseStatusStrg != isapi.SearchMore || (newer == 0 && ans.NumOfMatches > 0) {
			break
		}
		cond.SearchResultPosition += ans.NumOfMatches
		if cond.SearchResultPosition > maxPosition {
			break
		}
	}
	sort.Slice(found, func(i, j int) bool { return serialOf(found[i]) < serialOf(found[j]) })
	for len(found) > 0 {
		n := min(len(found), a.set.PageSize)
		if err := page(found[:n], devices.Cursor(found[n-1].Key)); err != nil {
			return err
		}
		found = found[n:]
	}
	return nil
}

func serialOf(e devices.Event) int64 {
	n, _ := strconv.ParseInt(e.Key, 10, 64)
	return n
}

// directions maps attendanceStatus to Event.Direction.
var directions = map[string]string{
	"checkIn": "in", "breakIn": "in", "overtimeIn": "in",
	"checkOut": "out", "breakOut": "out", "overtimeOut": "out",
}

// eventOf converts a stored event.
func (a *Adapter) eventOf(info isapi.AcsEventInfo) (devices.Event, error) {
	if info.SerialNo <= 0 {
		return devices.Event{}, fmt.Errorf("%w: event without a serialNo", isapi.ErrMalformed)
	}
	t, err := isapi.ParseTime(info.Time, a.loc)
	if err != nil {
		return devices.Event{}, err
	}
	ev := devices.Event{
		Key: strconv.FormatInt(info.SerialNo, 10), Time: t, EmployeeNumber: info.EmployeeNoString, CardNumber: info.CardNo,
		MajorCode: info.Major, MinorCode: info.Minor, VerifyMode: info.CurrentVerifyMode, Direction: directions[info.AttendanceStatus],
	}
	if info.DoorNo > 0 {
		ev.Door = new(info.DoorNo)
	}
	return ev, nil
}

// idleReader resets the watchdog on every byte read.
type idleReader struct {
	r     io.Reader
	timer *time.Timer
	idle  time.Duration
}

func (r *idleReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		r.timer.Reset(r.idle)
	}
	return n, err
}

// Subscribe follows the alertStream until ctx ends or the stream dies:
// no byte for stream_idle_seconds (heartbeats count) is ErrStreamDead; a
// malformed part, an oversized one or a broken multipart body is a
// *devices.ProtocolError; the device closing the stream is an error too
// (the supervisor reconnects and catches up with Fetch).
func (a *Adapter) Subscribe(ctx context.Context, out func(devices.Event)) error {
	const op = "alertStream"
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	watchdog := time.AfterFunc(a.idle, func() { cancel(ErrStreamDead) })
	defer watchdog.Stop()
	resp, err := a.client.Do(sctx, a.stream, http.MethodGet, "/ISAPI/Event/notification/alertStream", nil, "")
	if err != nil {
		if c := context.Cause(sctx); errors.Is(c, ErrStreamDead) && ctx.Err() == nil {
			return fmt.Errorf("hikvision %s: %s: %w: no answer for %s", a.cfg.Name, op, ErrStreamDead, a.idle)
		}
		return a.fail(op, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := isapi.ReadBody(resp, maxBody)
		return a.refused(op, resp.StatusCode, b)
	}
	watchdog.Reset(a.idle)
	pr, err := isapi.NewPartReader(&idleReader{r: resp.Body, timer: watchdog, idle: a.idle}, resp.Header.Get("Content-Type"), isapi.DefaultMaxPart)
	if err != nil {
		return a.fail(op, err)
	}
	for {
		part, err := pr.Next()
		if err != nil {
			switch {
			case ctx.Err() != nil:
				return ctx.Err()
			case errors.Is(context.Cause(sctx), ErrStreamDead):
				return fmt.Errorf("hikvision %s: %s: %w: no byte for %s", a.cfg.Name, op, ErrStreamDead, a.idle)
			case errors.Is(err, io.EOF):
				return fmt.Errorf("hikvision %s: %s: the device ended the stream", a.cfg.Name, op)
			}
			return a.fail(op, err)
		}
		ct := part.ContentType()
		if len(ct) >= 6 && ct[:6] == "image/" {
			continue // pictures of the event; the gateway does not keep them
		}
		alerts, err := isapi.DecodeAlerts(ct, part.Body)
		if err != nil {
			return a.fail(op, err)
		}
		for _, al := range alerts {
			if al.Heartbeat() || al.EventType != isapi.EventAccessController || al.Access == nil {
				continue
			}
			if al.Access.SerialNo <= 0 {
				// Without a serialNo it has no stable key; the catch-up
				// search delivers it with one.
				continue
			}
			ev, err := a.eventOf(isapi.AcsEventInfo{
				Major: al.Access.MajorEventType, Minor: al.Access.SubEventType, Time: al.DateTime, CardNo: al.Access.CardNo,
				DoorNo: al.Access.DoorNo, EmployeeNoString: al.Access.EmployeeNoString, SerialNo: al.Access.SerialNo,
				CurrentVerifyMode: al.Access.CurrentVerifyMode, AttendanceStatus: al.Access.AttendanceStatus,
			})
			if err != nil {
				return a.fail(op, err)
			}
			// A blocked consumer is not a dead stream: the watchdog pauses.
			watchdog.Stop()
			out(ev)
			watchdog.Reset(a.idle)
		}
	}
}
