package executor

import (
	"testing"

	"github.com/staffcontrol/staffcontrol/internal/lifecycle"
	"github.com/staffcontrol/staffcontrol/internal/lifecycle/lifecycletest"
)

func TestExecutorKeepsTheLifecycleContract(t *testing.T) {
	lifecycletest.Conformance(t, func(t *testing.T) lifecycle.Service {
		ex, err := Open(Options{Dir: t.TempDir(), BaseURL: "http://127.0.0.1:1", APIKey: func() string { return "k" }})
		if err != nil {
			t.Fatal(err)
		}
		return ex
	})
}
