package ingest

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/staffcontrol/staffcontrol/internal/cloud/auth"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// HandleLogs serves POST /v2/ingest/logs: active windows, visited sites
// and user sessions.
func (s *Service) HandleLogs(w http.ResponseWriter, r *http.Request) {
	s.serve(w, r, "logs", s.prepareLogs)
}

// HandleDeviceEvents serves POST /v2/ingest/device-events.
func (s *Service) HandleDeviceEvents(w http.ResponseWriter, r *http.Request) {
	s.serve(w, r, "device-events", s.prepareDeviceEvents)
}

// HandleScreenshots serves POST /v2/ingest/screenshots (multipart: the
// JSON part "batch", then one part per event named by its event id).
func (s *Service) HandleScreenshots(w http.ResponseWriter, r *http.Request) {
	s.serve(w, r, "screenshots", s.prepareScreenshots)
}

// readJSONBody reads a JSON body, gunzipping it when Content-Encoding says
// gzip, within the size limits before and after decompression.
func (s *Service) readJSONBody(r *http.Request) ([]byte, error) {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		return nil, reject(http.StatusUnsupportedMediaType, protocol.ErrCodeUnsupportedType, "Content-Type", "must be application/json")
	}
	body := http.MaxBytesReader(nil, r.Body, s.limits.MaxBodyBytes)
	var src io.Reader = body
	switch enc := strings.ToLower(r.Header.Get("Content-Encoding")); enc {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(body)
		if err != nil {
			return nil, tooLargeOr(err, reject(http.StatusBadRequest, protocol.ErrCodeMalformed, "Content-Encoding", "body is not valid gzip"))
		}
		defer zr.Close()
		src = zr
	default:
		return nil, reject(http.StatusUnsupportedMediaType, protocol.ErrCodeUnsupportedType, "Content-Encoding", "must be gzip or absent, not %q", enc)
	}
	b, err := io.ReadAll(io.LimitReader(src, s.limits.MaxDecodedBytes+1))
	if err != nil {
		return nil, tooLargeOr(err, reject(http.StatusBadRequest, protocol.ErrCodeMalformed, "", "cannot read body: %v", err))
	}
	if int64(len(b)) > s.limits.MaxDecodedBytes {
		return nil, reject(http.StatusRequestEntityTooLarge, protocol.ErrCodeTooLarge, "", "body exceeds %d bytes after decompression", s.limits.MaxDecodedBytes)
	}
	return b, nil
}

func tooLargeOr(err error, otherwise *httpError) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return reject(http.StatusRequestEntityTooLarge, protocol.ErrCodeTooLarge, "", "body exceeds %d bytes", mbe.Limit)
	}
	return otherwise
}

// readBatch reads and decodes a JSON batch into v and starts its prepared
// form, whose content hash is the hash of the decompressed body.
func (s *Service) readBatch(r *http.Request, v any) (*prepared, error) {
	body, err := s.readJSONBody(r)
	if err != nil {
		return nil, err
	}
	if err := decodeJSON(body, v); err != nil {
		return nil, err
	}
	return &prepared{hash: hashOf(body), days: map[string]time.Time{}}, nil
}

// decodeJSON decodes b into v, naming the field of a type mismatch. It
// uses the JSON v2 implementation (github.com/go-json-experiment/json, the
// code behind Go's encoding/json/v2 experiment): about twice as fast as
// encoding/json on 1,000-event batches, rejects duplicate member names, and
// reports where in the document a value was wrong.
func decodeJSON(b []byte, v any) error {
	err := jsonv2.Unmarshal(b, v)
	if err == nil {
		return nil
	}
	var se *jsonv2.SemanticError
	if errors.As(err, &se) {
		field := pointerPath(string(se.JSONPointer))
		kind := "value"
		if se.GoType != nil {
			kind = se.GoType.Kind().String()
		}
		return reject(http.StatusUnprocessableEntity, protocol.ErrCodeValidation, field, "cannot hold this JSON %s (want a %s)", se.JSONKind, kind)
	}
	return reject(http.StatusBadRequest, protocol.ErrCodeMalformed, "", "body is not valid JSON: %v", err)
}

