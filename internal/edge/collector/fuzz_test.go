package collector

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/edge/buffer"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
	"github.com/staffcontrol/staffcontrol/internal/protocol/agentpb"
)

// The collector's fuzz targets run the real handlers (ServeHTTP on the
// routes table, no network) over a real SQLite buffer, with a fixed clock so
// the seeds keep their meaning. Each asserts that the handler's verdict is
// protocol's verdict, that refusals name a field, and that what is
// acknowledged is in the buffer.

var fuzzClock = time.Date(2026, 6, 15, 12, 0, 0, 0, time.UTC)

type fuzzFixture struct {
	buf   *buffer.Buffer
	c     *Collector
	mux   *http.ServeMux
	creds *credentials
}

func newFuzzFixture(f *testing.F) *fuzzFixture {
	f.Helper()
	b, err := buffer.Open(context.Background(), buffer.Options{Config: buffer.Config{Path: filepath.Join(f.TempDir(), "buffer.sqlite"), MaxBytes: 1 << 40, Synchronous: "NORMAL"}, FSUsage: func(string) (float64, error) { return 0, nil }})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { b.Close() })
	c := New(b, Options{Config: Config{MaxBodyBytes: 64 << 10, MaxBatchEvents: 50, MaxScreenshotBytes: 32 << 10}, GatewayID: "gw",
		Now: func() time.Time { return fuzzClock }, Auth: newAuthority(f, b, nil)})
	mux := http.NewServeMux()
	c.Routes(mux)
	return &fuzzFixture{buf: b, c: c, mux: mux, creds: newCredentials(c)}
}

func (ff *fuzzFixture) serve(req *http.Request) (int, []byte) {
	rec := httptest.NewRecorder()
	ff.mux.ServeHTTP(rec, req)
	return rec.Code, rec.Body.Bytes()
}

// checkRefusal asserts a refusal's body: an ErrorResponse with a code, and
// a field for validation failures.
func checkRefusal(t *testing.T, code int, body []byte) protocol.ErrorResponse {
	t.Helper()
	var er protocol.ErrorResponse
	if err := json.Unmarshal(body, &er); err != nil || er.Error == "" || er.Message == "" {
		t.Fatalf("%d without an ErrorResponse: %s", code, body)
	}
	if er.Error == protocol.ErrCodeValidation && er.Field == "" {
		t.Fatalf("validation failure names no field: %s", body)
	}
	return er
}

func (ff *fuzzFixture) checkAcked(t *testing.T, body []byte, n int) {
	t.Helper()
	var resp protocol.EventBatchResponse
	if err := json.Unmarshal(body, &resp); err != nil || len(resp.Events) != n || resp.Accepted+resp.Duplicates != n {
		t.Fatalf("200 with a bad acknowledgement for %d events: %s", n, body)
	}
	for _, a := range resp.Events {
		ok, err := ff.buf.HasEvent(context.Background(), a.EventID)
		if err != nil || !ok {
			t.Fatalf("acknowledged event %s is not in the buffer (%v)", a.EventID, err)
		}
	}
}

