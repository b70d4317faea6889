package isapi

import (
	"bytes"
	"testing"
)

func FuzzParseChallenge(f *testing.F) {
	f.Add(`Digest qop="auth", realm="IP Camera(C2183)", nonce="4e54", stale="FALSE"`)
	f.Add(`Digest realm="<hex>", domain="::", qop="auth", nonce="<hex>:<digits>", opaque="", algorithm="MD5", stale="FALSE"`)
	f.Add(`Digest username="a", realm="r", nonce="n", uri="/x", qop=auth, nc=00000001, cnonce="c", response="r"`)
	f.Fuzz(func(t *testing.T, h string) {
		if c, err := ParseChallenge(h); err == nil {
			// What we render reads back the same (a value with quotes or
			// backslashes may render longer than the input: past the
			// parser's bound, only the bound refuses it).
			if r := c.String(); len(r) <= MaxHeaderLen {
				back, err := ParseChallenge(r)
				if err != nil {
					t.Fatalf("re-parse %q: %v", r, err)
				}
				if back.String() != r {
					t.Fatalf("round trip of %q: %q", r, back.String())
				}
			}
		}
		if a, err := ParseAuthorization(h); err == nil {
			a.Verify("p", "GET")
		}
	})
}

func FuzzDecodeDocuments(f *testing.F) {
	f.Add([]byte(`<ResponseStatus><statusCode>1</statusCode></ResponseStatus>`))
	f.Add([]byte(`{"statusCode":4,"subStatusCode":"notSupport"}`))
	f.Add([]byte(`{"DeviceInfo":{"serialNumber":"x"}}`))
	f.Add([]byte(`<userCheck><lockStatus>lock</lockStatus></userCheck>`))
	f.Add([]byte(`{"AcsEvent":{"responseStatusStrg":"OK","numOfMatches":1,"InfoList":[{"serialNo":1,"time":"2026-01-01T00:00:00+03:00"}]}}`))
	f.Add([]byte(`{"AcsEventCond":{"searchID":"a","maxResults":30}}`))
	f.Add([]byte(`<EventNotificationAlert><eventType>videoloss</eventType></EventNotificationAlert>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = DecodeResponseStatus(b)
		_, _ = DecodeDeviceInfo(b)
		_, _ = DecodeRemoteControlDoor(b)
		_, _ = DecodeUserCheck(b)
		_, _ = DecodeTime(b)
		if e, err := DecodeAcsEvent(b, 30); err == nil {
			for _, ev := range e.InfoList {
				_, _ = ParseTime(ev.Time, nil)
			}
		}
		if c, err := DecodeAcsEventCond(b); err == nil {
			_ = c.Validate()
		}
		_, _ = DecodeAlerts("application/json", b)
		_, _ = DecodeAlerts("application/xml", b)
		_, _ = DecodeAlerts("", b)
	})
}

func FuzzPartReader(f *testing.F) {
	var buf bytes.Buffer
	_ = WritePart(&buf, "b", "application/json", []byte(`{"eventType":"videoloss"}`))
	f.Add("multipart/mixed; boundary=b", buf.Bytes())
	f.Add("multipart/mixed; boundary=b", []byte("--b\r\n--b\r\nContent-Type: x\r\n\r\nbody\r\n--b--\r\n"))
	f.Add("multipart/mixed", []byte("--boundary\r\nContent-Length: 3\r\n\r\nabc"))
	f.Fuzz(func(t *testing.T, ct string, body []byte) {
		r, err := NewPartReader(bytes.NewReader(body), ct, 512)
		if err != nil {
			return
		}
		for i := 0; i < len(body)+2; i++ {
			p, err := r.Next()
			if err != nil {
				return
			}
			if len(p.Body) > 512 {
				t.Fatalf("part of %d bytes over the cap", len(p.Body))
			}
			_, _ = DecodeAlerts(p.ContentType(), p.Body)
		}
		t.Fatal("reader made no progress")
	})
}

// TestChallengeQuoting: a realm or nonce with quotes, backslashes, non-ASCII
// or bytes that are not UTF-8 is rendered as an HTTP quoted-string and read
// back byte for byte (Go's %q would have sent \x.. escapes a device reads
// as other bytes).
func TestChallengeQuoting(t *testing.T) {
	for _, realm := range []string{`IP Camera(C2183)`, `say "hi"`, `back\slash`, "Камера", "\xdc\xdc", `\"`} {
		c := Challenge{Realm: realm, Nonce: `n"` + realm, QOP: []string{"auth"}}
		back, err := ParseChallenge(c.String())
		if err != nil || back.Realm != realm || back.Nonce != c.Nonce {
			t.Errorf("%q rendered %s, read back %q / %q (%v)", realm, c.String(), back.Realm, back.Nonce, err)
		}
	}
}
