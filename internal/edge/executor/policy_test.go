package executor

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// TestPolicyUpdateFetchesWithTheCurrentKey: policy_update fetches the
// version from the cloud with the key current at that moment, verifies the
// checksum and applies it; a refusal is a failed command naming the status.
func TestPolicyUpdateFetchesWithTheCurrentKey(t *testing.T) {
	t.Parallel()
	content := json.RawMessage(`{"screenshots":{"enabled":true}}`)
	sum, err := protocol.PolicyChecksum(content)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var keys []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		keys = append(keys, r.Header.Get(protocol.HeaderAPIKey))
		mu.Unlock()
		if r.URL.Path != "/v2/gateway/policies/7" || r.URL.Query().Get("version") != "1.2.0" {
			w.WriteHeader(http.StatusNotFound)
			json.NewEncoder(w).Encode(protocol.ErrorResponse{Error: protocol.ErrCodeNotFound, Message: "no such version"})
			return
		}
		json.NewEncoder(w).Encode(protocol.PolicyDocument{PolicyID: 7, Version: "1.2.0", Checksum: sum, Content: content})
	}))
	defer srv.Close()
	key := "scgw_first"
	ex, err := Open(Options{Dir: t.TempDir(), BaseURL: srv.URL + "/", APIKey: func() string { mu.Lock(); defer mu.Unlock(); return key }})
	if err != nil {
		t.Fatal(err)
	}
	defer ex.Close()
	ctx := context.Background()
	update := func(id, version, checksum string) (json.RawMessage, error) {
		payload := fmt.Sprintf(`{"policy_id":7,"version":%q,"checksum":%q}`, version, checksum)
		return ex.Execute(ctx, protocol.Command{ID: id, Type: protocol.CommandPolicyUpdate, Payload: json.RawMessage(payload)})
	}
	if res, err := update("c1", "1.2.0", sum); err != nil || !strings.Contains(string(res), `"applied_version":"1.2.0"`) {
		t.Fatalf("result %s, %v", res, err)
	}
	if p := ex.CurrentPolicy(); p == nil || p.Version != "1.2.0" || p.Checksum != sum {
		t.Fatalf("current policy %+v", p)
	}
	mu.Lock()
	key = "scgw_rotated"
	mu.Unlock()
	if _, err := update("c2", "1.2.0", strings.Repeat("0", 64)); err == nil || !strings.Contains(err.Error(), "failed verification") {
		t.Fatalf("a wrong checksum: %v", err)
	}
	if _, err := update("c3", "9.9.9", sum); err == nil || !strings.Contains(err.Error(), "404 Not Found") {
		t.Fatalf("an unknown version: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"scgw_first", "scgw_rotated", "scgw_rotated"}; strings.Join(keys, ",") != strings.Join(want, ",") {
		t.Fatalf("keys sent %v, want %v", keys, want)
	}
}

// OnPolicy sees each applied policy's content, and the stored one at Open
// (the gateway sets its log scrubber's title switch from it).
func TestOnPolicySeesAppliedAndStoredPolicies(t *testing.T) {
	t.Parallel()
	content := json.RawMessage(`{"privacy":{"mask_window_titles":true}}`)
	sum, err := protocol.PolicyChecksum(content)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(protocol.PolicyDocument{PolicyID: 3, Version: "1.0.0", Checksum: sum, Content: content})
	}))
	defer srv.Close()
	dir := t.TempDir()
	var seen []string
	opts := Options{Dir: dir, BaseURL: srv.URL, APIKey: func() string { return "k" },
		OnPolicy: func(c json.RawMessage) { seen = append(seen, string(c)) }}
	ex, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != 0 {
		t.Fatalf("OnPolicy called without a stored policy: %q", seen)
	}
	if _, err := ex.Execute(context.Background(), protocol.Command{ID: "p1", Type: protocol.CommandPolicyUpdate,
		Payload: json.RawMessage(fmt.Sprintf(`{"policy_id":3,"version":"1.0.0","checksum":%q}`, sum))}); err != nil {
		t.Fatal(err)
	}
	ex.Close()
	ex, err = Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer ex.Close()
	if len(seen) != 2 || seen[0] != string(content) || seen[1] != string(content) {
		t.Fatalf("OnPolicy saw %q, want the content after the update and at the reopen", seen)
	}
}
