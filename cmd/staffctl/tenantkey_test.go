package main

import (
	"context"
	"github.com/staffcontrol/staffcontrol/internal/cloud/accesstoken"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
)

// TestTenantKeyRotationThroughStaffctl: generate, install beside the
// current key, make it the one staffctl signs with, retire the old one;
// a bad key and an unknown id are refused naming what is wrong.
func TestTenantKeyRotationThroughStaffctl(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pg.NewDatabase(t)
	env := map[string]string{"DATABASE_URL": db.AdminURL}
	out, errOut, err := staffctl(t, env, "tenant-key", "generate", "--id", "k2")
	if err != nil {
		t.Fatalf("generate: %v (%s)", err, errOut)
	}
	key, err := postgres.ParseContextKey(out)
	if err != nil || key.ID() != "k2" {
		t.Fatalf("generate printed %q: %v", out, err)
	}
	env["TENANT_CONTEXT_KEY"] = key.String()
	if out, errOut, err := staffctl(t, env, "tenant-key", "install"); err != nil || !strings.Contains(out, "k2 installed") {
		t.Fatalf("install: %q %v (%s)", out, err, errOut)
	}
	got, err := postgres.CurrentContextKey(ctx, db.AdminURL)
	if err != nil || got.ID() != "k2" {
		t.Fatalf("current key %q (%v), want k2", got.ID(), err)
	}
	// The old key still verifies until retired.
	old := pg.ContextKey()
	verifies := func(k postgres.ContextKey) bool {
		t.Helper()
		ok, err := checkKey(ctx, db.DashboardURL, k)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if !verifies(old) || !verifies(key) {
		t.Fatal("after install, both keys must verify")
	}
	if out, errOut, err := staffctl(t, env, "tenant-key", "retire", "--id", old.ID()); err != nil || !strings.Contains(out, "retired") {
		t.Fatalf("retire: %q %v (%s)", out, err, errOut)
	}
	if verifies(old) || !verifies(key) {
		t.Fatal("after retiring the old key, only the new one may verify")
	}
	if _, _, err := staffctl(t, env, "tenant-key", "retire", "--id", "nope"); err == nil || !strings.Contains(err.Error(), "--id") {
		t.Errorf("retiring an unknown id: %v, want an error naming --id", err)
	}
	env["TENANT_CONTEXT_KEY"] = "k3:short"
	if _, _, err := staffctl(t, env, "tenant-key", "install"); err == nil || !strings.Contains(err.Error(), "TENANT_CONTEXT_KEY") {
		t.Errorf("installing a bad key: %v, want an error naming TENANT_CONTEXT_KEY", err)
	}
}

// checkKey reports whether the database verifies a context signed with k.
func checkKey(ctx context.Context, url string, k postgres.ContextKey) (bool, error) {
	pool, err := postgres.Connect(ctx, url, 1, k)
	if err != nil {
		return false, err
	}
	defer pool.Close()
	var ok bool
	err = postgres.InTenant(ctx, pool, postgres.Tenant{Role: postgres.AppHR}, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT app.app_role() IS NOT NULL`).Scan(&ok)
	})
	return ok, err
}

// TestTokenKeyGenerate: staffctl token-key generate prints a key that
// DASHBOARD_TOKEN_KEYS reads back; a bad id is a usage error naming --id.
func TestTokenKeyGenerate(t *testing.T) {
	out, errOut, err := staffctl(t, nil, "token-key", "generate", "--id", "k2026")
	if err != nil {
		t.Fatalf("%v: %s", err, errOut)
	}
	keys, err := accesstoken.ParseKeys(strings.TrimSpace(out))
	if err != nil || len(keys) != 1 || keys[0].ID != "k2026" {
		t.Fatalf("parsed %v, %v from %q", keys, err, out)
	}
	if _, _, err := staffctl(t, nil, "token-key", "generate", "--id", "no spaces"); err == nil || !strings.Contains(err.Error(), "--id") {
		t.Fatalf("bad id: %v", err)
	}
}
