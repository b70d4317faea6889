package console

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestCatalogues checks every language has exactly English's keys, each
// message non-empty and with the same formatting verbs.
func TestCatalogues(t *testing.T) {
	verbs := regexp.MustCompile(`%[a-z]`)
	for _, l := range languages {
		for key, en := range catalogues[English] {
			m, ok := catalogues[l][key]
			if !ok || m == "" {
				t.Errorf("%s lacks %s", l, key)
				continue
			}
			if !slices.Equal(verbs.FindAllString(m, -1), verbs.FindAllString(en, -1)) {
				t.Errorf("%s %s: verbs of %q differ from English %q", l, key, m, en)
			}
		}
		for key := range catalogues[l] {
			if _, ok := catalogues[English][key]; !ok {
				t.Errorf("%s has %s, which English lacks", l, key)
			}
		}
	}
}

// TestTemplatesUseKnownKeys checks every message key a template names is
// in the English catalogue (T falls back to the key itself, which would
// otherwise show as text).
func TestTemplatesUseKnownKeys(t *testing.T) {
	entries, err := templateFS.ReadDir("templates")
	if err != nil {
		t.Fatal(err)
	}
	keyRE := regexp.MustCompile(`\.[TF] "([a-z.]+)"`)
	n := 0
	for _, e := range entries {
		b, err := templateFS.ReadFile("templates/" + e.Name())
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range keyRE.FindAllStringSubmatch(string(b), -1) {
			n++
			if _, ok := catalogues[English][m[1]]; !ok && pageCatalogues[English][m[1]] == "" {
				t.Errorf("%s names unknown message %s", e.Name(), m[1])
			}
		}
	}
	if n < 20 {
		t.Errorf("found only %d message keys in the templates", n)
	}
}

func TestFromAcceptLanguage(t *testing.T) {
	for _, tc := range []struct {
		header string
		want   Lang
	}{
		{"", English},
		{"ru-RU,ru;q=0.9,en-US;q=0.8", Russian},
		{"de-DE,uz;q=0.5,ru;q=0.4", Uzbek},
		{"uz-Cyrl-UZ,ru;q=0.5", Russian},
		{"en;q=0.2,ru;q=0.9", Russian},
		{"fr, de", English},
		{"ru;q=bogus,uz;q=0.1", Uzbek},
		{"ru;q=2", English},
	} {
		if got := fromAcceptLanguage(tc.header); got != tc.want {
			t.Errorf("fromAcceptLanguage(%q) = %s, want %s", tc.header, got, tc.want)
		}
	}
}

// FuzzAcceptLanguage: any header yields one of the console's languages.
func FuzzAcceptLanguage(f *testing.F) {
	for _, s := range []string{"", "ru-RU,ru;q=0.9", "uz-Latn;q=0.1,en", ";;;,,q=", strings.Repeat("ru,", 100)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		if l := fromAcceptLanguage(h); !slices.Contains(languages, l) {
			t.Fatalf("fromAcceptLanguage(%q) = %q", h, l)
		}
		if l := parseLang(h); l != "" && !slices.Contains(languages, l) {
			t.Fatalf("parseLang(%q) = %q", h, l)
		}
	})
}

func TestCSRFToken(t *testing.T) {
	a, b := make([]byte, 32), make([]byte, 32)
	b[0] = 1
	if csrfToken(a, "s1") == csrfToken(a, "s2") || csrfToken(a, "s1") == csrfToken(b, "s1") || csrfToken(a, "") == csrfToken(a, "s1") {
		t.Error("CSRF tokens do not depend on both the secret and the session")
	}
	if x, y := csrfToken(a, "s1"), csrfToken(a, "s1"); x != y {
		t.Error("CSRF token not deterministic")
	}
}

// TestVendored checks the vendored files are those VENDORED.md records.
func TestVendored(t *testing.T) {
	doc, err := os.ReadFile("static/VENDORED.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `([^`]+)` \\|.*\\| `([0-9a-f]{64})` \\|")
	rows := row.FindAllStringSubmatch(string(doc), -1)
	if len(rows) == 0 {
		t.Fatal("VENDORED.md lists no file")
	}
	for _, r := range rows {
		b, err := staticFS.ReadFile("static/" + r[1])
		if err != nil {
			t.Errorf("%s: %v", r[1], err)
			continue
		}
		sum := sha256.Sum256(b)
		if got := hex.EncodeToString(sum[:]); got != r[2] {
			t.Errorf("%s: SHA-256 %s, VENDORED.md says %s", r[1], got, r[2])
		}
	}
}
