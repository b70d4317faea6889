package scenario

import (
	"math"
	"strings"
	"testing"
)

// FuzzParseDetails: any body either fails or gives finite, non-negative
// ratios with the filesystem's at most 1.
func FuzzParseDetails(f *testing.F) {
	f.Add(`{"status":"ok","buffer":{"level":"normal","usage":0.72,"filesystem_usage":0.72,"bytes":134000,"max_bytes":1073741824}}`)
	f.Add(`{"buffer":{"bytes":-1,"max_bytes":10}}`)
	f.Add(`{"buffer":{"bytes":1,"max_bytes":0,"filesystem_usage":2}}`)
	f.Add(`{"buffer":null}`)
	f.Add(`[`)
	f.Fuzz(func(t *testing.T, body string) {
		data, fs, err := parseDetails(strings.NewReader(body))
		if err != nil {
			return
		}
		if math.IsNaN(data) || math.IsInf(data, 0) || data < 0 || fs < 0 || fs > 1 || math.IsNaN(fs) {
			t.Fatalf("%q: data %g, filesystem %g", body, data, fs)
		}
	})
}
