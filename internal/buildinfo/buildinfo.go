// Package buildinfo says which build a binary is: the version, commit and
// build date the release build stamps in with the linker's -X flag
// (`staffctl release build`), or else what the Go toolchain recorded (the
// module version and the vcs.revision and vcs.time settings of a build from a
// git checkout), or "dev".
//
// The three unexported string variables below are the package's only
// package-level state. They are the accepted idiom for link-time stamping:
// the linker can set only package-level string variables, and they are
// written once, before main, never at run time. Read returns a copy.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Set by the release build with -ldflags "-X <Path>.version=… -X
// <Path>.commit=… -X <Path>.date=…"; empty in other builds.
var (
	version string
	commit  string
	date    string
)

// Path is this package's import path, for the linker's -X flags.
const Path = "github.com/staffcontrol/staffcontrol/internal/buildinfo"

// Info describes a build.
type Info struct {
	// Version is the release version (e.g. v2.3.0), the module version, or
	// "dev".
	Version string
	// Commit is the source commit ("" when unknown).
	Commit string
	// Date is the commit's time in RFC 3339 ("" when unknown); the release
	// build uses the commit's time, not the clock, so rebuilds are
	// identical.
	Date string
	// GoVersion is the toolchain that built the binary.
	GoVersion string
}

// Read returns the build's information: the stamped values first, then what
// the toolchain recorded.
func Read() Info {
	return fromBuild(version, commit, date, readBuildInfo())
}

func readBuildInfo() *debug.BuildInfo {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return nil
	}
	return bi
}

// fromBuild merges stamped values with the toolchain's record (bi may be nil).
func fromBuild(v, c, d string, bi *debug.BuildInfo) Info {
	i := Info{Version: v, Commit: c, Date: d, GoVersion: runtime.Version()}
	if bi != nil {
		i.GoVersion = bi.GoVersion
		if i.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			i.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch {
			case s.Key == "vcs.revision" && i.Commit == "":
				i.Commit = s.Value
			case s.Key == "vcs.time" && i.Date == "":
				i.Date = s.Value
			}
		}
	}
	if i.Version == "" {
		i.Version = "dev"
	}
	return i
}

// String is the one-line form `--version` prints, e.g.
// "v2.3.0 (commit 1a2b3c4d5e6f, 2026-12-05T02:00:00Z, go1.26.8)".
func (i Info) String() string {
	s := i.Version
	c := i.Commit
	if len(c) > 12 {
		c = c[:12]
	}
	var parts []string
	if c != "" {
		parts = append(parts, "commit "+c)
	}
	if i.Date != "" {
		parts = append(parts, i.Date)
	}
	parts = append(parts, i.GoVersion)
	for n, p := range parts {
		if n == 0 {
			s += " (" + p
		} else {
			s += ", " + p
		}
	}
	return s + ")"
}

// Line is what a binary's `--version` prints: its name and String, e.g.
// "gateway v2.3.0 (commit 1a2b3c4d5e6f, 2026-12-05T02:00:00Z, go1.26.8)".
func Line(binary string) string {
	return fmt.Sprintf("%s %s", binary, Read())
}
