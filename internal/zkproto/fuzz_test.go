package zkproto

import (
	"bytes"
	"testing"
)

func FuzzReadTCPFrame(f *testing.F) {
	f.Add(Packet{Cmd: CmdAckOK, Data: []byte("x")}.MarshalTCP())
	f.Add([]byte{0x50, 0x50, 0x82, 0x7d, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ReadTCPFrame(bytes.NewReader(b))
		if err == nil && len(p.Data) > MaxData {
			t.Fatalf("data of %d bytes", len(p.Data))
		}
		_, _ = ParseTCPFrame(b)
	})
}

func FuzzParsePacket(f *testing.F) {
	f.Add(Packet{Cmd: CmdData, Data: []byte("abc")}.Marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePacket(b)
		if err == nil && !bytes.Equal(p.Marshal(), b) {
			t.Fatalf("round trip: %x → %x", b, p.Marshal())
		}
	})
}

func FuzzRecords(f *testing.F) {
	f.Add(EncodeDataset(User{UID: 1, UserID: "7"}.Encode72()), 1)
	f.Add(EncodeDataset(Attendance{UID: 1, UserID: "7"}.Encode40()), 1)
	f.Fuzz(func(t *testing.T, b []byte, count int) {
		body, err := Dataset(b)
		if err != nil {
			return
		}
		_, _ = DecodeUsers(body, count)
		_, _ = DecodeAttendances(body, count)
	})
}

func FuzzMessages(f *testing.F) {
	f.Add(BufferInfo(100))
	f.Add(make([]byte, SizesLen))
	f.Fuzz(func(t *testing.T, b []byte) {
		if n, err := ParseBufferInfo(b); err == nil && n > MaxBuffer {
			t.Fatal("buffer over the cap")
		}
		if n, err := ParsePrepareData(b); err == nil && n > MaxBuffer {
			t.Fatal("prepare over the cap")
		}
		_, _ = ParseSizes(b)
		_, _ = ParseReadRequest(b)
		_, _ = ParseChunkRequest(b)
		_, _, _ = ParseOption(b)
		_, _ = ParseU32(b)
	})
}

func FuzzLiveAttLog(f *testing.F) {
	f.Add(LiveAttLog{UserID: "1", Time: TimeHex{18, 6, 25, 17, 41, 5}}.Encode32())
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeLiveAttLog(b)
		if err == nil {
			_ = e.Time.Time().String()
		}
	})
}
