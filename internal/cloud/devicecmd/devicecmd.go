// Package devicecmd sends commands to devices behind gateways and keeps
// each gateway's device list current, cloud side (issue 16). Send records
// a device_commands row and enqueues the device_command gateway command
// that carries it (protocol.DeviceCommandPayload) in one tenant
// transaction; the database moves the row with its gateway command from
// then on (device_commands_follow, migration 00030), so the row's status
// and response are the gateway's acknowledgement or the sweep's verdict.
// SyncGateway enqueues a devices_update with a gateway's whole list
// (protocol.DevicesPayload), numbered strictly increasing per gateway,
// cancelling the gateway's older lists not yet delivered.
package devicecmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/cloud/commandqueue"
	"github.com/staffcontrol/staffcontrol/internal/cloud/devicecmd/devicecmddb"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// Statuses of a device command: those of its gateway command (the row
// follows it), except that a command the device answered with a failure is
// failed.
const (
	StatusPending   = commandqueue.StatusPending
	StatusDelivered = commandqueue.StatusDelivered
	StatusCompleted = commandqueue.StatusCompleted
	StatusFailed    = commandqueue.StatusFailed
	StatusExpired   = commandqueue.StatusExpired
	StatusCancelled = commandqueue.StatusCancelled
)

// Bounds and defaults of a device command.
const (
	// DefaultTTL is how long a command waits for its gateway by default:
	// a door opened an hour late is worse than not at all.
	DefaultTTL = 60 * time.Second
	// MaxTTL bounds a command's wait.
	MaxTTL = 24 * time.Hour
	// MaxParamsBytes bounds a command's params.
	MaxParamsBytes = 4 << 10
	// Priority of device_command gateway commands (above the default 0,
	// below a key rotation's 10).
	Priority = 5
	// maxAttempts is the delivery budget of a device_command: one
	// redelivery after a lost acknowledgement (the gateway executes a
	// device_command_id once).
	maxAttempts = 2
)

// ErrNotFound means no such device or device command visible to the tenant.
var ErrNotFound = errors.New("devicecmd: not found")

// Service sends device commands and device lists through the command
// queue.
type Service struct {
	db    *pgxpool.Pool
	queue *commandqueue.Queue
}

// New returns a Service over db (the dashboard or platform-admin role) and
// queue.
func New(db *pgxpool.Pool, queue *commandqueue.Queue) *Service {
	return &Service{db: db, queue: queue}
}

// Request is one command for one device.
type Request struct {
	DeviceID int64
	// Command is one of protocol.DeviceOperations().
	Command string
	// Door is the door of a door operation (0: the device's first).
	Door int
	// Params are operation-specific arguments (a JSON object, optional).
	Params json.RawMessage
	// TTL is how long the command may wait for its gateway (0: DefaultTTL).
	TTL time.Duration
	// CreatedBy names who sent it (an actor, for the record).
	CreatedBy string
}

// Command is a device_commands row.
type Command struct {
	ID               uuid.UUID       `json:"id"`
	OrganizationID   int64           `json:"organization_id"`
	DeviceID         int64           `json:"device_id"`
	GatewayID        uuid.UUID       `json:"gateway_id"`
	GatewayCommandID *uuid.UUID      `json:"gateway_command_id"`
	AdapterType      string          `json:"adapter_type"`
	CommandType      string          `json:"command"`
	Payload          json.RawMessage `json:"payload"`
	Status           string          `json:"status"`
	Response         json.RawMessage `json:"response"`
	Error            *string         `json:"error"`
	CreatedBy        *string         `json:"created_by"`
	CreatedAt        time.Time       `json:"created_at"`
	DeliveredAt      *time.Time      `json:"delivered_at"`
	CompletedAt      *time.Time      `json:"completed_at"`
	ExpiresAt        *time.Time      `json:"expires_at"`
}

// Final reports whether the command has reached a final state.
func (c Command) Final() bool {
	return c.Status != StatusPending && c.Status != StatusDelivered
}

// Check validates what needs no database, naming the field at fault
// ("command", "door", "params", "expires_in_seconds").
func (r Request) Check() error {
	if !slices.Contains(protocol.DeviceOperations(), r.Command) {
		return apperr.New(apperr.Invalid, "command", "must be one of %v", protocol.DeviceOperations())
	}
	if r.Door < 0 || r.Door > protocol.MaxDoor {
		return apperr.New(apperr.Invalid, "door", "must be from 0 to %d", protocol.MaxDoor)
	}
	if len(r.Params) > MaxParamsBytes {
		return apperr.New(apperr.Invalid, "params", "must be at most %d bytes", MaxParamsBytes)
	}
	if len(r.Params) > 0 && string(r.Params) != "null" {
		var m map[string]json.RawMessage
		if json.Unmarshal(r.Params, &m) != nil || m == nil {
			return apperr.New(apperr.Invalid, "params", "must be a JSON object")
		}
	}
	if r.TTL != 0 && (r.TTL < time.Second || r.TTL > MaxTTL) {
		return apperr.New(apperr.Invalid, "expires_in_seconds", "must be from 1 to %d seconds", int(MaxTTL/time.Second))
	}
	return nil
}

