package zksim

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/zkproto"
)

// nodeZKLib returns the node_modules directory holding node-zklib@1.3.0,
// installing it once into $ZKLIB_DIR (default: the user cache dir); the
// test is skipped, with the reason, without node and npm or when the
// install fails (offline).
func nodeZKLib(t *testing.T) string {
	t.Helper()
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("peer test needs %s on PATH: %v", tool, err)
		}
	}
	dir := os.Getenv("ZKLIB_DIR")
	if dir == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			t.Skipf("no cache dir for node-zklib: %v", err)
		}
		dir = filepath.Join(cache, "staffcontrol", "node-zklib")
	}
	pkg := filepath.Join(dir, "node_modules", "node-zklib", "package.json")
	if b, err := os.ReadFile(pkg); err == nil && strings.Contains(string(b), `"version": "1.3.0"`) {
		return filepath.Join(dir, "node_modules")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Skipf("node-zklib dir: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "npm", "install", "--no-audit", "--no-fund", "--prefix", dir, "node-zklib@1.3.0").CombinedOutput()
	if err != nil {
		t.Skipf("npm install node-zklib@1.3.0 failed (offline?): %v\n%s", err, out)
	}
	return filepath.Join(dir, "node_modules")
}

type peerResult struct {
	ConnectionType string `json:"connectionType"`
	Info           struct {
		UserCounts  int `json:"userCounts"`
		LogCounts   int `json:"logCounts"`
		LogCapacity int `json:"logCapacity"`
	} `json:"info"`
	Users []struct {
		UID      int    `json:"uid"`
		Role     int    `json:"role"`
		Password string `json:"password"`
		Name     string `json:"name"`
		CardNo   uint32 `json:"cardno"`
		UserID   string `json:"userId"`
	} `json:"users"`
	UsersErr    *string `json:"usersErr"`
	Attendances []struct {
		UserSn       int    `json:"userSn"`
		DeviceUserID string `json:"deviceUserId"`
		RecordTime   string `json:"recordTime"`
	} `json:"attendances"`
	AttendancesErr *string `json:"attendancesErr"`
}

// TestNodeZKLibPeer runs node-zklib@1.3.0 against the simulator: info,
// users (one CMD_DATA), attendances (the 1503/1504 chunked flow) and
// realtime events, checked against the seeded data.
func TestNodeZKLibPeer(t *testing.T) {
	modules := nodeZKLib(t)
	// One CMD_DATA per chunk (as the captured device whose fragment size
	// was 0x10000) and a pause between packets: node-zklib handles one
	// packet per socket read and stalls when two reads' worth coalesce.
	sim := New(Options{Users: 12, Records: 300, Seed: 1, Fragment: zkproto.ChunkTCP, PacketGap: 20 * time.Millisecond})
	if err := sim.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	host, port, _ := net.SplitHostPort(sim.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	const events = 3
	cmd := exec.CommandContext(ctx, "node", filepath.Join("testdata", "nodezklib.js"), host, port, "3")
	cmd.Env = append(os.Environ(), "NODE_PATH="+modules, "TZ=UTC")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cancel()
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var res peerResult
	var badges []zkproto.Attendance
	var got []string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "RESULT "):
			if err := json.Unmarshal([]byte(line[7:]), &res); err != nil {
				t.Fatal(err)
			}
		case line == "LISTENING":
			for deadline := time.Now().Add(10 * time.Second); sim.Listeners() == 0 && time.Now().Before(deadline); {
				time.Sleep(10 * time.Millisecond)
			}
			time.Sleep(200 * time.Millisecond) // the REG_EVENT ACK must not share a socket read with an event
			for _, u := range sim.Users()[:events] {
				r, err := sim.Badge(u.UserID)
				if err != nil {
					t.Fatal(err)
				}
				badges = append(badges, r)
				time.Sleep(150 * time.Millisecond) // node-zklib parses one event per socket read
			}
		case strings.HasPrefix(line, "EVENT "):
			var ev struct {
				UserID  string `json:"userId"`
				AttTime string `json:"attTime"`
			}
			if err := json.Unmarshal([]byte(line[6:]), &ev); err != nil {
				t.Fatal(err)
			}
			got = append(got, ev.UserID+"@"+ev.AttTime)
		case strings.HasPrefix(line, "ERROR"), line == "TIMEOUT":
			t.Fatalf("node-zklib: %s", line)
		default:
			t.Logf("node: %s", line)
		}
	}
	if res.ConnectionType != "tcp" || res.UsersErr != nil || res.AttendancesErr != nil {
		t.Fatalf("result %+v (users error %v, attendances error %v)", res, deref(res.UsersErr), deref(res.AttendancesErr))
	}
	users, recs := sim.Users(), sim.Records()[:300]
	if res.Info.UserCounts != 12 || res.Info.LogCounts != 300 || res.Info.LogCapacity != 100000 {
		t.Errorf("info %+v", res.Info)
	}
	if len(res.Users) != len(users) {
		t.Fatalf("%d users, want %d", len(res.Users), len(users))
	}
	for i, u := range users {
		g := res.Users[i]
		if g.UID != int(u.UID) || g.Role != int(u.Privilege) || g.Name != u.Name || g.CardNo != u.Card || g.UserID != u.UserID || g.Password != u.Password {
			t.Errorf("user %d: %+v, want %+v", i, g, u)
		}
	}
	if len(res.Attendances) != len(recs) {
		t.Fatalf("%d attendances, want %d", len(res.Attendances), len(recs))
	}
	for i, r := range recs {
		g := res.Attendances[i]
		want := r.Time.In(time.UTC).Format("2006-01-02T15:04:05.000Z")
		if g.UserSn != int(r.UID) || g.DeviceUserID != r.UserID || g.RecordTime != want {
			t.Errorf("record %d: %+v, want %+v (%s)", i, g, r, want)
		}
	}
	if sim.Requests(zkproto.CmdDataRdy) == 0 {
		t.Error("node-zklib did not read the attendance log in chunks")
	}
	var want []string
	for _, b := range badges {
		want = append(want, b.UserID+"@"+b.Time.In(time.UTC).Format("2006-01-02T15:04:05.000Z"))
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("live events %v, want %v", got, want)
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
