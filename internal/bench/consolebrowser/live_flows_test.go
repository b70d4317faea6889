package consolebrowser

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/staffcontrol/staffcontrol/internal/sim/hiksim"
)

// TestLive runs the flows whose pages move on their own, against one live
// stack (the Agent API, two real gateways, a simulated terminal): a
// policy released and distributed in the browser reaches 100 % without a
// reload, and a door opened from a device's page opens on the simulator,
// with the result and the door's event arriving on the page.
func TestLive(t *testing.T) {
	s := startLiveStack(t)
	t.Run("policy", func(t *testing.T) { livePolicy(t, s) })
	t.Run("door", func(t *testing.T) { liveDoor(t, s) })
}

// stayed marks the page in the browser's memory; stillSamePage reports
// whether that page is still the one shown (no navigation or reload since).
func (b *browser) markPage() {
	b.t.Helper()
	eval[bool](b, `(window.__consoleMark = true)`)
}

func (b *browser) stillSamePage() bool {
	b.t.Helper()
	return eval[bool](b, `window.__consoleMark === true`)
}

// clickAndLoad clicks the element of the CSS selector and waits for the
// page it loads (a form's answer).
func (b *browser) clickAndLoad(selector string) {
	b.t.Helper()
	if _, err := chromedp.Run(b.ctx, chromedp.WaitEvent(page.LoadEventFired, nil, chromedp.Click(chromedp.CSS(selector)))); err != nil {
		b.t.Fatalf("click %s and wait for the next page: %v", selector, err)
	}
}

// waitLong is waitFor with a longer bound, for what the live parts do
// (a distribution's round trips, a door's command).
func (b *browser) waitLong(what, expr string) {
	b.t.Helper()
	if _, err := chromedp.Run(b.ctx, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(100*time.Millisecond),
		chromedp.WithPollingTimeout(liveTimeout))); err != nil {
		b.t.Fatalf("waiting for %s (%s): %v; the page is %s: %s", what, expr, err, b.path(), b.mainText())
	}
}

// livePolicy: the administrator releases a policy and distributes it to
// Acme's two gateways; the distribution's page reaches 100 % applied
// without being reloaded.
func livePolicy(t *testing.T, s *liveStack) {
	token := s.apiToken(adminEmail)
	var pol struct {
		ID int64 `json:"id"`
	}
	s.apiJSON(token, http.MethodPost, "/api/v2/policies", map[string]any{"name": "Office hours",
		"content": map[string]any{"screenshots": map[string]any{"enabled": true, "interval_seconds": 300}}}, &pol)

	b := newBrowser(t, s.stack)
	b.signIn(adminEmail)
	b.open(fmt.Sprintf("/console/policies/%d", pol.ID))
	b.clickAndLoad("#release")
	b.waitFor("the release's confirmation", `!!document.querySelector("#released")`)
	if got := eval[string](b, `document.querySelector("#released").innerText`); !strings.Contains(got, "1.0.0") {
		t.Fatalf("after Release the page says %q, want version 1.0.0", got)
	}
	b.checkPage("policy-released")

	// Distribute version 1.0.0 (the versions table's form of its row).
	b.clickAndLoad(`form[action$="/distributions"] button[type=submit]`)
	if p := b.path(); !strings.Contains(p, "/distributions/") {
		t.Fatalf("Distribute led to %s: %s", p, b.mainText())
	}
	b.markPage()
	b.waitLong("the distribution at 100 %", `document.querySelector("#percent").innerText.trim() === "100 %"`)
	if !b.stillSamePage() {
		t.Fatal("the distribution's page was reloaded or left on its way to 100 %")
	}
	rows := b.rows("#progress")
	if len(rows) != 2 {
		t.Fatalf("the distribution lists %d gateways, want Acme's 2: %q", len(rows), rows)
	}
	for _, r := range rows {
		if !strings.Contains(r, "pplied") {
			t.Errorf("a gateway's row is %q, want it applied", r)
		}
	}
	// What the page says is what the gateways did: each reports the
	// version applied (the API's record of the distribution agrees).
	did := eval[string](b, `location.pathname.split("/").pop()`)
	var d struct {
		Applied int `json:"applied"`
		Total   int `json:"total"`
	}
	s.apiJSON(token, http.MethodGet, fmt.Sprintf("/api/v2/policies/%d/distributions/%s", pol.ID, did), nil, &d)
	if d.Applied != 2 || d.Total != 2 {
		t.Errorf("the API has the distribution at %d applied of %d, want 2 of 2", d.Applied, d.Total)
	}
	b.checkPage("distribution-done")
}

// liveDoor: the HR manager opens door 2 from the terminal's page; the
// simulated terminal's door opens, the command's result and the door's
// event appear on the page without a reload.
func liveDoor(t *testing.T, s *liveStack) {
	if d := s.hik.Door(2); d != hiksim.DoorClosed {
		t.Fatalf("door 2 is %q before the test, want closed", d)
	}
	b := newBrowser(t, s.stack)
	b.signIn(hrEmail)
	b.open(fmt.Sprintf("/console/devices/%d", s.device))
	b.waitFor("the device online", `document.querySelector("#device-status").innerText.trim() !== ""`)
	b.do("choose door 2", chromedp.SetValue(chromedp.CSS("#door"), "2"))
	b.clickAndLoad("#open-door")
	b.markPage()
	b.waitLong("the command's result", `document.querySelector("#sent-status") && document.querySelector("#sent-status").dataset.status === "completed"`)
	if d := s.hik.Door(2); d != hiksim.DoorOpen {
		t.Errorf("after the console's open door, the simulator's door 2 is %q, want %q", d, hiksim.DoorOpen)
	}
	b.waitLong("the door's event", `Array.from(document.querySelectorAll("#device-events tbody tr")).some(r => r.dataset.door === "2" && r.dataset.minor === "1024")`)
	if !b.stillSamePage() {
		t.Fatal("the device's page was reloaded or left while the result and event arrived")
	}
	b.checkPage("device-door-opened")
}
