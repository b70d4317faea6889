package isapi

import (
	"encoding/xml"
	"fmt"
)

// DeviceInfo is `GET /ISAPI/System/deviceInfo` (the fields the gateway
// uses; others are ignored).
type DeviceInfo struct {
	XMLName          xml.Name `xml:"DeviceInfo" json:"-"`
	Version          string   `xml:"version,attr,omitempty" json:"-"`
	XMLNS            string   `xml:"xmlns,attr,omitempty" json:"-"`
	DeviceName       string   `xml:"deviceName" json:"deviceName"`
	DeviceID         string   `xml:"deviceID,omitempty" json:"deviceID,omitempty"`
	Model            string   `xml:"model" json:"model"`
	SerialNumber     string   `xml:"serialNumber" json:"serialNumber"`
	MACAddress       string   `xml:"macAddress,omitempty" json:"macAddress,omitempty"`
	FirmwareVersion  string   `xml:"firmwareVersion" json:"firmwareVersion"`
	FirmwareReleased string   `xml:"firmwareReleasedDate,omitempty" json:"firmwareReleasedDate,omitempty"`
	HardwareVersion  string   `xml:"hardwareVersion,omitempty" json:"hardwareVersion,omitempty"`
	DeviceType       string   `xml:"deviceType,omitempty" json:"deviceType,omitempty"`
}

// deviceInfoJSON is the JSON form's wrapper.
type deviceInfoJSON struct {
	DeviceInfo *DeviceInfo `json:"DeviceInfo"`
}

// DeviceInfoJSON renders d in the JSON form ({"DeviceInfo":{…}}).
func DeviceInfoJSON(d DeviceInfo) []byte { return EncodeJSON(deviceInfoJSON{&d}) }

// DecodeDeviceInfo decodes either form; a document without a serial
// number is malformed (the gateway keys events by it).
func DecodeDeviceInfo(body []byte) (DeviceInfo, error) {
	var d DeviceInfo
	j := deviceInfoJSON{DeviceInfo: &d}
	if err := decode("DeviceInfo", body, &j, &d); err != nil {
		return DeviceInfo{}, err
	}
	if d.SerialNumber == "" {
		return DeviceInfo{}, fmt.Errorf("DeviceInfo: %w: no serialNumber", ErrMalformed)
	}
	return d, nil
}
