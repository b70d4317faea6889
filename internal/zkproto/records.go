package zkproto

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"
)

// Time is the device's u32 time: local wall time with no zone, months of 31
// days and years of 372 days from 2000 (it is not Unix time).
type Time uint32

// TimeOf encodes the wall clock of t (in t's location) as device time.
// Years outside 2000..2135 are clamped.
func TimeOf(t time.Time) Time {
	y := t.Year()
	if y < 2000 {
		y = 2000
	}
	y -= 2000
	v := ((uint64(y)*12*31+uint64(t.Month()-1)*31+uint64(t.Day()-1))*86400 +
		uint64(t.Hour()*3600+t.Minute()*60+t.Second()))
	if v > 0xFFFFFFFF {
		v = 0xFFFFFFFF
	}
	return Time(v)
}

// Fields returns the wall-clock fields of v.
func (v Time) Fields() (year int, month time.Month, day, hour, min, sec int) {
	t := uint32(v)
	sec = int(t % 60)
	t /= 60
	min = int(t % 60)
	t /= 60
	hour = int(t % 24)
	t /= 24
	day = int(t%31) + 1
	t /= 31
	month = time.Month(t%12 + 1)
	t /= 12
	year = int(t) + 2000
	return
}

// In is v as a time in loc (the device's zone).
func (v Time) In(loc *time.Location) time.Time {
	y, mo, d, h, mi, s := v.Fields()
	return time.Date(y, mo, d, h, mi, s, 0, loc)
}

// String is the wall clock "2006-01-02T15:04:05" (no zone).
func (v Time) String() string {
	y, mo, d, h, mi, s := v.Fields()
	return fmt.Sprintf("%04d-%02d-%02dT%02d:%02d:%02d", y, int(mo), d, h, mi, s)
}

// TimeHex is the 6-byte time of realtime events: year-2000, month, day,
// hour, minute, second.
type TimeHex [6]byte

// TimeHexOf encodes the wall clock of t.
func TimeHexOf(t time.Time) TimeHex {
	return TimeHex{byte(t.Year() - 2000), byte(t.Month()), byte(t.Day()), byte(t.Hour()), byte(t.Minute()), byte(t.Second())}
}

// Time converts h to the u32 device time (the same instant, so keys of
// live and stored records agree). Out-of-range fields are encoded as given.
func (h TimeHex) Time() Time {
	return Time(((uint32(h[0])*12*31+(uint32(h[1])-1)*31+(uint32(h[2])-1))*86400 +
		uint32(h[3])*3600 + uint32(h[4])*60 + uint32(h[5])))
}

// Valid reports whether the fields are a plausible date and time.
func (h TimeHex) Valid() bool {
	return h[1] >= 1 && h[1] <= 12 && h[2] >= 1 && h[2] <= 31 && h[3] < 24 && h[4] < 60 && h[5] < 60
}

