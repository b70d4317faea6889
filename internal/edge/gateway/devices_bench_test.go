package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/edge/config"
	"github.com/staffcontrol/staffcontrol/internal/edge/devices"
	"github.com/staffcontrol/staffcontrol/internal/edge/devices/vendors"
	"github.com/staffcontrol/staffcontrol/internal/logtest"
	"github.com/staffcontrol/staffcontrol/internal/sim/fakecloud"
	"github.com/staffcontrol/staffcontrol/internal/sim/hiksim"
	"github.com/staffcontrol/staffcontrol/internal/sim/zksim"
)

// deviceFleet is n simulated door terminals on loopback, half Hikvision
// (hiksim), half ZKTeco (zksim), each generating rate badges per second
// with its own generator. (No unpaced flood: the simulators keep every
// event in memory, and a loop badging as fast as it can exhausts it.)
type deviceFleet struct {
	hik []*hiksim.Sim
	zk  []*zksim.Sim
}

func startDeviceFleet(b *testing.B, n int, rate float64) *deviceFleet {
	b.Helper()
	f := &deviceFleet{}
	for i := 0; i < n; i++ {
		if i%2 == 0 {
			s := hiksim.New(hiksim.Options{BadgeRate: rate, Location: time.UTC, Serial: fmt.Sprintf("DS-BENCH-%03d", i)})
			if err := s.Start(); err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { s.Close() })
			f.hik = append(f.hik, s)
			continue
		}
		// 1000 users: a ZKTeco event's key is the user and the second, so
		// a fast generator needs many users to stay free of real repeats.
		s := zksim.New(zksim.Options{Users: 1000, Records: -1, BadgeRate: rate, Seed: uint64(i), Serial: fmt.Sprintf("ZK-BENCH-%03d", i)})
		if err := s.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		f.zk = append(f.zk, s)
	}
	return f
}

// devicesJSON is the fleet as STAFF_GATEWAY_DEVICES.
func (f *deviceFleet) devicesJSON(b *testing.B) string {
	var list []map[string]any
	for i, s := range f.hik {
		host, port := splitAddr(b, s.Addr())
		list = append(list, map[string]any{"name": fmt.Sprintf("hik-%d", i), "adapter_type": "hikvision", "host": host, "port": port,
			"config": map[string]any{"username": "admin", "password": "Admin12345", "time_zone": "UTC"}})
	}
	for i, s := range f.zk {
		host, port := splitAddr(b, s.Addr())
		list = append(list, map[string]any{"name": fmt.Sprintf("zk-%d", i), "adapter_type": "zkteco", "host": host, "port": port,
			"config": map[string]any{"time_zone": "UTC"}})
	}
	out, err := json.Marshal(list)
	if err != nil {
		b.Fatal(err)
	}
	return string(out)
}

// generated is how many events the simulators have logged so far.
func (f *deviceFleet) generated() int {
	n := 0
	for _, s := range f.hik {
		n += len(s.Events())
	}
	for _, s := range f.zk {
		n += len(s.Records())
	}
	return n
}

// bufferedBy is buffered per adapter type.
func bufferedBy(g *Gateway, adapter string) int64 {
	var n int64
	for _, st := range g.devices.Statuses() {
		if st.AdapterType == adapter {
			n += st.Counts.LiveEvents + st.Counts.CatchupEvents
		}
	}
	return n
}

func splitAddr(b *testing.B, addr string) (string, int) {
	i := strings.LastIndexByte(addr, ':')
	port, err := strconv.Atoi(addr[i+1:])
	if err != nil {
		b.Fatal(err)
	}
	return addr[:i], port
}

// startDeviceGateway starts a gateway (the binary's wiring, GOGC=400 as
// cmd/gateway sets, an API key so it needs no provisioning) whose uplink
// forwards to a decode-only sink, with the devices list devs ("" none).
func startDeviceGateway(b *testing.B, devs string) *Gateway {
	b.Helper()
	sink, err := fakecloud.New(fakecloud.Options{APIKey: apiKey, DecodeOnly: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { sink.Close() })
	env := map[string]string{
		"STAFF_GATEWAY_SERVER_URL":            sink.URL,
		"STAFF_GATEWAY_ORGANIZATION_API_KEY":  apiKey,
		"STAFF_GATEWAY_GATEWAY_LISTEN":        "127.0.0.1:0",
		"STAFF_GATEWAY_GATEWAY_GRPC_LISTEN":   "off",
		"STAFF_GATEWAY_BUFFER_PATH":           filepath.Join(b.TempDir(), "buffer.sqlite"),
		"STAFF_GATEWAY_UPLINK_FLUSH_INTERVAL": "1s",
	}
	if devs != "" {
		env["STAFF_GATEWAY_DEVICES"] = devs
	}
	cfg, err := config.Load("", func(k string) string { return env[k] })
	if err != nil {
		b.Fatal(err)
	}
	log := logtest.New(b)
	g, err := New(context.Background(), cfg, Deps{Logger: log, Version: "bench", DeviceFactories: vendors.Factories(log)})
	if err != nil {
		b.Fatal(err)
	}
	if err := g.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = g.Stop(ctx)
	})
	return g
}

