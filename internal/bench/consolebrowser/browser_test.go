package consolebrowser

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// The browser harness: Debian's Chromium, headless, driven through the
// DevTools protocol by chromedp. Each browser is its own process with its
// own profile (so its own cookies); every action of a test runs under the
// test's deadline.

// Environment variables of the browser tests.
const (
	// EnvRequire set to 1 (CI sets it) makes a missing Chromium fail
	// the tests instead of skipping them.
	EnvRequire = "CONSOLE_BROWSER_REQUIRE"
	// EnvChromium names the browser binary (default: chromium, then
	// chromium-browser, on PATH).
	EnvChromium = "CONSOLE_CHROMIUM"
	// EnvScreenshots is the directory the screenshots are written to
	// (default: the test's temporary directory).
	EnvScreenshots = "CONSOLE_SCREENSHOT_DIR"
)

// testTimeout bounds each test's browser work.
const testTimeout = 60 * time.Second

// chromium returns the browser binary, skipping the test (failing it
// when EnvRequire is 1) when there is none.
func chromium(t *testing.T) string {
	t.Helper()
	names := []string{"chromium", "chromium-browser"}
	if p := os.Getenv(EnvChromium); p != "" {
		names = []string{p}
	}
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	if os.Getenv(EnvRequire) == "1" {
		t.Fatalf("no Chromium (%s) and %s=1: install Debian's chromium", strings.Join(names, ", "), EnvRequire)
	}
	t.Skipf("no Chromium (%s); set %s=1 to fail instead", strings.Join(names, ", "), EnvRequire)
	return ""
}

// chrome is the test binary's one Chromium, started by the first test
// that needs it and stopped by TestMain. Each browser is a tab in a
// browser context of its own (cookies and storage apart, as in a private
// window), so tests do not see each other's sessions.
var chrome struct {
	mu     sync.Mutex
	ctx    context.Context // the browser's chromedp context
	cancel func()
}

// startChromium starts the shared Chromium unless it runs already.
func startChromium(t *testing.T) context.Context {
	t.Helper()
	path := chromium(t)
	chrome.mu.Lock()
	defer chrome.mu.Unlock()
	if chrome.ctx != nil {
		return chrome.ctx
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.DisableGPU,
		chromedp.WindowSize(int(laptop.Width), int(laptop.Height)),
		chromedp.Flag("lang", "en-GB"),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("font-render-hinting", "none"),
	)
	if os.Geteuid() == 0 {
		// Chromium's sandbox refuses to run as root (here and in CI).
		opts = append(opts, chromedp.NoSandbox)
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	stop := func() {
		cancelBrowser()
		cancelAlloc()
	}
	// The first run starts the browser; it gets no deadline of its own
	// (a deadline on it would end the browser), so the start is bounded
	// by a timer instead.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(bctx) }()
	select {
	case err := <-started:
		if err != nil {
			stop()
			t.Fatalf("start Chromium %s: %v", path, err)
		}
	case <-time.After(30 * time.Second):
		stop()
		t.Fatalf("Chromium %s did not start within 30 s", path)
	}
	chrome.ctx, chrome.cancel = bctx, stop
	return bctx
}

// stopChromium stops the shared Chromium, if it was started.
func stopChromium() {
	chrome.mu.Lock()
	defer chrome.mu.Unlock()
	if chrome.cancel != nil {
		chrome.cancel()
		chrome.ctx, chrome.cancel = nil, nil
	}
}

// browser is a tab of its own browser context, visiting s's console.
type browser struct {
	t   *testing.T
	s   *stack
	tab context.Context // the tab's context
	ctx context.Context // tab under the deadline of the test using it

	mu       sync.Mutex
	problems []string // script exceptions and dialogs the pages caused
}

// newBrowser opens a private tab for t at the laptop size, closed when t
// ends; a script exception or a dialog (alert, confirm) any of its pages
// raised fails t then.
func newBrowser(t *testing.T, s *stack) *browser {
	t.Helper()
	tab, closeTab := chromedp.NewContext(startChromium(t), chromedp.WithNewBrowserContext())
	b := &browser{t: t, s: s, tab: tab}
	t.Cleanup(func() {
		closeTab()
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, p := range b.problems {
			t.Error(p)
		}
	})
	b.use(t)
	b.do("open a tab", chromedp.EmulateViewport(laptop.Width, laptop.Height))
	b.watch(tab)
	return b
}

// use hands the browser to t (a subtest of the test that opened it) with
// a deadline of testTimeout from now; the browser goes back to its
// previous test and deadline when t ends.
func (b *browser) use(t *testing.T) {
	prevT, prevCtx := b.t, b.ctx
	ctx, cancel := context.WithTimeout(b.tab, testTimeout)
	b.t, b.ctx = t, ctx
	t.Cleanup(func() {
		cancel()
		b.t, b.ctx = prevT, prevCtx
	})
}

// watch records the pages' script exceptions and dismisses and records
// their dialogs (an injected alert() would open one).
func (b *browser) watch(ctx context.Context) {
	exceptions := chromedp.Events(ctx, runtime.ExceptionThrown)
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for ev, err := range exceptions {
			if err != nil {
				return
			}
			b.problem("script exception: %s", (&chromedp.ExceptionError{ExceptionDetails: ev.ExceptionDetails}).Error())
		}
	}()
	go func() {
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			b.problem("a page opened a %s dialog: %q", ev.Type, ev.Message)
			_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
		}
	}()
}

