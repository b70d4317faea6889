package dashboard_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/cloud/accesstoken"
)

// sseEvent is one event of a stream.
type sseEvent struct{ ID, Kind, Data string }

// stream opens GET /api/v2/events with token and lastID (empty: from
// now) and sends what it reads to the returned channel until ctx ends.
func (e *apiEnv) stream(ctx context.Context, token, lastID string) <-chan sseEvent {
	e.t.Helper()
	req, err := http.NewRequestWithContext(ctx, "GET", e.srv.URL+"/api/v2/events", nil)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		e.t.Fatalf("events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	out := make(chan sseEvent, 100)
	go func() {
		defer resp.Body.Close()
		defer close(out)
		sc := bufio.NewScanner(resp.Body)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.Kind != "" {
					out <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, "id: "):
				ev.ID = line[4:]
			case strings.HasPrefix(line, "event: "):
				ev.Kind = line[7:]
			case strings.HasPrefix(line, "data: "):
				ev.Data = line[6:]
			}
		}
	}()
	return out
}

// next returns the next event within d, or fails.
func next(t *testing.T, ch <-chan sseEvent, d time.Duration) sseEvent {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("the stream ended")
		}
		return ev
	case <-time.After(d):
		t.Fatal("no event")
	}
	return sseEvent{}
}

// TestLiveEventsOverHTTP: an organisation's administrator receives their
// gateway's status changes and not the other organisation's; a department
// lead receives none; after a dropped connection, Last-Event-ID resumes
// exactly after the last event received.
func TestLiveEventsOverHTTP(t *testing.T) {
	e := newAPIEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin := e.orgAdmin(e.orgA)
	lead := e.token(accesstoken.Claims{UserID: e.orgA.UserID, OrganizationID: e.orgA.OrganizationID, Role: "DEPARTMENT_LEAD", DepartmentID: e.orgA.DepartmentID})
	adminCtx, dropAdmin := context.WithCancel(ctx)
	adminEvents := e.stream(adminCtx, admin, "")
	leadEvents := e.stream(ctx, lead, "")
	setStatus := func(gw fmt.Stringer, status string) {
		e.exec(`UPDATE gateway_instances SET status = $2 WHERE id = $1`, gw.String(), status)
	}
	setStatus(e.orgB.GatewayID, "offline") // globex: never seen by acme
	setStatus(e.orgA.GatewayID, "offline")
	ev := next(t, adminEvents, 10*time.Second)
	if ev.Kind != "gateway.status" || !strings.Contains(ev.Data, e.orgA.GatewayID.String()) || !strings.Contains(ev.Data, `"offline"`) {
		t.Fatalf("first event %+v", ev)
	}
	// Drop the connection, change twice, resume from the last id.
	dropAdmin()
	for range adminEvents {
	}
	setStatus(e.orgA.GatewayID, "online")
	setStatus(e.orgB.GatewayID, "online")
	setStatus(e.orgA.GatewayID, "offline")
	resumed := e.stream(ctx, admin, ev.ID)
	for _, want := range []string{`"online"`, `"offline"`} {
		got := next(t, resumed, 10*time.Second)
		if got.Kind != "gateway.status" || !strings.Contains(got.Data, e.orgA.GatewayID.String()) || !strings.Contains(got.Data, want) {
			t.Fatalf("resumed: %+v, want status %s", got, want)
		}
	}
	select {
	case ev := <-resumed:
		t.Fatalf("an event more than acme's: %+v", ev)
	case ev := <-leadEvents:
		t.Fatalf("the lead received %+v", ev)
	case <-time.After(time.Second):
	}
	// A malformed Last-Event-ID names the header.
	a := e.call("GET", "/api/v2/events", admin, nil, "Last-Event-ID", "yesterday")
	if _, field := a.errorCode(t); a.Status/100 != 4 || field != "Last-Event-ID" {
		t.Fatalf("bad Last-Event-ID: %d %s", a.Status, a.Body)
	}
}

// TestLiveStreamEndsWithItsSession: a stream opened with a session's
// token ends soon after that session ends (here a logout), without
// waiting for the token to expire.
func TestLiveStreamEndsWithItsSession(t *testing.T) {
	e := newAPIEnv(t, withSignIn(signInPolicy))
	e.addUser(e.orgA.OrganizationID, "watch@acme.test", "ORG_ADMIN", "correct horse battery", 0, 0)
	s := e.login("watch@acme.test", "correct horse battery")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	events := e.stream(ctx, s.AccessToken, "")
	if a := e.call("POST", "/api/auth/logout", "", map[string]string{"refresh_token": s.RefreshToken}); a.Status != http.StatusNoContent {
		t.Fatalf("logout: %d", a.Status)
	}
	select {
	case _, open := <-events:
		if open {
			for range events {
			}
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stream outlived its session by 10 s")
	}
	if ctx.Err() != nil {
		t.Fatal("the stream ended only with the test's deadline")
	}
}
