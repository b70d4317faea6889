package consolebrowser

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/cloud/pgtest"
)

// pg is the test binary's PostgreSQL server (a throwaway cluster, or
// TEST_DATABASE_URL's).
var pg *pgtest.Server

// TestMain runs the tests with the PostgreSQL server and stops the shared
// Chromium (see startChromium) and removes the shared stack (see
// sharedStack) after them.
func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	s, err := pgtest.Start(ctx)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "pgtest:", err)
		os.Exit(1)
	}
	pg = s
	code := m.Run()
	stopChromium()
	stopSharedStack()
	s.Close()
	os.Exit(code)
}
