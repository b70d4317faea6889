package jsondecode

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
)

type event struct {
	Type     string    `json:"type"`
	Seq      int64     `json:"seq"`
	Datetime time.Time `json:"datetime"`
}

type batch struct {
	AgentUID string  `json:"agent_uid"`
	Events   []event `json:"events"`
	Meta     struct {
		Tags []string `json:"tags"`
	} `json:"meta"`
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		opts   []Option
		code   apperr.Code // "" for success
		kind   Kind
		field  string
		msgHas string
	}{
		{name: "valid", body: `{"agent_uid":"a1","events":[{"type":"x","seq":1}]}`},
		{name: "unknown field refused", body: `{"agent_uid":"a1","colour":"red"}`, code: apperr.Invalid, kind: KindUnknownField, field: "colour", msgHas: "not a known field"},
		{name: "unknown nested field refused", body: `{"events":[{"type":"x"},{"tipe":"y"}]}`, code: apperr.Invalid, kind: KindUnknownField, field: "events[1].tipe"},
		{name: "unknown field ignored by option", body: `{"agent_uid":"a1","colour":"red"}`, opts: []Option{IgnoreUnknownFields()}},
		{name: "wrong type at a nested path", body: `{"events":[{},{},{},{"type":5}]}`, code: apperr.Invalid, kind: KindType, field: "events[3].type", msgHas: "must be a string, not JSON number"},
		{name: "wrong type deeper", body: `{"meta":{"tags":["a",true]}}`, code: apperr.Invalid, kind: KindType, field: "meta.tags[1]", msgHas: "not JSON bool"},
		{name: "wrong kind of document", body: `[1,2]`, code: apperr.Invalid, kind: KindType, field: "(body)", msgHas: "must be an object, not JSON array"},
		{name: "value that does not fit", body: `{"events":[{"seq":1.5}]}`, code: apperr.Invalid, kind: KindValue, field: "events[0].seq", msgHas: "invalid value"},
		{name: "time not RFC 3339", body: `{"events":[{"datetime":"yesterday"}]}`, code: apperr.Invalid, kind: KindValue, field: "events[0].datetime"},
		{name: "trailing data", body: `{"agent_uid":"a1"} {"agent_uid":"a2"}`, code: apperr.Malformed, kind: KindTrailing},
		{name: "trailing garbage", body: `{} x`, code: apperr.Malformed, kind: KindTrailing},
		{name: "empty body", body: ``, code: apperr.Malformed, kind: KindEmpty, msgHas: "empty body"},
		{name: "blank body", body: " \n\t", code: apperr.Malformed, kind: KindTruncated},
		{name: "truncated", body: `{"events":[{"type":"x"`, code: apperr.Malformed, kind: KindTruncated, msgHas: "truncated JSON"},
		{name: "not JSON", body: `hello`, code: apperr.Malformed, kind: KindSyntax},
		{name: "bad escape names the value", body: `{"agent_uid":"\x"}`, code: apperr.Malformed, kind: KindSyntax, field: "agent_uid"},
		{name: "duplicate name refused", body: `{"agent_uid":"a","agent_uid":"b"}`, code: apperr.Malformed, kind: KindSyntax, field: "agent_uid"},
		{name: "duplicate name lenient", body: `{"agent_uid":"a","agent_uid":"b"}`, opts: []Option{Lenient()}},
		{name: "case differs", body: `{"Agent_UID":"a"}`, code: apperr.Invalid, kind: KindUnknownField, field: "Agent_UID"},
		{name: "case insensitive by option", body: `{"Agent_UID":"a"}`, opts: []Option{CaseInsensitiveNames()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v batch
			err := New(tt.opts...).Decode(strings.NewReader(tt.body), &v)
			if tt.code == "" {
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				return
			}
			checkErr(t, err, tt.code, tt.kind, tt.field, tt.msgHas)
		})
	}
}