// pointerPath turns a JSON Pointer (/events/3/seq) into the path notation
// of our error messages (events[3].seq).
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

// checkCommon validates what every batch shares: the gateway id, the
// number of events, and the drop reports.
func (s *Service) checkCommon(gw auth.Gateway, gatewayID string, n int, drops []protocol.Drop) error {
	if gatewayID != "" && !strings.EqualFold(gatewayID, gw.ID.String()) {
		return reject(http.StatusUnprocessableEntity, protocol.ErrCodeValidation, "gateway_id", "does not match the authenticated gateway")
	}
	if n == 0 && len(drops) == 0 {
		return reject(http.StatusUnprocessableEntity, protocol.ErrCodeValidation, "events", "is empty")
	}
	if n > s.limits.MaxEvents {
		return reject(http.StatusRequestEntityTooLarge, protocol.ErrCodeTooLarge, "events", "holds %d events, at most %d allowed", n, s.limits.MaxEvents)
	}
	for i, d := range drops {
		p := fmt.Sprintf("drops[%d]", i)
		switch {
		case d.Reason == "" || len(d.Reason) > 64:
			return reject(http.StatusUnprocessableEntity, protocol.ErrCodeValidation, p+".reason", "is required (at most 64 characters)")
		case d.Class == "" || len(d.Class) > 32:
			return reject(http.StatusUnprocessableEntity, protocol.ErrCodeValidation, p+".class", "is required (at most 32 characters)")
		case d.Count <= 0:
			return reject(http.StatusUnprocessableEntity, protocol.ErrCodeValidation, p+".count", "must be positive")
		}
	}
	return nil
}

// checkUploaded validates an event as a gateway uploads it: the agent's
// rules, plus the gateway's event id and sequence number.
func checkUploaded(e *protocol.Event, path string, now time.Time, allowed ...string) error {
	if e.EventID == "" {
		return reject(http.StatusUnprocessableEntity, protocol.ErrCodeValidation, path+".event_id", "is required")
	}
	if e.Seq <= 0 {
		return reject(http.StatusUnprocessableEntity, protocol.ErrCodeValidation, path+".seq", "must be a positive sequence number")
	}
	c := *e
	c.Seq, c.ReceivedAt = 0, nil
	if err := protocol.ValidateAgentEvent(&c, path, now, true); err != nil {
		return fromFieldError(err)
	}
	e.EventID = c.EventID
	for _, t := range allowed {
		if e.Type == t {
			return nil
		}
	}
	return reject(http.StatusUnprocessableEntity, protocol.ErrCodeValidation, path+".type", "%q is not accepted here (want %s)", e.Type, strings.Join(allowed, ", "))
}