// Send is SendTx in a transaction of its own with tenant t.
func (s *Service) Send(ctx context.Context, t postgres.Tenant, r Request) (Command, error) {
	var out Command
	err := postgres.InTenant(ctx, s.db, t, func(tx pgx.Tx) error {
		var err error
		out, err = s.SendTx(ctx, tx, r)
		return err
	})
	return out, err
}

// SendTx records a device command and enqueues its device_command gateway
// command inside the caller's tenant transaction: both or neither. A
// device the tenant cannot see is ErrNotFound; a device with no gateway is
// refused naming "device_id".
func (s *Service) SendTx(ctx context.Context, tx pgx.Tx, r Request) (Command, error) {
	if err := r.Check(); err != nil {
		return Command{}, err
	}
	if r.TTL == 0 {
		r.TTL = DefaultTTL
	}
	q := devicecmddb.New(tx)
	d, err := q.Device(ctx, r.DeviceID)
	if errors.Is(err, pgx.ErrNoRows) {
		return Command{}, ErrNotFound
	}
	if err != nil {
		return Command{}, fmt.Errorf("devicecmd: read device: %w", err)
	}
	if d.GatewayID == nil {
		return Command{}, apperr.New(apperr.Invalid, "device_id", "the device has no gateway: assign it to one first")
	}
	id := uuid.New()
	p := protocol.DeviceCommandPayload{DeviceCommandID: id.String(), DeviceID: d.ID, Command: r.Command, Door: r.Door}
	if d.Serial != nil {
		p.DeviceSerial = *d.Serial
	}
	if len(r.Params) > 0 && string(r.Params) != "null" {
		p.Params = r.Params
	}
	if err := p.Validate(); err != nil {
		return Command{}, err
	}
	payload, err := json.Marshal(p)
	if err != nil {
		return Command{}, fmt.Errorf("devicecmd: encode payload: %w", err)
	}
	gc, err := s.queue.EnqueueTx(ctx, tx, commandqueue.NewCommand{GatewayID: *d.GatewayID, Type: protocol.CommandDeviceCommand,
		Payload: payload, Priority: Priority, MaxAttempts: maxAttempts, TTL: r.TTL, CreatedBy: r.CreatedBy})
	if errors.Is(err, commandqueue.ErrNotFound) {
		return Command{}, apperr.New(apperr.Invalid, "device_id", "the device's gateway is revoked: assign it to another")
	}
	if err != nil {
		return Command{}, fmt.Errorf("devicecmd: enqueue: %w", err)
	}
	var by *string
	if r.CreatedBy != "" {
		by = &r.CreatedBy
	}
	row, err := q.Insert(ctx, devicecmddb.InsertParams{ID: id, OrganizationID: d.OrganizationID, DeviceID: d.ID, GatewayID: *d.GatewayID,
		AdapterType: d.AdapterType, CommandType: r.Command, Payload: payload, GatewayCommandID: &gc.ID, CreatedBy: by,
		ExpiresAt: &gc.ExpiresAt})
	if err != nil {
		return Command{}, fmt.Errorf("devicecmd: record: %w", err)
	}
	return Command(row), nil
}

// Get reads one device command in a transaction of its own.
func (s *Service) Get(ctx context.Context, t postgres.Tenant, id uuid.UUID) (Command, error) {
	var out Command
	err := postgres.InTenant(ctx, s.db, t, func(tx pgx.Tx) error {
		var err error
		out, err = s.GetTx(ctx, tx, id)
		return err
	})
	return out, err
}

// GetTx reads one device command the tenant sees (ErrNotFound otherwise).
func (s *Service) GetTx(ctx context.Context, tx pgx.Tx, id uuid.UUID) (Command, error) {
	row, err := devicecmddb.New(tx).Get(ctx, id)
	if errors.Is(err, pgx.ErrNoRows) {
		return Command{}, ErrNotFound
	}
	if err != nil {
		return Command{}, fmt.Errorf("devicecmd: get: %w", err)
	}
	return Command(row), nil
}

// Page selects one page of a device's commands.
type Page struct {
	DeviceID int64
	// BeforeAt and BeforeID are the keyset cursor: commands created before
	// BeforeAt, or at BeforeAt with an id below BeforeID (zero BeforeAt:
	// the newest).
	BeforeAt time.Time
	BeforeID uuid.UUID
	Limit    int
}

