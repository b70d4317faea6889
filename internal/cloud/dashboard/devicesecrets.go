package dashboard

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/staffcontrol/staffcontrol/internal/cloud/dashboard/dashboarddb"
)

// deviceSecrets maps an adapter type to the settings its schemas mark
// "writeOnly" (a device's password, a comm key): written through the API,
// kept in the device's config for the gateway, never answered back. A PUT
// that leaves one out keeps the stored value, so a client that read a
// device can send it back unchanged.
type deviceSecrets map[string][]string

// secretsTx reads the catalogue's write-only settings, every version of
// every adapter (a setting secret in any version stays secret).
func secretsTx(ctx context.Context, tx pgx.Tx) (deviceSecrets, error) {
	rows, err := dashboarddb.New(tx).ListAdapters(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the device adapters: %w", err)
	}
	out := deviceSecrets{}
	for _, ad := range rows {
		var schema struct {
			Properties map[string]struct {
				WriteOnly bool `json:"writeOnly"`
			} `json:"properties"`
		}
		if json.Unmarshal(ad.ConfigSchema, &schema) != nil {
			continue
		}
		for name, p := range schema.Properties {
			if p.WriteOnly {
				out[ad.Type] = append(out[ad.Type], name)
			}
		}
	}
	return out, nil
}

// device is d on the wire with its write-only settings left out.
func (s deviceSecrets) device(d dashboarddb.Device) device {
	out := deviceOf(d)
	names := s[d.AdapterType]
	if len(names) == 0 {
		return out
	}
	var cfg map[string]json.RawMessage
	if json.Unmarshal(d.Config, &cfg) != nil {
		out.Config = json.RawMessage("{}") // not an object: answer nothing of it
		return out
	}
	for _, n := range names {
		delete(cfg, n)
	}
	if b, err := json.Marshal(cfg); err == nil {
		out.Config = b
	}
	return out
}

// keep adds to body (a PUT's config of adapterType) the write-only
// settings it leaves out from stored (the device's config of the same
// type).
func (s deviceSecrets) keep(adapterType string, body, stored json.RawMessage) json.RawMessage {
	names := s[adapterType]
	if len(names) == 0 {
		return body
	}
	var in, old map[string]json.RawMessage
	if json.Unmarshal(body, &in) != nil || json.Unmarshal(stored, &old) != nil || in == nil {
		return body
	}
	changed := false
	for _, n := range names {
		if _, has := in[n]; !has {
			if v, had := old[n]; had {
				in[n] = v
				changed = true
			}
		}
	}
	if !changed {
		return body
	}
	b, err := json.Marshal(in)
	if err != nil {
		return body
	}
	return b
}
