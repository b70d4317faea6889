package executor

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// TestARedeliveryWhileRunningExecutesOnce: copies of a command that
// arrive while it runs (a redelivery on another session or lane) wait for
// its outcome instead of running it again; a copy after it is answered
// from the ledger; and a copy of a run cut short runs the command itself.
func TestARedeliveryWhileRunningExecutesOnce(t *testing.T) {
	t.Parallel()
	var runs atomic.Int32
	release, release2 := make(chan struct{}), make(chan struct{})
	started := make(chan struct{}, 10)
	blocking := func(release chan struct{}) Handler {
		return func(ctx context.Context, cmd protocol.Command) (json.RawMessage, error) {
			n := runs.Add(1)
			started <- struct{}{}
			select {
			case <-release:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			return json.Marshal(map[string]int32{"run": n})
		}
	}
	ex, err := Open(Options{Dir: t.TempDir(), BaseURL: "http://127.0.0.1:1", APIKey: func() string { return "k" },
		Handlers: map[string]Handler{"slow": blocking(release), "slow2": blocking(release2)}})
	if err != nil {
		t.Fatal(err)
	}
	defer ex.Close()
	cmd := protocol.Command{ID: "22222222-2222-2222-2222-222222222222", Type: "slow", Payload: json.RawMessage(`{}`)}
	type outcome struct {
		res json.RawMessage
		err error
	}
	outs := make(chan outcome, 3)
	for range 3 {
		go func() {
			res, err := ex.Execute(context.Background(), cmd)
			outs <- outcome{res, err}
		}()
	}
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the command never started")
	}
	// The copies have had time to arrive and wait; had one run the handler,
	// runs would be 2 (checked below after all return: this short wait
	// only gives a wrong implementation its chance to show).
	time.Sleep(50 * time.Millisecond)
	close(release)
	for range 3 {
		select {
		case o := <-outs:
			if o.err != nil || string(o.res) != `{"run":1}` {
				t.Fatalf("outcome %s, %v; want the first run's result", o.res, o.err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a copy of the command never returned")
		}
	}
	if res, err := ex.Execute(context.Background(), cmd); err != nil || string(res) != `{"run":1}` {
		t.Fatalf("after the run: %s, %v; want the ledger's answer", res, err)
	}
	if n := runs.Load(); n != 1 {
		t.Fatalf("the handler ran %d times for one command id", n)
	}

	// A run cut short is not recorded: the copy waiting for it runs the
	// command itself, once.
	cut := protocol.Command{ID: "33333333-3333-3333-3333-333333333333", Type: "slow2", Payload: json.RawMessage(`{}`)}
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() { _, err := ex.Execute(ctx, cut); first <- err }()
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the second command never started")
	}
	second := make(chan outcome, 1)
	go func() {
		res, err := ex.Execute(context.Background(), cut)
		second <- outcome{res, err}
	}()
	time.Sleep(50 * time.Millisecond) // let the copy wait (see above)
	cancel()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Fatalf("the cut-short run returned %v", err)
	}
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the copy of a cut-short run did not run it")
	}
	close(release2)
	select {
	case o := <-second:
		if o.err != nil || string(o.res) != `{"run":3}` {
			t.Fatalf("the copy after a cut-short run: %s, %v; want it to run the command", o.res, o.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the copy after a cut-short run never returned")
	}
	if n := runs.Load(); n != 3 {
		t.Fatalf("%d runs in all, want 3 (one, then one cut short and its copy)", n)
	}
}
