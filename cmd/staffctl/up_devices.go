package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/cloud/dashboard/dashboarddb"
	"github.com/staffcontrol/staffcontrol/internal/cloud/devicecmd"
	"github.com/staffcontrol/staffcontrol/internal/cloud/directory"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/sim/hiksim"
	"github.com/staffcontrol/staffcontrol/internal/sim/zksim"
	"github.com/staffcontrol/staffcontrol/internal/zkproto"
)

// demoPerson is one of the demo's staff, enrolled on both simulated door
// terminals under the same employee number and card.
type demoPerson struct {
	number, first, last string
	card                uint32 // 0: none (fingerprint or face only)
}

// demoStaff are the people the simulated terminals know; up creates them
// as employees of the demo organisation (or reuses them) with their
// employee number and card as identities, so that the terminals' events
// name known employees.
var demoStaff = []demoPerson{
	{"D-1001", "Ana", "Ruiz", 3308812528},
	{"D-1002", "Ben", "Okafor", 3308812529},
	{"D-1003", "Chen", "Wei", 0},
	{"D-1004", "Dana", "Kowalski", 3308812531},
	{"D-1005", "Emeka", "Eze", 3308812532},
}

// demoDevice is a simulated terminal of this run and its devices row.
type demoDevice struct {
	id          int64
	name, kind  string
	addr        string
	description string
}

// demoDevices are the simulated door terminals of one `up` run.
type demoDevices struct {
	list  []demoDevice
	close func()
}

// startDemoDevices starts one simulated terminal of each vendor on
// loopback (badging the demo staff at rate per second each), makes the
// demo staff employees of the organisation, records the terminals as
// devices of the run's gateway and sends the gateway its device list
// (devicecmd.SyncGateway: the devices_update reaches the gateway through
// its command queue once it is provisioned).
func startDemoDevices(ctx context.Context, logger *slog.Logger, admin string, demo demoState, rate float64) (demoDevices, error) {
	password, err := randomHex(6)
	if err != nil {
		return demoDevices{}, err
	}
	n, err := rand.Int(rand.Reader, big.NewInt(899999))
	if err != nil {
		return demoDevices{}, err
	}
	commKey := uint32(n.Int64()) + 100000

	hikUsers := make([]hiksim.User, len(demoStaff))
	zkUsers := make([]zkproto.User, len(demoStaff))
	for i, p := range demoStaff {
		card := ""
		if p.card != 0 {
			card = strconv.FormatUint(uint64(p.card), 10)
		}
		hikUsers[i] = hiksim.User{EmployeeNo: p.number, Name: p.first + " " + p.last, CardNo: card}
		zkUsers[i] = zkproto.User{UID: uint16(i + 1), Name: p.first + " " + p.last, Card: p.card, UserID: p.number, Group: "1"}
	}
	hik := hiksim.New(hiksim.Options{Addr: "127.0.0.1:0", Password: password, Users: hikUsers, PastEvents: 10, BadgeRate: rate,
		Location: time.UTC, Serial: "DS-K1T671M-DEMO" + demo.serial[len(demo.serial)-6:], Logger: logger.With("component", "hiksim")})
	if err := hik.Start(); err != nil {
		return demoDevices{}, fmt.Errorf("hikvision simulator: %w", err)
	}
	zk := zksim.New(zksim.Options{Addr: "127.0.0.1:0", CommKey: commKey, SeedUsers: zkUsers, Records: 10, BadgeRate: rate,
		Location: time.UTC, Seed: uint64(time.Now().UnixNano()), Logger: logger.With("component", "zksim")})
	// Not ctx: the simulator stays up until closed, after the gateway
	// stopped (a session cut at Ctrl-C would be logged as a failure).
	if err := zk.Start(context.WithoutCancel(ctx)); err != nil {
		hik.Close()
		return demoDevices{}, fmt.Errorf("zkteco simulator: %w", err)
	}
	closeSims := func() {
		_ = zk.Close()
		_ = hik.Close()
	}
	devs := []demoDevice{
		{name: "Front door (Hikvision simulator)", kind: "hikvision", addr: hik.Addr(), description: "ISAPI at " + hik.URL()},
		{name: "Side door (ZKTeco simulator)", kind: "zkteco", addr: zk.Addr(), description: "TCP at " + zk.Addr()},
	}
	configs := []any{
		map[string]any{"username": "admin", "password": password, "doors": []int{1, 2}, "time_zone": "UTC"},
		map[string]any{"comm_key": commKey, "transport": "tcp", "time_zone": "UTC"},
	}
	if err := recordDemoDevices(ctx, admin, demo, devs, configs); err != nil {
		closeSims()
		return demoDevices{}, err
	}
	return demoDevices{list: devs, close: closeSims}, nil
}

