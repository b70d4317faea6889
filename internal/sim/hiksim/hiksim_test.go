package hiksim

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/isapi"
	"github.com/staffcontrol/staffcontrol/internal/logtest"
)

func startSim(t *testing.T, opts Options) *Sim {
	t.Helper()
	opts.Logger = logtest.New(t)
	s := New(opts)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// do sends one authenticated request with the shared isapi client.
func do(t *testing.T, s *Sim, c *isapi.Client, method, uri string, body []byte) (int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.Do(ctx, http.DefaultClient, method, uri, body, "application/json")
	if err != nil {
		t.Fatalf("%s %s: %v", method, uri, err)
	}
	b, err := isapi.ReadBody(resp, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

func search(t *testing.T, s *Sim, c *isapi.Client, cond isapi.AcsEventCond) (int, isapi.AcsEvent, []byte) {
	t.Helper()
	code, b := do(t, s, c, http.MethodPost, "/ISAPI/AccessControl/AcsEvent?format=json", cond.Encode())
	if code != http.StatusOK {
		return code, isapi.AcsEvent{}, b
	}
	ans, err := isapi.DecodeAcsEvent(b, cond.MaxResults)
	if err != nil {
		t.Fatal(err)
	}
	return code, ans, b
}

func TestSearchPagingRules(t *testing.T) {
	s := startSim(t, Options{PastEvents: 45})
	c := &isapi.Client{BaseURL: s.URL(), Username: "admin", Password: "Admin12345"}

	code, _, body := search(t, s, c, isapi.AcsEventCond{SearchID: "x", MaxResults: 31})
	st, err := isapi.DecodeResponseStatus(body)
	if code != http.StatusBadRequest || err != nil || st.SubStatusCode != isapi.SubStatusBadParameter {
		t.Fatalf("maxResults 31: %d %s", code, body)
	}
	if code, _, _ := search(t, s, c, isapi.AcsEventCond{SearchID: "", MaxResults: 10}); code != http.StatusBadRequest {
		t.Fatalf("empty searchID: %d", code)
	}

	_, p1, _ := search(t, s, c, isapi.AcsEventCond{SearchID: "a", MaxResults: 30})
	if p1.ResponseStatusStrg != isapi.SearchMore || p1.NumOfMatches != 30 || p1.TotalMatches != 45 || p1.InfoList[0].SerialNo != 1 {
		t.Fatalf("page 1: %+v", p1)
	}
	s.Badge("1001", "") // not in search "a", whose matches are fixed
	_, p2, _ := search(t, s, c, isapi.AcsEventCond{SearchID: "a", SearchResultPosition: 30, MaxResults: 30})
	if p2.ResponseStatusStrg != isapi.SearchOK || p2.NumOfMatches != 15 || p2.TotalMatches != 45 || p2.InfoList[14].SerialNo != 45 {
		t.Fatalf("page 2: %+v", p2)
	}
	_, p3, _ := search(t, s, c, isapi.AcsEventCond{SearchID: "a", SearchResultPosition: 45, MaxResults: 30})
	if p3.ResponseStatusStrg != isapi.SearchNoMatch || p3.NumOfMatches != 0 {
		t.Fatalf("past the end: %+v", p3)
	}
	_, nm, _ := search(t, s, c, isapi.AcsEventCond{SearchID: "b", MaxResults: 5, BeginSerialNo: 47})
	if nm.ResponseStatusStrg != isapi.SearchNoMatch || nm.TotalMatches != 0 {
		t.Fatalf("no match: %+v", nm)
	}
	_, rev, _ := search(t, s, c, isapi.AcsEventCond{SearchID: "c", MaxResults: 2, TimeReverseOrder: true, EmployeeNoString: "1001"})
	if rev.NumOfMatches != 2 || rev.InfoList[0].SerialNo != 46 || rev.InfoList[0].SerialNo < rev.InfoList[1].SerialNo {
		t.Fatalf("reverse: %+v", rev)
	}
}

func TestLockoutCountdownBody(t *testing.T) {
	s := startSim(t, Options{MaxLoginFailures: 3, LockDuration: 10 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var left []int
	for i := 0; i < 3; i++ {
		// A new session each time: one failed login each.
		bad := &isapi.Client{BaseURL: s.URL(), Username: "admin", Password: "nope"}
		_, err := bad.Do(ctx, http.DefaultClient, http.MethodGet, "/ISAPI/System/deviceInfo", nil, "")
		var af *isapi.AuthFailure
		if !errors.As(err, &af) || !af.HasCheck || af.Check.RetryLoginTime == nil {
			t.Fatalf("attempt %d: %v", i, err)
		}
		if af.Check.Locked() {
			left = append(left, -af.Check.UnlockTime)
		} else {
			left = append(left, *af.Check.RetryLoginTime)
		}
	}
	if left[0] != 2 || left[1] != 1 || left[2] > -9 || left[2] < -10 {
		t.Fatalf("attempts left / unlock times: %v", left)
	}
	if s.FailedLogins() != 3 || !s.Locked() {
		t.Fatalf("failed %d locked %v", s.FailedLogins(), s.Locked())
	}
}

func TestRebootWindowRefusesConnections(t *testing.T) {
	s := startSim(t, Options{RebootDuration: 500 * time.Millisecond})
	c := &isapi.Client{BaseURL: s.URL(), Username: "admin", Password: "Admin12345"}
	if code, _ := do(t, s, c, http.MethodPut, "/ISAPI/System/reboot", nil); code != http.StatusOK {
		t.Fatal(code)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := http.Get(s.URL() + "/ISAPI/System/deviceInfo")
		if err != nil {
			break
		}
		resp.Body.Close()
		if time.Now().After(deadline) {
			t.Fatal("never down")
		}
		time.Sleep(10 * time.Millisecond)
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(s.URL() + "/ISAPI/System/deviceInfo")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("never back")
		}
		time.Sleep(20 * time.Millisecond)
	}
	ev := s.Events()
	if len(ev) != 2 || ev[0].Major != 3 || ev[0].Minor != 0x7b || ev[1].Major != 2 || ev[1].Minor != 0x400 {
		t.Fatalf("%+v", ev)
	}
}

func TestAlertStreamWire(t *testing.T) {
	s := startSim(t, Options{HeartbeatInterval: 50 * time.Millisecond})
	c := &isapi.Client{BaseURL: s.URL(), Username: "admin", Password: "Admin12345"}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.Do(ctx, http.DefaultClient, http.MethodGet, "/ISAPI/Event/notification/alertStream", nil, "")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "multipart/mixed; boundary=MIME_boundary" {
		t.Fatal(ct)
	}
	pr, err := isapi.NewPartReader(resp.Body, resp.Header.Get("Content-Type"), 0)
	if err != nil {
		t.Fatal(err)
	}
	p, err := pr.Next()
	if err != nil {
		t.Fatal(err)
	}
	a, err := isapi.DecodeAlerts(p.ContentType(), p.Body)
	if err != nil || !a[0].Heartbeat() {
		t.Fatalf("%v %+v", err, a)
	}
	want := s.Badge("1002", "3308812529")
	for {
		p, err := pr.Next()
		if err != nil {
			t.Fatal(err)
		}
		a, err := isapi.DecodeAlerts(p.ContentType(), p.Body)
		if err != nil {
			t.Fatal(err)
		}
		if a[0].Access != nil {
			if a[0].Access.SerialNo != want.SerialNo || a[0].Access.CardNo != "3308812529" || a[0].Access.MajorEventType != 5 {
				t.Fatalf("%+v", a[0].Access)
			}
			break
		}
	}
}

// TestCurlPeer checks the simulator against an independent Digest client.
func TestCurlPeer(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl is not on PATH: the independent Digest peer cannot run")
	}
	for _, alg := range []string{isapi.AlgMD5, isapi.AlgSHA256} {
		t.Run(alg, func(t *testing.T) {
			s := startSim(t, Options{Serial: "CURL-PEER-1", Algorithm: alg})
			run := func(args ...string) (string, string) {
				t.Helper()
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				var out, errb bytes.Buffer
				cmd := exec.CommandContext(ctx, curl, append([]string{"-sS", "--max-time", "10", "-o", "-", "-w", "\n%{http_code}"}, args...)...)
				cmd.Stdout, cmd.Stderr = &out, &errb
				if err := cmd.Run(); err != nil {
					t.Fatalf("curl %v: %v: %s", args, err, errb.String())
				}
				// The body, then the status on its own last line (-w).
				lines := strings.Split(out.String(), "\n")
				return strings.Join(lines[:len(lines)-1], "\n"), lines[len(lines)-1]
			}
			body, code := run("--digest", "-u", "admin:Admin12345", s.URL()+"/ISAPI/System/deviceInfo")
			if code != "200" {
				if alg == isapi.AlgSHA256 && strings.Contains(body, "userCheck") {
					t.Skipf("this curl does not do SHA-256 Digest: %s", code)
				}
				t.Fatalf("deviceInfo: %s %s", code, body)
			}
			d, err := isapi.DecodeDeviceInfo([]byte(body))
			if err != nil || d.SerialNumber != "CURL-PEER-1" {
				t.Fatalf("%v %s", err, body)
			}
			body, code = run("--digest", "-u", "admin:Admin12345", "-X", "PUT", "-H", "Content-Type: application/xml",
				"--data-binary", `<RemoteControlDoor version="2.0" xmlns="http://www.isapi.org/ver20/XMLSchema"><cmd>open</cmd></RemoteControlDoor>`,
				s.URL()+"/ISAPI/AccessControl/RemoteControl/door/1")
			if st, err := isapi.DecodeResponseStatus([]byte(body)); code != "200" || err != nil || !st.OK() {
				t.Fatalf("door: %s %s", code, body)
			}
			if s.Door(1) != DoorOpen {
				t.Fatalf("door state %q", s.Door(1))
			}
			body, code = run("--digest", "-u", "admin:Admin12345", "-X", "POST", "--data-binary",
				`{"AcsEventCond":{"searchID":"curl","searchResultPosition":0,"maxResults":30,"major":0,"minor":0}}`,
				s.URL()+"/ISAPI/AccessControl/AcsEvent?format=json")
			if ans, err := isapi.DecodeAcsEvent([]byte(body), 30); code != "200" || err != nil || ans.NumOfMatches != 1 || ans.InfoList[0].Minor != 0x400 {
				t.Fatalf("search: %s %s %v", code, body, err)
			}
			before := s.FailedLogins()
			body, code = run("--digest", "-u", "admin:wrong", s.URL()+"/ISAPI/System/deviceInfo")
			if uc, err := isapi.DecodeUserCheck([]byte(body)); code != "401" || err != nil || uc.StatusValue != 401 {
				t.Fatalf("wrong password: %s %s", code, body)
			}
			if got := s.FailedLogins() - before; got != 1 {
				t.Fatalf("the wrong password counted %d times", got)
			}
		})
	}
}

func TestUnknownPathIs404HTML(t *testing.T) {
	s := startSim(t, Options{})
	c := &isapi.Client{BaseURL: s.URL(), Username: "admin", Password: "Admin12345"}
	code, body := do(t, s, c, http.MethodGet, "/ISAPI/Nope", nil)
	if code != http.StatusNotFound || !strings.Contains(string(body), "Not Found") {
		t.Fatal(code, string(body))
	}
}
