// Package fakecloud is a real HTTP server on 127.0.0.1 that implements the
// cloud side of the gateway protocol (docs/protocol.md) for tests and
// benchmarks: provisioning, ping and the three ingest endpoints with API-key
// authentication, gzip bodies, Idempotency-Key semantics (same key and body
// → stored answer; different body → 422; in flight → 409) and per-event
// dedupe. It counts every event id it receives in a fresh (non-replayed)
// batch, so tests can check "nothing lost, nothing duplicated" per id, and it
// injects faults: unreachable, fixed status codes (a whole-cloud outage),
// a batch-size limit (413), lost responses and poison events (a batch
// holding an event a predicate picks is answered with a chosen status, e.g.
// 503 forever or 422 naming the event).
package fakecloud

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	jsonv2 "github.com/go-json-experiment/json"

	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// Options configures a Server.
type Options struct {
	// APIKey the gateway must send; the provisioning exchange hands it out.
	APIKey string
	// ProvisioningToken accepted once by POST /v2/gateway/provision.
	ProvisioningToken string
	// OrganizationID of the gateway.
	OrganizationID int64
	// GatewayID returned by provisioning and ping.
	GatewayID string
	// MaxBodyBytes bounds a decompressed body; zero means 64 MiB.
	MaxBodyBytes int64
	// EnrolmentSecret is the organisation's agent enrolment secret: GET
	// /v2/gateway/enrolment answers its verifier. Empty means
	// DefaultEnrolmentSecret.
	EnrolmentSecret string
	// DecodeOnly makes the logs and device-events endpoints a sink for
	// benchmarks: the body is decompressed and decoded into typed events in
	// one pass and counted; no idempotency store, no per-id bookkeeping.
	DecodeOnly bool
}

// Stats summarises what the server saw.
type Stats struct {
	// Batches is the number of fresh batches stored (2xx, not replays).
	Batches int
	// Replays answered from the idempotency store.
	Replays int
	// InFlightConflicts answered 409; Mismatches answered 422.
	InFlightConflicts int
	Mismatches        int
	// Events counts event ids in fresh batches (with repeats).
	Events int
	// Duplicates counts events whose id was already stored when a fresh
	// batch carried it again.
	Duplicates int
	// Unauthorized counts 401 answers; TooLarge counts 413 answers.
	Unauthorized int
	TooLarge     int
	// Provisions counts successful provisioning exchanges.
	Provisions int
	// Requests counts every ingest request that reached a handler.
	Requests int
	// Bytes counts compressed request bytes of fresh batches.
	Bytes int64
	// Poisoned counts batches refused because they held a poison event.
	Poisoned int
}

// DefaultEnrolmentSecret is the enrolment secret of a Server whose Options
// name none: tests give it to their simulated agents.
const DefaultEnrolmentSecret = protocol.EnrolmentSecretPrefix + "ingesttest-0123456789abcdefghijklmnopqrstuvwxyzAB"

// Poison decides, per event of a batch, whether the batch is refused: a
// zero Code lets the event pass; otherwise the batch is answered with Code
// (a 4xx as validation_failed naming events[i].Field; a 5xx as
// unavailable) and RetryAfter, if set.
type Poison func(eventID string, event json.RawMessage) PoisonAnswer

// PoisonAnswer is a Poison's verdict on one event.
type PoisonAnswer struct {
	Code       int
	RetryAfter string
	// Field names the refused field (4xx), e.g. "window_title".
	Field string
}

type idemEntry struct {
	fingerprint [32]byte
	done        bool
	status      int
	body        []byte
}

