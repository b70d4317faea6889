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
	"github.com/staffcontrol/staffcontrol/internal/cloud/dispatch"
	"github.com/staffcontrol/staffcontrol/internal/cloud/policy"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/cloud/service"
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

func runPolicy(ctx context.Context, e env, args []string) error {
	sub, rest, err := subcommand(e, args, policyUsage, "create", "update", "release", "rollback", "compare", "distribute", "status")
	if err != nil {
		return err
	}
	fs, dbURL := newFlags(e, "policy "+sub, strings.TrimPrefix(strings.Split(policyUsage, "\n")[1], "  staffctl "))
	org := fs.String("org", "", "organisation id or slug (required)")
	name := fs.String("name", "", "policy name")
	file := fs.String("file", "", "JSON file with the policy content")
	pid := fs.Int64("policy", 0, "policy id")
	restart := fs.Bool("requires-restart", false, "agents must restart to apply this version")
	from := fs.String("from", "", "version to compare from")
	to := fs.String("to", "", "version to compare to, or roll back to")
	version := fs.String("version", "", "version to distribute")
	gateways := fs.String("gateways", "", "comma-separated gateway ids (default: every gateway of the organisation)")
	canary := fs.Int("canary", 0, "percentage of gateways that get the version first (0: all at once)")
	distID := fs.String("distribution", "", "distribution id")
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
	readContent := func() ([]byte, error) {
		if *file == "" {
			return nil, usagef("--file is required")
		}
		b, err := os.ReadFile(*file)
		if err != nil {
			return nil, usagef("--file: %v", err)
		}
		return b, nil
	}
	needPolicy := func() error {
		if *pid <= 0 {
			return usagef("--policy is required")
		}
		return nil
	}
	switch sub {
	case "create":
		content, err := readContent()
		if err != nil {
			return err
		}
		p, err := svc.Create(ctx, actor, *name, content)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "policy %d created (%s); release it with: staffctl policy release --org %s --policy %d\n", p.ID, p.Name, *org, p.ID)
	case "update":
		if err := needPolicy(); err != nil {
			return err
		}
		content, err := readContent()
		if err != nil {
			return err
		}
		if _, err := svc.Update(ctx, actor, *pid, content); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "policy %d updated (draft; release to distribute)\n", *pid)
	case "release", "rollback":
		if err := needPolicy(); err != nil {
			return err
		}
		var v policy.Version
		if sub == "release" {
			v, err = svc.Release(ctx, actor, *pid, *restart)
		} else {
			if *to == "" {
				return usagef("--to is required")
			}
			v, err = svc.Rollback(ctx, actor, *pid, *to, *restart)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "policy %d version %s released (sha256 %s, requires restart: %v)\n", *pid, v.Version, v.Checksum, v.RequiresRestart)
	case "compare":
		if err := needPolicy(); err != nil {
			return err
		}
		changes, err := svc.Compare(ctx, actor, *pid, *from, *to)
		if err != nil {
			return err
		}
		out, _ := json.MarshalIndent(changes, "", "  ")
		fmt.Fprintln(e.stdout, string(out))
	case "distribute":
		if err := needPolicy(); err != nil {
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
			id, err := uuid.Parse(s)
			if err != nil {
				return usagef("--gateways: %q is not a gateway id", s)
			}
			ids = append(ids, id)
		}
		q, err := dispatch.New(pool, dispatch.Options{}, service.NewRegistry())
		if err != nil {
			return err
		}
		id, err := policy.NewDistributor(pool, q).Distribute(ctx, actor, *pid, *version, ids, *canary)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "distribution %s started; follow it with: staffctl policy status --org %s --distribution %s\n", id, *org, id)
	case "status":
		id, err := uuid.Parse(*distID)
		if err != nil {
			return usagef("--distribution: a distribution id is required")
		}
		q, err := dispatch.New(pool, dispatch.Options{}, service.NewRegistry())
		if err != nil {
			return err
		}
		p, err := policy.NewDistributor(pool, q).Progress(ctx, actor.Tenant, id)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "distribution %s of version %s: %s — %d targets: %d applied, %d delivered, %d pending, %d waiting, %d failed\n",
			p.ID, p.Version, p.Stage, p.Total, p.Applied, p.Delivered, p.Pending, p.Waiting, p.Failed)
		for _, g := range p.Gateways {
			canary := ""
			if g.Canary {
				canary = " (canary)"
			}
			fmt.Fprintf(e.stdout, "  %s %-9s%s %s\n", g.GatewayID, g.Status, canary, g.Error)
		}
	}
	return nil
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
	q, err := dispatch.New(pool, dispatch.Options{}, service.NewRegistry())
	if err != nil {
		return err
	}
	if sub == "send" {
		if gwID == uuid.Nil {
			return usagef("--gateway is required")
		}
		c, err := q.Enqueue(ctx, actor.Tenant, dispatch.NewCommand{GatewayID: gwID, Type: *typ, Payload: json.RawMessage(*payload),
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
