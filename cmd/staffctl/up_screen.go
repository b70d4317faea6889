package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/lifecycle"
)

// statusLine is the compact one-line summary printed when stdout is not a
// terminal (logs stay readable).
func (st upStatus) statusLine() string {
	line := fmt.Sprintf("status %s: events/s %s | buffer %s | gateways online %s | policy applied %s | replicas %s | last command %s | last door event %s | directory %s",
		st.At.Format("15:04:05"), st.eventsText(), st.bufferText(), st.gatewaysText(), st.policyText(), st.replicasText(),
		st.commandText(), st.doorText(), st.directoryText())
	if e := st.errorsText(); e != "" {
		line += " | unreadable: " + e
	}
	return line
}

// screen is the one-screen summary drawn on a terminal: the endpoints
// (banner) and the live figures.
func (st upStatus) screen(banner string) string {
	var b strings.Builder
	b.WriteString(strings.TrimRight(banner, "\n"))
	fmt.Fprintf(&b, "\n\nLive (%s, every second)\n", st.At.Format("15:04:05"))
	row := func(name, v string) { fmt.Fprintf(&b, "  %-17s %s\n", name, v) }
	row("Events/s in", st.eventsText())
	row("Buffer depth", st.bufferText())
	row("Gateways online", st.gatewaysText())
	row("Policy applied", st.policyText())
	row("Agent API", "replicas "+st.replicasText())
	row("Last command", st.commandText())
	row("Last door event", st.doorText())
	row("Directory", st.directoryText())
	if e := st.errorsText(); e != "" {
		row("Unreadable", e)
	}
	b.WriteString("\nPress Ctrl-C to stop.\n")
	return b.String()
}

// clearScreen moves the cursor home and clears the terminal (ANSI).
const clearScreen = "\x1b[H\x1b[2J"

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// showSummary draws the live summary until ctx ends: on a terminal the
// whole screen redrawn in place every second, otherwise a status line
// every lineEvery (the counters read every second all the same, so that
// the events rate is the last second's).
func showSummary(ctx context.Context, out io.Writer, tty bool, r *upReader, banner string, lineEvery time.Duration) {
	var last time.Time
	_ = lifecycle.Every(ctx, time.Second, true, func(ctx context.Context) {
		st, err := r.read(ctx)
		if err != nil {
			return // ctx ended
		}
		switch {
		case tty:
			fmt.Fprint(out, clearScreen+st.screen(banner))
		case st.Rated && st.At.Sub(last) >= lineEvery-time.Second/2:
			fmt.Fprintln(out, st.statusLine())
			last = st.At
		}
	})
}
