package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/staffcontrol/staffcontrol/internal/cloud/accounts"
	"github.com/staffcontrol/staffcontrol/internal/cloud/commandqueue"
	"github.com/staffcontrol/staffcontrol/internal/cloud/policy"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/cloud/service"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// orgScope connects, resolves --org and returns the pool and an actor that
// acts for that organisation as the platform administrator.
func orgScope(ctx context.Context, e env, dbURL, org string) (*pgxpool.Pool, accounts.Actor, error) {
	if org == "" {
		return nil, accounts.Actor{}, usagef("--org is required")
	}
	dsn, err := databaseURL(e, dbURL)
	if err != nil {
		return nil, accounts.Actor{}, err
	}
	pool, err := connectAdmin(ctx, dsn, 4)
	if err != nil {
		return nil, accounts.Actor{}, err
	}
	id, err := resolveOrg(ctx, accounts.New(pool, time.Now), org)
	if err != nil {
		pool.Close()
		return nil, accounts.Actor{}, err
	}
	return pool, accounts.Actor{Name: "staffctl", Tenant: postgres.Tenant{OrganizationID: id, Role: postgres.AppAdmin, Actor: "staffctl"}}, nil
}

// commandQueue is the command queue staffctl enqueues through: default
// options, and a registry of its own (staffctl serves no metrics).
func commandQueue(pool *pgxpool.Pool) (*commandqueue.Queue, error) {
	return commandqueue.New(pool, commandqueue.Options{}, service.NewRegistry())
}

func subcommand(e env, args []string, usage string, names ...string) (string, []string, error) {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(e.stdout, usage)
		if len(args) == 0 {
			return "", nil, usagef("a subcommand is required (%s)", strings.Join(names, ", "))
		}
		return "", nil, flag.ErrHelp
	}
	for _, n := range names {
		if args[0] == n {
			return n, args[1:], nil
		}
	}
	return "", nil, usagef("unknown subcommand %q (want %s)", args[0], strings.Join(names, ", "))
}

const policyUsage = `usage:
  staffctl policy create     --org ORG --name NAME --file CONTENT.json
  staffctl policy update     --org ORG --policy ID --file CONTENT.json
  staffctl policy release    --org ORG --policy ID [--requires-restart]
  staffctl policy rollback   --org ORG --policy ID --to VERSION [--requires-restart]
  staffctl policy compare    --org ORG --policy ID --from VERSION --to VERSION
  staffctl policy distribute --org ORG --policy ID --version VERSION [--gateways ID,ID] [--canary PERCENT]
  staffctl policy status     --org ORG --distribution ID
`

// policySub is one `staffctl policy` subcommand: its own flag set (only the
// flags it reads) and what it does with the organisation's pool and actor.
type policySub struct {
	name  string
	flags func(fs *flag.FlagSet) func(ctx context.Context, p policyEnv) error
}

// policyEnv is what every policy subcommand works with.
type policyEnv struct {
	e     env
	org   string
	pool  *pgxpool.Pool
	actor accounts.Actor
	svc   *policy.Service
}

func (p policyEnv) distributor() (*policy.Distributor, error) {
	q, err := commandQueue(p.pool)
	if err != nil {
		return nil, err
	}
	return policy.NewDistributor(p.pool, q), nil
}

// policyID registers --policy and returns a check that it was given.
func policyID(fs *flag.FlagSet) func() (int64, error) {
	pid := fs.Int64("policy", 0, "policy id (required)")
	return func() (int64, error) {
		if *pid <= 0 {
			return 0, usagef("--policy is required")
		}
		return *pid, nil
	}
}

// policyContent registers --file and returns its reader.
func policyContent(fs *flag.FlagSet) func() ([]byte, error) {
	file := fs.String("file", "", "JSON file with the policy content (required)")
	return func() ([]byte, error) {
		if *file == "" {
			return nil, usagef("--file is required")
		}
		b, err := os.ReadFile(*file)
		if err != nil {
			return nil, usagef("--file: %v", err)
		}
		return b, nil
	}
}

