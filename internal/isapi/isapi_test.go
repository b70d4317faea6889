package isapi

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

// The golden vector of the official ISAPI guide (device-protocols.md
// Appendix A).
func TestDigestGoldenVector(t *testing.T) {
	ch, err := ParseChallenge(`Digest qop="auth", realm="IP Camera(C2183)", nonce="4e5468694e7a42694e7a4d364f4449354d7a6b354d54513d", stale="FALSE"`)
	if err != nil {
		t.Fatal(err)
	}
	if ch.Realm != "IP Camera(C2183)" || ch.Stale || ch.Algorithm != AlgMD5 || len(ch.QOP) != 1 {
		t.Fatalf("challenge %+v", ch)
	}
	a := Respond(ch, "admin", "abcd1234", "GET", "/ISAPI/Event/notification/alertStream", "3d183a245b8729121ae4ca3d41b90f18", 1)
	if a.Response != "f2e0728991bb031f83df557a8f185178" {
		t.Fatalf("response %s", a.Response)
	}
	// The server side parses what the client writes and verifies it.
	back, err := ParseAuthorization(a.String())
	if err != nil {
		t.Fatal(err)
	}
	if back != a {
		t.Fatalf("round trip %+v != %+v", back, a)
	}
	if !back.Verify("abcd1234", "GET") || back.Verify("abcd1235", "GET") || back.Verify("abcd1234", "PUT") {
		t.Fatal("verify")
	}
}

func TestDigestSHA256AndNoQOP(t *testing.T) {
	for _, tc := range []struct{ hdr, alg string }{
		{`Digest realm="r", nonce="n", qop="auth", algorithm=SHA-256`, AlgSHA256},
		{`Digest realm="r", nonce="n", qop="auth,auth-int", algorithm="SHA256", stale=TRUE`, AlgSHA256},
		{`Digest realm="r", nonce="n"`, AlgMD5},
	} {
		ch, err := ParseChallenge(tc.hdr)
		if err != nil {
			t.Fatalf("%s: %v", tc.hdr, err)
		}
		if ch.Algorithm != tc.alg {
			t.Fatalf("%s: alg %s", tc.hdr, ch.Algorithm)
		}
		a := Respond(ch, "u", "p", "PUT", "/x", "c", 7)
		if tc.alg == AlgSHA256 && len(a.Response) != 64 || tc.alg == AlgMD5 && len(a.Response) != 32 {
			t.Fatalf("response length %d", len(a.Response))
		}
		back, err := ParseAuthorization(a.String())
		if err != nil || !back.Verify("p", "PUT") {
			t.Fatalf("%s: %v %+v", tc.hdr, err, back)
		}
	}
	// SHA-256 with RFC 7616's own example (section 3.9.1).
	ch := Challenge{Realm: "http-auth@example.org", Nonce: "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", Opaque: "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS", Algorithm: AlgSHA256, QOP: []string{"auth"}}
	a := Respond(ch, "Mufasa", "Circle of Life", "GET", "/dir/index.html", "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", 1)
	if a.Response != "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1" {
		t.Fatalf("RFC 7616 SHA-256 response %s", a.Response)
	}
}

func TestParseChallengeRefuses(t *testing.T) {
	for _, h := range []string{
		``, `Basic realm="x"`, `Digest realm="x"`, `Digest nonce="n", algorithm=SHA-512`,
		`Digest nonce="n", qop="auth-int"`, `Digest nonce="n`, `Digest nonce="a", nonce="b"`,
		`Digest =x`, "Digest nonce=\"" + strings.Repeat("a", MaxHeaderLen) + "\"",
	} {
		if _, err := ParseChallenge(h); !errors.Is(err, ErrBadChallenge) {
			t.Errorf("%q: %v", h, err)
		}
	}
}

