package zkproto

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestChecksumGolden(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint16
	}{
		{"0b000000f38d03005a4b4661636556657273696f6e00", 0x175a},
		{"d0070000f38d0a0009", 0x6a29},
	} {
		if got := Checksum(unhex(t, tc.in)); got != tc.want {
			t.Errorf("Checksum(%s) = %#04x, want %#04x", tc.in, got, tc.want)
		}
	}
}

// TestFramesGolden decodes every captured frame of Appendix A and encodes
// it back byte for byte.
func TestFramesGolden(t *testing.T) {
	for _, tc := range []struct {
		name                string
		frame               string
		cmd, session, reply uint16
		data                string
	}{
		{"connect", "5050827d08000000e80317fc00000000", CmdConnect, 0, 0, ""},
		{"connect ack", "5050827d08000000d007fffc2ffb0000", CmdAckOK, 0xfb2f, 0, ""},
		{"exit", "5050827d08000000e903e6002ffb0100", CmdExit, 0xfb2f, 1, ""},
		{"unauth", "5050827d08000000d5075bb2cf450000", CmdAckUnauth, 0x45cf, 0, ""},
		{"auth", "5050827d0c0000004e044e2ccf450100614d323c", CmdAuth, 0x45cf, 1, "614d323c"},
		{"1503 users", "5050827d13000000df053ca6cf4514000109000500000000000000", CmdDataWRRQ, 0x45cf, 0x14, "0109000500000000000000"},
		{"1503 ack stat", "5050827d15000000d007a7625c3c150000b4130000b4130000cdef2300", CmdAckOK, 0x3c5c, 0x15, "00b4130000b4130000cdef2300"},
		{"1504 prepare", "5050827d10000000dc050da65c3c1600b4130000f0030000", CmdPrepareData, 0x3c5c, 0x16, "b4130000f0030000"},
		{"realtime", "5050827d28000000 f401ac1201000000 393939313131333333 000000000000000000000000000000 0100 120619112905", CmdRegEvent, 1, 0,
			"393939313131333333000000000000000000000000000000 0100 120619112905"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := unhex(t, tc.frame)
			p, err := ParseTCPFrame(raw)
			if err != nil {
				t.Fatal(err)
			}
			if p.Cmd != tc.cmd || p.Session != tc.session || p.Reply != tc.reply || !bytes.Equal(p.Data, unhex(t, tc.data)) {
				t.Fatalf("got %+v", p)
			}
			if !p.ChecksumOK() {
				t.Error("checksum not OK")
			}
			if got := p.MarshalTCP(); !bytes.Equal(got, raw) {
				t.Errorf("MarshalTCP = %x, want %x", got, raw)
			}
			q, err := ReadTCPFrame(bytes.NewReader(raw))
			if err != nil || q.Cmd != p.Cmd {
				t.Errorf("ReadTCPFrame: %+v %v", q, err)
			}
		})
	}
}

func TestBufferMessagesGolden(t *testing.T) {
	req, err := ParseReadRequest(unhex(t, "0109000500000000000000"))
	if err != nil || req != (ReadRequest{Cmd: CmdUserTempRRQ, Fct: FctUser}) {
		t.Fatalf("read request %+v %v", req, err)
	}
	if !bytes.Equal(req.Encode(), unhex(t, "0109000500000000000000")) {
		t.Error("users request encodes differently")
	}
	if got := (ReadRequest{Cmd: CmdAttLogRRQ}).Encode(); !bytes.Equal(got, unhex(t, "010d0000000000000000 00")) {
		t.Errorf("attlog request %x", got)
	}
	if n, err := ParseBufferInfo(unhex(t, "00b4130000b4130000cdef2300")); n != 5044 || err != nil {
		t.Errorf("buffer info %d %v", n, err)
	}
	if !bytes.Equal(BufferInfo(5044), unhex(t, "00b4130000b4130000cdef2300")) {
		t.Error("BufferInfo differs from the capture")
	}
	if n, err := ParsePrepareData(unhex(t, "b4130000f0030000")); n != 5044 || err != nil {
		t.Errorf("prepare %d %v", n, err)
	}
	if !bytes.Equal(PrepareData(5044, 1008), unhex(t, "b4130000f0030000")) {
		t.Error("PrepareData differs")
	}
	c := ChunkRequest{Start: 65472, Size: 1000}
	if d, err := ParseChunkRequest(c.Encode()); d != c || err != nil {
		t.Errorf("chunk %+v %v", d, err)
	}
	if _, err := ParseBufferInfo(append([]byte{0}, U32(MaxBuffer+1)...)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized buffer: %v", err)
	}
}

