package buildinfo

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestFromBuild(t *testing.T) {
	vcs := &debug.BuildInfo{GoVersion: "go1.99", Main: debug.Module{Version: "(devel)"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.time", Value: "2026-01-02T03:04:05Z"}}}
	tests := []struct {
		name    string
		v, c, d string
		bi      *debug.BuildInfo
		want    Info
		wantStr string
	}{
		{"stamped wins", "v2.1.0", "fedcba", "2026-12-01T00:00:00Z", vcs,
			Info{"v2.1.0", "fedcba", "2026-12-01T00:00:00Z", "go1.99"}, "v2.1.0 (commit fedcba, 2026-12-01T00:00:00Z, go1.99)"},
		{"vcs settings", "", "", "", vcs,
			Info{"dev", "0123456789abcdef0123", "2026-01-02T03:04:05Z", "go1.99"}, "dev (commit 0123456789ab, 2026-01-02T03:04:05Z, go1.99)"},
		{"module version", "", "", "", &debug.BuildInfo{GoVersion: "go1.99", Main: debug.Module{Version: "v2.0.1"}},
			Info{"v2.0.1", "", "", "go1.99"}, "v2.0.1 (go1.99)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := fromBuild(tt.v, tt.c, tt.d, tt.bi)
			if got != tt.want {
				t.Fatalf("fromBuild = %+v, want %+v", got, tt.want)
			}
			if got.String() != tt.wantStr {
				t.Fatalf("String = %q, want %q", got.String(), tt.wantStr)
			}
		})
	}
	if i := fromBuild("", "", "", nil); i.Version != "dev" || i.GoVersion == "" {
		t.Fatalf("no build info: %+v", i)
	}
}

func TestLine(t *testing.T) {
	if l := Line("gateway"); !strings.HasPrefix(l, "gateway ") || !strings.Contains(l, "go1.") {
		t.Fatalf("Line = %q", l)
	}
}