func cstr(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

func putStr(dst []byte, s string) { copy(dst, s) }

// User is one user record.
type User struct {
	UID       uint16 // the device's internal index
	Privilege uint8  // 0 user, 2 enroller, 6 manager, 14 admin; bit 0 disabled
	Password  string
	Name      string
	Card      uint32
	Group     string
	Timezone  int16 // 28-byte records only
	UserID    string
}

// User record sizes.
const (
	UserSize6 = 28 // black-and-white "ZK6" firmware
	UserSize8 = 72 // TFT "ZK8" firmware
)

// DecodeUser decodes one 28- or 72-byte user record.
func DecodeUser(b []byte) (User, error) {
	switch len(b) {
	case UserSize6:
		return User{
			UID: binary.LittleEndian.Uint16(b), Privilege: b[2], Password: cstr(b[3:8]), Name: cstr(b[8:16]),
			Card: u32(b[16:]), Group: fmt.Sprint(b[21]), Timezone: int16(binary.LittleEndian.Uint16(b[22:])),
			UserID: fmt.Sprint(u32(b[24:])),
		}, nil
	case UserSize8:
		return User{
			UID: binary.LittleEndian.Uint16(b), Privilege: b[2], Password: cstr(b[3:11]), Name: cstr(b[11:35]),
			Card: u32(b[35:]), Group: cstr(b[40:47]), UserID: cstr(b[48:72]),
		}, nil
	}
	return User{}, fmt.Errorf("%w: user record of %d bytes", ErrMalformed, len(b))
}

// Encode72 encodes u as a 72-byte record (strings truncated to fit).
func (u User) Encode72() []byte {
	b := make([]byte, UserSize8)
	binary.LittleEndian.PutUint16(b, u.UID)
	b[2] = u.Privilege
	putStr(b[3:11], u.Password)
	putStr(b[11:34], u.Name)
	binary.LittleEndian.PutUint32(b[35:], u.Card)
	putStr(b[40:47], u.Group)
	putStr(b[48:71], u.UserID)
	return b
}

// Encode28 encodes u as a 28-byte record; UserID must be a decimal number
// (anything else encodes as 0) and Group a small number.
func (u User) Encode28() []byte {
	b := make([]byte, UserSize6)
	binary.LittleEndian.PutUint16(b, u.UID)
	b[2] = u.Privilege
	putStr(b[3:7], u.Password)
	putStr(b[8:15], u.Name)
	binary.LittleEndian.PutUint32(b[16:], u.Card)
	var g, id uint64
	fmt.Sscan(u.Group, &g)
	fmt.Sscan(u.UserID, &id)
	b[21] = byte(g)
	binary.LittleEndian.PutUint16(b[22:], uint16(u.Timezone))
	binary.LittleEndian.PutUint32(b[24:], uint32(id))
	return b
}

// Attendance is one stored attendance record. Status and Punch follow
// pyzk's names: Status is the verify type of 40-byte records (0 password,
// 1 fingerprint, 2 card, 15 face, …), Punch the state (0 in, 1 out, 2
// break-out, 3 break-in, 4 overtime-in, 5 overtime-out).
type Attendance struct {
	UID      uint16 // 8- and 40-byte records
	UserID   string // 16- and 40-byte records (8-byte: empty; map UID through the users)
	Time     Time
	Status   uint8
	Punch    uint8
	WorkCode uint32 // 16-byte records
}

// Attendance record sizes.
const (
	AttSize8  = 8
	AttSize16 = 16
	AttSize40 = 40
)

// DecodeAttendance decodes one 8-, 16- or 40-byte attendance record.
func DecodeAttendance(b []byte) (Attendance, error) {
	switch len(b) {
	case AttSize8:
		return Attendance{UID: binary.LittleEndian.Uint16(b), Status: b[2], Time: Time(u32(b[3:])), Punch: b[7]}, nil
	case AttSize16:
		return Attendance{UserID: fmt.Sprint(u32(b)), Time: Time(u32(b[4:])), Status: b[8], Punch: b[9], WorkCode: u32(b[12:])}, nil
	case AttSize40:
		return Attendance{UID: binary.LittleEndian.Uint16(b), UserID: cstr(b[2:26]), Status: b[26], Time: Time(u32(b[27:])), Punch: b[31]}, nil
	}
	return Attendance{}, fmt.Errorf("%w: attendance record of %d bytes", ErrMalformed, len(b))
}

// Encode40 encodes a as a 40-byte record (the F19 reserved bytes).
func (a Attendance) Encode40() []byte {
	b := make([]byte, AttSize40)
	binary.LittleEndian.PutUint16(b, a.UID)
	putStr(b[2:25], a.UserID)
	b[26] = a.Status
	binary.LittleEndian.PutUint32(b[27:], uint32(a.Time))
	b[31] = a.Punch
	b[36] = 0xFF
	return b
}

// Encode16 encodes a as a 16-byte record (UserID must be decimal).
func (a Attendance) Encode16() []byte {
	b := make([]byte, AttSize16)
	var id uint64
	fmt.Sscan(a.UserID, &id)
	binary.LittleEndian.PutUint32(b, uint32(id))
	binary.LittleEndian.PutUint32(b[4:], uint32(a.Time))
	b[8], b[9] = a.Status, a.Punch
	binary.LittleEndian.PutUint32(b[12:], a.WorkCode)
	return b
}

// Encode8 encodes a as an 8-byte record.
func (a Attendance) Encode8() []byte {
	b := make([]byte, AttSize8)
	binary.LittleEndian.PutUint16(b, a.UID)
	b[2] = a.Status
	binary.LittleEndian.PutUint32(b[3:], uint32(a.Time))
	b[7] = a.Punch
	return b
}

// Dataset returns the records of a read-with-buffer dataset: a u32 byte
// count, then that many bytes of records (the count may not exceed what
// is there).
func Dataset(b []byte) ([]byte, error) {
	if len(b) < 4 {
		return nil, fmt.Errorf("%w: dataset of %d bytes", ErrTruncated, len(b))
	}
	n := u32(b)
	if uint64(n) > uint64(len(b)-4) {
		return nil, fmt.Errorf("%w: dataset names %d bytes, has %d", ErrTruncated, n, len(b)-4)
	}
	return b[4 : 4+n], nil
}

// EncodeDataset prefixes records with their u32 byte count.
func EncodeDataset(records []byte) []byte {
	return append(U32(uint32(len(records))), records...)
}

// recordSize picks the record size of n bytes of count records among
// sizes (pyzk: total/count; without a usable count, the first size that
// divides n).
func recordSize(n, count int, sizes ...int) (int, error) {
	if n == 0 {
		return 0, nil
	}
	if count > 0 && n%count == 0 {
		for _, s := range sizes {
			if n/count == s {
				return s, nil
			}
		}
	}
	for _, s := range sizes {
		if n%s == 0 {
			return s, nil
		}
	}
	return 0, fmt.Errorf("%w: %d bytes of records fit no record size %v", ErrMalformed, n, sizes)
}

// DecodeUsers decodes the records of a user dataset; count (from the free
// sizes, 0 when unknown) picks between the 72- and 28-byte layouts.
func DecodeUsers(records []byte, count int) ([]User, error) {
	sz, err := recordSize(len(records), count, UserSize8, UserSize6)
	if err != nil || sz == 0 {
		return nil, err
	}
	out := make([]User, 0, len(records)/sz)
	for i := 0; i+sz <= len(records); i += sz {
		u, err := DecodeUser(records[i : i+sz])
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, nil
}

// DecodeAttendances decodes the records of an attendance dataset; count
// (from the free sizes, 0 when unknown) picks the layout.
func DecodeAttendances(records []byte, count int) ([]Attendance, error) {
	sz, err := recordSize(len(records), count, AttSize40, AttSize16, AttSize8)
	if err != nil || sz == 0 {
		return nil, err
	}
	out := make([]Attendance, 0, len(records)/sz)
	for i := 0; i+sz <= len(records); i += sz {
		a, err := DecodeAttendance(records[i : i+sz])
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// Sizes is the CMD_GET_FREE_SIZES answer.
type Sizes struct {
	Users, Fingers, Records, OpLog, Admins, Passwords int32
	FingerCap, UserCap, RecordCap                     int32
	FingerAvail, UserAvail, RecordAvail               int32
	Faces, FaceCap                                    int32 // when the answer has them (92 bytes)
}

// SizesLen is the length of an encoded Sizes (with faces).
const SizesLen = 92

// ParseSizes decodes a free-sizes answer (at least 80 bytes).
func ParseSizes(b []byte) (Sizes, error) {
	if len(b) < 80 {
		return Sizes{}, fmt.Errorf("%w: free sizes of %d bytes", ErrTruncated, len(b))
	}
	f := func(i int) int32 { return int32(u32(b[4*i:])) }
	s := Sizes{Users: f(4), Fingers: f(6), Records: f(8), OpLog: f(10), Admins: f(12), Passwords: f(13),
		FingerCap: f(14), UserCap: f(15), RecordCap: f(16), FingerAvail: f(17), UserAvail: f(18), RecordAvail: f(19)}
	if len(b) >= SizesLen {
		s.Faces, s.FaceCap = f(20), f(22)
	}
	return s, nil
}

// Encode encodes s as a 92-byte answer.
func (s Sizes) Encode() []byte {
	b := make([]byte, SizesLen)
	put := func(i int, v int32) { binary.LittleEndian.PutUint32(b[4*i:], uint32(v)) }
	put(4, s.Users)
	put(6, s.Fingers)
	put(8, s.Records)
	put(10, s.OpLog)
	put(12, s.Admins)
	put(13, s.Passwords)
	put(14, s.FingerCap)
	put(15, s.UserCap)
	put(16, s.RecordCap)
	put(17, s.FingerAvail)
	put(18, s.UserAvail)
	put(19, s.RecordAvail)
	put(20, s.Faces)
	put(22, s.FaceCap)
	return b
}

// LiveAttLog is a realtime EF_ATTLOG event: who, when (device wall time),
// and pyzk's status and punch bytes.
type LiveAttLog struct {
	UserID string
	Status uint8
	Punch  uint8
	Time   TimeHex
}

// DecodeLiveAttLog decodes the data of an EF_ATTLOG event packet by its
// length (pyzk live_capture): 10, 12, 14, 32, 36, 37 or ≥52 bytes.
func DecodeLiveAttLog(b []byte) (LiveAttLog, error) {
	var e LiveAttLog
	switch n := len(b); {
	case n == 10:
		e = LiveAttLog{UserID: fmt.Sprint(binary.LittleEndian.Uint16(b)), Status: b[2], Punch: b[3], Time: TimeHex(b[4:10])}
	case n == 12 || n == 14:
		e = LiveAttLog{UserID: fmt.Sprint(u32(b)), Status: b[4], Punch: b[5], Time: TimeHex(b[6:12])}
	case n == 32 || n == 36 || n == 37 || n >= 52:
		e = LiveAttLog{UserID: cstr(b[0:24]), Status: b[24], Punch: b[25], Time: TimeHex(b[26:32])}
	default:
		return LiveAttLog{}, fmt.Errorf("%w: EF_ATTLOG event of %d bytes", ErrMalformed, n)
	}
	if !e.Time.Valid() {
		return LiveAttLog{}, fmt.Errorf("%w: EF_ATTLOG time % x", ErrMalformed, e.Time[:])
	}
	return e, nil
}

// Encode32 encodes e as a 32-byte event (what TFT devices send).
func (e LiveAttLog) Encode32() []byte {
	b := make([]byte, 32)
	putStr(b[0:23], e.UserID)
	b[24], b[25] = e.Status, e.Punch
	copy(b[26:], e.Time[:])
	return b
}

// EventPacket is the unsolicited realtime packet for event code ev.
func EventPacket(ev uint32, data []byte) Packet {
	return Packet{Cmd: CmdRegEvent, Session: uint16(ev), Reply: 0, Data: data}
}

// ReadRequest is the data of CMD_DATA_WRRQ (1503): which command's data to
// prepare, with its fct and ext arguments.
type ReadRequest struct {
	Cmd uint16
	Fct uint32
	Ext uint32
}

// Encode encodes r as 11 bytes: 01, u16 command, i32 fct, i32 ext.
func (r ReadRequest) Encode() []byte {
	b := make([]byte, 11)
	b[0] = 1
	binary.LittleEndian.PutUint16(b[1:], r.Cmd)
	binary.LittleEndian.PutUint32(b[3:], r.Fct)
	binary.LittleEndian.PutUint32(b[7:], r.Ext)
	return b
}

// ParseReadRequest decodes a CMD_DATA_WRRQ's data.
func ParseReadRequest(b []byte) (ReadRequest, error) {
	if len(b) < 11 {
		return ReadRequest{}, fmt.Errorf("%w: read request of %d bytes", ErrTruncated, len(b))
	}
	return ReadRequest{Cmd: binary.LittleEndian.Uint16(b[1:]), Fct: u32(b[3:]), Ext: u32(b[7:])}, nil
}

// BufferInfo encodes the ACK_OK answer to a 1503 when the data is read in
// chunks: 00, u32 size, u32 size, u32 (unknown; the captured value).
func BufferInfo(size uint32) []byte {
	b := make([]byte, 13)
	binary.LittleEndian.PutUint32(b[1:], size)
	binary.LittleEndian.PutUint32(b[5:], size)
	binary.LittleEndian.PutUint32(b[9:], 0x0023efcd)
	return b
}

// ParseBufferInfo decodes the buffer size of an ACK_OK or PREPARE_DATA
// answer to a 1503 (at data[1:5]); a size over MaxBuffer is ErrTooLarge.
func ParseBufferInfo(b []byte) (uint32, error) {
	if len(b) < 5 {
		return 0, fmt.Errorf("%w: buffer info of %d bytes", ErrTruncated, len(b))
	}
	n := u32(b[1:])
	if n > MaxBuffer {
		return 0, fmt.Errorf("%w: buffer of %d bytes (cap %d)", ErrTooLarge, n, MaxBuffer)
	}
	return n, nil
}

// ChunkRequest is the data of CMD_DATA_RDY (1504): start and size.
type ChunkRequest struct{ Start, Size uint32 }

// Encode encodes r as two u32.
func (r ChunkRequest) Encode() []byte {
	return binary.LittleEndian.AppendUint32(U32(r.Start), r.Size)
}

// ParseChunkRequest decodes a CMD_DATA_RDY's data.
func ParseChunkRequest(b []byte) (ChunkRequest, error) {
	if len(b) < 8 {
		return ChunkRequest{}, fmt.Errorf("%w: chunk request of %d bytes", ErrTruncated, len(b))
	}
	return ChunkRequest{Start: u32(b), Size: u32(b[4:])}, nil
}

// PrepareData encodes CMD_PREPARE_DATA's data: the chunk size and the
// device's fragment size (exactly 8 bytes: node-zklib counts on it).
func PrepareData(size, fragment uint32) []byte {
	return binary.LittleEndian.AppendUint32(U32(size), fragment)
}

// ParsePrepareData decodes CMD_PREPARE_DATA's chunk size (capped by
// MaxBuffer).
func ParsePrepareData(b []byte) (uint32, error) {
	if len(b) < 4 {
		return 0, fmt.Errorf("%w: prepare data of %d bytes", ErrTruncated, len(b))
	}
	n := u32(b)
	if n > MaxBuffer {
		return 0, fmt.Errorf("%w: prepared %d bytes (cap %d)", ErrTooLarge, n, MaxBuffer)
	}
	return n, nil
}

// Option encodes an OPTIONS_RRQ request for key ("~SerialNumber\x00").
func Option(key string) []byte { return append([]byte(key), 0) }

// ParseOption decodes an OPTIONS_RRQ answer "Key=Value\0" into its value;
// ok is false when it is not of that form.
func ParseOption(b []byte) (key, value string, ok bool) {
	s := cstr(b)
	i := bytes.IndexByte([]byte(s), '=')
	if i < 0 {
		return "", "", false
	}
	return s[:i], s[i+1:], true
}
