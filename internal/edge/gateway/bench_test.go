package gateway

import (
	"context"
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/edge/config"
	"github.com/staffcontrol/staffcontrol/internal/logtest"
	"github.com/staffcontrol/staffcontrol/internal/sim/agentsim"
	"github.com/staffcontrol/staffcontrol/internal/sim/fakecloud"
)

// BenchmarkAcceptAndForward runs the whole data path at once on loopback:
// 50 simulated agents send 100-event batches while the uplink forwards to a
// sink that only decodes (gzip + JSON). b.N counts events. Two loads:
//
//   - load=22k: each agent sends 440 events/s (22,000 events/s in all, above the
//     20,000 floor), so latency is the service time, not queueing;
//   - load=max: each agent sends its next batch as soon as the previous one
//     is acknowledged (closed loop), measuring the saturation rate; latency
//     then equals 50 requests in flight divided by the rate.
//
// Reported: acknowledged events/s; events/s the sink received while the
// agents were sending (accepted and forwarded at once); the time the uplink
// needed afterwards to forward the rest (tail-ms, at most one flush interval
// of 1 s under load=22k); p50/p99 acknowledgement latency seen by agents;
// and, from a probe beside the run, the machine's worst wake-up delay and
// its fdatasync p99 and maximum (stallProbe), which tell a run slowed by
// the shared VM from one slowed by the gateway.
func BenchmarkAcceptAndForward(b *testing.B) {
	for _, tc := range []struct {
		name, sync, transport string
		rate                  float64
	}{
		{"load=22k/sync=full/http", "full", "http", 440},
		{"load=22k/sync=normal/http", "normal", "http", 440},
		{"load=22k/sync=full/grpc", "full", "grpc", 440},
		{"load=max/sync=full/http", "full", "http", 0},
		{"load=max/sync=normal/http", "normal", "http", 0},
		{"load=max/sync=full/grpc", "full", "grpc", 0},
	} {
		b.Run(tc.name, func(b *testing.B) { benchAcceptAndForward(b, tc.sync, tc.transport, tc.rate) })
	}
}

func benchAcceptAndForward(b *testing.B, syncMode, transport string, rate float64) {
	// As cmd/gateway does (GOGC=400); simulator and sink share the process.
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	sink, err := fakecloud.New(fakecloud.Options{APIKey: apiKey, DecodeOnly: true})
	if err != nil {
		b.Fatal(err)
	}
	defer sink.Close()
	env := map[string]string{
		"STAFF_GATEWAY_SERVER_URL":            sink.URL,
		"STAFF_GATEWAY_ORGANIZATION_API_KEY":  apiKey,
		"STAFF_GATEWAY_GATEWAY_LISTEN":        "127.0.0.1:0",
		"STAFF_GATEWAY_GATEWAY_GRPC_LISTEN":   "127.0.0.1:0",
		"STAFF_GATEWAY_BUFFER_PATH":           filepath.Join(b.TempDir(), "buffer.sqlite"),
		"STAFF_GATEWAY_BUFFER_SYNCHRONOUS":    syncMode,
		"STAFF_GATEWAY_UPLINK_FLUSH_INTERVAL": "1s",
	}
	cfg, err := config.Load("", func(k string) string {
		if v, ok := env[k]; ok {
			return v
		}
		return os.Getenv(k) // e.g. STAFF_GATEWAY_UPLINK_PARALLEL for experiments
	})
	if err != nil {
		b.Fatal(err)
	}
	g, err := New(context.Background(), cfg, Deps{Logger: logtest.New(b), Version: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	if err := g.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer g.Stop(context.Background())
	probe, err := startStallProbe(probeFile(b.TempDir()))
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	res, err := agentsim.Run(context.Background(), agentsim.Options{EnrolmentSecret: fakecloud.DefaultEnrolmentSecret, GatewayURL: "http://" + g.Addr(), GRPCAddr: g.GRPCAddr(),
		Transport: transport, Agents: 50, Rate: rate, BatchSize: 100, MaxEvents: int64(b.N)})
	if err != nil || res.Acked != int64(b.N) {
		b.Fatalf("%v %s", err, res)
	}
	accepted := time.Since(start)
	during := sink.Stats().Events
	wakeMax, syncP99, syncMax := probe.stop()
	for sink.Stats().Events < b.N {
		if time.Since(start) > 5*time.Minute {
			b.Fatalf("forwarded %d of %d", sink.Stats().Events, b.N)
		}
		time.Sleep(2 * time.Millisecond)
	}
	tail := time.Since(start) - accepted
	b.StopTimer()
	b.ReportMetric(float64(b.N)/accepted.Seconds(), "accepted/s")
	// Forwarded while accepting, and how long the rest took afterwards.
	b.ReportMetric(float64(during)/accepted.Seconds(), "forwarded/s")
	b.ReportMetric(float64(tail.Milliseconds()), "tail-ms")
	b.ReportMetric(float64(res.P50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(res.P99.Microseconds())/1000, "p99-ms")
	// The machine while the agents sent (see stallProbe).
	b.ReportMetric(wakeMax, "probe-wake-max-ms")
	b.ReportMetric(syncP99, "probe-fsync-p99-ms")
	b.ReportMetric(syncMax, "probe-fsync-max-ms")
}
