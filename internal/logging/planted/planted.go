// Package planted is test support for issue 19's scrubber test: one of each
// secret and personal datum the logs must never hold, logged the ways code
// might log them, and the check of a binary's log output for any of them.
// Every binary's logger construction path runs it.
package planted

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
)

// Secrets are the planted values; none may appear in a log.
var Secrets = []string{
	"hunter2hunter2", // a password by name
	"scgw_Q2hhbmdlTWVQbGVhc2UxMjM0NTY3ODkwYWJj",                 // an API key inside a message
	"scpt_dGhpc0lzQVByb3Zpc2lvbmluZ1Rva2VuMDEy",                 // a provisioning token inside an error
	"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyLTQyIn0.c2lnbmF0dXJl", // a JWT after Bearer
	"4111 1111 1111 1111",                                       // a card number
	"anna.k@example.org",                                        // an e-mail address
	"S3cr3tPassw0rd",                                            // a password in a URL
	"Payroll 2026.xlsx",                                         // a window title: last, masked only when the policy says so
}

// Lines is how many records Log writes.
const Lines = 8

// Log logs every planted secret once, by name, inside messages, errors and
// groups.
func Log(l *slog.Logger) {
	l.Info("login", "password", Secrets[0])
	l.Warn("upload refused for " + Secrets[1])
	l.Error("provisioning", "err", errors.New("token "+Secrets[2]+" expired"))
	l.Info("session", "detail", "Authorization: Bearer "+Secrets[3])
	l.Info("pay", slog.Group("req", "note", "card "+Secrets[4]))
	l.Info("invite", "to", Secrets[5])
	l.Error("connect", "err", errors.New("dial postgres://staff:"+Secrets[6]+"@db:5432/x"))
	l.Info("event", "window_title", Secrets[7]+" - Excel")
}

// Check fails t when out holds a planted secret; titles says whether window
// titles must be masked too.
func Check(t testing.TB, out string, titles bool) {
	t.Helper()
	n := len(Secrets)
	if !titles {
		n--
	}
	for _, p := range Secrets[:n] {
		if strings.Contains(out, p) {
			t.Errorf("planted %q leaked:\n%s", p, out)
		}
	}
}
