package console

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
)

// The pages call the Dashboard API's routes in process (Deps.API) as the
// signed-in caller: the same role checks, validation, row-level-security
// scoped queries and audit as a client of the API gets, with no second
// implementation to drift. An answer is read into a bounded buffer and
// its JSON decoded; an error answer becomes an apperr error with the
// API's own message and field (a JSON Pointer into the body).

// maxAPIAnswer bounds an in-process answer the console reads whole (the
// CSV exports are streamed, not read).
const maxAPIAnswer = 8 << 20

// apiError is the Dashboard API's error body.
type apiError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field"`
}

// capture is a ResponseWriter keeping a bounded answer.
type capture struct {
	header http.Header
	status int
	body   bytes.Buffer
	over   bool
}

func newCapture() *capture { return &capture{header: http.Header{}} }

// Header is the answer's header.
func (c *capture) Header() http.Header { return c.header }

// WriteHeader records the status.
func (c *capture) WriteHeader(status int) {
	if c.status == 0 {
		c.status = status
	}
}

// Write keeps b unless the answer is over maxAPIAnswer.
func (c *capture) Write(b []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	if c.body.Len()+len(b) > maxAPIAnswer {
		c.over = true
		return 0, fmt.Errorf("console: an API answer over %d bytes", maxAPIAnswer)
	}
	return c.body.Write(b)
}

// Flush does nothing: the answer is read whole (the API's streamed
// reports flush as they go).
func (c *capture) Flush() {}

// apiRequest builds the in-process request of method path (query q, body
// a JSON value when not nil) for the page's request r.
func apiRequest(ctx context.Context, r *http.Request, method, path string, q url.Values, body any) (*http.Request, error) {
	var rd io.Reader = http.NoBody
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("console: encode the body of %s %s: %w", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	u := path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, fmt.Errorf("console: request %s %s: %w", method, path, err)
	}
	req.RemoteAddr = r.RemoteAddr
	req.Header.Set("User-Agent", r.UserAgent())
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, nil
}

// callAPI calls the API's route method path as p and decodes its JSON
// answer into out (nil: the answer is dropped); an error answer is
// returned as an apperr error.
func (c *Console) callAPI(r *http.Request, p Principal, method, path string, q url.Values, body, out any) error {
	_, err := c.callAPIHeader(r, p, method, path, q, body, out, nil)
	return err
}

// callAPIHeader is callAPI with the request's extra headers (If-Match)
// and the answer's headers (ETag).
func (c *Console) callAPIHeader(r *http.Request, p Principal, method, path string, q url.Values, body, out any, header http.Header) (http.Header, error) {
	if c.d.API == nil {
		return nil, apperr.New(apperr.Unavailable, "", "this console has no API to call")
	}
	req, err := apiRequest(r.Context(), r, method, path, q, body)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	w := newCapture()
	if err := serveCaptured(c.d.API, w, req, p); err != nil {
		return nil, err
	}
	if w.over {
		return nil, fmt.Errorf("console: %s %s: answer over %d bytes", method, path, maxAPIAnswer)
	}
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if w.status >= 300 {
		return w.header, errorOf(w.status, w.body.Bytes())
	}
	if out == nil || w.status == http.StatusNoContent {
		return w.header, nil
	}
	if err := json.Unmarshal(w.body.Bytes(), out); err != nil {
		return w.header, fmt.Errorf("console: decode %s %s: %w", method, path, err)
	}
	return w.header, nil
}

// serveCaptured serves req into w; a route that aborts its answer
// (http.ErrAbortHandler: a streamed report failing after its first row)
// is an error here, since nothing has reached the browser yet.
func serveCaptured(api func(http.ResponseWriter, *http.Request, Principal), w *capture, req *http.Request, p Principal) (err error) {
	defer func() {
		if v := recover(); v != nil {
			if v != http.ErrAbortHandler {
				panic(v)
			}
			err = fmt.Errorf("console: %s %s: the API aborted its answer", req.Method, req.URL.Path)
		}
	}()
	api(w, req, p)
	return nil
}

// errorOf is the apperr error of an API error answer.
func errorOf(status int, body []byte) error {
	var e apiError
	_ = json.Unmarshal(body, &e)
	code := apperr.Internal
	switch status {
	case http.StatusBadRequest:
		code = apperr.Malformed
	case http.StatusUnprocessableEntity:
		code = apperr.Invalid
	case http.StatusUnauthorized:
		code = apperr.Unauthenticated
	case http.StatusForbidden:
		code = apperr.Forbidden
	case http.StatusNotFound:
		code = apperr.NotFound
	case http.StatusConflict, http.StatusPreconditionFailed, http.StatusPreconditionRequired:
		code = apperr.Conflict
	case http.StatusTooManyRequests:
		code = apperr.Throttled
	case http.StatusServiceUnavailable:
		code = apperr.Unavailable
	}
	if e.Message == "" {
		e.Message = http.StatusText(status)
	}
	return &apperr.Error{Code: code, Reason: e.Code, Field: e.Field, Message: e.Message}
}

// passthrough streams an API answer to the browser when it succeeds
// (a CSV export, byte for byte as the API writes it) and keeps a failed
// one to be shown as a page.
type passthrough struct {
	w       http.ResponseWriter
	status  int
	failure *capture
}

// Header is the browser's header until the answer turns out a failure.
func (p *passthrough) Header() http.Header {
	if p.failure != nil {
		return p.failure.header
	}
	return p.w.Header()
}

// WriteHeader passes a success on and keeps a failure.
func (p *passthrough) WriteHeader(status int) {
	if p.status != 0 {
		return
	}
	p.status = status
	if status >= 300 {
		p.failure = newCapture()
		p.failure.WriteHeader(status)
		return
	}
	p.w.WriteHeader(status)
}

// Write writes to the browser (or keeps a failure's body).
func (p *passthrough) Write(b []byte) (int, error) {
	if p.status == 0 {
		p.WriteHeader(http.StatusOK)
	}
	if p.failure != nil {
		return p.failure.Write(b)
	}
	return p.w.Write(b)
}

// Flush flushes the browser's answer when it can be.
func (p *passthrough) Flush() {
	if f, ok := p.w.(http.Flusher); ok && p.failure == nil {
		f.Flush()
	}
}

// streamAPI calls the API's GET route path as p and streams a successful
// answer to w as it is; a failure is returned as an apperr error with
// nothing written.
func (c *Console) streamAPI(w http.ResponseWriter, r *http.Request, p Principal, path string, q url.Values) error {
	if c.d.API == nil {
		return apperr.New(apperr.Unavailable, "", "this console has no API to call")
	}
	req, err := apiRequest(r.Context(), r, http.MethodGet, path, q, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "*/*")
	pt := &passthrough{w: w}
	c.d.API(pt, req, p)
	if pt.failure != nil {
		return errorOf(pt.status, pt.failure.body.Bytes())
	}
	return nil
}
