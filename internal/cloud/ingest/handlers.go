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
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/cloud/auth"
	"github.com/staffcontrol/staffcontrol/internal/cloud/ingest/ingestdb"
	"github.com/staffcontrol/staffcontrol/internal/cloud/storage"
	"github.com/staffcontrol/staffcontrol/internal/jsondecode"
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
		return nil, apperr.New(apperr.UnsupportedType, "Content-Type", "must be application/json")
	}
	body := http.MaxBytesReader(nil, r.Body, s.limits.MaxBodyBytes)
	var src io.Reader = body
	switch enc := strings.ToLower(r.Header.Get("Content-Encoding")); enc {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(body)
		if err != nil {
			return nil, tooLargeOr(err, apperr.New(apperr.Malformed, "Content-Encoding", "body is not valid gzip"))
		}
		defer zr.Close()
		src = zr
	default:
		return nil, apperr.New(apperr.UnsupportedType, "Content-Encoding", "must be gzip or absent, not %q", enc)
	}
	b, err := io.ReadAll(io.LimitReader(src, s.limits.MaxDecodedBytes+1))
	if err != nil {
		return nil, tooLargeOr(err, apperr.New(apperr.Malformed, "", "cannot read body: %v", err))
	}
	if int64(len(b)) > s.limits.MaxDecodedBytes {
		return nil, apperr.New(apperr.TooLarge, "", "body exceeds %d bytes after decompression", s.limits.MaxDecodedBytes)
	}
	return b, nil
}

