package collector

import (
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"mime/multipart"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/edge/buffer"
	"github.com/staffcontrol/staffcontrol/internal/jsondecode"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
	"github.com/staffcontrol/staffcontrol/internal/tracing"
)

// Routes registers the agent-facing endpoints on mux.
func (c *Collector) Routes(mux *http.ServeMux) {
	mux.Handle("POST "+protocol.PathAgentEvents, c.timed("events", c.handleEvents))
	mux.Handle("POST "+protocol.PathAgentScreenshot, c.timed("screenshots", c.handleScreenshot))
	mux.Handle("POST "+protocol.PathAgentRegister, c.timed("register", c.handleRegister(true)))
	mux.Handle("POST "+protocol.PathAgentHeartbeat, c.timed("heartbeat", c.handleRegister(false)))
	mux.Handle("POST "+protocol.PathAgentEnroll, c.timedStatus("enroll", c.handleEnroll))
	c.agentControlRoutes(mux)
}

func (c *Collector) timed(route string, h func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		err := h(w, r)
		code := http.StatusOK
		if err != nil {
			code = c.writeError(w, err)
		}
		c.m.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
		c.m.latency.WithLabelValues(route).Observe(time.Since(start).Seconds())
	})
}

func (c *Collector) writeError(w http.ResponseWriter, err error) int {
	e := apperr.As(err)
	if e == nil {
		if errors.Is(err, context.Canceled) {
			// The agent went away; it did not get an ack.
			return 499
		}
		c.log.Error("collector request failed", "err", err)
		e = &apperr.Error{Code: apperr.Internal, Message: "internal error"}
	}
	status, body := errorResponse(e)
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="staff-gateway"`)
	}
	if e.RetryAfter > 0 {
		w.Header().Set(protocol.HeaderRetryAfter, strconv.Itoa(int(math.Ceil(e.RetryAfter.Seconds()))))
	}
	c.writeJSON(w, status, body)
	return status
}

// errorResponse is the collector's one mapping from a coded error to an
// HTTP status and the wire's ErrorResponse (protocol.ErrorFor). Unlike the
// cloud, the collector answers validation failures 400.
func errorResponse(e *apperr.Error) (int, protocol.ErrorResponse) {
	return protocol.ErrorFor(e, http.StatusBadRequest)
}

func (c *Collector) writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set(protocol.HeaderBufferUsage, strconv.FormatFloat(c.buf.Usage(), 'f', 2, 64))
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func (c *Collector) requireType(r *http.Request, want string) error {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != want {
		return c.reject("unsupported_media_type", 0, &apperr.Error{Code: apperr.UnsupportedType,
			Field: "Content-Type", Message: "must be " + want})
	}
	return nil
}

// body returns the request body bounded by limit, gzip-decoded when the
// agent sent Content-Encoding: gzip.
func (c *Collector) body(w http.ResponseWriter, r *http.Request, limit int64) (io.Reader, error) {
	if r.ContentLength > limit {
		return nil, c.tooLarge(limit, 0)
	}
	body := http.MaxBytesReader(w, r.Body, limit)
	switch strings.ToLower(r.Header.Get("Content-Encoding")) {
	case "", "identity":
		return body, nil
	case "gzip":
		zr, err := gzip.NewReader(body)
		if err != nil {
			return nil, c.reject("malformed", 0, &apperr.Error{Code: apperr.Malformed, Field: "Content-Encoding", Message: "invalid gzip stream"})
		}
		// The limit error is made (and counted) only if the limit is hit:
		// building it here counted every gzip request as too_large.
		return jsondecode.MaxReader(zr, limit), nil
	default:
		return nil, c.reject("unsupported_media_type", 0, &apperr.Error{Code: apperr.UnsupportedType,
			Field: "Content-Encoding", Message: "must be gzip or identity"})
	}
}

// tooLarge counts and returns a 413 for a body over limit bytes; events is
// the number of events refused with it (0 when unknown).
func (c *Collector) tooLarge(limit int64, events int) *apperr.Error {
	return c.reject("too_large", events, &apperr.Error{Code: apperr.TooLarge, Message: fmt.Sprintf("body exceeds %d bytes", limit)})
}

// decodeJSON decodes one JSON value from r into v, mapping failures to
// 400 (naming the field for type errors) or 413. events is the number of
// events a refusal refuses (1 for a screenshot's metadata, 0 when unknown).
func (c *Collector) decodeJSON(r io.Reader, v any, events int) error {
	err := c.json.Decode(r, v)
	if err == nil {
		return nil
	}
	d := jsondecode.DetailOf(err)
	switch e := apperr.As(err); {
	case e != nil && d == nil:
		return e // the reader's own refusal, counted already
	case e == nil && errors.Is(err, io.ErrUnexpectedEOF):
		return c.reject("malformed", events, &apperr.Error{Code: apperr.Malformed, Message: "truncated JSON"})
	case e == nil:
		return c.reject("malformed", events, &apperr.Error{Code: apperr.Malformed, Message: "invalid JSON value: " + err.Error()})
	case d.Kind == jsondecode.KindTooLarge:
		return c.tooLarge(d.Limit, events)
	case e.Code == apperr.Invalid:
		return c.reject("validation", events, e)
	default:
		return c.reject("malformed", events, e)
	}
}

func (c *Collector) handleEvents(w http.ResponseWriter, r *http.Request) error {
	uid, err := c.authHTTP(r)
	if err != nil {
		return err
	}
	if err := c.requireType(r, "application/json"); err != nil {
		return err
	}
	// The back-pressure check is in AcceptEvents, after decoding: a refusal
	// then counts the events it refuses.
	body, err := c.body(w, r, c.opts.MaxBodyBytes)
	if err != nil {
		return err
	}
	var batch protocol.EventBatch
	if err := c.decodeJSON(body, &batch, 0); err != nil {
		return err
	}
	// A traced agent's batch: the collector's span continues its trace.
	resp, err := c.AcceptEvents(tracing.Extract(r.Context(), r.Header.Get(tracing.Header)), uid, &batch)
	if err != nil {
		return err
	}
	c.writeJSON(w, http.StatusOK, resp)
	return nil
}

func (c *Collector) handleRegister(full bool) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		uid, err := c.authHTTP(r)
		if err != nil {
			return err
		}
		if err := c.requireType(r, "application/json"); err != nil {
			return err
		}
		body, err := c.body(w, r, 64<<10)
		if err != nil {
			return err
		}
		var reg protocol.AgentRegistration
		if err := c.decodeJSON(body, &reg, 0); err != nil {
			return err
		}
		resp, err := c.Register(uid, reg, full)
		if err != nil {
			return err
		}
		c.writeJSON(w, http.StatusOK, resp)
		return nil
	}
}

// handleScreenshot accepts multipart/form-data with a "metadata" part (one
// screenshot Event as JSON) followed by an "image" part. The image is
// streamed to a file beside the buffer while its SHA-256 is computed; the
// row is committed only when the hash and size match. The request is a
// span (collector.accept_screenshot) continuing the agent's traceparent
// when it sends one; the buffer keeps the span's context with the row, so
// the upload and the cloud's ingest join the same trace.
func (c *Collector) handleScreenshot(w http.ResponseWriter, r *http.Request) error {
	ctx, span := c.tracer.Start(tracing.Extract(r.Context(), r.Header.Get(tracing.Header)), "collector.accept_screenshot",
		trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attribute.Int(tracing.AttrEvents, 1)))
	defer span.End()
	if c.opts.GatewayID != "" && span.IsRecording() {
		span.SetAttributes(attribute.String(tracing.AttrGateway, c.opts.GatewayID))
	}
	err := c.acceptScreenshot(w, r.WithContext(ctx))
	if err != nil {
		span.SetStatus(codes.Error, "refused")
		span.SetAttributes(attribute.String(tracing.AttrStatus, string(apperr.CodeOf(err))))
	}
	return err
}

// acceptScreenshot is handleScreenshot inside its span.
func (c *Collector) acceptScreenshot(w http.ResponseWriter, r *http.Request) error {
	uid, err := c.authHTTP(r)
	if err != nil {
		return err
	}
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		return c.reject("unsupported_media_type", 1, &apperr.Error{Code: apperr.UnsupportedType,
			Field: "Content-Type", Message: "must be multipart/form-data"})
	}
	if err := c.checkLevel(true, 1); err != nil {
		return err
	}
	limit := c.opts.MaxScreenshotBytes + 128<<10
	if r.ContentLength > limit {
		return c.tooLarge(limit, 1)
	}
	mr := multipart.NewReader(http.MaxBytesReader(w, r.Body, limit), params["boundary"])
	part, err := mr.NextPart()
	if err != nil {
		return c.multipartError(err, protocol.CollectorMetadataPart)
	}
	if part.FormName() != protocol.CollectorMetadataPart {
		return c.reject("validation", 1, &apperr.Error{Code: apperr.Invalid, Field: protocol.CollectorMetadataPart,
			Message: "the first part must be named metadata"})
	}
	var ev protocol.Event
	if err := c.decodeJSON(io.LimitReader(part, 64<<10), &ev, 1); err != nil {
		return err
	}
	if ev.AgentUID == "" {
		ev.AgentUID = uid
	}
	if ev.Type != protocol.TypeScreenshot {
		return c.reject("validation", 1, &apperr.Error{Code: apperr.Invalid, Field: "type", Message: "must be screenshot"})
	}
	now := c.now()
	if err := protocol.ValidateAgentEvent(&ev, "", now, true); err != nil {
		return c.reject("validation", 1, fieldError(err))
	}
	if ev.AgentUID != uid {
		return c.wrongAgent("agent_uid", ev.AgentUID, uid, 1)
	}
	if ev.Screenshot.Size > c.opts.MaxScreenshotBytes {
		return c.reject("too_large", 1, &apperr.Error{Code: apperr.TooLarge, Field: "screenshot.size",
			Message: fmt.Sprintf("at most %d bytes", c.opts.MaxScreenshotBytes)})
	}
	if ev.EventID == "" {
		ev.EventID = uuid.Must(uuid.NewV7()).String()
	} else if dup, err := c.buf.HasEvent(r.Context(), ev.EventID); err != nil {
		return err
	} else if dup {
		c.agents.Seen(protocol.AgentRegistration{AgentUID: uid, ComputerName: ev.ComputerName}, false)
		c.writeJSON(w, http.StatusOK, &protocol.EventBatchResponse{Duplicates: 1,
			Events: []protocol.EventAck{{EventID: ev.EventID, Duplicate: true}}})
		return nil
	}
	img, err := mr.NextPart()
	if err != nil {
		return c.multipartError(err, protocol.CollectorImagePart)
	}
	if img.FormName() != protocol.CollectorImagePart {
		return c.reject("validation", 1, &apperr.Error{Code: apperr.Invalid, Field: protocol.CollectorImagePart,
			Message: "the second part must be named image"})
	}
	f, err := c.buf.CreateScreenshotTemp()
	if err != nil {
		return err
	}
	placed := false
	defer func() {
		if !placed {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(img, c.opts.MaxScreenshotBytes+1))
	if err != nil {
		return c.multipartError(err, protocol.CollectorImagePart)
	}
	if n > c.opts.MaxScreenshotBytes {
		return c.reject("too_large", 1, &apperr.Error{Code: apperr.TooLarge, Field: protocol.CollectorImagePart,
			Message: fmt.Sprintf("at most %d bytes", c.opts.MaxScreenshotBytes)})
	}
	if n == 0 {
		return c.reject("validation", 1, &apperr.Error{Code: apperr.Invalid, Field: protocol.CollectorImagePart, Message: "is empty"})
	}
	if sum := hex.EncodeToString(h.Sum(nil)); sum != ev.Screenshot.SHA256 {
		return c.reject("validation", 1, &apperr.Error{Code: apperr.Invalid, Field: "screenshot.sha256",
			Message: "does not match the image (got " + sum + ")"})
	}
	if ev.Screenshot.Size != 0 && ev.Screenshot.Size != n {
		return c.reject("validation", 1, &apperr.Error{Code: apperr.Invalid, Field: "screenshot.size",
			Message: fmt.Sprintf("is %d but the image has %d bytes", ev.Screenshot.Size, n)})
	}
	ev.Screenshot.Size = n
	if _, err := mr.NextPart(); err != io.EOF {
		if err == nil {
			return c.reject("validation", 1, &apperr.Error{Code: apperr.Invalid, Field: "(body)", Message: "only the metadata and image parts are allowed"})
		}
		return c.multipartError(err, "(body)")
	}
	received := now.UTC()
	ev.ReceivedAt = &received
	payload, err := json.Marshal(&ev)
	if err != nil {
		return fmt.Errorf("collector: encode screenshot event: %w", err)
	}
	placed = true
	if err := c.buf.PlaceScreenshot(f, ev.EventID); err != nil {
		return err
	}
	out, err := c.buf.Append(r.Context(), []buffer.Record{{Class: protocol.ClassScreenshot, Type: ev.Type,
		EventID: ev.EventID, Payload: payload, FileSize: n, TraceParent: tracing.Traceparent(r.Context())}})
	if err != nil {
		if errors.Is(err, buffer.ErrFull) || errors.Is(err, buffer.ErrShedding) {
			os.Remove(c.buf.ScreenshotPath(ev.EventID))
		}
		return c.pressureError(err)
	}
	c.m.accepted.WithLabelValues(ev.Type).Inc()
	c.agents.Seen(protocol.AgentRegistration{AgentUID: ev.AgentUID, ComputerName: ev.ComputerName}, false)
	resp := &protocol.EventBatchResponse{Events: []protocol.EventAck{{EventID: ev.EventID, Seq: out[0].Seq, Duplicate: out[0].Duplicate}}}
	if out[0].Duplicate {
		resp.Duplicates = 1
	} else {
		resp.Accepted = 1
	}
	c.writeJSON(w, http.StatusOK, resp)
	return nil
}

func (c *Collector) multipartError(err error, field string) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return c.tooLarge(mbe.Limit, 1)
	}
	if errors.Is(err, io.EOF) {
		return c.reject("validation", 1, &apperr.Error{Code: apperr.Invalid, Field: field, Message: "is required"})
	}
	return c.reject("malformed", 1, &apperr.Error{Code: apperr.Malformed, Field: field, Message: "malformed multipart body: " + err.Error()})
}