// ListTx returns one page of a device's commands, newest first (ties by
// id), inside the caller's tenant transaction. Another organisation's
// device has none.
func (s *Service) ListTx(ctx context.Context, tx pgx.Tx, p Page) ([]Command, error) {
	if p.Limit <= 0 || p.Limit > 1000 {
		p.Limit = 100
	}
	params := devicecmddb.ListParams{DeviceID: p.DeviceID, MaxRows: int32(p.Limit)}
	if !p.BeforeAt.IsZero() {
		params.BeforeAt = pgtype.Timestamptz{Time: p.BeforeAt, Valid: true}
		params.BeforeID = &p.BeforeID
	}
	rows, err := devicecmddb.New(tx).List(ctx, params)
	if err != nil {
		return nil, fmt.Errorf("devicecmd: list: %w", err)
	}
	out := make([]Command, 0, len(rows))
	for _, r := range rows {
		out = append(out, Command(r))
	}
	return out, nil
}

// List is ListTx in a transaction of its own.
func (s *Service) List(ctx context.Context, t postgres.Tenant, p Page) ([]Command, error) {
	var out []Command
	err := postgres.InTenant(ctx, s.db, t, func(tx pgx.Tx) error {
		var err error
		out, err = s.ListTx(ctx, tx, p)
		return err
	})
	return out, err
}

// SyncGateway is SyncGatewayTx in a transaction of its own.
func (s *Service) SyncGateway(ctx context.Context, t postgres.Tenant, gateway uuid.UUID, createdBy string) (commandqueue.Command, error) {
	var out commandqueue.Command
	err := postgres.InTenant(ctx, s.db, t, func(tx pgx.Tx) error {
		var err error
		out, err = s.SyncGatewayTx(ctx, tx, gateway, createdBy)
		return err
	})
	return out, err
}

// SyncGatewayTx enqueues a devices_update with the gateway's whole device
// list inside the caller's tenant transaction (after the caller's change
// to the devices, so the list includes it), and cancels the gateway's
// older lists not yet delivered. Lists of one gateway are serialised by a
// transaction lock and numbered from a sequence after it, so a later list
// has a higher version and is computed after the earlier one committed.
// Devices without a host or port (not reachable yet) are left out. A
// gateway the tenant cannot see (or revoked) is ErrNotFound.
func (s *Service) SyncGatewayTx(ctx context.Context, tx pgx.Tx, gateway uuid.UUID, createdBy string) (commandqueue.Command, error) {
	q := devicecmddb.New(tx)
	if err := q.LockGateway(ctx, gateway.String()); err != nil {
		return commandqueue.Command{}, fmt.Errorf("devicecmd: lock gateway: %w", err)
	}
	version, err := q.NextVersion(ctx)
	if err != nil {
		return commandqueue.Command{}, fmt.Errorf("devicecmd: next list version: %w", err)
	}
	rows, err := q.GatewayDevices(ctx, devicecmddb.GatewayDevicesParams{GatewayID: &gateway, MaxRows: protocol.MaxDevicesPerGateway + 1})
	if err != nil {
		return commandqueue.Command{}, fmt.Errorf("devicecmd: read gateway devices: %w", err)
	}
	p := protocol.DevicesPayload{Version: version, Devices: []protocol.DeviceConfig{}}
	for _, d := range rows {
		if d.Host == nil || d.Port == nil {
			continue
		}
		c := protocol.DeviceConfig{ID: d.ID, Name: d.Name, AdapterType: d.AdapterType, Host: *d.Host, Port: int(*d.Port), Config: d.Config}
		if d.Serial != nil {
			c.Serial = *d.Serial
		}
		if string(c.Config) == "{}" {
			c.Config = nil
		}
		p.Devices = append(p.Devices, c)
	}
	if err := p.Validate(); err != nil {
		return commandqueue.Command{}, apperr.New(apperr.Invalid, "gateway_id", "the gateway's device list is not valid: %v", err)
	}
	payload, err := json.Marshal(p)
	if err != nil {
		return commandqueue.Command{}, fmt.Errorf("devicecmd: encode list: %w", err)
	}
	if _, err := s.queue.CancelPendingTx(ctx, tx, gateway, protocol.CommandDevicesUpdate, "superseded by a newer device list"); err != nil {
		return commandqueue.Command{}, err
	}
	c, err := s.queue.EnqueueTx(ctx, tx, commandqueue.NewCommand{GatewayID: gateway, Type: protocol.CommandDevicesUpdate, Payload: payload,
		Priority: Priority, MaxAttempts: 100, TTL: 30 * 24 * time.Hour, CreatedBy: createdBy})
	if errors.Is(err, commandqueue.ErrNotFound) {
		return commandqueue.Command{}, ErrNotFound
	}
	if err != nil {
		return commandqueue.Command{}, fmt.Errorf("devicecmd: enqueue list: %w", err)
	}
	return c, nil
}