// policySubcommands lists the subcommands of `staffctl policy`.
func policySubcommands() []policySub {
	return []policySub{
		{"create", func(fs *flag.FlagSet) func(context.Context, policyEnv) error {
			name := fs.String("name", "", "policy name")
			content := policyContent(fs)
			return func(ctx context.Context, p policyEnv) error {
				c, err := content()
				if err != nil {
					return err
				}
				pol, err := p.svc.Create(ctx, p.actor, *name, c)
				if err != nil {
					return err
				}
				fmt.Fprintf(p.e.stdout, "policy %d created (%s); release it with: staffctl policy release --org %s --policy %d\n", pol.ID, pol.Name, p.org, pol.ID)
				return nil
			}
		}},
		{"update", func(fs *flag.FlagSet) func(context.Context, policyEnv) error {
			id, content := policyID(fs), policyContent(fs)
			return func(ctx context.Context, p policyEnv) error {
				pid, err := id()
				if err != nil {
					return err
				}
				c, err := content()
				if err != nil {
					return err
				}
				if _, err := p.svc.Update(ctx, p.actor, pid, c); err != nil {
					return err
				}
				fmt.Fprintf(p.e.stdout, "policy %d updated (draft; release to distribute)\n", pid)
				return nil
			}
		}},
		{"release", func(fs *flag.FlagSet) func(context.Context, policyEnv) error {
			id := policyID(fs)
			restart := fs.Bool("requires-restart", false, "agents must restart to apply this version")
			return func(ctx context.Context, p policyEnv) error {
				pid, err := id()
				if err != nil {
					return err
				}
				v, err := p.svc.Release(ctx, p.actor, pid, *restart)
				if err != nil {
					return err
				}
				printReleased(p.e, pid, v)
				return nil
			}
		}},
		{"rollback", func(fs *flag.FlagSet) func(context.Context, policyEnv) error {
			id := policyID(fs)
			to := fs.String("to", "", "version to roll back to (required)")
			restart := fs.Bool("requires-restart", false, "agents must restart to apply this version")
			return func(ctx context.Context, p policyEnv) error {
				pid, err := id()
				if err != nil {
					return err
				}
				if *to == "" {
					return usagef("--to is required")
				}
				v, err := p.svc.Rollback(ctx, p.actor, pid, *to, *restart)
				if err != nil {
					return err
				}
				printReleased(p.e, pid, v)
				return nil
			}
		}},
		{"compare", func(fs *flag.FlagSet) func(context.Context, policyEnv) error {
			id := policyID(fs)
			from := fs.String("from", "", "version to compare from")
			to := fs.String("to", "", "version to compare to")
			return func(ctx context.Context, p policyEnv) error {
				pid, err := id()
				if err != nil {
					return err
				}
				changes, err := p.svc.Compare(ctx, p.actor, pid, *from, *to)
				if err != nil {
					return err
				}
				out, _ := json.MarshalIndent(changes, "", "  ")
				fmt.Fprintln(p.e.stdout, string(out))
				return nil
			}
		}},
		{"distribute", func(fs *flag.FlagSet) func(context.Context, policyEnv) error {
			id := policyID(fs)
			version := fs.String("version", "", "version to distribute (required)")
			gateways := fs.String("gateways", "", "comma-separated gateway ids (default: every gateway of the organisation)")
			canary := fs.Int("canary", 0, "percentage of gateways that get the version first (0: all at once)")
			return func(ctx context.Context, p policyEnv) error {
				pid, err := id()
				if err != nil {
					return err
				}
				if *version == "" {
					return usagef("--version is required")
				}
				var ids []uuid.UUID
				for _, s := range strings.Split(*gateways, ",") {
					if s = strings.TrimSpace(s); s == "" {
						continue
					}
					gid, err := uuid.Parse(s)
					if err != nil {
						return usagef("--gateways: %q is not a gateway id", s)
					}
					ids = append(ids, gid)
				}
				d, err := p.distributor()
				if err != nil {
					return err
				}
				dist, err := d.Distribute(ctx, p.actor, pid, *version, ids, *canary)
				if err != nil {
					return err
				}
				fmt.Fprintf(p.e.stdout, "distribution %s started; follow it with: staffctl policy status --org %s --distribution %s\n", dist, p.org, dist)
				return nil
			}
		}},
		{"status", func(fs *flag.FlagSet) func(context.Context, policyEnv) error {
			distID := fs.String("distribution", "", "distribution id (required)")
			return func(ctx context.Context, p policyEnv) error {
				id, err := uuid.Parse(*distID)
				if err != nil {
					return usagef("--distribution: a distribution id is required")
				}
				d, err := p.distributor()
				if err != nil {
					return err
				}
				pr, err := d.Progress(ctx, p.actor.Tenant, id)
				if err != nil {
					return err
				}
				fmt.Fprintf(p.e.stdout, "distribution %s of version %s: %s — %d targets: %d applied, %d delivered, %d pending, %d waiting, %d failed\n",
					pr.ID, pr.Version, pr.Stage, pr.Total, pr.Applied, pr.Delivered, pr.Pending, pr.Waiting, pr.Failed)
				for _, g := range pr.Gateways {
					canary := ""
					if g.Canary {
						canary = " (canary)"
					}
					fmt.Fprintf(p.e.stdout, "  %s %-9s%s %s\n", g.GatewayID, g.Status, canary, g.Error)
				}
				return nil
			}
		}},
	}
}

