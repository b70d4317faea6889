// Package devices is the gateway's door-terminal platform: the Adapter
// contract every vendor adapter implements (Hikvision ISAPI, ZKTeco), the
// registry built from an explicit list of factories, and the per-device
// supervisor that connects, catches up from a persisted cursor, follows the
// live events, runs commands one at a time and isolates a failing device.
//
// See ../shared/reference/device-protocols.md §5 and DESIGN.md §4.
package devices

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// Config is one device as the gateway knows it: from gateway.yml or from the
// cloud's devices row of the gateway's organisation.
type Config struct {
	// ID is the cloud's devices.id (0 for a device only in gateway.yml).
	ID int64 `json:"id,omitempty"`
	// Name is a label for logs and metrics; unique per gateway.
	Name string `json:"name"`
	// Type is the adapter type: "hikvision" or "zkteco".
	Type string `json:"adapter_type"`
	// Host and Port address the device on the LAN.
	Host string `json:"host"`
	Port int    `json:"port"`
	// Serial is the device's serial number when known in advance; the
	// adapter's Info is authoritative once connected.
	Serial string `json:"serial,omitempty"`
	// Settings is the adapter-specific part (credentials, comm key, door
	// numbers, transport, time zone, …), validated against the adapter's
	// JSON Schema (Factory.Schema) before use.
	Settings json.RawMessage `json:"config,omitempty"`
}

// Info is what a device says about itself.
type Info struct {
	Serial   string `json:"serial"`
	Model    string `json:"model,omitempty"`
	Firmware string `json:"firmware,omitempty"`
	// MAC, Users, Records and capacity figures when the device reports them.
	MAC   string            `json:"mac,omitempty"`
	Extra map[string]string `json:"extra,omitempty"`
}

// Event is one access or attendance event read from a device.
type Event struct {
	// Key identifies the event on its device, stable across re-reads (the
	// Hikvision serialNo; for ZKTeco user id, time, status and punch). The
	// gateway derives the event id from adapter type, device serial and Key,
	// so an event read twice (live and again in a catch-up) is one event.
	Key string
	// Time is when the device recorded it, in UTC (adapters convert from the
	// device's local time with the configured zone).
	Time time.Time
	// EmployeeNumber is the device's user id (Hikvision employeeNoString,
	// ZKTeco user id); CardNumber the card read, when any.
	EmployeeNumber string
	CardNumber     string
	// Door is the door or reader number, when the device says.
	Door *int
	// MajorCode and MinorCode classify the event (Hikvision major/minor;
	// ZKTeco: major 5 "event", minor the attendance status).
	MajorCode int
	MinorCode int
	// VerifyMode is how the person was verified (card, fingerprint, face,
	// password, …); Direction is "in", "out" or "".
	VerifyMode string
	Direction  string
}

// Cursor is a device's catch-up position, opaque to everyone but its
// adapter (a Hikvision serialNo; for ZKTeco the time of the newest record
// read). The zero Cursor means "from the beginning of the device's log".
type Cursor string

// Command is one operation asked of a device.
type Command struct {
	// Type is one of the Cmd* constants.
	Type string `json:"type"`
	// Door is the door number for the door commands (1 when zero).
	Door int `json:"door,omitempty"`
	// Params carries command-specific arguments.
	Params json.RawMessage `json:"params,omitempty"`
}

// Command types every adapter knows; an adapter answers ErrUnsupported for
// one its device cannot do.
const (
	CmdOpenDoor         = "open_door"
	CmdCloseDoor        = "close_door"
	CmdDoorAlwaysOpen   = "door_always_open"
	CmdDoorAlwaysClosed = "door_always_closed"
	CmdReboot           = "reboot"
	CmdGetInfo          = "get_info"
	CmdSyncTime         = "sync_time"
)

// Result is a device's answer to a command.
type Result struct {
	// Message is the device's own words (status string, reply code name).
	Message string `json:"message,omitempty"`
	// Data is any structured answer (device info, user counts, …).
	Data json.RawMessage `json:"data,omitempty"`
}

