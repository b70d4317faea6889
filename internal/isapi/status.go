package isapi

import (
	"encoding/xml"
	"fmt"
	"strings"
)

// Status codes of ResponseStatus.
const (
	StatusOK              = 1
	StatusBusy            = 2
	StatusDeviceError     = 3
	StatusInvalidOp       = 4
	StatusInvalidXML      = 5
	StatusInvalidContent  = 6
	StatusRebootRequired  = 7
	SubStatusOK           = "ok"
	SubStatusNotSupport   = "notSupport"
	SubStatusBadParameter = "badParameters"
)

// ResponseStatus is the envelope of every PUT/POST/DELETE answer and of
// errors, in XML (<ResponseStatus>) or JSON (top-level object) form.
type ResponseStatus struct {
	XMLName       xml.Name `xml:"ResponseStatus" json:"-"`
	Version       string   `xml:"version,attr,omitempty" json:"-"`
	XMLNS         string   `xml:"xmlns,attr,omitempty" json:"-"`
	RequestURL    string   `xml:"requestURL,omitempty" json:"requestURL,omitempty"`
	StatusCode    int      `xml:"statusCode" json:"statusCode"`
	StatusString  string   `xml:"statusString,omitempty" json:"statusString,omitempty"`
	SubStatusCode string   `xml:"subStatusCode,omitempty" json:"subStatusCode,omitempty"`
	ErrorCode     int64    `xml:"errorCode,omitempty" json:"errorCode,omitempty"`
	ErrorMsg      string   `xml:"errorMsg,omitempty" json:"errorMsg,omitempty"`
}

// NewResponseStatus builds a ResponseStatus for url (XML form attributes
// set, so EncodeXML gives the device's shape).
func NewResponseStatus(url string, code int, str, sub string) ResponseStatus {
	return ResponseStatus{Version: "2.0", XMLNS: Namespace, RequestURL: url, StatusCode: code, StatusString: str, SubStatusCode: sub}
}

// OK reports whether the device accepted the request (statusCode 1; some
// firmwares answer HTTP 200 with another code, which is a failure).
func (s ResponseStatus) OK() bool { return s.StatusCode == StatusOK }

// DecodeResponseStatus decodes an XML or JSON ResponseStatus. A document
// without a statusCode is malformed.
func DecodeResponseStatus(body []byte) (ResponseStatus, error) {
	var s ResponseStatus
	if err := decode("ResponseStatus", body, &s, &s); err != nil {
		return ResponseStatus{}, err
	}
	if s.StatusCode == 0 {
		return ResponseStatus{}, fmt.Errorf("ResponseStatus: %w: no statusCode", ErrMalformed)
	}
	return s, nil
}

// ResponseError is a request the device refused with a ResponseStatus (or,
// without one, an HTTP status): its error names the subStatusCode.
type ResponseError struct {
	// HTTPStatus is the HTTP status of the answer.
	HTTPStatus int
	// Status is the decoded envelope (zero when the body had none).
	Status ResponseStatus
}

// Error names the HTTP status, statusCode, statusString and subStatusCode.
func (e *ResponseError) Error() string {
	if e.Status.StatusCode == 0 {
		return fmt.Sprintf("isapi: HTTP %d without a ResponseStatus", e.HTTPStatus)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "isapi: HTTP %d, statusCode %d", e.HTTPStatus, e.Status.StatusCode)
	if e.Status.StatusString != "" {
		fmt.Fprintf(&b, " (%s)", e.Status.StatusString)
	}
	fmt.Fprintf(&b, ", subStatusCode %s", e.Status.SubStatusCode)
	if e.Status.ErrorCode != 0 {
		fmt.Fprintf(&b, ", errorCode 0x%x", e.Status.ErrorCode)
	}
	return b.String()
}

// NotSupported reports whether the device said the endpoint or the
// operation does not exist on it (HTTP 404, or subStatusCode notSupport).
func (e *ResponseError) NotSupported() bool {
	return e.HTTPStatus == 404 || e.Status.SubStatusCode == SubStatusNotSupport
}