// recordDemoDevices creates the demo staff (reusing those that exist), the
// devices rows (ids written into devs) and queues the gateway's list.
func recordDemoDevices(ctx context.Context, admin string, demo demoState, devs []demoDevice, configs []any) error {
	pool, err := connectAdmin(ctx, admin, 2)
	if err != nil {
		return err
	}
	defer pool.Close()
	tenant := postgres.Tenant{OrganizationID: demo.orgID, Role: postgres.AppAdmin, Actor: "staffctl up"}
	dir := directory.New()
	for _, p := range demoStaff {
		in := directory.EmployeeInput{EmployeeNumber: p.number, FirstName: p.first, LastName: p.last,
			Identities: []directory.IdentityInput{{Kind: directory.KindEmployeeNumber, Value: p.number}}}
		if p.card != 0 {
			in.Identities = append(in.Identities, directory.IdentityInput{Kind: directory.KindCardNumber, Value: strconv.FormatUint(uint64(p.card), 10)})
		}
		_, err := dir.CreateEmployee(ctx, pool, tenant, in)
		if e := apperr.As(err); e != nil && e.Code == apperr.Conflict {
			continue // a previous run's: reused
		}
		if err != nil {
			return fmt.Errorf("demo employee %s: %w", p.number, err)
		}
	}
	gw := demo.gatewayID
	err = postgres.InTenant(ctx, pool, tenant, func(tx pgx.Tx) error {
		q := dashboarddb.New(tx)
		for i := range devs {
			host, portS, err := net.SplitHostPort(devs[i].addr)
			if err != nil {
				return err
			}
			p, err := strconv.ParseInt(portS, 10, 32)
			if err != nil {
				return err
			}
			port := int32(p)
			cfg, err := json.Marshal(configs[i])
			if err != nil {
				return err
			}
			d, err := q.CreateDevice(ctx, dashboarddb.CreateDeviceParams{OrganizationID: demo.orgID, GatewayID: &gw, Name: devs[i].name,
				AdapterType: devs[i].kind, Host: &host, Port: &port, Config: cfg})
			if err != nil {
				return fmt.Errorf("demo device %s: %w", devs[i].name, err)
			}
			devs[i].id = d.ID
		}
		return nil
	})
	if err != nil {
		return err
	}
	q, err := commandQueue(pool)
	if err != nil {
		return err
	}
	if _, err := devicecmd.New(pool, q).SyncGateway(ctx, tenant, gw, "staffctl up"); err != nil {
		return fmt.Errorf("send the demo gateway its devices: %w", err)
	}
	return nil
}

// stop closes the simulators.
func (d demoDevices) stop() {
	if d.close != nil {
		d.close()
	}
}

// notes are the start-up lines about the devices, with a ready-to-paste
// open-door command.
func (d demoDevices) notes(admin string, rate float64) string {
	if len(d.list) == 0 {
		return ""
	}
	var b strings.Builder
	for _, dev := range d.list {
		fmt.Fprintf(&b, "  Door terminal     device %d, %s: %s, %.2f badges/s\n", dev.id, dev.name, dev.description, rate)
	}
	fmt.Fprintf(&b, "  Open a door       DATABASE_URL='%s' staffctl device open-door --org %s --device %d --door 1 --wait 30s\n",
		redacted(admin), demoSlug, d.list[0].id)
	return b.String()
}

// randomHex is n random bytes in hex.
func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", errors.New("random: " + err.Error())
	}
	return hex.EncodeToString(b), nil
}
