package directory

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
)

// Page asks for one page of a list: at most Limit rows (1..MaxLimit, 0 for
// DefaultLimit) after Cursor (empty for the first page; otherwise the next
// cursor a previous page returned, with the same Sort), in the order Sort
// names (a key, "-key" for descending; empty for the list's default).
type Page struct {
	Limit  int
	Cursor string
	Sort   string
}

// Page sizes.
const (
	DefaultLimit = 50
	MaxLimit     = 200
)

// maxCursorLen bounds an encoded cursor before it is decoded.
const maxCursorLen = 4096

// sortKind is the type of a sort key's column.
type sortKind int

const (
	sortText sortKind = iota
	sortTime
	sortID
)

// cursor is the position after the last row of a page: the sort it belongs
// to, the row's sort key (text or time, none for the id sort) and its id.
// Its encoding is base64url (no padding) of compact JSON; it is opaque to
// callers and not secret (row-level security filters whatever it says).
type cursor struct {
	Sort string `json:"s"`
	Text string `json:"k,omitempty"`
	Time int64  `json:"t,omitempty"` // Unix microseconds (PostgreSQL's precision)
	ID   int64  `json:"i"`
}

// encodeCursor returns c's opaque form.
func encodeCursor(c cursor) string {
	b, _ := json.Marshal(c) // a struct of strings and integers always marshals
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeCursor reads an opaque cursor for the sort named sort (of kind
// kind): anything else — not base64url, not the JSON of a cursor, another
// sort's cursor, a missing id or key — is an Invalid error naming the field
// "cursor".
func decodeCursor(s, sort string, kind sortKind) (cursor, error) {
	bad := func(why string) (cursor, error) {
		return cursor{}, apperr.Field("cursor", "%s: start again from the first page", why)
	}
	if len(s) > maxCursorLen {
		return bad("too long")
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil {
		return bad("not a cursor this API returned")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var c cursor
	if err := dec.Decode(&c); err != nil || dec.More() {
		return bad("not a cursor this API returned")
	}
	switch {
	case c.Sort != sort:
		return bad("it belongs to another sort order")
	case c.ID <= 0, strings.ContainsRune(c.Text, 0), !utf8.ValidString(c.Text):
		return bad("not a cursor this API returned")
	case kind != sortText && c.Text != "", kind != sortTime && c.Time != 0:
		return bad("not a cursor this API returned")
	case kind == sortTime && (c.Time == 0 || c.Time < minCursorTime || c.Time > maxCursorTime):
		return bad("not a cursor this API returned")
	}
	return c, nil
}

// The range of a time cursor: years 1970 to 9999, well inside what
// PostgreSQL's timestamptz and Go's time.Time hold.
var (
	minCursorTime = int64(1)
	maxCursorTime = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC).UnixMicro()
)

// sortSpec is one accepted sort of a list.
type sortSpec struct {
	name string // as the caller writes it: "last_name", "-created_at"
	kind sortKind
}

// pageArgs are the validated page parameters.
type pageArgs struct {
	sort   sortSpec
	limit  int
	after  *cursor
	fetchN int32 // limit + 1, to know whether a next page exists
}

// parsePage validates p against the list's sorts (the first is the
// default) and decodes its cursor. Errors name "limit", "sort" and
// "cursor".
func parsePage(p Page, sorts []sortSpec) (pageArgs, error) {
	var errs apperr.FieldErrors
	a := pageArgs{limit: p.Limit}
	if a.limit == 0 {
		a.limit = DefaultLimit
	}
	if a.limit < 1 || a.limit > MaxLimit {
		errs = append(errs, apperr.Field("limit", "must be between 1 and %d", MaxLimit))
	}
	a.sort = sorts[0]
	if p.Sort != "" {
		found := false
		for _, s := range sorts {
			if s.name == p.Sort {
				a.sort, found = s, true
			}
		}
		if !found {
			names := make([]string, len(sorts))
			for i, s := range sorts {
				names[i] = s.name
			}
			errs = append(errs, apperr.Field("sort", "%q is not a sort order of this list (one of %s)", p.Sort, strings.Join(names, ", ")))
		}
	}
	if len(errs) > 0 {
		return a, errs
	}
	if p.Cursor != "" {
		c, err := decodeCursor(p.Cursor, a.sort.name, a.sort.kind)
		if err != nil {
			return a, apperr.FieldErrors{err.(*apperr.FieldError)}
		}
		a.after = &c
	}
	a.fetchN = int32(a.limit + 1)
	return a, nil
}

// afterTime is the time of a time cursor.
func (c cursor) afterTime() time.Time { return time.UnixMicro(c.Time).UTC() }

// likePattern returns the ILIKE pattern matching q as a substring, its
// wildcards escaped; "" for no query.
func likePattern(q string) string {
	if q == "" {
		return ""
	}
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return "%" + r.Replace(q) + "%"
}
