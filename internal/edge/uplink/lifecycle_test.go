package uplink

import (
	"path/filepath"
	"testing"

	"github.com/staffcontrol/staffcontrol/internal/lifecycle"
	"github.com/staffcontrol/staffcontrol/internal/lifecycle/lifecycletest"
	"github.com/staffcontrol/staffcontrol/internal/logtest"
)

func TestUplinkKeepsTheLifecycleContract(t *testing.T) {
	srv := newServer(t)
	lifecycletest.Conformance(t, func(t *testing.T) lifecycle.Service {
		b := openBuffer(t, filepath.Join(t.TempDir(), "b.sqlite"))
		t.Cleanup(func() { _ = b.Close() })
		opts := testOptions(srv.URL)
		opts.Logger = logtest.New(t)
		u, err := New(b, opts)
		if err != nil {
			t.Fatal(err)
		}
		appendLogs(t, b, 10) // work to do while it runs
		return u
	})
}
