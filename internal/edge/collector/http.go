package collector

import (
	"bytes"
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

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/google/uuid"

	"github.com/staffcontrol/staffcontrol/internal/edge/buffer"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
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
	var re *RequestError
	if !errors.As(err, &re) {
		if errors.Is(err, context.Canceled) {
			// The agent went away; it did not get an ack.
			return 499
		}
		c.log.Error("collector request failed", "err", err)
		re = &RequestError{Status: 500, Code: protocol.ErrCodeInternal, Msg: "internal error"}
	}
	if re.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="staff-gateway"`)
	}
	if re.RetryAfter > 0 {
		w.Header().Set(protocol.HeaderRetryAfter, strconv.Itoa(int(math.Ceil(re.RetryAfter.Seconds()))))
	}
	c.writeJSON(w, re.Status, protocol.ErrorResponse{Error: re.Code, Field: re.Field, Message: re.Msg})
	return re.Status
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
		return c.reject("unsupported_media_type", 0, &RequestError{Status: 415, Code: protocol.ErrCodeUnsupportedType,
			Field: "Content-Type", Msg: "must be " + want})
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
			return nil, c.reject("malformed", 0, &RequestError{Status: 400, Code: protocol.ErrCodeMalformed, Field: "Content-Encoding", Msg: "invalid gzip stream"})
		}
		// The limit error is made (and counted) only if the limit is hit:
		// building it here counted every gzip request as too_large.
		return &maxReader{r: zr, left: limit, limit: limit}, nil
	default:
		return nil, c.reject("unsupported_media_type", 0, &RequestError{Status: 415, Code: protocol.ErrCodeUnsupportedType,
			Field: "Content-Encoding", Msg: "must be gzip or identity"})
	}
}

// tooLarge counts and returns a 413 for a body over limit bytes; events is
// the number of events refused with it (0 when unknown).
func (c *Collector) tooLarge(limit int64, events int) *RequestError {
	return c.reject("too_large", events, &RequestError{Status: 413, Code: protocol.ErrCodeTooLarge, Msg: fmt.Sprintf("body exceeds %d bytes", limit)})
}

// errDecodedTooLarge is maxReader's error once the decoded body exceeds
// its limit; decodeJSON maps it to a counted 413.
type errDecodedTooLarge struct{ limit int64 }

// Error implements error.
func (e *errDecodedTooLarge) Error() string {
	return fmt.Sprintf("decoded body exceeds %d bytes", e.limit)
}

// maxReader fails with *errDecodedTooLarge once more than limit bytes were
// read.
type maxReader struct {
	r     io.Reader
	left  int64
	limit int64
}

// Read implements io.Reader.
func (m *maxReader) Read(p []byte) (int, error) {
	if m.left < 0 {
		return 0, &errDecodedTooLarge{limit: m.limit}
	}
	if int64(len(p)) > m.left+1 {
		p = p[:m.left+1]
	}
	n, err := m.r.Read(p)
	m.left -= int64(n)
	if m.left < 0 {
		return n, &errDecodedTooLarge{limit: m.limit}
	}
	return n, err
}

// decodeJSON decodes one JSON value from r into v, mapping failures to
// 400 (naming the field for type errors) or 413. events is the number of
// events a refusal refuses (1 for a screenshot's metadata, 0 when unknown).
func (c *Collector) decodeJSON(r io.Reader, v any, events int) error {
	// Read the whole (bounded) body into a pooled buffer, then decode it in
	// one pass: cheaper than a streaming decoder growing its own buffer.
	buf := c.bufs.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= 1<<20 {
			c.bufs.Put(buf)
		}
	}()
	_, err := buf.ReadFrom(r)
	if err == nil {
		if buf.Len() == 0 {
			err = io.EOF
		} else {
			// JSON v2 (github.com/go-json-experiment/json, as the cloud's
			// ingest uses): about half the CPU of encoding/json on event
			// batches, and its errors carry a JSON Pointer to the value.
			// Names match case-insensitively, as encoding/json did.
			err = jsonv2.Unmarshal(buf.Bytes(), v, jsonv2.MatchCaseInsensitiveNames(true))
		}
	}
	if err == nil {
		return nil
	}
	var re *RequestError
	var mbe *http.MaxBytesError
	var dtl *errDecodedTooLarge
	var sem *jsonv2.SemanticError
	var syn *jsontext.SyntacticError
	switch {
	case errors.As(err, &re):
		return re
	case errors.As(err, &mbe):
		return c.tooLarge(mbe.Limit, events)
	case errors.As(err, &dtl):
		return c.tooLarge(dtl.limit, events)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return c.reject("malformed", events, &RequestError{Status: 400, Code: protocol.ErrCodeMalformed, Msg: "truncated JSON"})
	case errors.As(err, &syn):
		// The pointer names the value being read (e.g. a string with an
		// invalid escape such as a lone surrogate \ud800).
		return c.reject("malformed", events, &RequestError{Status: 400, Code: protocol.ErrCodeMalformed,
			Field: pointerPath(string(syn.JSONPointer)), Msg: "malformed JSON: " + err.Error()})
	case errors.As(err, &sem) && sem.GoType != nil && sem.JSONKind != 0 && sem.Err == nil:
		field := pointerPath(string(sem.JSONPointer))
		if field == "" {
			field = "(body)"
		}
		return c.reject("validation", events, &RequestError{Status: 400, Code: protocol.ErrCodeValidation, Field: field,
			Msg: fmt.Sprintf("must be %s, not JSON %s", jsonKind(sem.GoType.Kind().String()), jsonKindName(sem.JSONKind))})
	case errors.As(err, &sem) && sem.JSONPointer != "":
		// A value of the right kind that does not fit: a time that is not
		// RFC 3339, a number with a fraction or out of int64 range.
		msg := "invalid value"
		if sem.Err != nil {
			msg = "invalid value: " + sem.Err.Error()
		}
		return c.reject("validation", events, &RequestError{Status: 400, Code: protocol.ErrCodeValidation,
			Field: pointerPath(string(sem.JSONPointer)), Msg: msg})
	case errors.Is(err, io.EOF):
		return c.reject("malformed", events, &RequestError{Status: 400, Code: protocol.ErrCodeMalformed, Msg: "empty body"})
	case errors.Is(err, io.ErrUnexpectedEOF):
		return c.reject("malformed", events, &RequestError{Status: 400, Code: protocol.ErrCodeMalformed, Msg: "truncated JSON"})
	default:
		// time.Time and other UnmarshalJSON errors.
		return c.reject("malformed", events, &RequestError{Status: 400, Code: protocol.ErrCodeMalformed, Msg: "invalid JSON value: " + err.Error()})
	}
}

// jsonKindName names a JSON value kind as encoding/json's errors did.
func jsonKindName(k jsontext.Kind) string {
	switch k {
	case '"':
		return "string"
	case '0':
		return "number"
	case 't', 'f':
		return "bool"
	case 'n':
		return "null"
	case '[':
		return "array"
	default:
		return "object"
	}
}

// pointerPath turns a JSON Pointer (/events/3/user_sid) into the path
// notation of the collector's errors (events[3].user_sid).
func pointerPath(ptr string) string {
	var b strings.Builder
	for _, tok := range strings.Split(strings.TrimPrefix(ptr, "/"), "/") {
		if tok == "" {
			continue
		}
		if _, err := strconv.Atoi(tok); err == nil {
			b.WriteString("[" + tok + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(strings.NewReplacer("~1", "/", "~0", "~").Replace(tok))
	}
	return b.String()
}

func jsonKind(k string) string {
	switch k {
	case "string":
		return "a string"
	case "slice":
		return "an array"
	case "struct", "map":
		return "an object"
	case "bool":
		return "a boolean"
	default:
		return "a number"
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
	resp, err := c.AcceptEvents(r.Context(), uid, &batch)
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
// row is committed only when the hash and size match.
func (c *Collector) handleScreenshot(w http.ResponseWriter, r *http.Request) error {
	uid, err := c.authHTTP(r)
	if err != nil {
		return err
	}
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		return c.reject("unsupported_media_type", 1, &RequestError{Status: 415, Code: protocol.ErrCodeUnsupportedType,
			Field: "Content-Type", Msg: "must be multipart/form-data"})
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
		return c.reject("validation", 1, &RequestError{Status: 400, Code: protocol.ErrCodeValidation, Field: protocol.CollectorMetadataPart,
			Msg: "the first part must be named metadata"})
	}
	var ev protocol.Event
	if err := c.decodeJSON(io.LimitReader(part, 64<<10), &ev, 1); err != nil {
		return err
	}
	if ev.AgentUID == "" {
		ev.AgentUID = uid
	}
	if ev.Type != protocol.TypeScreenshot {
		return c.reject("validation", 1, &RequestError{Status: 400, Code: protocol.ErrCodeValidation, Field: "type", Msg: "must be screenshot"})
	}
	now := c.now()
	if err := protocol.ValidateAgentEvent(&ev, "", now, true); err != nil {
		return c.reject("validation", 1, fieldError(err))
	}
	if ev.AgentUID != uid {
		return c.wrongAgent("agent_uid", ev.AgentUID, uid, 1)
	}
	if ev.Screenshot.Size > c.opts.MaxScreenshotBytes {
		return c.reject("too_large", 1, &RequestError{Status: 413, Code: protocol.ErrCodeTooLarge, Field: "screenshot.size",
			Msg: fmt.Sprintf("at most %d bytes", c.opts.MaxScreenshotBytes)})
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
		return c.reject("validation", 1, &RequestError{Status: 400, Code: protocol.ErrCodeValidation, Field: protocol.CollectorImagePart,
			Msg: "the second part must be named image"})
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
		return c.reject("too_large", 1, &RequestError{Status: 413, Code: protocol.ErrCodeTooLarge, Field: protocol.CollectorImagePart,
			Msg: fmt.Sprintf("at most %d bytes", c.opts.MaxScreenshotBytes)})
	}
	if n == 0 {
		return c.reject("validation", 1, &RequestError{Status: 400, Code: protocol.ErrCodeValidation, Field: protocol.CollectorImagePart, Msg: "is empty"})
	}
	if sum := hex.EncodeToString(h.Sum(nil)); sum != ev.Screenshot.SHA256 {
		return c.reject("validation", 1, &RequestError{Status: 400, Code: protocol.ErrCodeValidation, Field: "screenshot.sha256",
			Msg: "does not match the image (got " + sum + ")"})
	}
	if ev.Screenshot.Size != 0 && ev.Screenshot.Size != n {
		return c.reject("validation", 1, &RequestError{Status: 400, Code: protocol.ErrCodeValidation, Field: "screenshot.size",
			Msg: fmt.Sprintf("is %d but the image has %d bytes", ev.Screenshot.Size, n)})
	}
	ev.Screenshot.Size = n
	if _, err := mr.NextPart(); err != io.EOF {
		if err == nil {
			return c.reject("validation", 1, &RequestError{Status: 400, Code: protocol.ErrCodeValidation, Field: "(body)", Msg: "only the metadata and image parts are allowed"})
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
		EventID: ev.EventID, Payload: payload, FileSize: n}})
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
		return c.reject("validation", 1, &RequestError{Status: 400, Code: protocol.ErrCodeValidation, Field: field, Msg: "is required"})
	}
	return c.reject("malformed", 1, &RequestError{Status: 400, Code: protocol.ErrCodeMalformed, Field: field, Msg: "malformed multipart body: " + err.Error()})
}
