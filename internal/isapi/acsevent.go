package isapi

import (
	"encoding/json"
	"fmt"
	"time"
)

// AcsEvent search limits and answers.
const (
	// MaxSearchResults is the largest maxResults a device accepts.
	MaxSearchResults = 30
	// MaxSearchIDLen bounds searchID.
	MaxSearchIDLen = 64
	// Search answers (responseStatusStrg).
	SearchOK      = "OK"
	SearchMore    = "MORE"
	SearchNoMatch = "NO MATCH"
	// TimeLayout is the ISO 8601 form with offset devices use.
	TimeLayout = "2006-01-02T15:04:05-07:00"
)

// AcsEventCond is the condition of
// `POST /ISAPI/AccessControl/AcsEvent?format=json`.
type AcsEventCond struct {
	SearchID             string `json:"searchID"`
	SearchResultPosition int    `json:"searchResultPosition"`
	MaxResults           int    `json:"maxResults"`
	Major                int    `json:"major"`
	Minor                int    `json:"minor"`
	StartTime            string `json:"startTime,omitempty"`
	EndTime              string `json:"endTime,omitempty"`
	EmployeeNoString     string `json:"employeeNoString,omitempty"`
	CardNo               string `json:"cardNo,omitempty"`
	BeginSerialNo        int64  `json:"beginSerialNo,omitempty"`
	EndSerialNo          int64  `json:"endSerialNo,omitempty"`
	TimeReverseOrder     bool   `json:"timeReverseOrder,omitempty"`
	PicEnable            *bool  `json:"picEnable,omitempty"`
}

type acsEventCondJSON struct {
	AcsEventCond *AcsEventCond `json:"AcsEventCond"`
}

// Encode renders the request body.
func (c AcsEventCond) Encode() []byte { return EncodeJSON(acsEventCondJSON{&c}) }

// Validate checks the limits a device enforces (searchID 1..64 chars,
// position 0..300000, maxResults 1..30, times in TimeLayout when given).
func (c AcsEventCond) Validate() error {
	switch {
	case c.SearchID == "" || len(c.SearchID) > MaxSearchIDLen:
		return fmt.Errorf("searchID must have 1..%d characters", MaxSearchIDLen)
	case c.SearchResultPosition < 0 || c.SearchResultPosition > 300000:
		return fmt.Errorf("searchResultPosition %d out of 0..300000", c.SearchResultPosition)
	case c.MaxResults < 1 || c.MaxResults > MaxSearchResults:
		return fmt.Errorf("maxResults %d out of 1..%d", c.MaxResults, MaxSearchResults)
	case c.BeginSerialNo < 0 || c.EndSerialNo < 0:
		return fmt.Errorf("negative serial number")
	}
	for _, t := range []string{c.StartTime, c.EndTime} {
		if t == "" {
			continue
		}
		if _, err := time.Parse(TimeLayout, t); err != nil {
			return fmt.Errorf("time %q: %v", t, err)
		}
	}
	return nil
}

// DecodeAcsEventCond decodes a search request (the simulator's side).
func DecodeAcsEventCond(body []byte) (AcsEventCond, error) {
	if len(body) > MaxDocument {
		return AcsEventCond{}, fmt.Errorf("AcsEventCond: %w: %d bytes", ErrMalformed, len(body))
	}
	var c AcsEventCond
	j := acsEventCondJSON{AcsEventCond: &c}
	if err := json.Unmarshal(body, &j); err != nil {
		return AcsEventCond{}, fmt.Errorf("AcsEventCond: %w: %v", ErrMalformed, err)
	}
	if j.AcsEventCond == nil {
		return AcsEventCond{}, fmt.Errorf("AcsEventCond: %w: no AcsEventCond object", ErrMalformed)
	}
	return c, nil
}

// AcsEventInfo is one stored event of a search answer (the fields the
// gateway uses; firmwares omit empty ones).
type AcsEventInfo struct {
	Major             int    `json:"major"`
	Minor             int    `json:"minor"`
	Time              string `json:"time"`
	CardNo            string `json:"cardNo,omitempty"`
	CardType          int    `json:"cardType,omitempty"`
	Name              string `json:"name,omitempty"`
	CardReaderNo      int    `json:"cardReaderNo,omitempty"`
	DoorNo            int    `json:"doorNo,omitempty"`
	EmployeeNoString  string `json:"employeeNoString,omitempty"`
	SerialNo          int64  `json:"serialNo"`
	UserType          string `json:"userType,omitempty"`
	CurrentVerifyMode string `json:"currentVerifyMode,omitempty"`
	AttendanceStatus  string `json:"attendanceStatus,omitempty"`
	Mask              string `json:"mask,omitempty"`
}

// AcsEvent is the search answer.
type AcsEvent struct {
	SearchID           string         `json:"searchID"`
	ResponseStatusStrg string         `json:"responseStatusStrg"`
	NumOfMatches       int            `json:"numOfMatches"`
	TotalMatches       int            `json:"totalMatches"`
	InfoList           []AcsEventInfo `json:"InfoList,omitempty"`
}

type acsEventJSON struct {
	AcsEvent *AcsEvent `json:"AcsEvent"`
}

// Encode renders the answer ({"AcsEvent":{…}}).
func (e AcsEvent) Encode() []byte { return EncodeJSON(acsEventJSON{&e}) }

// DecodeAcsEvent decodes a search answer and checks its invariants:
// a known responseStatusStrg, numOfMatches == len(InfoList) ≤ maxResults,
// an empty list on NO MATCH.
func DecodeAcsEvent(body []byte, maxResults int) (AcsEvent, error) {
	if len(body) > MaxDocument {
		return AcsEvent{}, fmt.Errorf("AcsEvent: %w: %d bytes", ErrMalformed, len(body))
	}
	var e AcsEvent
	j := acsEventJSON{AcsEvent: &e}
	if err := json.Unmarshal(body, &j); err != nil {
		return AcsEvent{}, fmt.Errorf("AcsEvent: %w: %v", ErrMalformed, err)
	}
	if j.AcsEvent == nil {
		return AcsEvent{}, fmt.Errorf("AcsEvent: %w: no AcsEvent object", ErrMalformed)
	}
	switch e.ResponseStatusStrg {
	case SearchOK, SearchMore:
	case SearchNoMatch:
		if len(e.InfoList) != 0 {
			return AcsEvent{}, fmt.Errorf("AcsEvent: %w: NO MATCH with %d events", ErrMalformed, len(e.InfoList))
		}
	default:
		return AcsEvent{}, fmt.Errorf("AcsEvent: %w: responseStatusStrg %q", ErrMalformed, e.ResponseStatusStrg)
	}
	if e.NumOfMatches != len(e.InfoList) || (maxResults > 0 && e.NumOfMatches > maxResults) {
		return AcsEvent{}, fmt.Errorf("AcsEvent: %w: numOfMatches %d, %d events, maxResults %d", ErrMalformed, e.NumOfMatches, len(e.InfoList), maxResults)
	}
	return e, nil
}

// ParseTime parses a device time (ISO 8601 with offset; a time without an
// offset is read in loc) and returns it in UTC.
func ParseTime(s string, loc *time.Location) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, TimeLayout} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	if loc == nil {
		loc = time.UTC
	}
	t, err := time.ParseInLocation("2006-01-02T15:04:05", s, loc)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: time %q", ErrMalformed, s)
	}
	return t.UTC(), nil
}