// waitOnline waits until n devices are online.
func waitOnline(b *testing.B, g *Gateway, n int) {
	b.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		online := 0
		for _, st := range g.devices.Statuses() {
			if st.State == devices.StateOnline {
				online++
			}
		}
		if online == n {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d devices online after 60 s", online, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// buffered is how many device events the supervisors appended to the
// buffer (live and catch-up, duplicates not counted).
func buffered(g *Gateway) int64 {
	var n int64
	for _, st := range g.devices.Statuses() {
		n += st.Counts.LiveEvents + st.Counts.CatchupEvents
	}
	return n
}

// BenchmarkDeviceEvents: one gateway, 50 simulated terminals (25 hiksim on
// the ISAPI alertStream, 25 zksim with realtime EF_ATTLOG), each badging at
// rate/s (exponential gaps for zksim, even for hiksim), simulators in the
// same process. Once all 50 are online, a 10 s window counts the events
// the simulators generated (offered/s) and the events the supervisors
// appended to the SQLite buffer (buffered/s: the supervisor counts after
// buffer.Append returned), while the uplink forwards to a decode-only sink
// as in production. Run with -benchtime 1x (b.N is not used: one window).
func BenchmarkDeviceEvents(b *testing.B) {
	for _, rate := range []float64{20, 100, 400} {
		b.Run(fmt.Sprintf("devices=50/rate=%g", rate), func(b *testing.B) { benchDeviceEvents(b, 50, rate) })
	}
}

func benchDeviceEvents(b *testing.B, n int, rate float64) {
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	f := startDeviceFleet(b, n, rate)
	g := startDeviceGateway(b, f.devicesJSON(b))
	waitOnline(b, g, n)
	time.Sleep(2 * time.Second) // the catch-up of what was generated before the sessions were up
	const window = 10 * time.Second
	b.ResetTimer()
	gen0, buf0, t0 := f.generated(), buffered(g), time.Now()
	hik0, zk0 := bufferedBy(g, "hikvision"), bufferedBy(g, "zkteco")
	var ru0 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	time.Sleep(window)
	gen1, buf1, el := f.generated(), buffered(g), time.Since(t0)
	hik1, zk1 := bufferedBy(g, "hikvision"), bufferedBy(g, "zkteco")
	var ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	b.StopTimer()
	// What was generated but not yet appended at the window's end, after a
	// settling second (the event is lost if it stays so: hiksim drops live
	// alerts to a stream that does not keep up, as a device does).
	time.Sleep(time.Second)
	lag := f.generated() - gen1 - int(buffered(g)-buf1)
	online := 0
	for _, st := range g.devices.Statuses() {
		if st.State == devices.StateOnline {
			online++
		}
	}
	b.ReportMetric(float64(gen1-gen0)/el.Seconds(), "offered/s")
	b.ReportMetric(float64(buf1-buf0)/el.Seconds(), "buffered/s")
	b.ReportMetric(float64(hik1-hik0)/el.Seconds(), "hik-buffered/s")
	b.ReportMetric(float64(zk1-zk0)/el.Seconds(), "zk-buffered/s")
	b.ReportMetric(float64(lag), "behind-after-1s")
	b.ReportMetric(cpuPercent(ru0, ru1, el), "cpu-%")
	b.ReportMetric(float64(online), "online-at-end")
}

// cpuPercent is the process's user+system CPU between two samples, in
// percent of one core.
func cpuPercent(a, b syscall.Rusage, el time.Duration) float64 {
	d := time.Duration(b.Utime.Nano()-a.Utime.Nano()) + time.Duration(b.Stime.Nano()-a.Stime.Nano())
	return 100 * d.Seconds() / el.Seconds()
}

// BenchmarkIdleDevices: the cost of idle connected terminals. 50
// simulators (no badges) run in both cases; devices=0 starts a gateway
// without devices, devices=50 one supervising all 50 (ISAPI alertStream
// with heartbeats every 10 s, ZKTeco sessions probed after 30 s of
// silence). After the sessions are up and a settling pause, it reports
// goroutines, the live heap after a GC, the process RSS and the CPU over a
// 30 s idle window. The difference between the two runs is the cost of
// 50 idle devices, both ends of each connection included (the simulators'
// side of a connection is in the same process: an upper bound for the
// gateway alone). Run with -benchtime 1x; DEVICE_BENCH_HEAP_PROFILE names a
// file for the heap profile at the measurement point.
func BenchmarkIdleDevices(b *testing.B) {
	for _, n := range []int{0, 50} {
		b.Run(fmt.Sprintf("devices=%d", n), func(b *testing.B) { benchIdleDevices(b, n) })
	}
}

func benchIdleDevices(b *testing.B, n int) {
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	f := startDeviceFleet(b, 50, 0)
	devs := ""
	if n > 0 {
		devs = f.devicesJSON(b)
	}
	g := startDeviceGateway(b, devs)
	waitOnline(b, g, n)
	time.Sleep(5 * time.Second)
	const window = 30 * time.Second
	b.ResetTimer()
	var ru0, ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	t0 := time.Now()
	time.Sleep(window)
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	el := time.Since(t0)
	b.StopTimer()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	// DEVICE_BENCH_HEAP_PROFILE=file writes the live heap here (sampled
	// at -test.memprofilerate), to see whose it is.
	if fn := os.Getenv("DEVICE_BENCH_HEAP_PROFILE"); fn != "" {
		fh, err := os.Create(fn)
		if err != nil {
			b.Fatal(err)
		}
		if err := pprof.WriteHeapProfile(fh); err != nil {
			b.Fatal(err)
		}
		fh.Close()
	}
	b.ReportMetric(float64(runtime.NumGoroutine()), "goroutines")
	b.ReportMetric(float64(ms.HeapAlloc)/(1<<20), "heap-MiB")
	b.ReportMetric(rssMiB(), "rss-MiB")
	b.ReportMetric(cpuPercent(ru0, ru1, el), "cpu-%")
}

// rssMiB is the process's resident set (VmRSS), 0 when unknown.
func rssMiB() float64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			if err == nil {
				return kb / 1024
			}
		}
	}
	return 0
}
