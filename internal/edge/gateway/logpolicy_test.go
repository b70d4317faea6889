package gateway

import (
	"encoding/json"
	"testing"

	"github.com/staffcontrol/staffcontrol/internal/logscrub"
	"github.com/staffcontrol/staffcontrol/internal/logtest"
)

// The policy's privacy.mask_window_titles drives the log scrubber's title
// switch; unreadable content masks (the safe side).
func TestApplyLogPolicy(t *testing.T) {
	g := &Gateway{log: logtest.New(t), titles: new(logscrub.TitleSwitch)}
	for _, tc := range []struct {
		content string
		want    bool
	}{
		{`{"privacy":{"mask_window_titles":true}}`, true},
		{`{"privacy":{"mask_window_titles":false}}`, false},
		{`{"screenshots":{"enabled":true}}`, false},
		{`not json`, true},
	} {
		g.applyLogPolicy(json.RawMessage(tc.content))
		if g.titles.On() != tc.want {
			t.Errorf("%s: titles masked %v, want %v", tc.content, g.titles.On(), tc.want)
		}
	}
	(&Gateway{}).applyLogPolicy(json.RawMessage(`{}`)) // no switch: nothing to do
}