// Server is a running ingest server. Its methods are safe for concurrent use.
type Server struct {
	// URL is the base URL, e.g. http://127.0.0.1:40123.
	URL string

	opts Options
	srv  *http.Server
	ln   net.Listener

	mu          sync.Mutex
	keys        map[string]*idemEntry
	deliveries  map[string]int
	seqs        map[string]int64
	screenshots map[string]string // event id → sha256 of the bytes received
	drops       map[[2]string]int64
	stats       Stats
	tokenUsed   bool
	enrolled    map[string]protocol.AgentEnrolled // agents reported by the gateway

	down        bool
	status      int
	retryAfter  string
	maxEvents   int
	dropReplies int
	latency     time.Duration
	poison      Poison
}

// New starts a server on 127.0.0.1:0. Close stops it.
func New(opts Options) (*Server, error) {
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 64 << 20
	}
	if opts.GatewayID == "" {
		opts.GatewayID = "00000000-0000-7000-8000-000000000001"
	}
	if opts.EnrolmentSecret == "" {
		opts.EnrolmentSecret = DefaultEnrolmentSecret
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("fakecloud: listen: %w", err)
	}
	s := &Server{
		URL:         "http://" + ln.Addr().String(),
		opts:        opts,
		ln:          ln,
		keys:        map[string]*idemEntry{},
		deliveries:  map[string]int{},
		seqs:        map[string]int64{},
		screenshots: map[string]string{},
		drops:       map[[2]string]int64{},
		enrolled:    map[string]protocol.AgentEnrolled{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+protocol.PathGatewayProvision, s.provision)
	mux.HandleFunc("GET "+protocol.PathGatewayPing, s.ping)
	mux.HandleFunc("GET "+protocol.PathGatewayEnrolment, s.enrolment)
	mux.HandleFunc("POST "+protocol.PathGatewayAgents, s.agentEnrolled)
	mux.HandleFunc("POST "+protocol.PathIngestLogs, s.ingest(protocol.PathIngestLogs))
	mux.HandleFunc("POST "+protocol.PathIngestDeviceEvents, s.ingest(protocol.PathIngestDeviceEvents))
	mux.HandleFunc("POST "+protocol.PathIngestScreenshots, s.ingest(protocol.PathIngestScreenshots))
	s.srv = &http.Server{Handler: s.faults(mux), ReadHeaderTimeout: 10 * time.Second}
	go s.srv.Serve(ln)
	return s, nil
}

// Close stops the server.
func (s *Server) Close() error { return s.srv.Close() }

// SetDown makes the server unreachable (true): connections are closed
// without an answer.
func (s *Server) SetDown(down bool) { s.mu.Lock(); s.down = down; s.mu.Unlock() }

// SetStatus answers every ingest request and the ping with code (and
// Retry-After when not empty) before looking at them, like a cloud that is
// down as a whole; 0 restores normal service.
func (s *Server) SetStatus(code int, retryAfter string) {
	s.mu.Lock()
	s.status, s.retryAfter = code, retryAfter
	s.mu.Unlock()
}

// SetPoison installs p (nil removes it): every fresh batch is checked
// against it before it is stored.
func (s *Server) SetPoison(p Poison) { s.mu.Lock(); s.poison = p; s.mu.Unlock() }

// SetMaxEvents answers 413 to batches with more than n events (0: no limit).
func (s *Server) SetMaxEvents(n int) { s.mu.Lock(); s.maxEvents = n; s.mu.Unlock() }

// DropReplies stores the next n fresh batches and then closes the connection
// without answering (the response is lost).
func (s *Server) DropReplies(n int) { s.mu.Lock(); s.dropReplies = n; s.mu.Unlock() }

// SetLatency delays every answer by d.
func (s *Server) SetLatency(d time.Duration) { s.mu.Lock(); s.latency = d; s.mu.Unlock() }

// SetAPIKey changes the accepted API key (e.g. to provoke 401).
func (s *Server) SetAPIKey(k string) { s.mu.Lock(); s.opts.APIKey = k; s.mu.Unlock() }

// Stats returns a copy of the counters.
func (s *Server) Stats() Stats { s.mu.Lock(); defer s.mu.Unlock(); return s.stats }