// FuzzEventsRequest posts a body to POST /v1/events plain and gzipped: both
// get the same verdict, which is protocol's verdict on the decoded batch.
func FuzzEventsRequest(f *testing.F) {
	now := fuzzClock.Format(time.RFC3339Nano)
	ev := func(extra string) string {
		return `{"type":"active_window","user_sid":"S-1-5-21-1","datetime":"` + now + `","duration_seconds":12,"process_name":"excel.exe"` + extra + `}`
	}
	for _, s := range []string{
		`{"agent_uid":"a1","computer_name":"PC-1","events":[` + ev(`,"window_title":"Budget.xlsx"`) + `]}`,
		`{"agent_uid":"a1","computer_name":"PC-1","events":[` + ev(`,"event_id":"0190a6f0-0000-7000-8000-000000000001"`) + `,` + ev(`,"url":"https://x/😀"`) + `]}`,
		`{"agent_uid":"a1","computer_name":"PC-1","events":[` + ev(`,"window_title":"a\u0000b"`) + `]}`,
		`{"agent_uid":"a1","computer_name":"PC-1","events":[` + ev(`,"window_title":"\ud800"`) + `]}`,
		`{"agent_uid":"a\u0000","computer_name":"PC-1","events":[` + ev(``) + `]}`,
		`{"agent_uid":"a1","computer_name":"PC-1","events":[{"type":"visited_site","user_sid":"S","datetime":"2026-03-17T11:59:59Z","url":"u"}]}`,
		`{"agent_uid":"a1","computer_name":"PC-1","events":[{"type":"user_session","user_sid":"S","datetime":"2026-06-16T12:00:01Z","session_type":"login"}]}`,
		`{"agent_uid":"a1","computer_name":"PC-1","events":[{"type":"screenshot"}]}`,
		`{"agent_uid":"a1","computer_name":"PC-1","events":[]}`,
		`{"events":[{"type":`, `null`, ``, `{"agent_uid":5}`,
	} {
		f.Add([]byte(s))
	}
	ff := newFuzzFixture(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		post := func(b []byte, gz bool) (int, []byte) {
			req := httptest.NewRequest(http.MethodPost, protocol.PathAgentEvents, bytes.NewReader(b))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set(protocol.HeaderAuthorization, ff.creds.bearer(t, "a1"))
			if gz {
				req.Header.Set("Content-Encoding", "gzip")
			}
			return ff.serve(req)
		}
		// Protocol's verdict, on an independent decode.
		var batch protocol.EventBatch
		decodeErr := jsonv2.Unmarshal(body, &batch, jsonv2.MatchCaseInsensitiveNames(true))
		verdict := decodeErr
		// The request is a1's: an empty agent_uid is a1's, another is
		// refused with 403 before any other check of the batch.
		wrongAgent := false
		if decodeErr == nil {
			if batch.AgentUID == "" {
				batch.AgentUID = "a1"
			}
			wrongAgent = batch.AgentUID != "a1"
			for _, e := range batch.Events {
				wrongAgent = wrongAgent || (e.AgentUID != "" && e.AgentUID != "a1")
			}
		}
		if verdict == nil {
			switch n := len(batch.Events); {
			case n == 0:
				verdict = errors.New("no events")
			case n > 50:
				verdict = errors.New("too many")
			default:
				verdict = protocol.ValidateEventBatch(&batch, fuzzClock)
			}
		}
		code, resp := post(body, false)
		codeGz, respGz := post(gz(body), true)
		if verdict == nil && wrongAgent {
			if code != 403 || codeGz != 403 || checkRefusal(t, code, resp).Error != protocol.ErrCodeForbidden {
				t.Fatalf("events of another agent: %d %s, gzip %d", code, resp, codeGz)
			}
			return
		}
		switch {
		case code == 200:
			if verdict != nil {
				t.Fatalf("collector accepted what protocol refuses (%v): %s", verdict, body)
			}
			ff.checkAcked(t, resp, len(batch.Events))
		case code == 400 || code == 413:
			if verdict == nil && len(body) <= 64<<10 {
				t.Fatalf("collector refused (%d %s) what protocol accepts", code, resp)
			}
			er := checkRefusal(t, code, resp)
			if codeGz != code {
				t.Fatalf("plain %d %s, gzip %d %s", code, resp, codeGz, respGz)
			}
			if erGz := checkRefusal(t, codeGz, respGz); erGz.Error != er.Error || erGz.Field != er.Field {
				t.Fatalf("plain %s, gzip %s", resp, respGz)
			}
			var fe *apperr.FieldError
			if errors.As(verdict, &fe) && (er.Field != fe.Field || er.Error != protocol.ErrCodeValidation) {
				t.Fatalf("collector names %q, protocol %q", er.Field, fe.Field)
			}
		default:
			t.Fatalf("unexpected status %d: %s", code, resp)
		}
		if code == 200 && codeGz != 200 {
			t.Fatalf("gzip refused what plain accepted: %d %s", codeGz, respGz)
		}
	})
}