// tooLargeOr is the reader's size-limit error as a coded TooLarge, or
// otherwise.
func tooLargeOr(err error, otherwise error) error {
	if tl := jsondecode.TooLarge(err); tl != nil {
		return tl
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
	if err := s.json.Unmarshal(body, v); err != nil {
		return nil, err
	}
	return &prepared{hash: hashOf(body)}, nil
}

// newDecoder is the decoder of batches: the strict one, with unknown
// members ignored as docs/protocol.md promises, names matched exactly.
// jsondecode uses the JSON v2 implementation: about twice as fast as
// encoding/json on 1,000-event batches, it rejects duplicate member names
// and reports where in the document a value was wrong.
func newDecoder() *jsondecode.Decoder {
	return jsondecode.New(jsondecode.IgnoreUnknownFields())
}

// checkCommon validates what every batch shares: the gateway id, the
// number of events, and the drop reports.
func (s *Service) checkCommon(gw auth.Gateway, gatewayID string, n int, drops []protocol.Drop) error {
	if gatewayID != "" && !strings.EqualFold(gatewayID, gw.ID.String()) {
		return apperr.New(apperr.Invalid, "gateway_id", "does not match the authenticated gateway")
	}
	if n == 0 && len(drops) == 0 {
		return apperr.New(apperr.Invalid, "events", "is empty")
	}
	if n > s.limits.MaxEvents {
		return apperr.New(apperr.TooLarge, "events", "holds %d events, at most %d allowed", n, s.limits.MaxEvents)
	}
	for i, d := range drops {
		p := fmt.Sprintf("drops[%d]", i)
		switch {
		case d.Reason == "" || len(d.Reason) > 64:
			return apperr.New(apperr.Invalid, p+".reason", "is required (at most 64 characters)")
		case d.Class == "" || len(d.Class) > 32:
			return apperr.New(apperr.Invalid, p+".class", "is required (at most 32 characters)")
		case d.Count <= 0:
			return apperr.New(apperr.Invalid, p+".count", "must be positive")
		}
		for _, f := range []struct{ name, v string }{{"reason", d.Reason}, {"class", d.Class}} {
			if err := protocol.CheckText(p+"."+f.name, f.v, true, 64); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkUploaded validates an event as a gateway uploads it: the agent's
// rules, plus the gateway's event id and sequence number.
func checkUploaded(e *protocol.Event, path string, now time.Time, allowed ...string) error {
	if e.EventID == "" {
		return apperr.New(apperr.Invalid, path+".event_id", "is required")
	}
	if e.Seq <= 0 {
		return apperr.New(apperr.Invalid, path+".seq", "must be a positive sequence number")
	}
	c := *e
	c.Seq, c.ReceivedAt = 0, nil
	if err := protocol.ValidateAgentEvent(&c, path, now, true); err != nil {
		return err
	}
	e.EventID = c.EventID
	for _, t := range allowed {
		if e.Type == t {
			return nil
		}
	}
	return apperr.New(apperr.Invalid, path+".type", "%q is not accepted here (want %s)", e.Type, strings.Join(allowed, ", "))
}

// checkUploadedAt is checkUploaded for events[i], with the path built only
// when the event is refused: the rules are deterministic (now is fixed), so
// the second run refuses it with the same error, now naming the field. An
// accepted event costs no path strings (1,000 per batch, each field's
// joined in protocol's validation).
func checkUploadedAt(e *protocol.Event, i int, now time.Time, allowed ...string) error {
	if checkUploaded(e, "", now, allowed...) == nil {
		return nil
	}
	// checkUploaded changes e only when it accepts it.
	return checkUploaded(e, fmt.Sprintf("events[%d]", i), now, allowed...)
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
	var aw, vs, us []int
	for i := range b.Events {
		e := &b.Events[i]
		if err := checkUploadedAt(e, i, now, protocol.TypeActiveWindow, protocol.TypeVisitedSite, protocol.TypeUserSession); err != nil {
			return nil, err
		}
		p.note(i, e.Type, e.EventID, e.Seq, e.Datetime)
		switch e.Type {
		case protocol.TypeActiveWindow:
			aw = append(aw, i)
		case protocol.TypeVisitedSite:
			vs = append(vs, i)
		default:
			us = append(us, i)
		}
	}
	for _, idx := range [][]int{aw, vs, us} {
		p.inEventIDOrder(idx)
	}
	p.write = func(ctx context.Context, tx pgx.Tx, ins *inserts, keep func(int) bool) (written, error) {
		return insertSeries(ctx, s, tx, ins.schema, gw, b.Events, p.rows, keep,
			series[protocol.Event]{aw, ins.activeWindows, noFiles(activeWindowColumns)},
			series[protocol.Event]{vs, ins.visitedSites, noFiles(visitedSiteColumns)},
			series[protocol.Event]{us, ins.userSessions, noFiles(userSessionColumns)})
	}
	return p, nil
}

// note records events[i] (its rows entry) and its sequence number.
func (p *prepared) note(i int, typ, id string, seq int64, t time.Time) {
	if seq > p.maxSeq {
		p.maxSeq = seq
	}
	p.rows = append(p.rows, row{index: i, typ: typ, table: tableOf[typ], id: id, seq: seq, at: t})
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
			return nil, apperr.New(apperr.Invalid, path+".event_id", "is required")
		}
		if e.Seq <= 0 {
			return nil, apperr.New(apperr.Invalid, path+".seq", "must be a positive sequence number")
		}
		// The shared rules (text, lengths, ranges, the device-event horizon)
		// are the collector's too: what the gateway accepts, the cloud stores.
		if err := protocol.ValidateDeviceEventAt(e, path, now); err != nil {
			return nil, err
		}
		if e.DeviceID != nil {
			if _, seen := devicePath[*e.DeviceID]; !seen {
				devicePath[*e.DeviceID] = path + ".device_id"
				deviceIDs = append(deviceIDs, *e.DeviceID)
			}
		}
		p.note(i, typeDeviceEvent, e.EventID, e.Seq, e.Datetime)
	}
	p.check = func(ctx context.Context, tx pgx.Tx) error {
		if len(deviceIDs) > 0 {
			// Row-level security hides other organisations' devices, so an
			// id of theirs is as unknown as one that does not exist.
			known, err := ingestdb.New(tx).KnownDevices(ctx, deviceIDs)
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
					return apperr.New(apperr.Invalid, devicePath[id], "device %d is not a device of this organisation", id)
				}
			}
		}
		return nil
	}
	order := p.inEventIDOrder(positions(len(b.Events)))
	p.write = func(ctx context.Context, tx pgx.Tx, ins *inserts, keep func(int) bool) (written, error) {
		return insertSeries(ctx, s, tx, ins.schema, gw, b.Events, p.rows, keep,
			series[protocol.DeviceEvent]{order, ins.deviceEvents, noFiles(deviceEventColumns)})
	}
	return p, nil
}

