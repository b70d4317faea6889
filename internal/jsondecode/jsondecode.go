// Package jsondecode is the one strict decoder of JSON request bodies, on
// both sides: exactly one JSON value (no trailing data, no empty body),
// unknown members refused unless the caller's wire contract says they are
// ignored, a size limit enforced by the caller's reader (http.MaxBytesReader
// or MaxReader), and every failure an *apperr.Error naming the field by its
// path in the form of the protocol's errors (events[3].type). It uses the
// JSON v2 implementation (github.com/go-json-experiment/json): about half
// the CPU of encoding/json on event batches, and its errors carry a JSON
// Pointer to the value at fault.
package jsondecode

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
)

// Kind classifies a decode failure, for servers that word one differently.
type Kind int

// The kinds of decode failure.
const (
	KindEmpty        Kind = iota + 1 // no value at all (Malformed)
	KindTruncated                    // the value ends early (Malformed)
	KindSyntax                       // not JSON (Malformed; Field names the value being read, if any)
	KindTrailing                     // data after the value (Malformed)
	KindType                         // a JSON kind the field cannot hold (Invalid)
	KindValue                        // the right kind, a value that does not fit: a time that is not RFC 3339, a fraction in an integer (Invalid)
	KindUnknownField                 // a member no field takes (Invalid)
	KindTooLarge                     // over the caller's reader's limit (TooLarge)
)

// Detail is the cause of a decode failure's *apperr.Error (its Err):
// what kind it is and, for KindType, the kinds involved.
type Detail struct {
	Kind     Kind
	Field    string // the path, as in the apperr.Error
	GoKind   string // KindType: the Go kind of the field (int64, string, struct, slice, …)
	JSONKind string // KindType: the JSON kind found (string, number, bool, null, array, object)
	Limit    int64  // KindTooLarge: the limit in bytes
	Err      error  // the JSON library's or the reader's error
}

// Error implements error: the kind only (the coded error's message holds
// the library's text; Unwrap reaches its error).
func (d *Detail) Error() string { return "json: " + d.Kind.String() }

// String names the kind.
func (k Kind) String() string {
	switch k {
	case KindEmpty:
		return "empty body"
	case KindTruncated:
		return "truncated"
	case KindSyntax:
		return "syntax error"
	case KindTrailing:
		return "trailing data"
	case KindType:
		return "wrong type"
	case KindValue:
		return "invalid value"
	case KindUnknownField:
		return "unknown field"
	case KindTooLarge:
		return "too large"
	}
	return fmt.Sprintf("kind %d", int(k))
}

// Unwrap returns the underlying error.
func (d *Detail) Unwrap() error { return d.Err }

// DetailOf returns the Detail of a decode failure, or nil.
func DetailOf(err error) *Detail {
	var d *Detail
	if errors.As(err, &d) {
		return d
	}
	return nil
}

// Option adjusts what a Decoder accepts.
type Option func(*Decoder)

// IgnoreUnknownFields skips members no field takes, for wire contracts that
// promise it (docs/protocol.md: "unknown JSON fields are ignored").
func IgnoreUnknownFields() Option { return func(d *Decoder) { d.ignoreUnknown = true } }

// CaseInsensitiveNames matches member names to fields case-insensitively,
// as encoding/json did.
func CaseInsensitiveNames() Option { return func(d *Decoder) { d.caseInsensitive = true } }

// Lenient accepts what encoding/json accepted and JSON v2 refuses:
// duplicate member names (the last wins) and invalid UTF-8 in strings
// (replaced by U+FFFD), for endpoints that decoded with encoding/json.
func Lenient() Option { return func(d *Decoder) { d.lenient = true } }

// Decoder decodes request bodies. It is safe for concurrent use; the
// buffers it reads bodies into are pooled.
type Decoder struct {
	ignoreUnknown   bool
	caseInsensitive bool
	lenient         bool
	opts            jsonv2.Options
	bufs            sync.Pool
}

// New returns a Decoder; by default unknown members are refused, names match
// exactly, and duplicate names and invalid UTF-8 are refused.
func New(opts ...Option) *Decoder {
	d := &Decoder{}
	for _, o := range opts {
		o(d)
	}
	d.opts = jsonv2.JoinOptions(
		jsonv2.RejectUnknownMembers(!d.ignoreUnknown),
		jsonv2.MatchCaseInsensitiveNames(d.caseInsensitive),
		jsontext.AllowDuplicateNames(d.lenient),
		jsontext.AllowInvalidUTF8(d.lenient),
	)
	d.bufs.New = func() any { return new(bytes.Buffer) }
	return d
}

// Decode reads all of r and decodes it into v. A read error that is not a
// size limit (*http.MaxBytesError, *TooLargeError) is returned as it is;
// every other failure is an *apperr.Error whose Err is a *Detail.
func (d *Decoder) Decode(r io.Reader, v any) error {
	buf := d.bufs.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= 1<<20 {
			d.bufs.Put(buf)
		}
	}()
	if _, err := buf.ReadFrom(r); err != nil {
		if e := tooLarge(err); e != nil {
			return e
		}
		return err
	}
	return d.Unmarshal(buf.Bytes(), v)
}

// Unmarshal decodes b, which must hold exactly one JSON value, into v.
// Every failure is an *apperr.Error whose Err is a *Detail.
func (d *Decoder) Unmarshal(b []byte, v any) error {
	if len(b) == 0 {
		return fail(apperr.Malformed, &Detail{Kind: KindEmpty, Err: io.EOF}, "empty body")
	}
	err := jsonv2.Unmarshal(b, v, d.opts)
	if err == nil {
		return nil
	}
	return classify(err)
}

