package dashboard

import (
	"encoding/base64"
	"encoding/json"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/cloud/service"
)

// What the resource routes share: body decoding, path ids, list pages,
// and optimistic concurrency (ETag / If-Match on a row's version).

// list is the envelope of every list answer: one page of items and the
// cursor of the next (absent on the last page).
type list[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor,omitempty"`
}

// newList returns items as a list (an empty page is [], never null).
func newList[T any](items []T, next string) list[T] {
	if items == nil {
		items = []T{}
	}
	return list[T]{Items: items, NextCursor: next}
}

// decode reads a JSON request body into v: the content type must be JSON,
// unknown members are refused, and a failure names the member at fault.
func (a *api) decode(r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return inParams(apperr.New(apperr.UnsupportedType, "Content-Type", "send the body as application/json"))
		}
	}
	return a.decoder.Decode(r.Body, v)
}

// pathID reads a numeric id from the path. One that cannot name a row
// answers 404 like a row the caller may not see.
func pathID(r *http.Request, name string) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue(name), 10, 64)
	if err != nil || id <= 0 {
		return 0, apperr.New(apperr.NotFound, "", "no such %s", strings.TrimSuffix(name, "_id"))
	}
	return id, nil
}

// page is a list request's paging: at most Limit items after Cursor, in
// Sort order.
type page struct {
	Limit  int
	Cursor string
	Sort   string
}

// Bounds of a page.
const (
	defaultLimit = 50
	maxLimit     = 200
)

// pageOf reads limit, cursor and sort from the query.
func pageOf(r *http.Request) (page, error) {
	q := r.URL.Query()
	p := page{Limit: defaultLimit, Cursor: q.Get("cursor"), Sort: q.Get("sort")}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxLimit {
			return p, inParams(apperr.New(apperr.Invalid, "limit", "limit must be a whole number from 1 to %d", maxLimit))
		}
		p.Limit = n
	}
	if len(p.Cursor) > 512 {
		return p, inParams(apperr.New(apperr.Invalid, "cursor", "the cursor is not one this API issued"))
	}
	return p, nil
}

// queryInt64 reads an optional positive id from the query (0: absent).
func queryInt64(r *http.Request, name string) (int64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return 0, inParams(apperr.New(apperr.Invalid, name, "%s must be a positive whole number", name))
	}
	return n, nil
}

// etag is the entity tag of a row at version v.
func etag(v int64) string { return `"` + strconv.FormatInt(v, 10) + `"` }

// ifMatch reads the version an update or delete expects: If-Match is
// required (428 without it), and must be one entity tag this API issued.
func ifMatch(r *http.Request) (int64, error) {
	h := strings.TrimSpace(r.Header.Get("If-Match"))
	if h == "" {
		return 0, inParams(apperr.New(apperr.Invalid, "If-Match", "send If-Match with the ETag you read, so that a change made meanwhile is not overwritten").
			WithReason(codePreconditionRequired))
	}
	v, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(h, `"`), `"`), 10, 64)
	if err != nil || v <= 0 || !strings.HasPrefix(h, `"`) || !strings.HasSuffix(h, `"`) || len(h) < 3 {
		return 0, inParams(apperr.New(apperr.Invalid, "If-Match", `If-Match must be one ETag as this API sent it, e.g. "3"`))
	}
	return v, nil
}

// stale is the answer to a write whose If-Match no longer matches.
func stale(what string) error {
	return inParams(apperr.New(apperr.Conflict, "If-Match", "the %s changed since you read it: read it again and reapply your change", what).
		WithReason(codePreconditionFailed))
}

// writeVersioned answers v with its ETag.
func writeVersioned(w http.ResponseWriter, status int, version int64, v any) {
	w.Header().Set("ETag", etag(version))
	service.WriteJSON(w, status, v)
}

// writeJSON answers v as JSON with status.
func writeJSON(w http.ResponseWriter, status int, v any) { service.WriteJSON(w, status, v) }

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// trimPage cuts a page read with one row more than limit (the keyset
// pages' way to know whether more follow) and returns the cursor of the
// next page, the key of the page's last row ("" on the last page).
func trimPage[T any](rows []T, limit int, key func(last T) any) ([]T, string) {
	if len(rows) <= limit {
		return rows, ""
	}
	rows = rows[:limit]
	return rows, encodeCursor(key(rows[len(rows)-1]))
}

// encodeCursor makes an opaque cursor of a page's last sort key (the
// client hands it back as it is; row-level security filters whatever it
// says, so it need not be signed).
func encodeCursor(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeCursor reads a cursor made by encodeCursor into v ("" leaves v).
func decodeCursor(s string, v any) error {
	if s == "" {
		return nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || json.Unmarshal(b, v) != nil {
		return badCursor()
	}
	return nil
}

// nonZero is v, or nil (JSON null) for zero: an optional id on the wire.
func nonZero(v int64) *int64 {
	if v == 0 {
		return nil
	}
	return &v
}
