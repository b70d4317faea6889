package consolebrowser

import (
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// TestHRDayExport: an HR manager finds an employee, opens their day (the
// timeline of their windows) and downloads the day's CSV in the browser;
// the file is byte for byte the API's CSV for the same query.
func TestHRDayExport(t *testing.T) {
	s := sharedStack(t)
	b := newBrowser(t, s)
	b.signIn(hrEmail)

	b.open("/console/employees")
	b.do("search", chromedp.SendKeys(chromedp.CSS("#q"), "lee"), chromedp.KeyEvent(kb.Enter))
	b.waitFor("the search's results", `document.querySelectorAll("#results tbody tr").length === 1`)
	if r := b.rows("#results"); len(r) != 1 || !strings.Contains(r[0], "Lee, Ann") {
		t.Fatalf("searching lee lists %q", r)
	}
	b.clickAndLoad("#results tbody a")
	b.clickAndLoad("#day-link")
	if p := b.path(); p != fmt.Sprintf("/console/employees/%d/day", s.ann) {
		t.Fatalf("the day link led to %s", p)
	}
	timeline := strings.Join(b.rows("#timeline"), "\n")
	for _, want := range []string{"excel.exe", "Quarterly report.xlsx - Excel", "outlook.exe", "winword.exe"} {
		if !strings.Contains(timeline, want) {
			t.Errorf("Ann's day lacks %s: %s", want, timeline)
		}
	}
	b.checkPage("employee-day")

	// The download, into a directory of the test's.
	dir := t.TempDir()
	on := true
	if _, err := chromedp.CallBrowser(b.ctx, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{
		Behavior: cdpbrowser.SetDownloadBehaviorBehaviorAllow, BrowserContextID: chromedp.FromContext(b.tab).BrowserContextID,
		DownloadPath: dir, EventsEnabled: &on}); err != nil {
		t.Fatalf("allow downloads: %v", err)
	}
	href := eval[string](b, `document.querySelector("#day-export").getAttribute("href")`)
	b.do("click the day's export", chromedp.Click(chromedp.CSS("#day-export")))
	var got []byte
	deadline := time.Now().Add(30 * time.Second)
	for got == nil {
		files, _ := filepath.Glob(filepath.Join(dir, "*"))
		for _, f := range files {
			if !strings.HasSuffix(f, ".crdownload") {
				var err error
				if got, err = os.ReadFile(f); err != nil {
					t.Fatal(err)
				}
				t.Logf("downloaded %s (%d bytes)", filepath.Base(f), len(got))
			}
		}
		if got == nil {
			if time.Now().After(deadline) {
				t.Fatalf("no download in %s within 30 s (files %v)", dir, files)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	// The API's CSV for the same query, as the HR manager.
	u, err := url.Parse(href)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if q.Get("employee_id") != fmt.Sprint(s.ann) || q.Get("from") == "" || q.Get("from") != q.Get("to") {
		t.Fatalf("the export's query is %s, want Ann's one day", u.RawQuery)
	}
	q.Del("report")
	q.Set("format", "csv")
	status, ctype, want := s.api(s.apiToken(hrEmail), http.MethodGet, "/api/v2/reports/employee-days?"+q.Encode(), nil)
	if status != http.StatusOK || !strings.HasPrefix(ctype, "text/csv") {
		t.Fatalf("the API's CSV: %d %s %s", status, ctype, want)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("the browser's download differs from the API's CSV:\n--- browser\n%s\n--- API\n%s", got, want)
	}
	if lines := strings.Count(string(got), "\n"); lines != 2 || !strings.Contains(string(got), "E-1") {
		t.Errorf("the day's CSV has %d lines, want a header and Ann's day (E-1):\n%s", lines, got)
	}
}
