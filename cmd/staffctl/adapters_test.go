package main

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/staffcontrol/staffcontrol/internal/edge/devices"
	"github.com/staffcontrol/staffcontrol/internal/edge/devices/hikvision"
	"github.com/staffcontrol/staffcontrol/internal/edge/devices/zkteco"
)

// TestAdapterCatalogueMatchesTheAdapters: the device_adapters rows the
// migrations seed (00031) carry the adapters' own settings schemas, vendor
// and version, so the Dashboard API validates a device's config exactly as
// the gateway does.
func TestAdapterCatalogueMatchesTheAdapters(t *testing.T) {
	t.Parallel()
	db := pg.NewDatabase(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, db.AdminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, f := range []devices.Factory{hikvision.Factory(), zkteco.Factory(nil)} {
		var vendor string
		var schema []byte
		if err := conn.QueryRow(ctx, `SELECT vendor, config_schema FROM device_adapters WHERE type = $1 AND version = $2 AND is_active`,
			f.Type, f.Version).Scan(&vendor, &schema); err != nil {
			t.Fatalf("%s %s: %v", f.Type, f.Version, err)
		}
		var got, want any
		if err := json.Unmarshal(schema, &got); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(f.Schema, &want); err != nil {
			t.Fatal(err)
		}
		if vendor != f.Vendor || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: catalogue row (%s) %s\nwant (%s) %s", f.Type, vendor, schema, f.Vendor, f.Schema)
		}
	}
}