func (s *Service) prepareScreenshots(r *http.Request, gw auth.Gateway) (*prepared, error) {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "multipart/form-data" {
		return nil, apperr.New(apperr.UnsupportedType, "Content-Type", "must be multipart/form-data")
	}
	r.Body = http.MaxBytesReader(nil, r.Body, s.limits.MaxDecodedBytes)
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, apperr.New(apperr.Malformed, "", "bad multipart body: %v", err)
	}
	part, err := mr.NextPart()
	if err != nil || part.FormName() != protocol.ScreenshotBatchPart {
		return nil, apperr.New(apperr.Invalid, protocol.ScreenshotBatchPart, "the first part must be the JSON part %q", protocol.ScreenshotBatchPart)
	}
	batchJSON, err := io.ReadAll(io.LimitReader(part, s.limits.MaxBodyBytes+1))
	if err != nil {
		return nil, tooLargeOr(err, apperr.New(apperr.Malformed, protocol.ScreenshotBatchPart, "cannot read: %v", err))
	}
	if int64(len(batchJSON)) > s.limits.MaxBodyBytes {
		return nil, apperr.New(apperr.TooLarge, protocol.ScreenshotBatchPart, "exceeds %d bytes", s.limits.MaxBodyBytes)
	}
	var b protocol.ScreenshotBatch
	if err := s.json.Unmarshal(batchJSON, &b); err != nil {
		return nil, err
	}
	if err := s.checkCommon(gw, b.GatewayID, len(b.Events), b.Drops); err != nil {
		return nil, err
	}
	now := s.now()
	p := &prepared{drops: b.Drops}
	index := map[string]int{}
	for i := range b.Events {
		e := &b.Events[i]
		path := fmt.Sprintf("events[%d]", i)
		if err := checkUploaded(e, path, now, protocol.TypeScreenshot); err != nil {
			return nil, err
		}
		if e.Screenshot.Size <= 0 || e.Screenshot.Size > s.limits.MaxImageBytes {
			return nil, apperr.New(apperr.Invalid, path+".screenshot.size", "must be between 1 and %d bytes", s.limits.MaxImageBytes)
		}
		if _, dup := index[e.EventID]; dup {
			return nil, apperr.New(apperr.Invalid, path+".event_id", "appears twice in the batch")
		}
		index[e.EventID] = i
		p.note(i, protocol.TypeScreenshot, e.EventID, e.Seq, e.Datetime)
	}
	images := make([][]byte, len(b.Events))
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, tooLargeOr(err, apperr.New(apperr.Malformed, "", "bad multipart body: %v", err))
		}
		id, _ := uuid.Parse(part.FormName())
		i, ok := index[id.String()]
		if !ok {
			return nil, apperr.New(apperr.Invalid, part.FormName(), "part does not name an event of the batch")
		}
		if images[i] != nil {
			return nil, apperr.New(apperr.Invalid, part.FormName(), "image sent twice")
		}
		img, err := io.ReadAll(io.LimitReader(part, s.limits.MaxImageBytes+1))
		if err != nil {
			return nil, tooLargeOr(err, apperr.New(apperr.Malformed, part.FormName(), "cannot read image: %v", err))
		}
		meta := b.Events[i].Screenshot
		sum := sha256.Sum256(img)
		path := fmt.Sprintf("events[%d].screenshot", i)
		if int64(len(img)) != meta.Size {
			return nil, apperr.New(apperr.Invalid, path+".size", "is %d but the image has %d bytes", meta.Size, len(img))
		}
		if hex.EncodeToString(sum[:]) != meta.SHA256 {
			return nil, apperr.New(apperr.Invalid, path+".sha256", "does not match the image")
		}
		images[i] = img
	}
	for i := range images {
		if images[i] == nil {
			return nil, apperr.New(apperr.Invalid, fmt.Sprintf("events[%d].screenshot", i), "has no image part named %s", b.Events[i].EventID)
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
	// Each upload writes its own files (the key carries a per-request
	// suffix) and writes them create-only: a duplicate never replaces the
	// bytes a stored row references, and the files of an upload that no
	// committed row references can be removed without touching another's.
	upload := strings.ReplaceAll(uuid.NewString(), "-", "")[:12]
	fs := &fileSet{paths: make([]string, len(b.Events)), ids: make([]string, len(b.Events)), created: make([]bool, len(b.Events))}
	for i, e := range b.Events {
		fs.paths[i], fs.ids[i] = screenshotKey(gw.OrganizationID, e, upload), e.EventID
	}
	p.files = fs
	p.before = func(ctx context.Context) error {
		for i := range images {
			err := s.files.Create(ctx, fs.paths[i], bytes.NewReader(images[i]))
			if errors.Is(err, storage.ErrExists) {
				// Not ours: leave it alone (and never remove it).
				continue
			}
			if err != nil {
				return fmt.Errorf("store screenshot: %w", err)
			}
			fs.created[i] = true
		}
		return nil
	}
	order := p.inEventIDOrder(positions(len(b.Events)))
	columns := func(es []*protocol.Event, rs []row) ([]any, []string) {
		paths := make([]string, len(rs))
		for k, r := range rs {
			paths[k] = fs.paths[r.index]
		}
		return screenshotColumns(es, paths), paths
	}
	p.write = func(ctx context.Context, tx pgx.Tx, ins *inserts, keep func(int) bool) (written, error) {
		return insertSeries(ctx, s, tx, ins.schema, gw, b.Events, p.rows, keep, series[protocol.Event]{order, ins.screenshots, columns})
	}
	return p, nil
}

// screenshotKey is where a screenshot's image is stored:
// screenshots/<organisation>/<UTC day>/<event id>-<upload>.<ext>, upload
// being the uploading request's own suffix.
func screenshotKey(org int64, e protocol.Event, upload string) string {
	ext := map[string]string{"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}[e.Screenshot.ContentType]
	return fmt.Sprintf("%s%d/%s/%s-%s.%s", screenshotPrefix, org, e.Datetime.UTC().Format(time.DateOnly), e.EventID, upload, ext)
}