// Deliveries returns, for every event id received, how many fresh batches
// carried it (1 is correct; more is a duplicate delivery).
func (s *Server) Deliveries() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.deliveries))
	for k, v := range s.deliveries {
		out[k] = v
	}
	return out
}

// Seq returns the sequence number received with an event id.
func (s *Server) Seq(id string) int64 { s.mu.Lock(); defer s.mu.Unlock(); return s.seqs[id] }

// ScreenshotSHA returns the SHA-256 of the image received for an event id.
func (s *Server) ScreenshotSHA(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.screenshots[id]
}

// Drops returns the summed drop reports by reason and class.
func (s *Server) Drops() map[[2]string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[[2]string]int64{}
	for k, v := range s.drops {
		out[k] = v
	}
	return out
}

func (s *Server) faults(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		down, latency := s.down, s.latency
		s.mu.Unlock()
		if down {
			hangUp(w)
			return
		}
		if latency > 0 {
			time.Sleep(latency)
		}
		next.ServeHTTP(w, r)
	})
}

func hangUp(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if c, _, err := hj.Hijack(); err == nil {
			c.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, code int, errCode, field, msg string) {
	writeJSON(w, code, protocol.ErrorResponse{Error: errCode, Field: field, Message: msg})
}

func (s *Server) provision(w http.ResponseWriter, r *http.Request) {
	var req protocol.ProvisionRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
		writeErr(w, http.StatusBadRequest, protocol.ErrCodeMalformed, "", err.Error())
		return
	}
	if req.Serial == "" {
		writeErr(w, http.StatusBadRequest, protocol.ErrCodeValidation, "serial", "is required")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if req.ProvisioningToken != s.opts.ProvisioningToken || req.OrganizationID != s.opts.OrganizationID || s.tokenUsed {
		writeErr(w, http.StatusUnauthorized, protocol.ErrCodeUnauthorized, "provisioning_token", "invalid, expired or already used")
		return
	}
	s.tokenUsed = true
	s.stats.Provisions++
	writeJSON(w, http.StatusCreated, protocol.ProvisionResponse{GatewayID: s.opts.GatewayID,
		OrganizationID: s.opts.OrganizationID, APIKey: s.opts.APIKey})
}

func (s *Server) authorised(r *http.Request) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	ok := s.opts.APIKey != "" && r.Header.Get(protocol.HeaderAPIKey) == s.opts.APIKey
	if !ok {
		s.stats.Unauthorized++
	}
	return ok
}

func (s *Server) ping(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	status, retryAfter := s.status, s.retryAfter
	s.mu.Unlock()
	if status != 0 {
		if retryAfter != "" {
			w.Header().Set(protocol.HeaderRetryAfter, retryAfter)
		}
		writeErr(w, status, protocol.ErrCodeUnavailable, "", "injected status")
		return
	}
	if !s.authorised(r) {
		writeErr(w, http.StatusUnauthorized, protocol.ErrCodeUnauthorized, protocol.HeaderAPIKey, "missing or invalid API key")
		return
	}
	writeJSON(w, http.StatusOK, protocol.PingResponse{GatewayID: s.opts.GatewayID,
		OrganizationID: s.opts.OrganizationID, ServerTime: time.Now().UTC()})
}

// SetEnrolmentSecret changes the organisation's enrolment secret (a
// rotation); "" removes it.
func (s *Server) SetEnrolmentSecret(secret string) {
	s.mu.Lock()
	s.opts.EnrolmentSecret = secret
	s.mu.Unlock()
}

// EnrolledAgents returns the agents the gateway reported enrolled.
func (s *Server) EnrolledAgents() map[string]protocol.AgentEnrolled {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]protocol.AgentEnrolled, len(s.enrolled))
	for k, v := range s.enrolled {
		out[k] = v
	}
	return out
}