func TestResponseStatusForms(t *testing.T) {
	for _, tc := range []struct {
		body string
		code int
		sub  string
	}{
		{`<?xml version="1.0"?><ResponseStatus version="2.0" xmlns="http://www.isapi.org/ver20/XMLSchema"><requestURL>/x</requestURL><statusCode>1</statusCode><statusString>OK</statusString><subStatusCode>ok</subStatusCode></ResponseStatus>`, 1, "ok"},
		{`<ResponseStatus xmlns="http://www.hikvision.com/ver20/XMLSchema"><statusCode>1</statusCode><subStatusCode>ok</subStatusCode></ResponseStatus>`, 1, "ok"},
		{`{"requestURL":"/ISAPI/Event/triggers/notifications/channels/whiteLightAlarm","statusCode":4,"statusString":"Invalid Operation","subStatusCode":"notSupport","errorCode":1073741825,"errorMsg":"notSupport"}`, 4, "notSupport"},
	} {
		s, err := DecodeResponseStatus([]byte(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		if s.StatusCode != tc.code || s.SubStatusCode != tc.sub {
			t.Fatalf("%+v", s)
		}
		e := &ResponseError{HTTPStatus: 403, Status: s}
		if !strings.Contains(e.Error(), tc.sub) {
			t.Fatalf("error %q does not name %s", e.Error(), tc.sub)
		}
	}
	for _, b := range []string{"", "hello", "{}", "<ResponseStatus/>", "<a", `{"statusCode":"x"}`} {
		if _, err := DecodeResponseStatus([]byte(b)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%q: %v", b, err)
		}
	}
}

func TestDeviceInfoAndDoorAndUserCheck(t *testing.T) {
	xmlBody := `<DeviceInfo version="2.0" xmlns="http://www.isapi.org/ver20/XMLSchema"><deviceName>Time and Attendance Terminal</deviceName><deviceID>255</deviceID><model>DS-K1A340FWX</model><serialNumber>DS-K1A340FWX20240102V010207ENJ59360966</serialNumber><macAddress>40:24:b2:e7:46:04</macAddress><firmwareVersion>V1.2.7</firmwareVersion><firmwareReleasedDate>build 240102</firmwareReleasedDate></DeviceInfo>`
	d, err := DecodeDeviceInfo([]byte(xmlBody))
	if err != nil || d.Model != "DS-K1A340FWX" || d.MACAddress != "40:24:b2:e7:46:04" {
		t.Fatalf("%v %+v", err, d)
	}
	d2, err := DecodeDeviceInfo(DeviceInfoJSON(d))
	if err != nil || d2.SerialNumber != d.SerialNumber || d2.FirmwareVersion != "V1.2.7" {
		t.Fatalf("%v %+v", err, d2)
	}
	d3, err := DecodeDeviceInfo(EncodeXML(d))
	if err != nil || d3.SerialNumber != d.SerialNumber {
		t.Fatalf("%v %+v", err, d3)
	}
	if _, err := DecodeDeviceInfo([]byte(`{"DeviceInfo":{"model":"x"}}`)); err == nil {
		t.Fatal("no serial accepted")
	}

	for _, b := range []string{string(DoorCommandXML(DoorAlwaysOpen)), `<RemoteControlDoor><cmd>alwaysOpen</cmd></RemoteControlDoor>`, `{"RemoteControlDoor":{"cmd":"alwaysOpen"}}`} {
		c, err := DecodeRemoteControlDoor([]byte(b))
		if err != nil || c.Cmd != DoorAlwaysOpen {
			t.Fatalf("%s: %v %+v", b, err, c)
		}
	}
	if _, err := DecodeRemoteControlDoor([]byte(`<RemoteControlDoor><cmd>explode</cmd></RemoteControlDoor>`)); err == nil {
		t.Fatal("bad cmd accepted")
	}

	uc, err := DecodeUserCheck([]byte(`<userCheck version="2.0" xmlns="http://www.hikvision.com/ver20/XMLSchema"><statusValue>401</statusValue><statusString>Unauthorized</statusString><isIllegalLogin>true</isIllegalLogin><retryLoginTime>3</retryLoginTime><lockStatus>unlock</lockStatus><unlockTime>0</unlockTime></userCheck>`))
	if err != nil || uc.Locked() || uc.RetryLoginTime == nil || *uc.RetryLoginTime != 3 {
		t.Fatalf("%v %+v", err, uc)
	}
	uc, err = DecodeUserCheck([]byte(`<userCheck><statusValue>401</statusValue><lockStatus>lock</lockStatus><unlockTime>1737</unlockTime></userCheck>`))
	if err != nil || !uc.Locked() || uc.UnlockTime != 1737 {
		t.Fatalf("%v %+v", err, uc)
	}
}

func TestAcsEvent(t *testing.T) {
	body := `{"AcsEvent":{"searchID":"doc-event-1","responseStatusStrg":"MORE","numOfMatches":1,"totalMatches":68,
 "InfoList":[{"major":5,"minor":1,"time":"2025-08-24T18:04:37+05:00","cardNo":"3308812528","cardType":1,"name":"x","cardReaderNo":1,"doorNo":1,"employeeNoString":"31","serialNo":10455,"userType":"normal","currentVerifyMode":"faceOrFpOrCardOrPw","mask":"unknown"}]}}`
	e, err := DecodeAcsEvent([]byte(body), 30)
	if err != nil {
		t.Fatal(err)
	}
	ev := e.InfoList[0]
	if ev.SerialNo != 10455 || ev.EmployeeNoString != "31" || ev.DoorNo != 1 {
		t.Fatalf("%+v", ev)
	}
	tm, err := ParseTime(ev.Time, nil)
	if err != nil || !tm.Equal(time.Date(2025, 8, 24, 13, 4, 37, 0, time.UTC)) {
		t.Fatalf("%v %v", tm, err)
	}
	for _, bad := range []string{
		`{"AcsEvent":{"responseStatusStrg":"MAYBE","numOfMatches":0}}`,
		`{"AcsEvent":{"responseStatusStrg":"OK","numOfMatches":2,"InfoList":[{"serialNo":1}]}}`,
		`{"AcsEvent":{"responseStatusStrg":"NO MATCH","numOfMatches":1,"InfoList":[{"serialNo":1}]}}`,
		`{"Other":{}}`, `[`,
	} {
		if _, err := DecodeAcsEvent([]byte(bad), 30); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", bad, err)
		}
	}
	cond := AcsEventCond{SearchID: "a", MaxResults: 31}
	if cond.Validate() == nil {
		t.Fatal("maxResults 31 accepted")
	}
	cond.MaxResults = 30
	back, err := DecodeAcsEventCond(cond.Encode())
	if err != nil || back != cond || back.Validate() != nil {
		t.Fatalf("%v %+v", err, back)
	}
}

func TestAlerts(t *testing.T) {
	hb := `{"ipAddress":"192.0.0.64","portNo":80,"protocol":"HTTP","channelID":3,"dateTime":"2026-07-13T22:19:01+03:00","activePostCount":1,"eventType":"videoloss","eventState":"inactive","eventDescription":"videoloss alarm"}`
	a, err := DecodeAlerts(`application/json; charset="UTF-8"`, []byte(hb))
	if err != nil || len(a) != 1 || !a[0].Heartbeat() {
		t.Fatalf("%v %+v", err, a)
	}
	acs := `{"ipAddress":"192.0.0.64","portNo":80,"protocol":"HTTP","dateTime":"2026-07-06T00:33:53+03:00","activePostCount":1,"eventType":"AccessControllerEvent","eventState":"active","eventDescription":"Access Controller Event","AccessControllerEvent":{"deviceName":"Time and Attendance Terminal","majorEventType":2,"subEventType":1024,"reportChannel":3,"serialNo":1,"attendanceStatus":"undefined","statusValue":0,"currentEvent":false,"frontSerialNo":0,"picturesNumber":0}}`
	a, err = DecodeAlerts("application/json", []byte(acs))
	if err != nil || a[0].Access == nil || a[0].Access.SubEventType != 1024 || *a[0].Access.CurrentEvent {
		t.Fatalf("%v %+v", err, a)
	}
	x := `garbage text <EventNotificationAlert version="2.0" xmlns="http://www.hikvision.com/ver20/XMLSchema"><dateTime>2026-07-06T00:33:53+03:00</dateTime><activePostCount>1</activePostCount><eventType>AccessControllerEvent</eventType><eventState>active</eventState><AccessControllerEvent><majorEventType>5</majorEventType><subEventType>1</subEventType><employeeNoString>7</employeeNoString><serialNo>9</serialNo></AccessControllerEvent></EventNotificationAlert><EventNotificationAlert><eventType>videoloss</eventType><eventState>inactive</eventState></EventNotificationAlert>`
	a, err = DecodeAlerts(`application/xml; charset="UTF-8"`, []byte(x))
	if err != nil || len(a) != 2 || a[0].Access.SerialNo != 9 || !a[1].Heartbeat() {
		t.Fatalf("%v %+v", err, a)
	}
	for _, bad := range []string{`{}`, `{"eventType":1}`, `<x/>`, `<EventNotificationAlert><eventType>a`, ``} {
		if _, err := DecodeAlerts("", []byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestPartReader(t *testing.T) {
	var buf bytes.Buffer
	buf.WriteString("preamble text\r\n")
	_ = WritePart(&buf, "MIME_boundary", "application/json", []byte(`{"a":1}`))
	buf.WriteString("--MIME_boundary\r\n") // bogus duplicated boundary line
	_ = WritePart(&buf, "MIME_boundary", "application/xml", []byte("<x/>"))
	// A part without Content-Length, ended by the next boundary.
	buf.WriteString("--MIME_boundary\r\nContent-Type: text/plain\r\n\r\nline one\r\nline two\r\n")
	_ = WritePart(&buf, "MIME_boundary", "image/jpeg", bytes.Repeat([]byte{0xff}, 100))
	r, err := NewPartReader(&buf, "multipart/mixed; boundary=MIME_boundary", 1024)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`{"a":1}`, "<x/>", "line one\r\nline two", string(bytes.Repeat([]byte{0xff}, 100))}
	for i, w := range want {
		p, err := r.Next()
		if err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
		if string(p.Body) != w {
			t.Fatalf("part %d: %q", i, p.Body)
		}
	}
	if _, err := r.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("end: %v", err)
	}

	for name, tc := range map[string]struct {
		ct, body string
		want     error
	}{
		"oversized":      {"multipart/mixed; boundary=b", "--b\r\nContent-Length: 2000\r\n\r\n", ErrPartTooLarge},
		"oversized-nocl": {"multipart/mixed; boundary=b", "--b\r\n\r\n" + strings.Repeat("x\r\n", 600) + "--b\r\n", ErrPartTooLarge},
		"no boundary":    {"multipart/mixed; boundary=b", strings.Repeat("junk\r\n", 300), ErrStream},
		"not multipart":  {"application/json", "", ErrStream},
		"bad header":     {"multipart/mixed; boundary=b", "--b\r\nno colon here\r\n\r\n", ErrStream},
		"bad length":     {"multipart/mixed; boundary=b", "--b\r\nContent-Length: -4\r\n\r\n", ErrStream},
		"cut":            {"multipart/mixed; boundary=b", "--b\r\nContent-Length: 20\r\n\r\nabc", io.ErrUnexpectedEOF},
	} {
		r, err := NewPartReader(strings.NewReader(tc.body), tc.ct, 1024)
		if err == nil {
			_, err = r.Next()
		}
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
	if b, err := Boundary("multipart/mixed"); err != nil || b != "boundary" {
		t.Fatalf("fallback boundary %q %v", b, err)
	}
}
