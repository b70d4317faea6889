package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/cloud/enrolment"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// runEnrolmentSecret creates or rotates an organisation's agent enrolment
// secret and prints it once: staffctl org enrolment-secret ORG.
func runEnrolmentSecret(ctx context.Context, e env, args []string) error {
	fs, dbURL := newFlags(e, "org enrolment-secret", "org enrolment-secret ORG [--database-url URL]")
	org, rest := positional(args)
	if err := parseFlags(fs, rest); err != nil {
		return err
	}
	if org == "" {
		return usagef("org enrolment-secret: the organisation (id or slug) is required")
	}
	secret, err := rotateEnrolmentSecret(ctx, e, *dbURL, org)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "agent enrolment secret of organisation %s (shown once; deliver it with the agent installer):\n%s\n", org, secret)
	fmt.Fprintf(e.stdout, "its verifier (for collector.enrolment_verifier, optional; gateways fetch it from the cloud): %s\n", agentauthVerifier(secret))
	fmt.Fprintln(e.stdout, "the previous secret, if any, no longer enrols agents; agents already enrolled keep their credentials")
	return nil
}

// rotateEnrolmentSecret sets a new enrolment secret for org and returns it.
func rotateEnrolmentSecret(ctx context.Context, e env, dbURL, org string) (string, error) {
	pool, actor, err := orgScope(ctx, e, dbURL, org)
	if err != nil {
		return "", err
	}
	defer pool.Close()
	svc := enrolment.New(pool)
	secret, _, err := svc.Rotate(ctx, actor.Tenant, actor.Tenant.OrganizationID)
	if errors.Is(err, enrolment.ErrNotFound) {
		return "", fmt.Errorf("org enrolment-secret: no organisation %s", org)
	}
	return secret, err
}

// agentauthVerifier is the verifier of secret, as gateways check it.
func agentauthVerifier(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return protocol.VerifierSHA256 + hex.EncodeToString(h[:])
}

// positional splits a leading positional argument from flags.
func positional(args []string) (string, []string) {
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		return args[0], args[1:]
	}
	return "", args
}

// runAgent manages desktop agents: staffctl agent revoke ORG AGENT_UID.
func runAgent(ctx context.Context, e env, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(e.stdout, "usage: staffctl agent revoke ORG AGENT_UID [--database-url URL]\n")
		if len(args) == 0 {
			return usagef("agent: a subcommand is required (revoke)")
		}
		return nil
	}
	if args[0] != "revoke" {
		return usagef("agent: unknown subcommand %q (want revoke)", args[0])
	}
	fs, dbURL := newFlags(e, "agent revoke", "agent revoke ORG AGENT_UID [--database-url URL]")
	org, rest := positional(args[1:])
	uid, rest := positional(rest)
	if err := parseFlags(fs, rest); err != nil {
		return err
	}
	if org == "" || uid == "" {
		return usagef("agent revoke: the organisation (id or slug) and the agent uid are required")
	}
	pool, actor, err := orgScope(ctx, e, *dbURL, org)
	if err != nil {
		return err
	}
	defer pool.Close()
	q, err := commandQueue(pool)
	if err != nil {
		return err
	}
	svc := enrolment.New(pool)
	cmds, err := svc.RevokeAgent(ctx, actor.Tenant, q, uid, "staffctl")
	if errors.Is(err, enrolment.ErrNotFound) {
		return fmt.Errorf("agent revoke: organisation %s has no gateway to revoke agent %q at", org, uid)
	}
	if err != nil {
		return err
	}
	for _, c := range cmds {
		fmt.Fprintf(e.stdout, "revoke_agent %s queued for gateway %s (expires %s)\n", c.ID, c.GatewayID, c.ExpiresAt.Format(time.RFC3339))
	}
	fmt.Fprintf(e.stdout, "agent %q revoked in organisation %s: each gateway drops its credential when it runs the command; the agent must enrol again\n", uid, org)
	return nil
}
