package control_test

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/staffcontrol/staffcontrol/internal/cloud/commandqueue"
	"github.com/staffcontrol/staffcontrol/internal/cloud/control"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// BenchmarkEnqueueToReceipt measures the time from a command's enqueue (a
// committed INSERT by the dashboard role) to its arrival on the gateway's
// socket: NOTIFY, claim with SKIP LOCKED, write.
func BenchmarkEnqueueToReceipt(b *testing.B) {
	w := newWorld(b)
	r := w.replica(control.Options{}, commandqueue.Options{})
	url := "ws" + strings.TrimPrefix(r.srv.URL, "http") + protocol.PathGatewaySocket
	ws, _, err := websocket.DefaultDialer.Dial(url, http.Header{protocol.HeaderAPIKey: {w.a.key}})
	if err != nil {
		b.Fatal(err)
	}
	defer ws.Close()
	var env protocol.Envelope
	if err := ws.ReadJSON(&env); err != nil || env.Type != protocol.MsgWelcome {
		b.Fatalf("welcome: %v", err)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if _, err := w.enqueue.Enqueue(context.Background(), w.a.tenant, commandqueue.NewCommand{GatewayID: w.a.id, Type: protocol.CommandRestartAgent}); err != nil {
			b.Fatal(err)
		}
		for {
			if err := ws.ReadJSON(&env); err != nil {
				b.Fatal(err)
			}
			if env.Type == protocol.MsgCommand {
				break
			}
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkFleetRelease connects 1,000 simulated gateways to two replicas,
// measures the memory each idle connection costs (client and server ends
// together, both in this process: an upper bound for the server), then the
// time from a policy release's distribution to 100 % applied.
func BenchmarkFleetRelease(b *testing.B) {
	for _, n := range []int{1000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				d, perConn := fleetRun(b, n)
				b.ReportMetric(d.Seconds(), "s-to-100%")
				b.ReportMetric(perConn/1024, "KiB/conn")
			}
		})
	}
}

func memInUse() float64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return float64(m.HeapInuse + m.StackInuse)
}

func fleetRun(b *testing.B, n int) (time.Duration, float64) {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := newWorld(b)
	gws := append(w.bulkGateways(b, n-1), &simGateway{id: w.a.id, key: w.a.key})
	r1 := w.replica(control.Options{}, commandqueue.Options{})
	r2 := w.replica(control.Options{}, commandqueue.Options{})
	before := memInUse()
	var ready sync.WaitGroup
	for i, g := range gws {
		r := r1
		if i%2 == 1 {
			r = r2
		}
		g.base = r.srv.URL
		ready.Add(1)
		go g.run(ctx, b, "ws"+strings.TrimPrefix(r.srv.URL, "http")+protocol.PathGatewaySocket, &ready)
	}
	ready.Wait()
	time.Sleep(500 * time.Millisecond)
	perConn := (memInUse() - before) / float64(n)
	start := time.Now()
	prog, _ := w.releaseToAll(b, ctx)
	d := time.Since(start)
	if prog.Applied != n {
		b.Fatalf("applied %d of %d", prog.Applied, n)
	}
	return d, perConn
}