func fail(code apperr.Code, d *Detail, format string, a ...any) *apperr.Error {
	return &apperr.Error{Code: code, Field: d.Field, Message: fmt.Sprintf(format, a...), Err: d}
}

// classify turns a JSON v2 error into a coded one naming the field.
func classify(err error) error {
	var sem *jsonv2.SemanticError
	var syn *jsontext.SyntacticError
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fail(apperr.Malformed, &Detail{Kind: KindTruncated, Err: err}, "truncated JSON")
	case errors.As(err, &syn):
		if strings.Contains(syn.Error(), "after top-level value") {
			return fail(apperr.Malformed, &Detail{Kind: KindTrailing, Err: err}, "malformed JSON: %v", err)
		}
		// The pointer names the value being read (e.g. a string with an
		// invalid escape such as a lone surrogate \ud800).
		return fail(apperr.Malformed, &Detail{Kind: KindSyntax, Field: Path(string(syn.JSONPointer)), Err: err}, "malformed JSON: %v", err)
	case errors.As(err, &sem) && errors.Is(sem.Err, jsonv2.ErrUnknownName):
		return fail(apperr.Invalid, &Detail{Kind: KindUnknownField, Field: orBody(Path(string(sem.JSONPointer))), Err: err}, "is not a known field")
	case errors.As(err, &sem) && sem.GoType != nil && sem.JSONKind != 0 && sem.Err == nil:
		d := &Detail{Kind: KindType, Field: orBody(Path(string(sem.JSONPointer))), GoKind: sem.GoType.Kind().String(),
			JSONKind: kindName(sem.JSONKind), Err: err}
		return fail(apperr.Invalid, d, "must be %s, not JSON %s", article(d.GoKind), d.JSONKind)
	case errors.As(err, &sem) && sem.JSONPointer != "":
		// A value of the right kind that does not fit: a time that is not
		// RFC 3339, a number with a fraction or out of int64 range.
		d := &Detail{Kind: KindValue, Field: Path(string(sem.JSONPointer)), Err: err}
		if sem.GoType != nil {
			d.GoKind = sem.GoType.Kind().String()
		}
		if sem.Err != nil {
			return fail(apperr.Invalid, d, "invalid value: %v", sem.Err)
		}
		return fail(apperr.Invalid, d, "invalid value")
	case errors.Is(err, io.EOF):
		return fail(apperr.Malformed, &Detail{Kind: KindEmpty, Err: err}, "empty body")
	default:
		// A value at the top that does not fit (a time that is not RFC
		// 3339), an UnmarshalJSON failure.
		return fail(apperr.Malformed, &Detail{Kind: KindValue, Err: err}, "invalid JSON value: %v", err)
	}
}

func orBody(field string) string {
	if field == "" {
		return "(body)" // the document itself has the wrong kind, e.g. an array or a number
	}
	return field
}

// TooLargeError is what a size-limiting reader returns past its limit
// (MaxReader's; http.MaxBytesReader's *http.MaxBytesError is recognised
// too).
type TooLargeError struct{ Limit int64 }

// Error implements error.
func (e *TooLargeError) Error() string { return fmt.Sprintf("body exceeds %d bytes", e.Limit) }

// tooLarge returns the coded TooLarge error for a reader's size-limit
// error, nil for any other error.
func tooLarge(err error) error {
	var mbe *http.MaxBytesError
	var tle *TooLargeError
	limit := int64(-1)
	switch {
	case errors.As(err, &mbe):
		limit = mbe.Limit
	case errors.As(err, &tle):
		limit = tle.Limit
	default:
		return nil
	}
	return fail(apperr.TooLarge, &Detail{Kind: KindTooLarge, Limit: limit, Err: err}, "body exceeds %d bytes", limit)
}

// TooLarge returns the coded TooLarge error for a reader's size-limit error
// (*http.MaxBytesError, *TooLargeError), nil for any other error: for
// callers that read a body themselves before Unmarshal.
func TooLarge(err error) error { return tooLarge(err) }

// MaxReader returns a reader that fails with *TooLargeError once more than
// limit bytes were read from r (a decompressed body's limit; the wire
// body's is http.MaxBytesReader's).
func MaxReader(r io.Reader, limit int64) io.Reader {
	return &maxReader{r: r, left: limit, limit: limit}
}

type maxReader struct {
	r     io.Reader
	left  int64
	limit int64
}

// Read implements io.Reader.
func (m *maxReader) Read(p []byte) (int, error) {
	if m.left < 0 {
		return 0, &TooLargeError{Limit: m.limit}
	}
	if int64(len(p)) > m.left+1 {
		p = p[:m.left+1]
	}
	n, err := m.r.Read(p)
	m.left -= int64(n)
	if m.left < 0 {
		return n, &TooLargeError{Limit: m.limit}
	}
	return n, err
}

// Path turns a JSON Pointer (/events/3/user_sid) into the path notation of
// the protocol's errors (events[3].user_sid).
func Path(ptr string) string {
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

// kindName names a JSON value kind as encoding/json's errors did.
func kindName(k jsontext.Kind) string {
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

// article names what a Go kind holds, with its article.
func article(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "slice", "array":
		return "an array"
	case "struct", "map":
		return "an object"
	case "bool":
		return "a boolean"
	default:
		return "a number"
	}
}
