package storage_test

import (
	"os"
	"testing"

	"github.com/staffcontrol/staffcontrol/internal/cloud/storage"
	"github.com/staffcontrol/staffcontrol/internal/cloud/storage/storagetest"
)

// weed is this test binary's SeaweedFS S3 server, started on first use
// and stopped by TestMain.
var weed storagetest.Weed

func TestMain(m *testing.M) {
	code := m.Run()
	weed.Stop()
	os.Exit(code)
}

// s3Config returns a config for the test gateway and a fresh bucket name
// (skipping the test when weed is absent, unless STORAGE_REQUIRE_S3=1).
func s3Config(t *testing.T) storage.S3Config { return weed.Config(t) }
