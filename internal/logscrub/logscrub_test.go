package logscrub

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

func TestScrub(t *testing.T) {
	tests := []struct {
		name      string
		log       func(l *slog.Logger)
		forbidden []string // must not appear in the output
		want      []string // must appear
	}{
		{"password by name", func(l *slog.Logger) { l.Info("login", "password", "hunter2hunter2") },
			[]string{"hunter2hunter2"}, []string{`"password":"[redacted]"`}},
		{"names in other spellings", func(l *slog.Logger) {
			l.Info("req", "X-API-Key", "scgw_abc", "refreshToken", "rt_1", "new_password", "pw-2", "cardNumber", "4111", "Authorization", "Bearer eyJ")
		}, []string{"scgw_abc", "rt_1", "pw-2", "4111", "eyJ"}, nil},
		{"nested group", func(l *slog.Logger) {
			l.Info("user", slog.Group("user", "id", 7, slog.Group("auth", "access_token", "tok-1")))
		}, []string{"tok-1"}, []string{`"id":7`}},
		{"e-mail inside a message and a value", func(l *slog.Logger) {
			l.Info("no user anna.k@example.org", "detail", "invite to bob+hr@corp.example.com sent")
		}, []string{"anna.k@example.org", "bob+hr@corp.example.com"}, []string{"[email]"}},
		{"card number inside an error", func(l *slog.Logger) {
			l.Error("import", "err", errors.New(`row 3: card "4111 1111 1111 1111" is taken`))
		}, []string{"4111 1111 1111 1111"}, []string{"[number]"}},
		{"ordinary values kept", func(l *slog.Logger) {
			l.Info("batch stored", "events", 1000, "gateway", "gw-12", "status", 200)
		}, nil, []string{`"events":1000`, `"gateway":"gw-12"`, `"status":200`}},
		{"With attrs scrubbed once", func(l *slog.Logger) {
			l.With("email", "x@y.example").Info("hello")
		}, []string{"x@y.example"}, []string{`"email":"[redacted]"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			tc.log(slog.New(New(slog.NewJSONHandler(&buf, nil))))
			out := buf.String()
			for _, f := range tc.forbidden {
				if strings.Contains(out, f) {
					t.Errorf("%q leaked: %s", f, out)
				}
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("want %q in %s", w, out)
				}
			}
		})
	}
}

func TestMaskLeavesShortNumbersAndIDs(t *testing.T) {
	for _, s := range []string{"gateway 12345 offline", "event 0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "port 3000"} {
		if got := Mask(s); got != s {
			t.Errorf("Mask(%q) = %q", s, got)
		}
	}
}

func FuzzMask(f *testing.F) {
	f.Add("mail a@b.co and card 4111-1111-1111-1111")
	f.Fuzz(func(t *testing.T, s string) {
		out := Mask(s)
		if emailRE.MatchString(out) {
			t.Fatalf("an e-mail survived: %q → %q", s, out)
		}
	})
}
