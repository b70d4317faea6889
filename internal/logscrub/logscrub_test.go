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
		{"API keys and tokens by shape inside strings", func(l *slog.Logger) {
			l.Warn("upload refused for scgw_Q2hhbmdlTWVQbGVhc2UxMjM0NTY3ODkwYWJjZGVmZ2hp",
				"detail", "token scpt_dGhpc0lzQVByb3Zpc2lvbmluZ1Rva2VuMDEyMzQ1Njc4 expired",
				"agent", "credential sca_YWdlbnRDcmVkZW50aWFsMDEyMzQ1Njc4OTAxMjM0NTY3 refused",
				"err", errors.New("refresh scrt_cmVmcmVzaFRva2VuMDEyMzQ1Njc4OTAxMjM0NTY3ODk5 unknown; secret sce_ZW5yb2xtZW50U2VjcmV0MDEyMzQ1Njc4OTAxMjM0NTY3"))
		}, []string{"Q2hhbmdlTWVQbGVhc2Ux", "dGhpc0lzQVByb3Zpc2lv", "YWdlbnRDcmVkZW50aWFs", "cmVmcmVzaFRva2VuMDEy", "ZW5yb2xtZW50U2VjcmV0"}, []string{"[key]"}},
		{"a key prefix as logged on purpose is kept", func(l *slog.Logger) {
			l.Info("key rotated", "key_prefix_of", "scgw_abcd")
		}, nil, []string{"scgw_abcd"}},
		{"bearer and JWT inside strings", func(l *slog.Logger) {
			l.Info("proxy said: Authorization: Bearer abcdefghijklmnop0123456789",
				"detail", "cookie eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyLTQyIn0.c2lnbmF0dXJlLWJ5dGVz was stale")
		}, []string{"abcdefghijklmnop0123456789", "eyJhbGciOiJIUzI1NiJ9", "eyJzdWIiOiJ1c2VyLTQyIn0", "c2lnbmF0dXJlLWJ5dGVz"}, []string{"[jwt]"}},
		{"passwords in URLs and key=value pairs", func(l *slog.Logger) {
			l.Error("connect", "err", errors.New(`dial postgres://staff:S3cr3tPassw0rd@db.internal:5432/x failed`),
				"dsn", "host=db user=staff password=Hunter2Hunter2 sslmode=require",
				"form", `api_key="k-0123456789abcdef" client_secret: zzTopSecretzz`)
		}, []string{"S3cr3tPassw0rd", "Hunter2Hunter2", "k-0123456789abcdef", "zzTopSecretzz"}, []string{"postgres://staff:[redacted]@db.internal", "sslmode=require"}},
		{"card numbers without separators and e-mails in groups", func(l *slog.Logger) {
			l.Info("pay", slog.Group("req", "note", "card 5500000000000004 for jane.doe@example.com"))
		}, []string{"5500000000000004", "jane.doe@example.com"}, nil},
		{"titles kept when the policy does not mask them", func(l *slog.Logger) {
			l.Info("event", "window_title", "Quarterly report - Excel")
		}, nil, []string{"Quarterly report - Excel"}},
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

func TestTitlesMaskedWhenThePolicySaysSo(t *testing.T) {
	var buf bytes.Buffer
	var sw TitleSwitch
	l := slog.New(NewWithOptions(slog.NewJSONHandler(&buf, nil), Options{Titles: &sw}))
	l.Info("before", "window_title", "Payroll 2026.xlsx - Excel")
	if !strings.Contains(buf.String(), "Payroll 2026.xlsx") {
		t.Fatalf("title masked with the switch off: %s", buf.String())
	}
	buf.Reset()
	sw.Set(true)
	l.Info("after", "window_title", "Payroll 2026.xlsx - Excel", slog.Group("event", "title", "Inbox (3) - Mail", "url", "https://intranet.example/hr/case/17"), "base_url", "https://cloud.example")
	out := buf.String()
	for _, f := range []string{"Payroll 2026", "Inbox (3)", "hr/case/17"} {
		if strings.Contains(out, f) {
			t.Errorf("%q leaked with the switch on: %s", f, out)
		}
	}
	if !strings.Contains(out, "https://cloud.example") {
		t.Errorf("base_url redacted: %s", out)
	}
}

func TestMaskLeavesShortNumbersAndIDs(t *testing.T) {
	for _, s := range []string{"gateway 12345 offline", "event 0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "port 3000",
		"trace 4bf92f3577b34da6a3ce929d0e0e4736 span 00f067aa0ba902b7", "key scgw_abcd rotated", "https://cloud.example/api/v1/batches", "time=12:30:01"} {
		if got := Mask(s); got != s {
			t.Errorf("Mask(%q) = %q", s, got)
		}
	}
}

func FuzzMask(f *testing.F) {
	f.Add("mail a@b.co and card 4111-1111-1111-1111")
	f.Add("key scgw_Q2hhbmdlTWVQbGVhc2UxMjM0 and Bearer eyJhbGciOiJI.eyJzdWIiOiJ1.c2ln postgres://u:p@h")
	f.Fuzz(func(t *testing.T, s string) {
		out := Mask(s)
		if emailRE.MatchString(out) {
			t.Fatalf("an e-mail survived: %q → %q", s, out)
		}
		if keyRE.MatchString(out) || jwtRE.MatchString(out) {
			t.Fatalf("a key survived: %q → %q", s, out)
		}
	})
}
