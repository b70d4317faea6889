package isapi

import (
	"encoding/xml"
	"fmt"
)

// Time is `GET/PUT /ISAPI/System/time`: the device clock.
type Time struct {
	XMLName   xml.Name `xml:"Time"`
	Version   string   `xml:"version,attr,omitempty"`
	XMLNS     string   `xml:"xmlns,attr,omitempty"`
	TimeMode  string   `xml:"timeMode"`
	LocalTime string   `xml:"localTime"`
	TimeZone  string   `xml:"timeZone,omitempty"`
}

// DecodeTime decodes the XML Time document.
func DecodeTime(body []byte) (Time, error) {
	var t Time
	if err := decode("Time", body, &t, &t); err != nil {
		return Time{}, err
	}
	if t.LocalTime == "" {
		return Time{}, fmt.Errorf("Time: %w: no localTime", ErrMalformed)
	}
	return t, nil
}