// FuzzScreenshotMetadata posts a screenshot whose metadata part is the
// fuzzed JSON ("SHA" in it is replaced by the image's real SHA-256, so that
// accepted uploads are reachable).
func FuzzScreenshotMetadata(f *testing.F) {
	now := fuzzClock.Format(time.RFC3339Nano)
	for _, s := range []string{
		`{"type":"screenshot","agent_uid":"a","computer_name":"PC","user_sid":"S","datetime":"` + now + `","screenshot":{"sha256":"SHA","content_type":"image/png","width":1920,"height":1080}}`,
		`{"type":"screenshot","agent_uid":"a","computer_name":"PC","user_sid":"S","datetime":"` + now + `","screenshot":{"sha256":"SHA","size":4,"content_type":"image/webp"}}`,
		`{"type":"screenshot","agent_uid":"a","computer_name":"PC\u0000","user_sid":"S","datetime":"` + now + `","screenshot":{"sha256":"SHA","content_type":"image/png"}}`,
		`{"type":"screenshot","agent_uid":"a","computer_name":"PC","user_sid":"S","datetime":"2026-05-16T11:59:59Z","screenshot":{"sha256":"SHA","content_type":"image/png"}}`,
		`{"type":"screenshot","agent_uid":"a","computer_name":"PC","user_sid":"S","datetime":"` + now + `","screenshot":{"sha256":"SHA","content_type":"image/png","width":2147483648}}`,
		`{"type":"screenshot","agent_uid":"a","computer_name":"PC","user_sid":"S","datetime":"` + now + `","screenshot":{"sha256":"00","content_type":"image/png"}}`,
		`{"type":"active_window"}`, `{`, ``,
	} {
		f.Add([]byte(s), []byte("\x89PNG"))
	}
	ff := newFuzzFixture(f)
	f.Fuzz(func(t *testing.T, meta, img []byte) {
		sum := sha256.Sum256(img)
		meta = bytes.ReplaceAll(meta, []byte("SHA"), []byte(hex.EncodeToString(sum[:])))
		var b bytes.Buffer
		mw := multipart.NewWriter(&b)
		w, _ := mw.CreateFormField(protocol.CollectorMetadataPart)
		w.Write(meta)
		w, _ = mw.CreateFormFile(protocol.CollectorImagePart, "shot.png")
		w.Write(img)
		mw.Close()
		req := httptest.NewRequest(http.MethodPost, protocol.PathAgentScreenshot, &b)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		req.Header.Set(protocol.HeaderAuthorization, ff.creds.bearer(t, "a"))
		code, resp := ff.serve(req)

		var ev protocol.Event
		verdict := jsonv2.Unmarshal(meta, &ev, jsonv2.MatchCaseInsensitiveNames(true))
		if verdict == nil && ev.AgentUID == "" {
			ev.AgentUID = "a" // the credential's agent
		}
		if verdict == nil && ev.Type != protocol.TypeScreenshot {
			verdict = &apperr.FieldError{Field: "type", Message: "must be screenshot"}
		} else if verdict == nil {
			verdict = protocol.ValidateAgentEvent(&ev, "", fuzzClock, true)
		}
		if verdict == nil && ev.AgentUID != "a" {
			if code != 403 {
				t.Fatalf("screenshot of another agent: %d %s", code, resp)
			}
			return
		}
		switch code {
		case 200:
			if verdict != nil {
				t.Fatalf("accepted metadata protocol refuses (%v): %s", verdict, meta)
			}
			ff.checkAcked(t, resp, 1)
		case 400, 413:
			er := checkRefusal(t, code, resp)
			var fe *apperr.FieldError
			if errors.As(verdict, &fe) && er.Field != fe.Field {
				t.Fatalf("collector names %q, protocol %q (%s)", er.Field, fe.Field, resp)
			}
		default:
			t.Fatalf("unexpected status %d: %s", code, resp)
		}
	})
}

