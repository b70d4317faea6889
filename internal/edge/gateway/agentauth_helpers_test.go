package gateway

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/protocol"
	"github.com/staffcontrol/staffcontrol/internal/sim/fakecloud"
)

// enrolAgent enrols uid at the gateway with the test cloud's enrolment
// secret, as a real agent does, waiting while the gateway has no verifier
// yet (503), and returns its credential.
func enrolAgent(t *testing.T, g *Gateway, uid string) string {
	t.Helper()
	return enrolAgentWith(t, "http://"+g.Addr(), fakecloud.DefaultEnrolmentSecret, uid, http.StatusCreated)
}

// enrolAgentWith enrols uid at base with secret and checks the final
// status (201 returns the credential).
func enrolAgentWith(t *testing.T, base, secret, uid string, want int) string {
	t.Helper()
	body, _ := json.Marshal(protocol.AgentEnrollRequest{EnrolmentSecret: secret, AgentUID: uid, ComputerName: "PC-" + uid})
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Post(base+protocol.PathAgentEnroll, "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		if resp.StatusCode != want {
			t.Fatalf("enrol %s: %d %s, want %d", uid, resp.StatusCode, raw, want)
		}
		var out protocol.AgentEnrollResponse
		_ = json.Unmarshal(raw, &out)
		return out.Credential
	}
}

// postAs posts a JSON body with an agent credential.
func postAs(t *testing.T, url, cred, body string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if cred != "" {
		req.Header.Set(protocol.HeaderAuthorization, "Bearer "+cred)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// getAs sends a GET with an agent credential and returns the status.
func getAs(t *testing.T, url, cred string) (int, error) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set(protocol.HeaderAuthorization, "Bearer "+cred)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}
