// Package zkproto is the ZKTeco standalone binary protocol (port 4370, TCP
// or UDP): framing, the 8-byte header and its RFC 1071 checksum, command and
// reply codes, the comm-key scrambling, the device's time encodings, user
// and attendance records, free sizes, realtime events and the messages of
// the 1503/1504 read-with-buffer flow. Both the gateway's adapter and the
// simulator use it; it imports only the standard library.
//
// Every decoder is bounded: a length read from the wire never makes it
// allocate more than MaxPacket (one frame) or MaxBuffer (one bulk read).
//
// See ../shared/reference/device-protocols.md §2.
package zkproto

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Command and reply codes (the same in pyzk, node-zklib and zk-protocol).
const (
	CmdDBRRQ          uint16 = 7
	CmdUserWRQ        uint16 = 8
	CmdUserTempRRQ    uint16 = 9
	CmdOptionsRRQ     uint16 = 11
	CmdOptionsWRQ     uint16 = 12
	CmdAttLogRRQ      uint16 = 13
	CmdClearData      uint16 = 14
	CmdClearAttLog    uint16 = 15
	CmdDeleteUser     uint16 = 18
	CmdUnlock         uint16 = 31
	CmdOpLogRRQ       uint16 = 34
	CmdGetFreeSizes   uint16 = 50
	CmdEnableClock    uint16 = 57
	CmdStartVerify    uint16 = 60
	CmdCancelCapture  uint16 = 62
	CmdStateRRQ       uint16 = 64
	CmdWriteLCD       uint16 = 66
	CmdClearLCD       uint16 = 67
	CmdGetPinWidth    uint16 = 69
	CmdDoorStateRRQ   uint16 = 75
	CmdGetTime        uint16 = 201
	CmdSetTime        uint16 = 202
	CmdRegEvent       uint16 = 500
	CmdConnect        uint16 = 1000
	CmdExit           uint16 = 1001
	CmdEnableDevice   uint16 = 1002
	CmdDisableDevice  uint16 = 1003
	CmdRestart        uint16 = 1004
	CmdPowerOff       uint16 = 1005
	CmdRefreshData    uint16 = 1013
	CmdRefreshOption  uint16 = 1014
	CmdTestVoice      uint16 = 1017
	CmdGetVersion     uint16 = 1100
	CmdAuth           uint16 = 1102
	CmdPrepareData    uint16 = 1500
	CmdData           uint16 = 1501
	CmdFreeData       uint16 = 1502
	CmdDataWRRQ       uint16 = 1503
	CmdDataRdy        uint16 = 1504
	CmdAckOK          uint16 = 2000
	CmdAckError       uint16 = 2001
	CmdAckData        uint16 = 2002
	CmdAckRetry       uint16 = 2003
	CmdAckRepeat      uint16 = 2004
	CmdAckUnauth      uint16 = 2005
	CmdAckUnknown     uint16 = 0xFFFF
	CmdAckErrorCmd    uint16 = 0xFFFD
	CmdAckErrorInit   uint16 = 0xFFFC
	CmdAckErrorData   uint16 = 0xFFFB
	FctUser           uint32 = 5 // the fct of a 1503 read of users
	FctFingerTemplate uint32 = 2 // the fct of a 1503 read of templates
)

// Realtime event flags (CMD_REG_EVENT data; an event packet's session field).
const (
	EFAttLog       uint32 = 1
	EFFinger       uint32 = 2
	EFEnrollUser   uint32 = 4
	EFEnrollFinger uint32 = 8
	EFButton       uint32 = 16
	EFUnlock       uint32 = 32
	EFVerify       uint32 = 128
	EFFPFTR        uint32 = 256
	EFAlarm        uint32 = 512
)

// Sizes and caps.
const (
	// HeaderSize is the packet header: command, checksum, session, reply.
	HeaderSize = 8
	// TCPPrefixSize is the TCP prefix: magic and u32 length.
	TCPPrefixSize = 8
	// MaxData is the largest data part of one packet we accept or build.
	MaxData = 64 << 10
	// MaxPacket is the largest packet (header + data).
	MaxPacket = HeaderSize + MaxData
	// MaxBuffer is the largest bulk read (a 1503 buffer) accepted.
	MaxBuffer = 16 << 20
	// ChunkTCP and ChunkUDP are the 1504 chunk sizes pyzk uses.
	ChunkTCP = 0xFFC0
	ChunkUDP = 16 << 10
)

// Magic is the TCP prefix's first four bytes.
var Magic = [4]byte{0x50, 0x50, 0x82, 0x7D}

