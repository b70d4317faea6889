// Package tracing is OpenTelemetry tracing for both sides (issue 19): a
// tracer provider from the standard OTEL_* environment exporting OTLP over
// HTTP, off (a no-op provider: no allocation, no export) unless an endpoint
// is configured; and the W3C Trace Context wire format the gateway and the
// cloud carry a trace in (the traceparent header of an upload, the
// trace_parent of a buffered event and of a command).
//
// The wire format is fixed by the protocol (docs/protocol.md), so it is not
// a configurable propagator: Traceparent and Extract are plain functions
// over propagation.TraceContext and the otel global propagator is never
// used. Constructors elsewhere take a trace.TracerProvider explicitly.
//
// A shared leaf package: it imports neither side.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Header is the HTTP header (and the control message field's meaning) that
// carries a trace context: W3C Trace Context's traceparent.
const Header = "traceparent"

// Attribute keys spans carry. Ids only: never names, titles or URLs.
const (
	AttrGateway      = "staffcontrol.gateway_id"
	AttrOrganization = "staffcontrol.organization_id"
	AttrBatch        = "staffcontrol.batch_id"
	AttrEvents       = "staffcontrol.events"
	AttrStream       = "staffcontrol.stream"
	AttrCommand      = "staffcontrol.command_id"
	AttrCommandType  = "staffcontrol.command_type"
	AttrStatus       = "staffcontrol.status"
	// AttrAdapterType and AttrSource: a door terminal's adapter (zkteco,
	// hikvision) and how its events came (live, catchup); never the
	// events' card or employee numbers.
	AttrAdapterType = "staffcontrol.adapter_type"
	AttrSource      = "staffcontrol.source"
	// AttrDistribution is a policy distribution's id.
	AttrDistribution = "staffcontrol.distribution_id"
)

// Config is the tracing configuration.
type Config struct {
	// Endpoint is the OTLP/HTTP traces URL (…/v1/traces). Empty: tracing off.
	Endpoint string
	// Headers are sent with every export (OTEL_EXPORTER_OTLP_HEADERS).
	Headers map[string]string
	// ServiceName is the resource's service.name.
	ServiceName string
	// Sampler decides which new traces are recorded (nil: parent-based,
	// always on).
	Sampler sdktrace.Sampler
}

// ConfigFromEnv reads the standard variables through getenv:
// OTEL_SDK_DISABLED, OTEL_TRACES_EXPORTER (otlp or none),
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (the full URL) or
// OTEL_EXPORTER_OTLP_ENDPOINT (the base; /v1/traces is appended),
// OTEL_EXPORTER_OTLP_PROTOCOL / OTEL_EXPORTER_OTLP_TRACES_PROTOCOL (only
// http/protobuf), OTEL_EXPORTER_OTLP_HEADERS, OTEL_SERVICE_NAME (default
// service) and OTEL_TRACES_SAMPLER with OTEL_TRACES_SAMPLER_ARG. Errors
// name the variable.
func ConfigFromEnv(getenv func(string) string, service string) (Config, error) {
	c := Config{ServiceName: service}
	if v := getenv("OTEL_SERVICE_NAME"); v != "" {
		c.ServiceName = v
	}
	if strings.EqualFold(getenv("OTEL_SDK_DISABLED"), "true") {
		return Config{ServiceName: c.ServiceName}, nil
	}
	switch e := getenv("OTEL_TRACES_EXPORTER"); e {
	case "", "otlp":
	case "none":
		return Config{ServiceName: c.ServiceName}, nil
	default:
		return Config{}, fmt.Errorf("OTEL_TRACES_EXPORTER: %q is not supported (want otlp or none)", e)
	}
	for _, k := range []string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
		if p := getenv(k); p != "" {
			if p != "http/protobuf" {
				return Config{}, fmt.Errorf("%s: %q is not supported (want http/protobuf: OTLP over HTTP, port 4318)", k, p)
			}
			break
		}
	}
	if v := getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"); v != "" {
		c.Endpoint = v
	} else if v := getenv("OTEL_EXPORTER_OTLP_ENDPOINT"); v != "" {
		c.Endpoint = strings.TrimSuffix(v, "/") + "/v1/traces"
	}
	if c.Endpoint != "" {
		u, err := url.Parse(c.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return Config{}, fmt.Errorf("OTEL_EXPORTER_OTLP_ENDPOINT: %q is not an http(s) URL", c.Endpoint)
		}
	}
	if v := getenv("OTEL_EXPORTER_OTLP_HEADERS"); v != "" {
		c.Headers = map[string]string{}
		for _, kv := range strings.Split(v, ",") {
			k, val, ok := strings.Cut(kv, "=")
			if !ok || strings.TrimSpace(k) == "" {
				return Config{}, errors.New("OTEL_EXPORTER_OTLP_HEADERS: want key=value,key=value")
			}
			uv, err := url.QueryUnescape(strings.TrimSpace(val))
			if err != nil {
				return Config{}, fmt.Errorf("OTEL_EXPORTER_OTLP_HEADERS: %w", err)
			}
			c.Headers[strings.TrimSpace(k)] = uv
		}
	}
	s, err := samplerFromEnv(getenv("OTEL_TRACES_SAMPLER"), getenv("OTEL_TRACES_SAMPLER_ARG"))
	if err != nil {
		return Config{}, err
	}
	c.Sampler = s
	return c, nil
}