// Adapter talks to one device. The supervisor calls it from one goroutine
// at a time for Connect, Close, Info, Execute and Fetch (commands are
// serialised per device); Subscribe runs in its own goroutine, concurrently
// with the others, on its own connection or stream where the protocol needs
// one. Every method honours its context's deadline and cancellation.
type Adapter interface {
	// Connect opens the session (and authenticates). A wrong credential is
	// an *AuthError; anything else is retried with backoff.
	Connect(ctx context.Context) error
	// Close ends the session; it is safe to call more than once and after a
	// failed Connect.
	Close() error
	// Info reads the device's identity; a cheap call, also the liveness probe.
	Info(ctx context.Context) (Info, error)
	// Execute runs one command and returns the device's response.
	Execute(ctx context.Context, cmd Command) (Result, error)
	// Fetch reads the device's stored events after since, oldest first, in
	// pages: page is called for each page with the events and the cursor
	// just past them; when page returns an error Fetch stops and returns
	// it. The cursor of a page is persisted only after its events are
	// buffered, so a crash re-reads at most one page.
	Fetch(ctx context.Context, since Cursor, page func([]Event, Cursor) error) error
	// Subscribe follows live events until ctx ends or the stream dies (then
	// it returns the error; a dead stream is detected within the adapter's
	// idle timeout). Events are delivered to out, which may block briefly
	// (a bounded channel behind it).
	Subscribe(ctx context.Context, out func(Event)) error
}

// Factory builds adapters of one type.
type Factory struct {
	// Type is the adapter type name ("hikvision", "zkteco").
	Type string
	// Vendor and Version describe it in the cloud's device_adapters catalogue.
	Vendor  string
	Version string
	// Schema is the JSON Schema (draft 2020-12) of Config.Settings.
	Schema json.RawMessage
	// New builds an adapter for one device; it must not do I/O.
	New func(cfg Config) (Adapter, error)
}

// ErrUnsupported is returned (wrapped) by Execute for a command the device
// cannot do; the command fails permanently.
var ErrUnsupported = errors.New("command not supported by this device")

// AuthError is a refused credential. The supervisor stops automatic retries
// (a retry loop locks the account out) until the configuration changes or,
// when the device names a lockout, until it has passed.
type AuthError struct {
	// Reason is the device's words (ACK_UNAUTH, userCheck status, …).
	Reason string
	// RetryAfter, when positive, is how long the device keeps the account
	// locked; zero means the credentials are wrong and retrying cannot help.
	RetryAfter time.Duration
	// AttemptsLeft is how many more failures the device allows before it
	// locks, when it says (-1 when unknown).
	AttemptsLeft int
}

// Error describes the refusal.
func (e *AuthError) Error() string {
	s := "device refused the credentials: " + e.Reason
	if e.RetryAfter > 0 {
		s += fmt.Sprintf(" (locked for %s)", e.RetryAfter)
	}
	return s
}

// ProtocolError is input from the device that breaks the protocol (bad
// checksum, truncated frame, malformed XML). The supervisor reconnects.
type ProtocolError struct {
	// Op is what was being read.
	Op string
	// Err is the decoding failure.
	Err error
}

// Error names the operation and the failure.
func (e *ProtocolError) Error() string {
	return "device protocol error in " + e.Op + ": " + e.Err.Error()
}

// Unwrap returns the decoding failure.
func (e *ProtocolError) Unwrap() error { return e.Err }

// eventNamespace is the UUID namespace of device event ids (a random v4,
// fixed forever: changing it would give every re-read event a new id).
const eventNamespace = "5b0e7a52-4b8e-4f7e-9d5c-2f0a3c1d8e61"

// EventID is the event id of a device event: a UUID v5 of the adapter type,
// the device serial and the event's Key, so the same event read twice — live
// and again in a catch-up, or after a gateway restart — has the same id and
// the buffer and the cloud keep it once.
func EventID(adapterType, serial, key string) string {
	return uuid.NewSHA1(uuid.MustParse(eventNamespace), []byte(adapterType+"\x00"+serial+"\x00"+key)).String()
}
