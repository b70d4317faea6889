package keyrotate_test

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/staffcontrol/staffcontrol/internal/edge/enroll"
	"github.com/staffcontrol/staffcontrol/internal/edge/keyrotate"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// refusingTransport counts requests and fails them: the cases below must
// be refused before anything is sent. (The handler against the real Agent
// API is tested in internal/e2e/rotate_test.go.)
type refusingTransport struct{ n atomic.Int64 }

func (r *refusingTransport) RoundTrip(*http.Request) (*http.Response, error) {
	r.n.Add(1)
	return nil, http.ErrServerClosed
}

func TestHandlerRefusesBeforeAskingTheCloud(t *testing.T) {
	t.Parallel()
	creds := &enroll.Credentials{GatewayID: "g", APIKey: "scgw_old"}
	path := filepath.Join(t.TempDir(), enroll.FileName)
	if err := enroll.Save(path, creds); err != nil {
		t.Fatal(err)
	}
	persistent, err := enroll.NewKeyring(path, creds)
	if err != nil {
		t.Fatal(err)
	}
	inMemory, err := enroll.NewKeyring("", creds)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		ring    *enroll.Keyring
		payload string
		want    string
	}{
		{"key from configuration", inMemory, `{}`, "comes from its configuration"},
		{"a key in the payload", persistent, `{"new_key": "scgw_leaked", "overlap_seconds": 600}`, "carries a key"},
		{"overlap too short", persistent, `{"overlap_seconds": 59}`, "outside 60"},
		{"overlap too long", persistent, `{"overlap_seconds": 604801}`, "outside 60"},
		{"malformed payload", persistent, `{"overlap_seconds": "1h"}`, "payload"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := &refusingTransport{}
			h := keyrotate.Handler(tt.ring, &http.Client{Transport: tr}, "http://127.0.0.1:1", nil)
			_, err := h(context.Background(), protocol.Command{ID: "c1", Type: protocol.CommandRotateAPIKey, Payload: json.RawMessage(tt.payload)})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
			if tr.n.Load() != 0 {
				t.Fatalf("%d requests sent", tr.n.Load())
			}
			if tt.ring.APIKey() != "scgw_old" {
				t.Fatal("the key changed")
			}
		})
	}
}

// TestHandlerKeepsTheKeyWhenTheCloudIsUnreachable: every attempt fails;
// the command fails and the key stays.
func TestHandlerKeepsTheKeyWhenTheCloudIsUnreachable(t *testing.T) {
	t.Parallel()
	creds := &enroll.Credentials{GatewayID: "g", APIKey: "scgw_old"}
	path := filepath.Join(t.TempDir(), enroll.FileName)
	ring, err := enroll.NewKeyring(path, creds)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tr := &refusingTransport{}
	h := keyrotate.Handler(ring, &http.Client{Transport: cancelAfter{tr, cancel}}, "http://127.0.0.1:1", nil)
	if _, err := h(ctx, protocol.Command{ID: "c1", Type: protocol.CommandRotateAPIKey}); err == nil {
		t.Fatal("rotation succeeded without a cloud")
	}
	if ring.APIKey() != "scgw_old" || tr.n.Load() != 1 {
		t.Fatalf("key %s after %d attempts; want the old key after one attempt (ctx ended)", ring.APIKey(), tr.n.Load())
	}
}

// cancelAfter fails a request and ends the handler's context, as a
// shutdown during the first attempt does.
type cancelAfter struct {
	rt     http.RoundTripper
	cancel context.CancelFunc
}

func (c cancelAfter) RoundTrip(r *http.Request) (*http.Response, error) {
	defer c.cancel()
	return c.rt.RoundTrip(r)
}