// samplerFromEnv builds the sampler the specification's names describe.
func samplerFromEnv(name, arg string) (sdktrace.Sampler, error) {
	ratio := func() (float64, error) {
		if arg == "" {
			return 1, nil
		}
		r, err := strconv.ParseFloat(arg, 64)
		if err != nil || r < 0 || r > 1 {
			return 0, fmt.Errorf("OTEL_TRACES_SAMPLER_ARG: %q is not a ratio in [0, 1]", arg)
		}
		return r, nil
	}
	switch name {
	case "", "parentbased_always_on":
		return sdktrace.ParentBased(sdktrace.AlwaysSample()), nil
	case "always_on":
		return sdktrace.AlwaysSample(), nil
	case "always_off":
		return sdktrace.NeverSample(), nil
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample()), nil
	case "traceidratio", "parentbased_traceidratio":
		r, err := ratio()
		if err != nil {
			return nil, err
		}
		if name == "traceidratio" {
			return sdktrace.TraceIDRatioBased(r), nil
		}
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(r)), nil
	}
	return nil, fmt.Errorf("OTEL_TRACES_SAMPLER: %q is not supported", name)
}

// Provider is a tracer provider with its shutdown.
type Provider struct {
	trace.TracerProvider
	sdk *sdktrace.TracerProvider // nil when off
}

// New returns the provider c describes: a no-op one when c.Endpoint is
// empty, else an SDK provider batching spans to the OTLP/HTTP endpoint.
func New(ctx context.Context, c Config) (*Provider, error) {
	if c.Endpoint == "" {
		return &Provider{TracerProvider: noop.NewTracerProvider()}, nil
	}
	opts := []otlptracehttp.Option{otlptracehttp.WithEndpointURL(c.Endpoint)}
	if len(c.Headers) > 0 {
		opts = append(opts, otlptracehttp.WithHeaders(c.Headers))
	}
	exp, err := otlptracehttp.New(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("tracing: OTLP exporter: %w", err)
	}
	sampler := c.Sampler
	if sampler == nil {
		sampler = sdktrace.ParentBased(sdktrace.AlwaysSample())
	}
	name := c.ServiceName
	if name == "" {
		name = "staffcontrol"
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithSampler(sampler),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", name))))
	return &Provider{TracerProvider: tp, sdk: tp}, nil
}

// FromEnv is ConfigFromEnv then New.
func FromEnv(ctx context.Context, getenv func(string) string, service string) (*Provider, error) {
	c, err := ConfigFromEnv(getenv, service)
	if err != nil {
		return nil, err
	}
	return New(ctx, c)
}

// Enabled reports whether spans are exported.
func (p *Provider) Enabled() bool { return p.sdk != nil }

// ForceFlush exports the spans ended so far.
func (p *Provider) ForceFlush(ctx context.Context) error {
	if p.sdk == nil {
		return nil
	}
	return p.sdk.ForceFlush(ctx)
}

// Shutdown exports what is pending and stops the exporter.
func (p *Provider) Shutdown(ctx context.Context) error {
	if p.sdk == nil {
		return nil
	}
	if err := p.sdk.Shutdown(ctx); err != nil {
		return fmt.Errorf("tracing: shutdown: %w", err)
	}
	return nil
}

// OrNoop returns tp, or a no-op provider when tp is nil: constructors call
// it so tracing stays optional.
func OrNoop(tp trace.TracerProvider) trace.TracerProvider {
	if tp == nil {
		return noop.NewTracerProvider()
	}
	return tp
}

// Traceparent returns ctx's span context as a W3C traceparent ("" when
// ctx holds no valid span context, as with tracing off).
func Traceparent(ctx context.Context) string {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ""
	}
	c := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, c)
	return c[Header]
}

// Extract returns ctx with the remote span context a traceparent names (ctx
// unchanged when it is empty or malformed: a bad value starts no trace and
// fails nothing).
func Extract(ctx context.Context, traceparent string) context.Context {
	if traceparent == "" {
		return ctx
	}
	return propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier{Header: traceparent})
}

// SpanContext parses a traceparent (invalid when empty or malformed).
func SpanContext(traceparent string) trace.SpanContext {
	return trace.SpanContextFromContext(Extract(context.Background(), traceparent))
}