func printReleased(e env, pid int64, v policy.Version) {
	fmt.Fprintf(e.stdout, "policy %d version %s released (sha256 %s, requires restart: %v)\n", pid, v.Version, v.Checksum, v.RequiresRestart)
}

func runPolicy(ctx context.Context, e env, args []string) error {
	subs := policySubcommands()
	names := make([]string, len(subs))
	for i, s := range subs {
		names[i] = s.name
	}
	sub, rest, err := subcommand(e, args, policyUsage, names...)
	if err != nil {
		return err
	}
	usage := ""
	for _, l := range strings.Split(policyUsage, "\n") {
		if f := strings.Fields(l); len(f) > 2 && f[0] == "staffctl" && f[2] == sub {
			usage = strings.TrimPrefix(strings.TrimSpace(l), "staffctl ")
		}
	}
	fs, dbURL := newFlags(e, "policy "+sub, usage)
	org := fs.String("org", "", "organisation id or slug (required)")
	var run func(context.Context, policyEnv) error
	for _, s := range subs {
		if s.name == sub {
			run = s.flags(fs)
		}
	}
	if err := parseFlags(fs, rest); err != nil {
		return err
	}
	pool, actor, err := orgScope(ctx, e, *dbURL, *org)
	if err != nil {
		return err
	}
	defer pool.Close()
	svc, err := policy.New(pool)
	if err != nil {
		return err
	}
	return run(ctx, policyEnv{e: e, org: *org, pool: pool, actor: actor, svc: svc})
}

const commandUsage = `usage:
  staffctl command send --org ORG --gateway ID --type TYPE [--payload JSON] [--priority N] [--ttl 24h] [--max-attempts 3]
  staffctl command list --org ORG [--gateway ID] [--limit 50]
`

func runCommand(ctx context.Context, e env, args []string) error {
	sub, rest, err := subcommand(e, args, commandUsage, "send", "list")
	if err != nil {
		return err
	}
	fs, dbURL := newFlags(e, "command "+sub, strings.TrimPrefix(strings.Split(commandUsage, "\n")[1+map[string]int{"send": 0, "list": 1}[sub]], "  staffctl "))
	org := fs.String("org", "", "organisation id or slug (required)")
	gw := fs.String("gateway", "", "gateway id")
	typ := fs.String("type", "", "policy_update, restart_agent, device_command, rotate_api_key or replay_dead_letters")
	payload := fs.String("payload", "{}", "JSON object")
	prio := fs.Int("priority", 0, "higher goes first")
	ttl := fs.Duration("ttl", 24*time.Hour, "expiry")
	attempts := fs.Int("max-attempts", 3, "deliveries before the command fails")
	limit := fs.Int("limit", 50, "how many to list")
	if err := parseFlags(fs, rest); err != nil {
		return err
	}
	var gwID uuid.UUID
	if *gw != "" {
		if gwID, err = uuid.Parse(*gw); err != nil {
			return usagef("--gateway: %q is not a gateway id", *gw)
		}
	}
	pool, actor, err := orgScope(ctx, e, *dbURL, *org)
	if err != nil {
		return err
	}
	defer pool.Close()
	q, err := commandQueue(pool)
	if err != nil {
		return err
	}
	if sub == "send" {
		if gwID == uuid.Nil {
			return usagef("--gateway is required")
		}
		switch *typ {
		case protocol.CommandDeviceCommand:
			return usagef("--type device_command: use staffctl device open-door|close-door|… (its result lands in a device_commands row)")
		case protocol.CommandDevicesUpdate:
			return usagef("--type devices_update: use staffctl device sync --gateway ID (the list is the devices rows')")
		}
		c, err := q.Enqueue(ctx, actor.Tenant, commandqueue.NewCommand{GatewayID: gwID, Type: *typ, Payload: json.RawMessage(*payload),
			Priority: *prio, TTL: *ttl, MaxAttempts: *attempts, CreatedBy: "staffctl"})
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "command %s queued for gateway %s (expires %s)\n", c.ID, gwID, c.ExpiresAt.Format(time.RFC3339))
		return nil
	}
	cmds, err := q.List(ctx, actor.Tenant, gwID, *limit)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%-36s %-36s %-15s %-9s %s\n", "ID", "GATEWAY", "TYPE", "STATUS", "ATTEMPTS")
	for _, c := range cmds {
		fmt.Fprintf(e.stdout, "%-36s %-36s %-15s %-9s %d/%d\n", c.ID, c.GatewayID, c.Type, c.Status, c.Attempts, c.MaxAttempts)
	}
	return nil
}
