package devices

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
)

// Registry knows the adapter types a gateway can drive: it is built from an
// explicit list of factories (the adapter packages are wired in by
// cmd/gateway), never from a global table.
type Registry struct {
	factories map[string]Factory
	schemas   map[string]*jsonschema.Schema
}

// NewRegistry builds a registry of fs. A factory without a type or New, a
// type given twice, or a settings schema that does not compile is an error.
func NewRegistry(fs ...Factory) (*Registry, error) {
	r := &Registry{factories: map[string]Factory{}, schemas: map[string]*jsonschema.Schema{}}
	for i, f := range fs {
		if f.Type == "" {
			return nil, fmt.Errorf("devices: factory %d has no type", i)
		}
		if f.New == nil {
			return nil, fmt.Errorf("devices: factory %s has no New", f.Type)
		}
		if _, dup := r.factories[f.Type]; dup {
			return nil, fmt.Errorf("devices: adapter type %s registered twice", f.Type)
		}
		if len(bytes.TrimSpace(f.Schema)) > 0 {
			doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(f.Schema))
			if err != nil {
				return nil, fmt.Errorf("devices: adapter %s: settings schema is not JSON: %w", f.Type, err)
			}
			url := "adapter:" + f.Type + ".json"
			c := jsonschema.NewCompiler()
			if err := c.AddResource(url, doc); err != nil {
				return nil, fmt.Errorf("devices: adapter %s: settings schema: %w", f.Type, err)
			}
			sch, err := c.Compile(url)
			if err != nil {
				return nil, fmt.Errorf("devices: adapter %s: settings schema does not compile: %w", f.Type, err)
			}
			r.schemas[f.Type] = sch
		}
		r.factories[f.Type] = f
	}
	return r, nil
}

// Types lists the registered adapter types, sorted.
func (r *Registry) Types() []string {
	out := make([]string, 0, len(r.factories))
	for t := range r.factories {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// Factory returns the factory of an adapter type.
func (r *Registry) Factory(adapterType string) (Factory, bool) {
	f, ok := r.factories[adapterType]
	return f, ok
}

// Limits of the common fields of a device Config.
const (
	// MaxNameLen bounds Name (a metrics label and a log field).
	MaxNameLen = 64
	// MaxHostLen bounds Host (a DNS name at most).
	MaxHostLen = 253
	// MaxSerialLen bounds Serial.
	MaxSerialLen = 128
	// MaxSettingsBytes bounds the adapter-specific settings.
	MaxSettingsBytes = 64 << 10
)

// fieldErr is a device configuration error naming the field.
func fieldErr(field, msg string) *apperr.FieldError {
	return &apperr.FieldError{Field: field, Message: msg}
}

// Validate checks cfg's common fields and its settings against the adapter
// type's JSON Schema. An error is an *apperr.FieldError naming the field
// ("config.comm_key"); Manager.Apply prefixes the list index
// ("devices[2].config.comm_key").
func (r *Registry) Validate(cfg Config) error { return r.validateAt(cfg, "") }

// validateAt is Validate with field names under path.
func (r *Registry) validateAt(cfg Config, path string) error {
	p := func(name string) string {
		if path == "" {
			return name
		}
		return path + "." + name
	}
	switch {
	case strings.TrimSpace(cfg.Name) == "":
		return fieldErr(p("name"), "is required")
	case len(cfg.Name) > MaxNameLen:
		return fieldErr(p("name"), fmt.Sprintf("must be at most %d characters", MaxNameLen))
	case cfg.Type == "":
		return fieldErr(p("adapter_type"), "is required")
	}
	if _, ok := r.factories[cfg.Type]; !ok {
		known := strings.Join(r.Types(), ", ")
		if known == "" {
			known = "none registered"
		}
		return fieldErr(p("adapter_type"), fmt.Sprintf("unknown adapter type %q (known: %s)", cfg.Type, known))
	}
	switch {
	case strings.TrimSpace(cfg.Host) == "":
		return fieldErr(p("host"), "is required")
	case len(cfg.Host) > MaxHostLen || strings.ContainsAny(cfg.Host, " /\x00"):
		return fieldErr(p("host"), fmt.Sprintf("must be a host name or address, not %q", cfg.Host))
	case cfg.Port < 0 || cfg.Port > 65535:
		return fieldErr(p("port"), fmt.Sprintf("must be 1 to 65535 (0: the adapter's default), not %d", cfg.Port))
	case len(cfg.Serial) > MaxSerialLen:
		return fieldErr(p("serial"), fmt.Sprintf("must be at most %d characters", MaxSerialLen))
	case cfg.ID < 0:
		return fieldErr(p("id"), "must not be negative")
	case len(cfg.Settings) > MaxSettingsBytes:
		return fieldErr(p("config"), fmt.Sprintf("must be at most %d bytes of JSON", MaxSettingsBytes))
	}
	sch := r.schemas[cfg.Type]
	if sch == nil {
		return nil
	}
	settings := cfg.Settings
	if len(bytes.TrimSpace(settings)) == 0 || string(bytes.TrimSpace(settings)) == "null" {
		settings = json.RawMessage("{}")
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(settings))
	if err != nil {
		return fieldErr(p("config"), "is not valid JSON")
	}
	err = sch.Validate(inst)
	var ve *jsonschema.ValidationError
	if errors.As(err, &ve) {
		leaf := ve
		for len(leaf.Causes) > 0 {
			leaf = leaf.Causes[0]
		}
		field := p("config")
		for _, tok := range leaf.InstanceLocation {
			field += "." + tok
		}
		msg := leaf.Error()
		if i := strings.LastIndex(msg, ": "); i >= 0 {
			msg = msg[i+2:]
		}
		return fieldErr(field, msg)
	}
	if err != nil {
		return fieldErr(p("config"), err.Error())
	}
	return nil
}

// build validates cfg and builds its adapter.
func (r *Registry) build(cfg Config) (Adapter, error) {
	f, ok := r.factories[cfg.Type]
	if !ok {
		return nil, fieldErr("adapter_type", fmt.Sprintf("unknown adapter type %q", cfg.Type))
	}
	a, err := f.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("devices: %s: build %s adapter: %w", cfg.Name, cfg.Type, err)
	}
	if a == nil {
		return nil, fmt.Errorf("devices: %s: %s factory returned no adapter", cfg.Name, cfg.Type)
	}
	return a, nil
}
