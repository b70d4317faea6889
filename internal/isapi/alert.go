package isapi

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"mime"
	"strings"
)

// Event types of EventNotificationAlert the gateway knows.
const (
	EventAccessController = "AccessControllerEvent"
	EventVideoLoss        = "videoloss"
	EventHeartBeat        = "heartBeat"
)

// MaxAlertsPerPart bounds how many EventNotificationAlert elements one XML
// part may hold.
const MaxAlertsPerPart = 64

// AccessControllerEvent is the access part of an alert (note the renaming
// against AcsEvent: majorEventType/subEventType for major/minor).
type AccessControllerEvent struct {
	DeviceName        string `xml:"deviceName,omitempty" json:"deviceName,omitempty"`
	MajorEventType    int    `xml:"majorEventType" json:"majorEventType"`
	SubEventType      int    `xml:"subEventType" json:"subEventType"`
	CardNo            string `xml:"cardNo,omitempty" json:"cardNo,omitempty"`
	CardType          int    `xml:"cardType,omitempty" json:"cardType,omitempty"`
	Name              string `xml:"name,omitempty" json:"name,omitempty"`
	CardReaderNo      int    `xml:"cardReaderNo,omitempty" json:"cardReaderNo,omitempty"`
	DoorNo            int    `xml:"doorNo,omitempty" json:"doorNo,omitempty"`
	EmployeeNoString  string `xml:"employeeNoString,omitempty" json:"employeeNoString,omitempty"`
	SerialNo          int64  `xml:"serialNo" json:"serialNo"`
	UserType          string `xml:"userType,omitempty" json:"userType,omitempty"`
	CurrentVerifyMode string `xml:"currentVerifyMode,omitempty" json:"currentVerifyMode,omitempty"`
	AttendanceStatus  string `xml:"attendanceStatus,omitempty" json:"attendanceStatus,omitempty"`
	// CurrentEvent is false for a replayed historical event.
	CurrentEvent *bool `xml:"currentEvent,omitempty" json:"currentEvent,omitempty"`
}

// EventNotificationAlert is one alert of the alertStream.
type EventNotificationAlert struct {
	XMLName          xml.Name               `xml:"EventNotificationAlert" json:"-"`
	Version          string                 `xml:"version,attr,omitempty" json:"-"`
	XMLNS            string                 `xml:"xmlns,attr,omitempty" json:"-"`
	IPAddress        string                 `xml:"ipAddress,omitempty" json:"ipAddress,omitempty"`
	PortNo           int                    `xml:"portNo,omitempty" json:"portNo,omitempty"`
	Protocol         string                 `xml:"protocol,omitempty" json:"protocol,omitempty"`
	MACAddress       string                 `xml:"macAddress,omitempty" json:"macAddress,omitempty"`
	ChannelID        int                    `xml:"channelID,omitempty" json:"channelID,omitempty"`
	DateTime         string                 `xml:"dateTime" json:"dateTime"`
	ActivePostCount  int                    `xml:"activePostCount" json:"activePostCount"`
	EventType        string                 `xml:"eventType" json:"eventType"`
	EventState       string                 `xml:"eventState" json:"eventState"`
	EventDescription string                 `xml:"eventDescription,omitempty" json:"eventDescription,omitempty"`
	Access           *AccessControllerEvent `xml:"AccessControllerEvent,omitempty" json:"AccessControllerEvent,omitempty"`
}

// Heartbeat reports whether a is a keep-alive: videoloss inactive (what
// terminals send on the alertStream) or heartBeat (subscriptions).
func (a EventNotificationAlert) Heartbeat() bool {
	return (a.EventType == EventVideoLoss && a.EventState == "inactive") || a.EventType == EventHeartBeat
}

// DecodeAlerts decodes one alertStream part by its Content-Type: JSON is
// one alert; XML may hold several EventNotificationAlert elements and text
// before them, both seen on real firmwares. A part that yields no alert is
// malformed.
func DecodeAlerts(contentType string, body []byte) ([]EventNotificationAlert, error) {
	if len(body) > MaxDocument {
		return nil, fmt.Errorf("EventNotificationAlert: %w: %d bytes", ErrMalformed, len(body))
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		// Sniff when the part's type is missing or broken.
		mt = ""
	}
	js := strings.HasSuffix(mt, "json")
	if !js && !strings.HasSuffix(mt, "xml") {
		if js, err = isJSON(body); err != nil {
			return nil, fmt.Errorf("EventNotificationAlert: %w", err)
		}
	}
	if js {
		var a EventNotificationAlert
		if err := json.Unmarshal(body, &a); err != nil {
			return nil, fmt.Errorf("EventNotificationAlert: %w: %v", ErrMalformed, err)
		}
		if a.EventType == "" {
			return nil, fmt.Errorf("EventNotificationAlert: %w: no eventType", ErrMalformed)
		}
		return []EventNotificationAlert{a}, nil
	}
	var out []EventNotificationAlert
	dec := xml.NewDecoder(bytes.NewReader(body))
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			// Text before the XML is tolerated by skipping to the first '<';
			// anything else broken is an error.
			return nil, fmt.Errorf("EventNotificationAlert: %w: %v", ErrMalformed, err)
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		if se.Name.Local != "EventNotificationAlert" {
			if err := dec.Skip(); err != nil {
				return nil, fmt.Errorf("EventNotificationAlert: %w: %v", ErrMalformed, err)
			}
			continue
		}
		if len(out) == MaxAlertsPerPart {
			return nil, fmt.Errorf("EventNotificationAlert: %w: more than %d alerts in one part", ErrMalformed, MaxAlertsPerPart)
		}
		var a EventNotificationAlert
		if err := dec.DecodeElement(&a, &se); err != nil {
			return nil, fmt.Errorf("EventNotificationAlert: %w: %v", ErrMalformed, err)
		}
		if a.EventType == "" {
			return nil, fmt.Errorf("EventNotificationAlert: %w: no eventType", ErrMalformed)
		}
		out = append(out, a)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("EventNotificationAlert: %w: no alert in the part", ErrMalformed)
	}
	return out, nil
}
