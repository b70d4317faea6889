package retention

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/cloud/retention/retentiondb"
)

// archiveTime is the layout of the times in an archive object's key.
const archiveTime = "20060102T150405.000000Z"

// ArchiveKey is the storage key of the archive of one batch: the rows of
// organisation org's series table from from to to (their oldest and newest
// datetime), written by run runID as its seq-th archive object (batches
// may span the same times: a row and its copy in the fallback, many rows
// of one instant).
func ArchiveKey(org int64, table string, from, to time.Time, runID int64, seq int) string {
	return fmt.Sprintf("archive/%d/%s/%s_%s_%d-%d.csv.gz", org, table, from.UTC().Format(archiveTime), to.UTC().Format(archiveTime), runID, seq)
}

// archive writes the batch as gzip CSV (a header of the table's columns,
// a line per row, NULL as an empty field) to its key, write-once. It
// returns once the object is complete and durable: before the delete
// commits.
func (w *work) archive(ctx context.Context, h retentiondb.HorizonsRow, rows []retentiondb.DeleteBatchRow) error {
	from, to := rows[0].Datetime, rows[0].Datetime
	for _, r := range rows {
		if r.Datetime.Before(from) {
			from = r.Datetime
		}
		if r.Datetime.After(to) {
			to = r.Datetime
		}
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	cw := csv.NewWriter(zw)
	var header []string
	for i, r := range rows {
		names, values, err := flatten(r.RowJson)
		if err != nil {
			return fmt.Errorf("archive: row %s: %w", r.ID, err)
		}
		if i == 0 {
			header = names
			if err := cw.Write(header); err != nil {
				return fmt.Errorf("archive: %w", err)
			}
		} else if strings.Join(names, ",") != strings.Join(header, ",") {
			return fmt.Errorf("archive: row %s has columns %v, not %v", r.ID, names, header)
		}
		if err := cw.Write(values); err != nil {
			return fmt.Errorf("archive: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	key := ArchiveKey(h.OrganizationID, h.TableName, from, to, w.res.RunID, w.res.Archived+1)
	if err := w.r.files.Create(ctx, key, &buf); err != nil {
		return fmt.Errorf("archive: write %s: %w", key, err)
	}
	return nil
}

// flatten reads a row's JSON object (row_to_json: the table's columns in
// order) into its column names and values as CSV fields: strings as they
// are, numbers and booleans as JSON writes them, NULL as "".
func flatten(obj string) (names, values []string, err error) {
	dec := json.NewDecoder(strings.NewReader(obj))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, nil, fmt.Errorf("not a JSON object")
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, err
		}
		name, ok := tok.(string)
		if !ok {
			return nil, nil, fmt.Errorf("member name %v", tok)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, nil, err
		}
		var v any
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		if err := d.Decode(&v); err != nil {
			return nil, nil, err
		}
		var s string
		switch x := v.(type) {
		case nil:
			s = ""
		case string:
			s = x
		case json.Number:
			s = x.String()
		case bool:
			s = fmt.Sprint(x)
		default:
			s = string(raw) // a nested value: its JSON
		}
		names = append(names, name)
		values = append(values, s)
	}
	if _, err := dec.Token(); err != nil && err != io.EOF {
		return nil, nil, err
	}
	return names, values, nil
}