// Decoding errors; wrapped with the detail.
var (
	ErrBadMagic  = errors.New("zkproto: bad TCP magic")
	ErrTooLarge  = errors.New("zkproto: length over the limit")
	ErrTruncated = errors.New("zkproto: truncated")
	ErrChecksum  = errors.New("zkproto: bad checksum")
	ErrMalformed = errors.New("zkproto: malformed")
)

// CmdName names a command or reply code for logs ("CMD_ACK_UNAUTH").
func CmdName(c uint16) string {
	switch c {
	case CmdConnect:
		return "CMD_CONNECT"
	case CmdExit:
		return "CMD_EXIT"
	case CmdAuth:
		return "CMD_AUTH"
	case CmdGetVersion:
		return "CMD_GET_VERSION"
	case CmdOptionsRRQ:
		return "CMD_OPTIONS_RRQ"
	case CmdGetFreeSizes:
		return "CMD_GET_FREE_SIZES"
	case CmdGetTime:
		return "CMD_GET_TIME"
	case CmdSetTime:
		return "CMD_SET_TIME"
	case CmdUnlock:
		return "CMD_UNLOCK"
	case CmdRestart:
		return "CMD_RESTART"
	case CmdRefreshData:
		return "CMD_REFRESHDATA"
	case CmdUserTempRRQ:
		return "CMD_USERTEMP_RRQ"
	case CmdAttLogRRQ:
		return "CMD_ATTLOG_RRQ"
	case CmdDataWRRQ:
		return "CMD_DATA_WRRQ"
	case CmdDataRdy:
		return "CMD_DATA_RDY"
	case CmdFreeData:
		return "CMD_FREE_DATA"
	case CmdAckOK:
		return "CMD_ACK_OK"
	case CmdAckError:
		return "CMD_ACK_ERROR"
	case CmdAckData:
		return "CMD_ACK_DATA"
	case CmdAckRetry:
		return "CMD_ACK_RETRY"
	case CmdAckRepeat:
		return "CMD_ACK_REPEAT"
	case CmdAckUnauth:
		return "CMD_ACK_UNAUTH"
	case CmdAckUnknown:
		return "CMD_ACK_UNKNOWN"
	case CmdAckErrorCmd:
		return "CMD_ACK_ERROR_CMD"
	case CmdAckErrorInit:
		return "CMD_ACK_ERROR_INIT"
	case CmdAckErrorData:
		return "CMD_ACK_ERROR_DATA"
	case CmdPrepareData:
		return "CMD_PREPARE_DATA"
	case CmdData:
		return "CMD_DATA"
	case CmdRegEvent:
		return "CMD_REG_EVENT"
	}
	return fmt.Sprintf("CMD_%d", c)
}

// Checksum is the RFC 1071 Internet checksum of b: the ones'-complement sum
// of its 16-bit little-endian words (an odd last byte as the low byte),
// carries folded, complemented.
func Checksum(b []byte) uint16 {
	var sum uint32
	for len(b) >= 2 {
		sum += uint32(b[0]) | uint32(b[1])<<8
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0])
	}
	for sum>>16 != 0 {
		sum = sum&0xFFFF + sum>>16
	}
	return ^uint16(sum)
}

// Packet is one protocol packet: the header fields and the data.
type Packet struct {
	Cmd      uint16
	Checksum uint16 // as read; Marshal computes its own
	Session  uint16
	Reply    uint16
	Data     []byte
}

// Marshal encodes p as a UDP datagram (header + data) with a correct
// checksum.
func (p Packet) Marshal() []byte {
	b := make([]byte, HeaderSize+len(p.Data))
	binary.LittleEndian.PutUint16(b[0:], p.Cmd)
	binary.LittleEndian.PutUint16(b[4:], p.Session)
	binary.LittleEndian.PutUint16(b[6:], p.Reply)
	copy(b[HeaderSize:], p.Data)
	binary.LittleEndian.PutUint16(b[2:], Checksum(b))
	return b
}

// MarshalTCP encodes p as a TCP frame: magic, u32 length, packet.
func (p Packet) MarshalTCP() []byte {
	pk := p.Marshal()
	b := make([]byte, TCPPrefixSize, TCPPrefixSize+len(pk))
	copy(b, Magic[:])
	binary.LittleEndian.PutUint32(b[4:], uint32(len(pk)))
	return append(b, pk...)
}

// ChecksumOK reports whether the packet's checksum (as read) is right.
func (p Packet) ChecksumOK() bool {
	return checksumOf(p) == p.Checksum
}

func checksumOf(p Packet) uint16 {
	return binary.LittleEndian.Uint16(p.Marshal()[2:4])
}