func (s *Service) prepareLogs(r *http.Request, gw auth.Gateway) (*prepared, error) {
	var b protocol.LogBatch
	p, err := s.readBatch(r, &b)
	if err != nil {
		return nil, err
	}
	if err := s.checkCommon(gw, b.GatewayID, len(b.Events), b.Drops); err != nil {
		return nil, err
	}
	p.drops = b.Drops
	now := s.now()
	var aw, vs, us []*protocol.Event
	for i := range b.Events {
		e := &b.Events[i]
		if err := checkUploaded(e, fmt.Sprintf("events[%d]", i), now, protocol.TypeActiveWindow, protocol.TypeVisitedSite, protocol.TypeUserSession); err != nil {
			return nil, err
		}
		p.note(e.Seq, e.Datetime)
		switch e.Type {
		case protocol.TypeActiveWindow:
			aw = append(aw, e)
		case protocol.TypeVisitedSite:
			vs = append(vs, e)
		default:
			us = append(us, e)
		}
	}
	// Insert in event-id order: concurrent batches that share events (a
	// gateway's retry racing a re-formed batch) then take their row locks
	// in the same order and cannot deadlock on ON CONFLICT.
	for _, es := range [][]*protocol.Event{aw, vs, us} {
		sort.Slice(es, func(i, j int) bool { return es[i].EventID < es[j].EventID })
	}
	p.write = func(ctx context.Context, tx pgx.Tx, ins *inserts) (map[string]int, map[string]int, error) {
		acc, dup := map[string]int{}, map[string]int{}
		run := func(typ, sql string, n int, args ...any) error {
			if n == 0 {
				return nil
			}
			tag, err := tx.Exec(ctx, sql, append([]any{gw.OrganizationID, gw.ID}, args...)...)
			if err != nil {
				return fmt.Errorf("insert %s: %w", typ, err)
			}
			acc[typ], dup[typ] = int(tag.RowsAffected()), n-int(tag.RowsAffected())
			return nil
		}
		if err := run(protocol.TypeActiveWindow, ins.activeWindows, len(aw), activeWindowColumns(aw)...); err != nil {
			return nil, nil, err
		}
		if err := run(protocol.TypeVisitedSite, ins.visitedSites, len(vs), visitedSiteColumns(vs)...); err != nil {
			return nil, nil, err
		}
		if err := run(protocol.TypeUserSession, ins.userSessions, len(us), userSessionColumns(us)...); err != nil {
			return nil, nil, err
		}
		return acc, dup, nil
	}
	return p, nil
}

func (p *prepared) note(seq int64, t time.Time) {
	if seq > p.maxSeq {
		p.maxSeq = seq
	}
	k, d := dayKey(t)
	p.days[k] = d
}

func (s *Service) prepareDeviceEvents(r *http.Request, gw auth.Gateway) (*prepared, error) {
	var b protocol.DeviceEventBatch
	p, err := s.readBatch(r, &b)
	if err != nil {
		return nil, err
	}
	if err := s.checkCommon(gw, b.GatewayID, len(b.Events), b.Drops); err != nil {
		return nil, err
	}
	p.drops = b.Drops
	now := s.now()
	var deviceIDs []int64
	devicePath := map[int64]string{}
	for i := range b.Events {
		e := &b.Events[i]
		path := fmt.Sprintf("events[%d]", i)
		if e.EventID == "" {
			return nil, reject(http.StatusUnprocessableEntity, protocol.ErrCodeValidation, path+".event_id", "is required")
		}
		if e.Seq <= 0 {
			return nil, reject(http.StatusUnprocessableEntity, protocol.ErrCodeValidation, path+".seq", "must be a positive sequence number")
		}
		if err := protocol.ValidateDeviceEvent(e, path); err != nil {
			return nil, fromFieldError(err)
		}
		if e.Datetime.Before(now.AddDate(0, 0, -400)) || e.Datetime.After(now.Add(24*time.Hour)) {
			return nil, reject(http.StatusUnprocessableEntity, protocol.ErrCodeValidation, path+".datetime", "is out of range (more than 400 days old or 1 day ahead)")
		}
		for _, f := range []struct{ name, v string }{{"employee_number", e.EmployeeNumber}, {"card_number", e.CardNumber}, {"verify_mode", e.VerifyMode}, {"direction", e.Direction}} {
			if len(f.v) > protocol.MaxShortField {
				return nil, reject(http.StatusUnprocessableEntity, protocol.ErrCodeValidation, path+"."+f.name, "is longer than %d characters", protocol.MaxShortField)
			}
		}
		if e.DeviceID != nil {
			if _, seen := devicePath[*e.DeviceID]; !seen {
				devicePath[*e.DeviceID] = path + ".device_id"
				deviceIDs = append(deviceIDs, *e.DeviceID)
			}
		}
		p.note(e.Seq, e.Datetime)
	}
	p.check = func(ctx context.Context, tx pgx.Tx) error {
		if len(deviceIDs) > 0 {
			// Row-level security hides other organisations' devices, so an
			// id of theirs is as unknown as one that does not exist.
			rows, err := tx.Query(ctx, s.q.knownDevices, deviceIDs)
			if err != nil {
				return fmt.Errorf("look up devices: %w", err)
			}
			known, err := pgx.CollectRows(rows, pgx.RowTo[int64])
			if err != nil {
				return fmt.Errorf("look up devices: %w", err)
			}
			have := map[int64]bool{}
			for _, id := range known {
				have[id] = true
			}
			sort.Slice(deviceIDs, func(i, j int) bool { return devicePath[deviceIDs[i]] < devicePath[deviceIDs[j]] })
			for _, id := range deviceIDs {
				if !have[id] {
					return reject(http.StatusUnprocessableEntity, protocol.ErrCodeValidation, devicePath[id], "device %d is not a device of this organisation", id)
				}
			}
		}
		return nil
	}
	// Event-id order, as for logs: no deadlock between overlapping batches.
	sort.Slice(b.Events, func(i, j int) bool { return b.Events[i].EventID < b.Events[j].EventID })
	p.write = func(ctx context.Context, tx pgx.Tx, ins *inserts) (map[string]int, map[string]int, error) {
		tag, err := tx.Exec(ctx, ins.deviceEvents, append([]any{gw.OrganizationID, gw.ID}, deviceEventColumns(b.Events)...)...)
		if err != nil {
			return nil, nil, fmt.Errorf("insert device events: %w", err)
		}
		n := int(tag.RowsAffected())
		return map[string]int{"device_event": n}, map[string]int{"device_event": len(b.Events) - n}, nil
	}
	return p, nil
}