func TestCommKeyGolden(t *testing.T) {
	for _, tc := range []struct {
		key     uint32
		session uint16
		want    string
	}{
		{0, 0, "617d3279"}, {0, 0x8df3, "617d32f4"}, {1234, 0x8df3, "413632f4"}, {123456, 0x2f6b, "267f32d6"},
		{999999, 1, "23813289"}, {1, 0, "61fd3279"}, {12, 0x45cf, "614d323c"},
	} {
		got := CommKey(tc.key, tc.session)
		if hex.EncodeToString(got[:]) != tc.want {
			t.Errorf("CommKey(%d, %#x) = %x, want %s", tc.key, tc.session, got, tc.want)
		}
	}
}

func TestTimeGolden(t *testing.T) {
	v := Time(0x2368B36B)
	if got := v.String(); got != "2018-06-25T17:50:35" {
		t.Errorf("decode = %s", got)
	}
	if TimeOf(time.Date(2018, 6, 25, 17, 50, 35, 0, time.UTC)) != v {
		t.Error("encode mismatch")
	}
	loc := time.FixedZone("X", 3*3600)
	if got := v.In(loc).UTC(); !got.Equal(time.Date(2018, 6, 25, 14, 50, 35, 0, time.UTC)) {
		t.Errorf("In = %s", got)
	}
	for _, d := range []time.Time{time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 12, 31, 23, 59, 59, 0, time.UTC), time.Date(2024, 2, 29, 12, 0, 1, 0, time.UTC)} {
		if got := TimeOf(d).In(time.UTC); !got.Equal(d) {
			t.Errorf("round trip %s → %s", d, got)
		}
		if got := TimeHexOf(d).Time(); got != TimeOf(d) {
			t.Errorf("timehex %s → %s", d, got)
		}
	}
}

func TestLiveAttLogGolden(t *testing.T) {
	for _, tc := range []struct {
		name, frame   string
		user          string
		status, punch uint8
		when          string
	}{
		{"zk-protocol 32", "5050827d28000000 f401ac1201000000 393939313131333333 000000000000000000000000000000 0100 120619112905", "999111333", 1, 0, "2018-06-25T17:41:05"},
		{"pyzk 12", "5050827d14000000 f401ae4301000000 f1944900 00 00 120c07130906", "4822257", 0, 0, "2018-12-07T19:09:06"},
		{"pyzk 32", "5050827d28000000 f401ae4301000000 31313430303634 0000000000000000000000000000000000 0f 00 120b1d0c3703", "1140064", 15, 0, "2018-11-29T12:55:03"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParseTCPFrame(unhex(t, tc.frame))
			if err != nil && !errors.Is(err, ErrChecksum) { // pyzk's samples: header as printed
				t.Fatal(err)
			}
			if p.Cmd != CmdRegEvent || uint32(p.Session) != EFAttLog {
				t.Fatalf("not an EF_ATTLOG event: %+v", p)
			}
			e, err := DecodeLiveAttLog(p.Data)
			if err != nil {
				t.Fatal(err)
			}
			if e.UserID != tc.user || e.Status != tc.status || e.Punch != tc.punch || e.Time.Time().String() != tc.when {
				t.Errorf("got %+v (%s)", e, e.Time.Time())
			}
		})
	}
}

