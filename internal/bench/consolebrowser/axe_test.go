package consolebrowser

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/chromedp"
)

// axe-core, vendored in testdata/axe (see VENDORED.md there), run in each
// page: injected through the DevTools protocol, so the console's CSP
// (script-src 'self') does not stop it, and run with its default rules
// (WCAG 2.0–2.2 A and AA, best practices).

// axeFile is the vendored axe-core.
const axeFile = "testdata/axe/axe.min.js"

var (
	axeOnce sync.Once
	axeSrc  string
	axeErr  error
)

// axeSource is the text of axe.min.js, read once.
func axeSource(t *testing.T) string {
	t.Helper()
	axeOnce.Do(func() {
		var b []byte
		b, axeErr = os.ReadFile(axeFile)
		axeSrc = string(b)
	})
	if axeErr != nil {
		t.Fatal(axeErr)
	}
	return axeSrc
}

// axeViolation is a rule axe-core found broken, with the nodes breaking it.
type axeViolation struct {
	ID     string    `json:"id"`
	Impact string    `json:"impact"`
	Help   string    `json:"help"`
	Nodes  []axeNode `json:"nodes"`
}

// axeNode is an element breaking a rule.
type axeNode struct {
	Target  string `json:"target"`
	HTML    string `json:"html"`
	Summary string `json:"summary"`
}

// axeRun runs axe on the document and returns its violations, compactly.
const axeRun = `(async () => {
	const r = await axe.run(document, {resultTypes: ["violations"]});
	return {passes: r.passes.length, violations: r.violations.map(v => ({id: v.id, impact: v.impact || "", help: v.help,
		nodes: v.nodes.map(n => ({target: n.target.map(String).join(" "), html: n.html.slice(0, 200),
			summary: n.failureSummary || ""}))}))};
})()`

// axe runs axe-core on the browser's page (named page in messages) and
// fails the test for every serious or critical violation, naming the rule
// and the elements; lesser ones are logged.
func (b *browser) axe(page string) {
	b.t.Helper()
	for _, v := range b.axeViolations() {
		var nodes []string
		for _, n := range v.Nodes {
			nodes = append(nodes, fmt.Sprintf("\n    %s: %s\n      %s", n.Target, n.HTML, strings.ReplaceAll(n.Summary, "\n", "\n      ")))
		}
		msg := fmt.Sprintf("axe on %s: %s (%s): %s%s", page, v.ID, v.Impact, v.Help, strings.Join(nodes, ""))
		if v.Impact == "serious" || v.Impact == "critical" {
			b.t.Error(msg)
		} else {
			b.t.Log(msg)
		}
	}
}

// axeViolations injects axe-core into the page (unless it is there) and
// returns what it finds.
func (b *browser) axeViolations() []axeViolation {
	b.t.Helper()
	if !eval[bool](b, `typeof window.axe === "object"`) {
		eval[bool](b, axeSource(b.t)+"\n;true")
	}
	r := eval[struct {
		Passes     int            `json:"passes"`
		Violations []axeViolation `json:"violations"`
	}](b, axeRun)
	// A run that checked nothing (an empty document, rules switched off)
	// would pass anything.
	if r.Passes < 10 {
		b.t.Fatalf("axe passed only %d rules on %s: it did not check the page", r.Passes, b.path())
	}
	return r.Violations
}

// TestAxeFindsViolations: the harness's axe run, under a CSP as strict as
// the console's, finds what a page breaks, so a clean run means something.
func TestAxeFindsViolations(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><html><head><title>bad</title><link rel="stylesheet" href="/bad.css"></head>
<body><main><h1>Bad page</h1><p class="faint">Hard to read</p><img src="/x.png"><input type="text" name="q"></main></body></html>`)
	})
	mux.HandleFunc("/bad.css", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/css")
		fmt.Fprint(w, `.faint { color: #bbb; background: #fff; }`)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	b := newBrowser(t, &stack{t: t, URL: srv.URL})
	b.do("open the bad page", chromedp.Navigate(srv.URL+"/"), chromedp.WaitReady("main"))
	found := map[string]string{}
	for _, v := range b.axeViolations() {
		found[v.ID] = v.Impact
	}
	for rule, impact := range map[string]string{"html-has-lang": "serious", "image-alt": "critical", "label": "critical", "color-contrast": "serious"} {
		if found[rule] != impact {
			t.Errorf("axe found %s as %q, want %s (found %v)", rule, found[rule], impact, found)
		}
	}
}

// TestAxeVendored checks the vendored axe-core is the file VENDORED.md
// records, with its licence beside it.
func TestAxeVendored(t *testing.T) {
	doc, err := os.ReadFile("testdata/axe/VENDORED.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `axe\\.min\\.js` \\| axe-core \\(npm\\) \\| ([0-9.]+) \\|.*\\| `([0-9a-f]{64})` \\| Mozilla Public License 2\\.0 \\(MPL-2\\.0\\)")
	m := row.FindStringSubmatch(string(doc))
	if m == nil {
		t.Fatal("VENDORED.md has no row for axe.min.js with its version, SHA-256 and licence")
	}
	src := axeSource(t)
	sum := sha256.Sum256([]byte(src))
	if got := hex.EncodeToString(sum[:]); got != m[2] {
		t.Errorf("axe.min.js: SHA-256 %s, VENDORED.md says %s", got, m[2])
	}
	if !strings.HasPrefix(src, "/*! axe v"+m[1]+"\n") {
		t.Errorf("axe.min.js does not start with the banner of version %s: %.40q", m[1], src)
	}
	lic, err := os.ReadFile("testdata/axe/LICENSE")
	if err != nil || !strings.HasPrefix(string(lic), "Mozilla Public License, version 2.0") {
		t.Errorf("testdata/axe/LICENSE is not the MPL-2.0 text (%v)", err)
	}
}