func (b *browser) problem(format string, args ...any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.problems = append(b.problems, fmt.Sprintf(format, args...))
}

// do runs steps, failing the test on an error (what names the steps).
func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// eval evaluates a JavaScript expression in the page and returns its
// value (a promise is awaited).
func eval[T any](b *browser, expr string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("evaluate %.120q: %v", expr, err)
	}
	return v
}

// open navigates to path (relative to the stack's URL) and waits for the
// page's main landmark.
func (b *browser) open(path string) {
	b.t.Helper()
	b.do("open "+path, chromedp.Navigate(b.s.URL+path), chromedp.WaitReady("main"))
}

// path is the current page's path and query.
func (b *browser) path() string {
	b.t.Helper()
	return eval[string](b, `location.pathname + location.search`)
}

// waitFor waits until the JavaScript expression is true (a bounded poll).
func (b *browser) waitFor(what, expr string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 15*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		b.t.Fatalf("waiting for %s (%s): %v; the page is %s", what, expr, err, b.path())
	}
}

// keys types text into whatever has the focus, as keystrokes.
func (b *browser) keys(text string) {
	b.t.Helper()
	b.do(fmt.Sprintf("type %q", text), chromedp.KeyEvent(text))
}

// enterAndLoad presses Enter and waits for the page it loads.
func (b *browser) enterAndLoad() {
	b.t.Helper()
	if _, err := chromedp.Run(b.ctx, chromedp.WaitEvent(page.LoadEventFired, nil, chromedp.KeyEvent(kb.Enter))); err != nil {
		b.t.Fatalf("press Enter and wait for the next page: %v", err)
	}
}

// focused describes the focused element (tag, id, text), for messages.
func (b *browser) focused() string {
	return eval[string](b, `(() => { const e = document.activeElement; if (!e) return "nothing";
		return e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") + " " + JSON.stringify((e.innerText || e.value || "").slice(0, 40)); })()`)
}

// tabTo presses Tab until the focused element matches the CSS selector
// (at most 25 presses) and returns the elements the focus passed, in order.
func (b *browser) tabTo(selector string) []string {
	b.t.Helper()
	var passed []string
	match := fmt.Sprintf(`!!document.activeElement && document.activeElement.matches(%q)`, selector)
	for range 25 {
		b.do("press Tab", chromedp.KeyEvent(kb.Tab))
		if eval[bool](b, match) {
			return passed
		}
		passed = append(passed, b.focused())
	}
	b.t.Fatalf("25 presses of Tab did not reach %s; the focus passed %s", selector, strings.Join(passed, ", "))
	return nil
}

