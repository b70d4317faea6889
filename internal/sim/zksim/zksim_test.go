package zksim

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/zkproto"
)

// rawClient speaks the protocol byte by byte, independently of the
// adapter, to check the simulator's answers.
type rawClient struct {
	t     *testing.T
	c     net.Conn
	sess  uint16
	reply uint16
}

func dialRaw(t *testing.T, addr string) *rawClient {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawClient{t: t, c: c}
}

func (r *rawClient) send(cmd uint16, data []byte) {
	r.t.Helper()
	r.reply++
	b := zkproto.Packet{Cmd: cmd, Session: r.sess, Reply: r.reply, Data: data}.MarshalTCP()
	if _, err := r.c.Write(b); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rawClient) read() zkproto.Packet {
	r.t.Helper()
	_ = r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	p, err := zkproto.ReadTCPFrame(r.c)
	if err != nil {
		r.t.Fatal(err)
	}
	return p
}

func (r *rawClient) call(cmd uint16, data []byte) zkproto.Packet {
	r.t.Helper()
	r.send(cmd, data)
	p := r.read()
	if p.Reply != r.reply {
		r.t.Fatalf("%s: reply %d, want %d (echo)", zkproto.CmdName(cmd), p.Reply, r.reply)
	}
	return p
}

func start(t *testing.T, o Options) *Sim {
	t.Helper()
	s := New(o)
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestSessionAndCommands(t *testing.T) {
	sim := start(t, Options{CommKey: 12, Users: 3, Records: 30})
	c := dialRaw(t, sim.Addr())
	c.reply = 0xFFFF // CONNECT with reply 0, as pyzk
	p := c.call(zkproto.CmdConnect, nil)
	if p.Cmd != zkproto.CmdAckUnauth || p.Session == 0 {
		t.Fatalf("connect: %+v", p)
	}
	c.sess = p.Session
	if p := c.call(zkproto.CmdGetTime, nil); p.Cmd != zkproto.CmdAckUnauth {
		t.Fatalf("unauthenticated GET_TIME answered %s", zkproto.CmdName(p.Cmd))
	}
	bad := zkproto.CommKey(13, c.sess)
	if p := c.call(zkproto.CmdAuth, bad[:]); p.Cmd != zkproto.CmdAckUnauth {
		t.Fatalf("wrong key: %s", zkproto.CmdName(p.Cmd))
	}
	good := zkproto.CommKey(12, c.sess)
	if p := c.call(zkproto.CmdAuth, good[:]); p.Cmd != zkproto.CmdAckOK || p.Session != c.sess {
		t.Fatalf("right key: %+v", p)
	}
	if p := c.call(zkproto.CmdOptionsRRQ, zkproto.Option("~Nope")); p.Cmd != zkproto.CmdAckError {
		t.Errorf("unknown option: %s", zkproto.CmdName(p.Cmd))
	}
	if p := c.call(zkproto.CmdAckError, nil); p.Cmd != zkproto.CmdAckUnknown {
		t.Errorf("pyzk _clear_error: %s", zkproto.CmdName(p.Cmd))
	}
	if p := c.call(zkproto.CmdOptionsRRQ, zkproto.Option("~SerialNumber")); string(p.Data) != "~SerialNumber="+sim.Serial()+"\x00" {
		t.Errorf("serial %q", p.Data)
	}
	// Legacy direct read: PREPARE_DATA(size), fragments, ACK_OK.
	c.send(zkproto.CmdAttLogRRQ, nil)
	p = c.read()
	n, err := zkproto.ParsePrepareData(p.Data)
	if p.Cmd != zkproto.CmdPrepareData || err != nil || n != 4+30*40 {
		t.Fatalf("legacy: %+v %v", p, err)
	}
	var ds []byte
	for {
		p := c.read()
		if p.Cmd == zkproto.CmdAckOK {
			break
		}
		ds = append(ds, p.Data...)
	}
	recs, _ := zkproto.Dataset(ds)
	got, err := zkproto.DecodeAttendances(recs, 30)
	if err != nil || len(got) != 30 || got[29] != sim.Records()[29] {
		t.Fatalf("legacy records: %d %v", len(got), err)
	}
	// An inbound bad checksum is counted and still answered.
	c.reply++
	b := zkproto.Packet{Cmd: zkproto.CmdGetTime, Session: c.sess, Reply: c.reply}.MarshalTCP()
	b[10] ^= 1
	c.c.Write(b)
	if p := c.read(); p.Cmd != zkproto.CmdAckOK || sim.BadChecksums() != 1 {
		t.Errorf("bad inbound checksum: %s, counted %d", zkproto.CmdName(p.Cmd), sim.BadChecksums())
	}
	// Realtime: registered sessions get the event, reply 0, session field EF_ATTLOG.
	c.call(zkproto.CmdRegEvent, zkproto.U32(zkproto.EFAttLog))
	rec, err := sim.Badge(sim.Users()[2].UserID)
	if err != nil {
		t.Fatal(err)
	}
	ev := c.read()
	le, err := zkproto.DecodeLiveAttLog(ev.Data)
	if ev.Cmd != zkproto.CmdRegEvent || ev.Reply != 0 || uint32(ev.Session) != zkproto.EFAttLog || err != nil ||
		le.UserID != rec.UserID || le.Time.Time() != rec.Time || le.Status != rec.Status || le.Punch != rec.Punch {
		t.Fatalf("event %+v %+v %v", ev, le, err)
	}
	// Restart: ACK, the session dropped, connections refused for the window.
	c.call(zkproto.CmdRestart, nil)
	if _, err := zkproto.ReadTCPFrame(c.c); err == nil {
		t.Fatal("session survived the restart")
	}
	d := dialRaw(t, sim.Addr())
	d.reply = 0xFFFF
	d.send(zkproto.CmdConnect, nil)
	_ = d.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := zkproto.ReadTCPFrame(d.c); err == nil {
		t.Fatal("connection served during the reboot window")
	}
}

func TestUDPAndGenerator(t *testing.T) {
	sim := start(t, Options{UDP: true, Users: 4, Records: -1, BadgeRate: 50})
	c, err := net.Dial("udp", sim.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(zkproto.Packet{Cmd: zkproto.CmdConnect}.Marshal())
	buf := make([]byte, zkproto.MaxPacket)
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	p, err := zkproto.ParsePacket(buf[:n])
	if err != nil || p.Cmd != zkproto.CmdAckOK {
		t.Fatalf("udp connect %+v %v", p, err)
	}
	c.Write(zkproto.Packet{Cmd: zkproto.CmdRegEvent, Session: p.Session, Reply: 1, Data: zkproto.U32(1)}.Marshal())
	for events := 0; events < 2; {
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("no generated events over UDP: %v", err)
		}
		if p, err := zkproto.ParsePacket(buf[:n]); err == nil && p.Cmd == zkproto.CmdRegEvent && p.Reply == 0 {
			events++
		}
	}
	if len(sim.Records()) < 2 {
		t.Error("generated badges not recorded")
	}
}