// ParsePacket decodes a packet (a UDP datagram, or a TCP frame without its
// prefix). The data aliases b. A bad checksum is reported as ErrChecksum
// together with the decoded packet, so a caller may log and go on.
func ParsePacket(b []byte) (Packet, error) {
	if len(b) < HeaderSize {
		return Packet{}, fmt.Errorf("%w: packet of %d bytes", ErrTruncated, len(b))
	}
	if len(b) > MaxPacket {
		return Packet{}, fmt.Errorf("%w: packet of %d bytes", ErrTooLarge, len(b))
	}
	p := Packet{
		Cmd:      binary.LittleEndian.Uint16(b[0:]),
		Checksum: binary.LittleEndian.Uint16(b[2:]),
		Session:  binary.LittleEndian.Uint16(b[4:]),
		Reply:    binary.LittleEndian.Uint16(b[6:]),
		Data:     b[HeaderSize:],
	}
	if want := checksumOf(p); want != p.Checksum {
		return p, fmt.Errorf("%w: %s has %#04x, want %#04x", ErrChecksum, CmdName(p.Cmd), p.Checksum, want)
	}
	return p, nil
}

// ReadTCPFrame reads one TCP frame from r: the prefix, then exactly the
// length it names (at most MaxPacket). A short read is ErrTruncated (or the
// reader's error), a length over the cap ErrTooLarge before anything is
// allocated; a bad checksum returns the packet with ErrChecksum.
func ReadTCPFrame(r io.Reader) (Packet, error) {
	var pre [TCPPrefixSize]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		return Packet{}, truncated(err, "TCP prefix")
	}
	if [4]byte(pre[:4]) != Magic {
		return Packet{}, fmt.Errorf("%w: % x", ErrBadMagic, pre[:4])
	}
	n := binary.LittleEndian.Uint32(pre[4:])
	if n > MaxPacket {
		return Packet{}, fmt.Errorf("%w: frame length %d (cap %d)", ErrTooLarge, n, MaxPacket)
	}
	if n < HeaderSize {
		return Packet{}, fmt.Errorf("%w: frame length %d", ErrMalformed, n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return Packet{}, truncated(err, "TCP frame")
	}
	return ParsePacket(b)
}

// ParseTCPFrame decodes one whole TCP frame held in b (fuzzing, tests).
func ParseTCPFrame(b []byte) (Packet, error) {
	if len(b) < TCPPrefixSize {
		return Packet{}, fmt.Errorf("%w: frame of %d bytes", ErrTruncated, len(b))
	}
	if [4]byte(b[:4]) != Magic {
		return Packet{}, fmt.Errorf("%w: % x", ErrBadMagic, b[:4])
	}
	n := binary.LittleEndian.Uint32(b[4:])
	if n > MaxPacket {
		return Packet{}, fmt.Errorf("%w: frame length %d", ErrTooLarge, n)
	}
	if uint32(len(b)-TCPPrefixSize) < n {
		return Packet{}, fmt.Errorf("%w: frame names %d bytes, has %d", ErrTruncated, n, len(b)-TCPPrefixSize)
	}
	return ParsePacket(b[TCPPrefixSize : TCPPrefixSize+n])
}

func truncated(err error, what string) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: %s: %w", ErrTruncated, what, err)
	}
	return err
}

// CommKey is the AUTH payload for a comm key and the session the device
// chose (pyzk make_commkey, ticks 50): the key bit-reversed, plus the
// session, XORed with "ZKSO", halves swapped, scrambled with the ticks.
func CommKey(key uint32, session uint16) [4]byte {
	return CommKeyTicks(key, session, 50)
}

// CommKeyTicks is CommKey with an explicit ticks byte.
func CommKeyTicks(key uint32, session uint16, ticks byte) [4]byte {
	var k uint32
	for i := 0; i < 32; i++ {
		k = k<<1 | (key>>i)&1
	}
	k += uint32(session)
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], k)
	b[0] ^= 'Z'
	b[1] ^= 'K'
	b[2] ^= 'S'
	b[3] ^= 'O'
	b = [4]byte{b[2], b[3], b[0], b[1]}
	return [4]byte{b[0] ^ ticks, b[1] ^ ticks, ticks, b[3] ^ ticks}
}

func u32(b []byte) uint32 { return binary.LittleEndian.Uint32(b) }

// U32 encodes v little-endian (CMD_UNLOCK, CMD_REG_EVENT, CMD_SET_TIME data).
func U32(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }

// ParseU32 decodes the u32 data of a packet (GET_TIME reply, UNLOCK, …).
func ParseU32(b []byte) (uint32, error) {
	if len(b) < 4 {
		return 0, fmt.Errorf("%w: u32 of %d bytes", ErrTruncated, len(b))
	}
	return u32(b), nil
}
