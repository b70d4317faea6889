package main

import (
	"context"
	"fmt"

	"github.com/staffcontrol/staffcontrol/internal/cloud/accesstoken"
)

const tokenKeyUsage = `usage: staffctl token-key generate [--id ID]

Prints a new Ed25519 key for the Dashboard API's access tokens, in the form
DASHBOARD_TOKEN_KEYS takes ("id:base64url-seed"). Rotation: put the new key
first in DASHBOARD_TOKEN_KEYS (it signs; the others still verify), restart
every instance, and drop the old key once the longest access-token lifetime
(15 minutes) has passed. It is a secret.
`

func runTokenKey(ctx context.Context, e env, args []string) error {
	_, rest, err := subcommand(e, args, tokenKeyUsage, "generate")
	if err != nil {
		return err
	}
	fs, _ := newFlags(e, "token-key generate", "token-key generate [--id ID]")
	id := fs.String("id", "k1", "key id (1-64 of A-Z a-z 0-9 . _ -)")
	if err := parseFlags(fs, rest); err != nil {
		return err
	}
	k, err := accesstoken.GenerateKey(*id)
	if err != nil {
		return usagef("token-key generate: --id: %v", err)
	}
	fmt.Fprintln(e.stdout, accesstoken.FormatKey(k))
	return nil
}
