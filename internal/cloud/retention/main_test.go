package retention_test

import (
	"os"
	"testing"

	"github.com/staffcontrol/staffcontrol/internal/cloud/pgtest"
)

var pg *pgtest.Server

// TestMain runs the tests on a throwaway cluster, or, in the process a
// test starts to kill mid-run (killed_test.go), only the child's run.
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(child())
	}
	pgtest.Main(m, &pg)
}