// signIn signs in through the form with the keyboard only: Tab to the
// e-mail field, type, Tab to the password, type, Enter.
func (b *browser) signIn(email string) {
	b.t.Helper()
	b.submitSignIn(email, password)
	if p := b.path(); p != "/console/" {
		b.t.Fatalf("sign-in as %s ended on %s: %s", email, p, eval[string](b, `document.querySelector("main").innerText`))
	}
}

// submitSignIn fills and submits the sign-in form with the keyboard.
func (b *browser) submitSignIn(email, pw string) {
	b.t.Helper()
	b.open("/console/signin")
	b.tabTo("#email")
	b.keys(email)
	b.do("press Tab", chromedp.KeyEvent(kb.Tab))
	if f := b.focused(); !strings.HasPrefix(f, "input#password") {
		b.t.Fatalf("Tab from the e-mail field went to %s, want the password", f)
	}
	b.keys(pw)
	b.enterAndLoad()
}

// viewport is a screen size the pages are checked at.
type viewport struct {
	Name          string
	Width, Height int64
}

// The screens every page must work on: a 1280×800 laptop and a tablet in
// portrait (an iPad Air's 820×1180 CSS pixels).
var (
	laptop    = viewport{"laptop", 1280, 800}
	tablet    = viewport{"tablet", 820, 1180}
	viewports = []viewport{laptop, tablet}
)

// screenshotDir is where this test's screenshots go.
func screenshotDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv(EnvScreenshots)
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

var unsafeName = regexp.MustCompile(`[^a-zA-Z0-9._-]+`)

// checkPage is the every-page check of the page the browser shows, named
// name: at each viewport, the page must not scroll sideways, axe-core must
// find no serious or critical violation, and a full-page PNG screenshot is
// written to the screenshot directory as <test>-<name>-<viewport>.png.
// The laptop size is restored afterwards.
func (b *browser) checkPage(name string) {
	b.t.Helper()
	dir := screenshotDir(b.t)
	for _, vp := range viewports {
		b.do("resize to "+vp.Name, chromedp.EmulateViewport(vp.Width, vp.Height))
		// A sideways scroll bar means something does not fit the screen.
		if w := eval[[]int](b, `[document.documentElement.scrollWidth, window.innerWidth]`); w[0] > w[1] {
			b.t.Errorf("%s at %s (%d×%d): the page is %d px wide, wider than the screen", name, vp.Name, vp.Width, vp.Height, w[0])
		}
		b.axe(name + " at " + vp.Name)
		png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
		if err != nil {
			b.t.Fatalf("screenshot %s: %v", name, err)
		}
		file := filepath.Join(dir, unsafeName.ReplaceAllString(strings.Split(b.t.Name(), "/")[0]+"-"+name+"-"+vp.Name, "_")+".png")
		if err := os.WriteFile(file, png, 0o644); err != nil {
			b.t.Fatal(err)
		}
		b.t.Logf("screenshot %s", file)
	}
	b.do("resize back", chromedp.EmulateViewport(laptop.Width, laptop.Height))
}

// TestHarnessSeesProblems: a page's dialog and uncaught exception are
// caught (the markup-injection test relies on it), and the dialog does not
// hang the page.
func TestHarnessSeesProblems(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><html lang="en"><title>x</title><main><h1>x</h1></main>
<script>alert("injected"); throw new Error("boom");</script></html>`)
	}))
	defer srv.Close()
	b := newBrowser(t, &stack{t: t, URL: srv.URL})
	b.open("/")
	deadline := time.Now().Add(10 * time.Second)
	for {
		b.mu.Lock()
		got := strings.Join(b.problems, "\n")
		n := len(b.problems)
		if n >= 2 || time.Now().After(deadline) {
			b.problems = nil // seen: not a failure of this test
			b.mu.Unlock()
			if !strings.Contains(got, `alert dialog: "injected"`) || !strings.Contains(got, "boom") {
				t.Errorf("the harness recorded %q, want the alert and the exception", got)
			}
			return
		}
		b.mu.Unlock()
		time.Sleep(50 * time.Millisecond)
	}
}