func (s *Server) enrolment(w http.ResponseWriter, r *http.Request) {
	if !s.authorised(r) {
		writeErr(w, http.StatusUnauthorized, protocol.ErrCodeUnauthorized, protocol.HeaderAPIKey, "missing or invalid API key")
		return
	}
	s.mu.Lock()
	secret := s.opts.EnrolmentSecret
	s.mu.Unlock()
	v := protocol.EnrolmentVerifier{OrganizationID: s.opts.OrganizationID}
	if secret != "" {
		h := sha256.Sum256([]byte(secret))
		v.Verifier = protocol.VerifierSHA256 + hex.EncodeToString(h[:])
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) agentEnrolled(w http.ResponseWriter, r *http.Request) {
	if !s.authorised(r) {
		writeErr(w, http.StatusUnauthorized, protocol.ErrCodeUnauthorized, protocol.HeaderAPIKey, "missing or invalid API key")
		return
	}
	var a protocol.AgentEnrolled
	if err := json.NewDecoder(io.LimitReader(r.Body, 16<<10)).Decode(&a); err != nil || a.AgentUID == "" {
		writeErr(w, http.StatusBadRequest, protocol.ErrCodeMalformed, "", "bad agent report")
		return
	}
	s.mu.Lock()
	s.enrolled[a.AgentUID] = a
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// batchBody is the union of the three batch shapes.
type batchBody struct {
	GatewayID string            `json:"gateway_id"`
	Events    []json.RawMessage `json:"events"`
	Drops     []protocol.Drop   `json:"drops"`
}

type eventKey struct {
	EventID string `json:"event_id"`
	Seq     int64  `json:"seq"`
	Type    string `json:"type"`
	// Screenshot metadata, for screenshot events.
	Screenshot *protocol.Screenshot `json:"screenshot"`
}

func (s *Server) ingest(path string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.stats.Requests++
		status, retryAfter, maxEvents, poison := s.status, s.retryAfter, s.maxEvents, s.poison
		s.mu.Unlock()
		if status != 0 {
			if retryAfter != "" {
				w.Header().Set(protocol.HeaderRetryAfter, retryAfter)
			}
			if status == http.StatusUnauthorized {
				s.mu.Lock()
				s.stats.Unauthorized++
				s.mu.Unlock()
			}
			writeErr(w, status, protocol.ErrCodeUnavailable, "", "injected status")
			return
		}
		if !s.authorised(r) {
			writeErr(w, http.StatusUnauthorized, protocol.ErrCodeUnauthorized, protocol.HeaderAPIKey, "missing or invalid API key")
			return
		}
		key := r.Header.Get(protocol.HeaderIdempotencyKey)
		if _, ok := protocol.CanonicalEventID(key); !ok {
			writeErr(w, http.StatusBadRequest, protocol.ErrCodeIdemMissing, protocol.HeaderIdempotencyKey, "a UUID is required")
			return
		}
		raw, err := io.ReadAll(io.LimitReader(r.Body, s.opts.MaxBodyBytes+1))
		if err != nil {
			writeErr(w, http.StatusBadRequest, protocol.ErrCodeMalformed, "", err.Error())
			return
		}
		compressed := int64(len(raw))
		if s.opts.DecodeOnly && path != protocol.PathIngestScreenshots {
			s.decodeOnly(w, r, raw)
			return
		}
		batch, files, fp, code, field, msg := s.decode(path, r, raw)
		if code != 0 {
			writeErr(w, code, protocol.ErrCodeMalformed, field, msg)
			return
		}
		if maxEvents > 0 && len(batch.Events) > maxEvents {
			s.mu.Lock()
			s.stats.TooLarge++
			s.mu.Unlock()
			writeErr(w, http.StatusRequestEntityTooLarge, protocol.ErrCodeTooLarge, "events", "too many events")
			return
		}
		events := make([]eventKey, len(batch.Events))
		for i, ev := range batch.Events {
			if err := json.Unmarshal(ev, &events[i]); err != nil {
				writeErr(w, http.StatusBadRequest, protocol.ErrCodeValidation, fmt.Sprintf("events[%d]", i), err.Error())
				return
			}
			if _, ok := protocol.CanonicalEventID(events[i].EventID); !ok || events[i].Seq <= 0 {
				writeErr(w, http.StatusBadRequest, protocol.ErrCodeValidation, fmt.Sprintf("events[%d].event_id", i), "event_id and seq are required")
				return
			}
			if path == protocol.PathIngestScreenshots {
				sum, ok := files[events[i].EventID]
				if !ok || events[i].Screenshot == nil || sum != events[i].Screenshot.SHA256 {
					writeErr(w, http.StatusBadRequest, protocol.ErrCodeValidation, fmt.Sprintf("events[%d].screenshot.sha256", i), "image part missing or SHA-256 mismatch")
					return
				}
			}
		}
		if poison != nil {
			for i, ev := range events {
				a := poison(ev.EventID, batch.Events[i])
				if a.Code == 0 {
					continue
				}
				s.mu.Lock()
				s.stats.Poisoned++
				s.mu.Unlock()
				if a.RetryAfter != "" {
					w.Header().Set(protocol.HeaderRetryAfter, a.RetryAfter)
				}
				if a.Code < 500 {
					writeErr(w, a.Code, protocol.ErrCodeValidation, fmt.Sprintf("events[%d].%s", i, a.Field), "event "+ev.EventID+" refused")
				} else {
					writeErr(w, a.Code, protocol.ErrCodeUnavailable, "", "event "+ev.EventID+": injected server error")
				}
				return
			}
		}
		s.mu.Lock()
		if e, ok := s.keys[key]; ok {
			switch {
			case !e.done:
				s.stats.InFlightConflicts++
				s.mu.Unlock()
				writeErr(w, http.StatusConflict, protocol.ErrCodeIdemInFlight, protocol.HeaderIdempotencyKey, "a request with this key is in flight")
			case e.fingerprint != fp:
				s.stats.Mismatches++
				s.mu.Unlock()
				writeErr(w, http.StatusUnprocessableEntity, protocol.ErrCodeIdemMismatch, protocol.HeaderIdempotencyKey, "key reused with a different body")
			default:
				s.stats.Replays++
				body := e.body
				st := e.status
				s.mu.Unlock()
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(st)
				w.Write(body)
			}
			return
		}
		entry := &idemEntry{fingerprint: fp}
		s.keys[key] = entry
		resp := protocol.IngestResponse{Store: "timeseries"}
		for _, ev := range events {
			if !s.opts.DecodeOnly {
				if s.deliveries[ev.EventID] > 0 {
					resp.Duplicates++
					s.stats.Duplicates++
				} else {
					resp.Accepted++
				}
				s.deliveries[ev.EventID]++
				s.seqs[ev.EventID] = ev.Seq
				if path == protocol.PathIngestScreenshots {
					s.screenshots[ev.EventID] = files[ev.EventID]
				}
			} else {
				resp.Accepted++
			}
		}
		for _, d := range batch.Drops {
			s.drops[[2]string{d.Reason, d.Class}] += d.Count
		}
		s.stats.Batches++
		s.stats.Events += len(events)
		s.stats.Bytes += compressed
		body, _ := json.Marshal(resp)
		entry.done, entry.status, entry.body = true, http.StatusOK, body
		lose := s.dropReplies > 0
		if lose {
			s.dropReplies--
		}
		s.mu.Unlock()
		if lose {
			hangUp(w)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set(protocol.HeaderFallbackMode, "timeseries")
		w.WriteHeader(http.StatusOK)
		w.Write(body)
	}
}

func (s *Server) decodeOnly(w http.ResponseWriter, r *http.Request, raw []byte) {
	var body io.Reader = bytes.NewReader(raw)
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(body)
		if err != nil {
			writeErr(w, http.StatusBadRequest, protocol.ErrCodeMalformed, "Content-Encoding", err.Error())
			return
		}
		body = zr
	}
	var batch protocol.LogBatch
	data, err := io.ReadAll(body)
	if err == nil {
		// The decoder the Agent API's ingest uses (JSON v2), so the sink
		// costs what the cloud's decoding costs.
		err = jsonv2.Unmarshal(data, &batch)
	}
	if err != nil {
		writeErr(w, http.StatusBadRequest, protocol.ErrCodeMalformed, "", err.Error())
		return
	}
	s.mu.Lock()
	s.stats.Batches++
	s.stats.Events += len(batch.Events)
	s.stats.Bytes += int64(len(raw))
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, protocol.IngestResponse{Accepted: len(batch.Events), Store: "timeseries"})
}