func checkErr(t *testing.T, err error, code apperr.Code, kind Kind, field, msgHas string) {
	t.Helper()
	ae := apperr.As(err)
	if ae == nil {
		t.Fatalf("error %v (%T) is not coded", err, err)
	}
	d := DetailOf(err)
	if ae.Code != code || d == nil || d.Kind != kind || ae.Field != field || d.Field != field {
		t.Fatalf("got code %q detail %+v field %q (%v); want code %q kind %d field %q", ae.Code, d, ae.Field, err, code, kind, field)
	}
	if !strings.Contains(ae.Message, msgHas) {
		t.Fatalf("message %q does not contain %q", ae.Message, msgHas)
	}
	if want := string(code) + ": "; !strings.HasPrefix(err.Error(), want) || !strings.HasSuffix(err.Error(), "json: "+kind.String()) {
		t.Fatalf("Error() = %q", err.Error())
	}
}

func TestDecodeTooLarge(t *testing.T) {
	body := `{"agent_uid":"` + strings.Repeat("a", 100) + `"}`
	t.Run("http.MaxBytesReader", func(t *testing.T) {
		r := httptest.NewRequest("POST", "/", strings.NewReader(body))
		err := New().Decode(http.MaxBytesReader(nil, r.Body, 50), new(batch))
		checkErr(t, err, apperr.TooLarge, KindTooLarge, "", "body exceeds 50 bytes")
		if d := DetailOf(err); d.Limit != 50 {
			t.Fatalf("limit %d", d.Limit)
		}
	})
	t.Run("MaxReader", func(t *testing.T) {
		err := New().Decode(MaxReader(strings.NewReader(body), 60), new(batch))
		checkErr(t, err, apperr.TooLarge, KindTooLarge, "", "body exceeds 60 bytes")
	})
	t.Run("MaxReader at the limit", func(t *testing.T) {
		if err := New().Decode(MaxReader(strings.NewReader(body), int64(len(body))), new(batch)); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("other read errors unchanged", func(t *testing.T) {
		boom := errors.New("boom")
		err := New().Decode(errReader{boom}, new(batch))
		if !errors.Is(err, boom) || apperr.As(err) != nil {
			t.Fatalf("got %v", err)
		}
	})
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func TestPath(t *testing.T) {
	for ptr, want := range map[string]string{
		"":                      "",
		"/events/3/user_sid":    "events[3].user_sid",
		"/0":                    "[0]",
		"/a~1b/c~0d":            "a/b.c~d",
		"/meta/tags/1":          "meta.tags[1]",
		"/events/12/screenshot": "events[12].screenshot",
	} {
		if got := Path(ptr); got != want {
			t.Errorf("Path(%q) = %q, want %q", ptr, got, want)
		}
	}
}

// FuzzDecode: any input gives nil or a coded error (invalid or malformed)
// with its Detail, naming the same field, always one for a type error; the
// decoder never panics.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{``, `{}`, `{"events":[{"type":5}]}`, `{"a":1} x`, `[`, `{"events":[{"seq":1.5}]}`,
		`{"agent_uid":"\ud800"}`, `{"meta":{"tags":[null]}}`, `{"agent_uid":"a","agent_uid":"b"}`} {
		f.Add([]byte(s))
	}
	d := New()
	f.Fuzz(func(t *testing.T, b []byte) {
		var v batch
		err := d.Decode(bytes.NewReader(b), &v)
		if err == nil {
			return
		}
		ae := apperr.As(err)
		if ae == nil || DetailOf(err) == nil {
			t.Fatalf("uncoded error %v for %q", err, b)
		}
		switch ae.Code {
		case apperr.Invalid, apperr.Malformed:
		default:
			t.Fatalf("code %q for %q", ae.Code, b)
		}
		d := DetailOf(err)
		if d.Field != ae.Field || (d.Kind == KindType && ae.Field == "") {
			t.Fatalf("field %q, detail %+v for %q", ae.Field, d, b)
		}
	})
}