// FuzzGRPCEvents feeds one protobuf event through EventFromProto and
// AcceptEvents, the gRPC stream's path: the verdict is protocol's, and a
// refusal becomes InvalidArgument naming the field.
func FuzzGRPCEvents(f *testing.F) {
	at := fuzzClock.Add(-time.Minute).UnixNano()
	f.Add("", "active_window", "a", "PC", "S-1", "title", "code.exe", "", "", "", at, int64(5), true)
	f.Add("0190a6f0-0000-7000-8000-000000000001", "visited_site", "a", "PC", "S-1", "", "", "https://x/", "X", "", at, int64(0), false)
	f.Add("", "user_session", "a", "PC", "S\x00", "", "", "", "", "login", at, int64(0), false)
	f.Add("", "user_session", "a", "PC", "S", "", "", "", "", "lock", fuzzClock.Add(-366*24*time.Hour).UnixNano(), int64(0), false)
	f.Add("", "active_window", "a", "PC", "S", "t\x00", "p", "", "", "", at, int64(-1), true)
	f.Add("", "screenshot", "a", "PC", "S", "", "", "", "", "", at, int64(0), false)
	ff := newFuzzFixture(f)
	f.Fuzz(func(t *testing.T, id, typ, agent, computer, sid, title, proc, url, siteTitle, session string, unixNano, dur int64, hasDur bool) {
		pe := &agentpb.Event{EventId: id, Type: typ, AgentUid: agent, ComputerName: computer, UserSid: sid, WindowTitle: title,
			ProcessName: proc, Url: url, Title: siteTitle, SessionType: session, Datetime: timestamppb.New(time.Unix(0, unixNano))}
		if hasDur {
			pe.DurationSeconds = &dur
		}
		e := EventFromProto(pe)
		// The stream is authenticated as agent "a" (its credential fixes
		// who it is); an event with no agent_uid is that agent's.
		independent := e
		if independent.AgentUID == "" {
			independent.AgentUID = "a"
		}
		verdict := protocol.ValidateAgentEvent(&independent, "events[0]", fuzzClock, false)
		resp, err := ff.c.AcceptEvents(context.Background(), "a", &protocol.EventBatch{Events: []protocol.Event{e}})
		if verdict == nil && independent.AgentUID != "a" {
			re := apperr.As(err)
			if re == nil || httpStatus(re) != 403 {
				t.Fatalf("an event of another agent: %v, want 403", err)
			}
			return
		}
		if (err == nil) != (verdict == nil) {
			t.Fatalf("AcceptEvents %v, protocol %v", err, verdict)
		}
		if err != nil {
			re := apperr.As(err)
			var fe *apperr.FieldError
			if re == nil || !errors.As(verdict, &fe) || httpStatus(re) != 400 || re.Field != fe.Field {
				t.Fatalf("refusal %v does not name %v", err, verdict)
			}
			if code, field := grpcField(t, grpcError(err)); code.String() != "InvalidArgument" || field != fe.Field {
				t.Fatalf("gRPC status %v %q", code, field)
			}
			return
		}
		if resp.Accepted+resp.Duplicates != 1 || strings.TrimSpace(resp.Events[0].EventID) == "" {
			t.Fatalf("ack %+v", resp)
		}
		if ok, err := ff.buf.HasEvent(context.Background(), resp.Events[0].EventID); err != nil || !ok {
			t.Fatalf("acknowledged %s not buffered: %v", resp.Events[0].EventID, err)
		}
	})
}

// httpStatus is the HTTP status the collector answers a coded error with.
func httpStatus(e *apperr.Error) int {
	s, _ := errorResponse(e)
	return s
}