// decode returns the batch, the SHA-256 of each file part (screenshots), the
// body fingerprint, and an error status with field and message.
func (s *Server) decode(path string, r *http.Request, raw []byte) (batchBody, map[string]string, [32]byte, int, string, string) {
	var batch batchBody
	var fp [32]byte
	if path != protocol.PathIngestScreenshots {
		body := raw
		switch r.Header.Get("Content-Encoding") {
		case "gzip":
			zr, err := gzip.NewReader(bytes.NewReader(raw))
			if err != nil {
				return batch, nil, fp, http.StatusBadRequest, "Content-Encoding", "bad gzip: " + err.Error()
			}
			body, err = io.ReadAll(io.LimitReader(zr, s.opts.MaxBodyBytes+1))
			if err != nil {
				return batch, nil, fp, http.StatusBadRequest, "Content-Encoding", "bad gzip: " + err.Error()
			}
		case "", "identity":
		default:
			return batch, nil, fp, http.StatusUnsupportedMediaType, "Content-Encoding", "gzip or identity"
		}
		if int64(len(body)) > s.opts.MaxBodyBytes {
			return batch, nil, fp, http.StatusRequestEntityTooLarge, "", "body too large"
		}
		if err := json.Unmarshal(body, &batch); err != nil {
			return batch, nil, fp, http.StatusBadRequest, "", "malformed JSON: " + err.Error()
		}
		return batch, nil, sha256.Sum256(body), 0, "", ""
	}
	_, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || params["boundary"] == "" {
		return batch, nil, fp, http.StatusUnsupportedMediaType, "Content-Type", "multipart/form-data required"
	}
	mr := multipart.NewReader(bytes.NewReader(raw), params["boundary"])
	h := sha256.New()
	files := map[string]string{}
	first := true
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return batch, nil, fp, http.StatusBadRequest, "", "bad multipart: " + err.Error()
		}
		data, err := io.ReadAll(p)
		if err != nil {
			return batch, nil, fp, http.StatusBadRequest, "", "bad multipart: " + err.Error()
		}
		if first {
			if p.FormName() != protocol.ScreenshotBatchPart {
				return batch, nil, fp, http.StatusBadRequest, protocol.ScreenshotBatchPart, "the first part must be the batch"
			}
			if err := json.Unmarshal(data, &batch); err != nil {
				return batch, nil, fp, http.StatusBadRequest, protocol.ScreenshotBatchPart, "malformed JSON: " + err.Error()
			}
			h.Write(data)
			first = false
			continue
		}
		sum := sha256.Sum256(data)
		files[p.FormName()] = hex.EncodeToString(sum[:])
		h.Write([]byte(p.FormName()))
		h.Write(sum[:])
	}
	if first {
		return batch, nil, fp, http.StatusBadRequest, protocol.ScreenshotBatchPart, "is required"
	}
	copy(fp[:], h.Sum(nil))
	return batch, files, fp, 0, "", ""
}

// RetryAfterSeconds formats seconds for SetStatus.
func RetryAfterSeconds(n int) string { return strconv.Itoa(n) }
