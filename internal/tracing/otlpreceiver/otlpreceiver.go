// Package otlpreceiver is test support for issue 19: a real OTLP/HTTP trace
// receiver on loopback (POST /v1/traces, protobuf, optionally gzip), which
// decodes every ExportTraceServiceRequest and keeps the spans, so a test
// checks what the services really exported over the wire.
package otlpreceiver

import (
	"compress/gzip"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	"google.golang.org/protobuf/proto"
)

// Span is one received span, flattened.
type Span struct {
	Service      string // the resource's service.name
	Name         string
	TraceID      string            // hex
	SpanID       string            // hex
	ParentSpanID string            // hex, "" for a root
	Attributes   map[string]string // values as text
	Links        []Link
}

// Link is a span link.
type Link struct{ TraceID, SpanID string }

// Receiver is a running receiver.
type Receiver struct {
	srv *http.Server
	ln  net.Listener
	mu  sync.Mutex
	sp  []Span
	bad []error
}

// Start listens on 127.0.0.1 and serves until Close.
func Start() (*Receiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("otlpreceiver: %w", err)
	}
	r := &Receiver{ln: ln}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/traces", r.traces)
	r.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go r.srv.Serve(ln) //nolint:errcheck // ends with Close
	return r, nil
}

// URL is the traces endpoint (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT).
func (r *Receiver) URL() string { return "http://" + r.ln.Addr().String() + "/v1/traces" }

// BaseURL is the base endpoint (OTEL_EXPORTER_OTLP_ENDPOINT).
func (r *Receiver) BaseURL() string { return "http://" + r.ln.Addr().String() }

// Close stops the receiver.
func (r *Receiver) Close() error { return r.srv.Close() }

// Spans returns the spans received so far.
func (r *Receiver) Spans() []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Span(nil), r.sp...)
}

// Errors returns the requests that failed to decode.
func (r *Receiver) Errors() []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]error(nil), r.bad...)
}

func (r *Receiver) fail(w http.ResponseWriter, err error) {
	r.mu.Lock()
	r.bad = append(r.bad, err)
	r.mu.Unlock()
	http.Error(w, err.Error(), http.StatusBadRequest)
}

func (r *Receiver) traces(w http.ResponseWriter, req *http.Request) {
	var body io.Reader = io.LimitReader(req.Body, 64<<20)
	if req.Header.Get("Content-Encoding") == "gzip" {
		z, err := gzip.NewReader(body)
		if err != nil {
			r.fail(w, err)
			return
		}
		body = z
	}
	b, err := io.ReadAll(body)
	if err != nil {
		r.fail(w, err)
		return
	}
	if ct := req.Header.Get("Content-Type"); ct != "application/x-protobuf" {
		r.fail(w, fmt.Errorf("content type %q", ct))
		return
	}
	spans, err := Decode(b)
	if err != nil {
		r.fail(w, err)
		return
	}
	r.mu.Lock()
	r.sp = append(r.sp, spans...)
	r.mu.Unlock()
	out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.Write(out) //nolint:errcheck // the exporter retries
}

// Decode flattens an ExportTraceServiceRequest.
func Decode(b []byte) ([]Span, error) {
	var m collectortrace.ExportTraceServiceRequest
	if err := proto.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("otlpreceiver: decode: %w", err)
	}
	var out []Span
	for _, rs := range m.GetResourceSpans() {
		service := text(find(rs.GetResource().GetAttributes(), "service.name"))
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				sp := Span{Service: service, Name: s.GetName(), TraceID: hex.EncodeToString(s.GetTraceId()),
					SpanID: hex.EncodeToString(s.GetSpanId()), ParentSpanID: hex.EncodeToString(s.GetParentSpanId()),
					Attributes: map[string]string{}}
				for _, a := range s.GetAttributes() {
					sp.Attributes[a.GetKey()] = text(a.GetValue())
				}
				for _, l := range s.GetLinks() {
					sp.Links = append(sp.Links, Link{TraceID: hex.EncodeToString(l.GetTraceId()), SpanID: hex.EncodeToString(l.GetSpanId())})
				}
				out = append(out, sp)
			}
		}
	}
	return out, nil
}

func find(as []*commonpb.KeyValue, key string) *commonpb.AnyValue {
	for _, a := range as {
		if a.GetKey() == key {
			return a.GetValue()
		}
	}
	return nil
}

func text(v *commonpb.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_IntValue:
		return fmt.Sprint(x.IntValue)
	case *commonpb.AnyValue_BoolValue:
		return fmt.Sprint(x.BoolValue)
	case *commonpb.AnyValue_DoubleValue:
		return fmt.Sprint(x.DoubleValue)
	case nil:
		return ""
	}
	return v.String()
}