func (s *Service) prepareScreenshots(r *http.Request, gw auth.Gateway) (*prepared, error) {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "multipart/form-data" {
		return nil, reject(http.StatusUnsupportedMediaType, protocol.ErrCodeUnsupportedType, "Content-Type", "must be multipart/form-data")
	}
	r.Body = http.MaxBytesReader(nil, r.Body, s.limits.MaxDecodedBytes)
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, reject(http.StatusBadRequest, protocol.ErrCodeMalformed, "", "bad multipart body: %v", err)
	}
	part, err := mr.NextPart()
	if err != nil || part.FormName() != protocol.ScreenshotBatchPart {
		return nil, reject(http.StatusUnprocessableEntity, protocol.ErrCodeValidation, protocol.ScreenshotBatchPart, "the first part must be the JSON part %q", protocol.ScreenshotBatchPart)
	}
	batchJSON, err := io.ReadAll(io.LimitReader(part, s.limits.MaxBodyBytes+1))
	if err != nil {
		return nil, tooLargeOr(err, reject(http.StatusBadRequest, protocol.ErrCodeMalformed, protocol.ScreenshotBatchPart, "cannot read: %v", err))
	}
	if int64(len(batchJSON)) > s.limits.MaxBodyBytes {
		return nil, reject(http.StatusRequestEntityTooLarge, protocol.ErrCodeTooLarge, protocol.ScreenshotBatchPart, "exceeds %d bytes", s.limits.MaxBodyBytes)
	}
	var b protocol.ScreenshotBatch
	if err := decodeJSON(batchJSON, &b); err != nil {
		return nil, err
	}
	if err := s.checkCommon(gw, b.GatewayID, len(b.Events), b.Drops); err != nil {
		return nil, err
	}
	now := s.now()
	p := &prepared{days: map[string]time.Time{}, drops: b.Drops}
	index := map[string]int{}
	for i := range b.Events {
		e := &b.Events[i]
		path := fmt.Sprintf("events[%d]", i)
		if err := checkUploaded(e, path, now, protocol.TypeScreenshot); err != nil {
			return nil, err
		}
		if e.Screenshot.Size <= 0 || e.Screenshot.Size > s.limits.MaxImageBytes {
			return nil, reject(http.StatusUnprocessableEntity, protocol.ErrCodeValidation, path+".screenshot.size", "must be between 1 and %d bytes", s.limits.MaxImageBytes)
		}
		if _, dup := index[e.EventID]; dup {
			return nil, reject(http.StatusUnprocessableEntity, protocol.ErrCodeValidation, path+".event_id", "appears twice in the batch")
		}
		index[e.EventID] = i
		p.note(e.Seq, e.Datetime)
	}
	images := make([][]byte, len(b.Events))
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, tooLargeOr(err, reject(http.StatusBadRequest, protocol.ErrCodeMalformed, "", "bad multipart body: %v", err))
		}
		id, _ := uuid.Parse(part.FormName())
		i, ok := index[id.String()]
		if !ok {
			return nil, reject(http.StatusUnprocessableEntity, protocol.ErrCodeValidation, part.FormName(), "part does not name an event of the batch")
		}
		if images[i] != nil {
			return nil, reject(http.StatusUnprocessableEntity, protocol.ErrCodeValidation, part.FormName(), "image sent twice")
		}
		img, err := io.ReadAll(io.LimitReader(part, s.limits.MaxImageBytes+1))
		if err != nil {
			return nil, tooLargeOr(err, reject(http.StatusBadRequest, protocol.ErrCodeMalformed, part.FormName(), "cannot read image: %v", err))
		}
		meta := b.Events[i].Screenshot
		sum := sha256.Sum256(img)
		path := fmt.Sprintf("events[%d].screenshot", i)
		if int64(len(img)) != meta.Size {
			return nil, reject(http.StatusUnprocessableEntity, protocol.ErrCodeValidation, path+".size", "is %d but the image has %d bytes", meta.Size, len(img))
		}
		if hex.EncodeToString(sum[:]) != meta.SHA256 {
			return nil, reject(http.StatusUnprocessableEntity, protocol.ErrCodeValidation, path+".sha256", "does not match the image")
		}
		images[i] = img
	}
	for i := range images {
		if images[i] == nil {
			return nil, reject(http.StatusUnprocessableEntity, protocol.ErrCodeValidation, fmt.Sprintf("events[%d].screenshot", i), "has no image part named %s", b.Events[i].EventID)
		}
	}
	// The content hash covers the metadata and every image's digest, not
	// the multipart framing, whose boundary changes from one try to the next.
	h := sha256.New()
	h.Write(batchJSON)
	for _, e := range b.Events {
		h.Write([]byte(e.EventID + e.Screenshot.SHA256))
	}
	p.hash = h.Sum(nil)
	paths := make([]string, len(b.Events))
	for i, e := range b.Events {
		paths[i] = screenshotKey(gw.OrganizationID, e)
	}
	p.before = func(ctx context.Context) error {
		for i := range images {
			if err := s.files.Put(ctx, paths[i], bytes.NewReader(images[i])); err != nil {
				return fmt.Errorf("store screenshot: %w", err)
			}
		}
		return nil
	}
	p.write = func(ctx context.Context, tx pgx.Tx, ins *inserts) (map[string]int, map[string]int, error) {
		tag, err := tx.Exec(ctx, ins.screenshots, append([]any{gw.OrganizationID, gw.ID}, screenshotColumns(b.Events, paths)...)...)
		if err != nil {
			return nil, nil, fmt.Errorf("insert screenshots: %w", err)
		}
		n := int(tag.RowsAffected())
		return map[string]int{protocol.TypeScreenshot: n}, map[string]int{protocol.TypeScreenshot: len(b.Events) - n}, nil
	}
	return p, nil
}

// screenshotKey is where a screenshot's image is stored: by organisation
// and day, named by event id, so a re-sent image lands on the same file.
func screenshotKey(org int64, e protocol.Event) string {
	ext := map[string]string{"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}[e.Screenshot.ContentType]
	return fmt.Sprintf("screenshots/%d/%s/%s.%s", org, e.Datetime.UTC().Format("2006-01-02"), e.EventID, ext)
}
