package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/staffcontrol/staffcontrol/internal/edge/config"
	"github.com/staffcontrol/staffcontrol/internal/logging/planted"
	"github.com/staffcontrol/staffcontrol/internal/logscrub"
)

// The gateway's logger, to stderr and to logging.file, keeps every planted
// secret out, and window titles once the policy masks them (issue 19).
func TestNewLoggerScrubsPlantedSecrets(t *testing.T) {
	for _, tc := range []struct {
		name   string
		file   bool
		titles bool
	}{{"stderr", false, false}, {"stderr titles masked", false, true}, {"file titles masked", true, true}} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			c := config.Logging{Level: "debug"}
			if tc.file {
				c.File = filepath.Join(t.TempDir(), "gateway.log")
			}
			sw := new(logscrub.TitleSwitch)
			sw.Set(tc.titles)
			log, closeLog, err := newLogger(c, &stderr, sw)
			if err != nil {
				t.Fatal(err)
			}
			planted.Log(log)
			closeLog()
			out := stderr.String()
			if tc.file {
				b, err := os.ReadFile(c.File)
				if err != nil {
					t.Fatal(err)
				}
				out = string(b)
			}
			planted.Check(t, out, tc.titles)
			if got := strings.Count(out, `"service":"gateway"`); got != planted.Lines {
				t.Errorf("service on %d of %d lines:\n%s", got, planted.Lines, out)
			}
			if !tc.titles && !strings.Contains(out, planted.Secrets[len(planted.Secrets)-1]) {
				t.Errorf("title masked though the policy does not say so:\n%s", out)
			}
		})
	}
}