func TestRecordsGolden(t *testing.T) {
	a, err := DecodeAttendance(unhex(t, "0d00 393939313131333333 000000000000000000000000000000 01 6bb36823 00 00000000ff000000"))
	if err != nil {
		t.Fatal(err)
	}
	if a.UID != 13 || a.UserID != "999111333" || a.Status != 1 || a.Punch != 0 || a.Time.String() != "2018-06-25T17:50:35" {
		t.Errorf("got %+v", a)
	}
	if got := a.Encode40(); !bytes.Equal(got, unhex(t, "0d00 393939313131333333 000000000000000000000000000000 01 6bb36823 00 00000000ff000000")) {
		t.Errorf("Encode40 = %x", got)
	}
	u := User{UID: 13, Password: "444", Name: "Ned", Card: 0xDE, UserID: "555", Group: "1"}
	for _, sz := range []int{72, 28} {
		enc := u.Encode72()
		if sz == 28 {
			enc = u.Encode28()
		}
		d, err := DecodeUser(enc)
		if err != nil || d.UID != 13 || d.Password != "444" || d.Name != "Ned" || d.Card != 0xDE || d.UserID != "555" {
			t.Errorf("%d-byte user: %+v %v", sz, d, err)
		}
	}
	for _, enc := range [][]byte{a.Encode8(), a.Encode16()} {
		d, err := DecodeAttendance(enc)
		if err != nil || d.Time != a.Time || d.Status != 1 || d.Punch != 0 {
			t.Errorf("%d-byte record: %+v %v", len(enc), d, err)
		}
	}
	s := Sizes{Users: 7, Fingers: 6, Records: 605, OpLog: 3087, Admins: 1, FingerCap: 3000, UserCap: 10000, RecordCap: 100000, FingerAvail: 2994, UserAvail: 9993, RecordAvail: 99395}
	if got, err := ParseSizes(s.Encode()); got != s || err != nil {
		t.Errorf("sizes %+v %v", got, err)
	}
	if _, err := ParseSizes(make([]byte, 79)); !errors.Is(err, ErrTruncated) {
		t.Errorf("short sizes: %v", err)
	}
	k, v, ok := ParseOption([]byte("~Platform=ZEM760_TFT\x00"))
	if !ok || k != "~Platform" || v != "ZEM760_TFT" {
		t.Errorf("option %q %q", k, v)
	}
}

func TestDatasets(t *testing.T) {
	var recs []byte
	for i := 0; i < 7; i++ { // 7*72 = 504 = 18*28: the count decides
		recs = append(recs, User{UID: uint16(i), UserID: "1"}.Encode72()...)
	}
	ds := EncodeDataset(recs)
	body, err := Dataset(ds)
	if err != nil {
		t.Fatal(err)
	}
	us, err := DecodeUsers(body, 7)
	if err != nil || len(us) != 7 || us[6].UID != 6 {
		t.Fatalf("users %d %v", len(us), err)
	}
	if _, err := Dataset(ds[:len(ds)-1]); !errors.Is(err, ErrTruncated) {
		t.Errorf("short dataset: %v", err)
	}
	if _, err := DecodeAttendances(make([]byte, 41), 0); !errors.Is(err, ErrMalformed) {
		t.Errorf("odd records: %v", err)
	}
}

func TestFrameErrors(t *testing.T) {
	good := Packet{Cmd: CmdAckOK, Session: 5, Reply: 2, Data: []byte("abc")}.MarshalTCP()
	bad := bytes.Clone(good)
	bad[10] ^= 0xFF
	huge := bytes.Clone(good)
	copy(huge[4:], U32(1<<31))
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"checksum", bad, ErrChecksum},
		{"oversized", huge, ErrTooLarge},
		{"truncated", good[:len(good)-1], ErrTruncated},
		{"magic", append([]byte{0x50, 0x50, 0x7d, 0x82}, good[4:]...), ErrBadMagic},
	} {
		if _, err := ParseTCPFrame(tc.b); !errors.Is(err, tc.want) {
			t.Errorf("%s: ParseTCPFrame err %v, want %v", tc.name, err, tc.want)
		}
		if _, err := ReadTCPFrame(bytes.NewReader(tc.b)); !errors.Is(err, tc.want) {
			t.Errorf("%s: ReadTCPFrame err %v, want %v", tc.name, err, tc.want)
		}
	}
}
