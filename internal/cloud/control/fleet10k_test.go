package control_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/staffcontrol/staffcontrol/internal/cloud/accounts"
	"github.com/staffcontrol/staffcontrol/internal/cloud/agentapi/agentapitest"
	"github.com/staffcontrol/staffcontrol/internal/cloud/auth"
	"github.com/staffcontrol/staffcontrol/internal/cloud/commandqueue"
	"github.com/staffcontrol/staffcontrol/internal/cloud/policy"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/cloud/service"
	"github.com/staffcontrol/staffcontrol/internal/logtest"
	"github.com/staffcontrol/staffcontrol/internal/sim/fleetsim"
)

// envFleetSizes overrides the fleet sizes of BenchmarkFleetRelease10k, as a
// comma-separated list (default "10000"; e.g. "1000,10000" for a
// side-by-side in one sitting).
const envFleetSizes = "STAFF_BENCH_FLEET"

// envHeapProfile names a file for a heap profile of the benchmark's
// process once the fleet is connected and idle (what holds the memory per
// connection: go tool pprof -sample_index=inuse_space).
const envHeapProfile = "STAFF_BENCH_HEAPPROFILE"

// fleetProcesses is how many simulator processes share the fleet, one per
// Agent API replica.
const fleetProcesses = 2

// fleetPoolSize is each replica's PostgreSQL pool.
const fleetPoolSize = 20

// BenchmarkFleetRelease10k connects a fleet of simulated gateways (10,000
// by default) to two Agent API replicas in this process, each replica with
// its own pool on one PostgreSQL. The gateways run in two child processes
// of `staffctl simulate gateways` (built once with go build), one per
// replica, so that the client ends of the sockets count neither against
// this process's file limit nor in its memory. It reports the connect time;
// the server's memory per idle connection; enqueue → received
// acknowledgement for single commands sent to the idle fleet; the time from
// a policy release (10 % canary first, then the rest) to 50, 95 and 100 %
// applied; and enqueue → received acknowledgement of the release's
// commands. Every gateway sends heartbeats at the default 30 s interval
// throughout, as real ones do.
//
//	STAFF_BENCH_FLEET=1000,10000 go test ./internal/cloud/control -run '^$' -bench 'FleetRelease10k' -benchtime 1x -count 3 -timeout 60m
func BenchmarkFleetRelease10k(b *testing.B) {
	sizes := []int{10000}
	if v := os.Getenv(envFleetSizes); v != "" {
		sizes = nil
		for _, s := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || n < fleetProcesses {
				b.Fatalf("%s=%q: want a comma-separated list of fleet sizes of at least %d", envFleetSizes, v, fleetProcesses)
			}
			sizes = append(sizes, n)
		}
	}
	bin := buildStaffctl(b)
	for _, n := range sizes {
		b.Run(fmt.Sprintf("gateways=%d", n), func(b *testing.B) {
			for range b.N {
				r := fleetRunProcesses(b, bin, n)
				b.ReportMetric(r.connect.Seconds(), "s-connect")
				b.ReportMetric(r.heapPerConn/1024, "heap-KiB/conn")
				b.ReportMetric(r.rssPerConn/1024, "rss-KiB/conn")
				b.ReportMetric(r.stackPerConn/1024, "stack-KiB/conn")
				b.ReportMetric(r.goroutinesPerConn, "goroutines/conn")
				b.ReportMetric(r.to50.Seconds(), "s-to-50%")
				b.ReportMetric(r.to95.Seconds(), "s-to-95%")
				b.ReportMetric(r.to100.Seconds(), "s-to-100%")
				b.ReportMetric(r.idleP50.Seconds()*1000, "idle-receipt-p50-ms")
				b.ReportMetric(r.idleP99.Seconds()*1000, "idle-receipt-p99-ms")
				b.ReportMetric(r.receiptP50.Seconds()*1000, "release-receipt-p50-ms")
				b.ReportMetric(r.receiptP99.Seconds()*1000, "release-receipt-p99-ms")
				b.ReportMetric(float64(r.reconnects), "reconnects")
			}
		})
	}
}

// buildStaffctl builds the staffctl binary into a temporary directory.
func buildStaffctl(b *testing.B) string {
	b.Helper()
	bin := filepath.Join(b.TempDir(), "staffctl")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/staffcontrol/staffcontrol/cmd/staffctl").CombinedOutput()
	if err != nil {
		b.Fatalf("go build staffctl: %v\n%s", err, out)
	}
	return bin
}

type fleetResult struct {
	connect                 time.Duration
	heapPerConn, rssPerConn float64
	// stackPerConn is the part of heapPerConn in goroutine stacks.
	stackPerConn, goroutinesPerConn float64
	to50, to95, to100               time.Duration
	idleP50, idleP99                time.Duration // one command at a time to an idle fleet
	receiptP50, receiptP99          time.Duration // the release's commands
	reconnects                      int64
}

// fleetReplica is one Agent API replica with its own pool and registry.
type fleetReplica struct {
	srv *httptest.Server
	reg *prometheus.Registry
}

func (w *world) fleetReplica(ctx context.Context) *fleetReplica {
	w.t.Helper()
	pool, err := postgres.Connect(ctx, w.db.IngestURL, fleetPoolSize, pg.ContextKey())
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(pool.Close) // after the replica's Stop (cleanups run in reverse)
	api := agentapitest.Start(w.t, pool, agentapitest.Options{Logger: logtest.New(w.t)})
	return &fleetReplica{srv: &httptest.Server{URL: api.URL}, reg: api.Registry}
}

// connected reads the replica's control_connected_gateways gauge.
func (r *fleetReplica) connected() int {
	mfs, _ := r.reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == "control_connected_gateways" && len(mf.GetMetric()) == 1 {
			return int(mf.GetMetric()[0].GetGauge().GetValue())
		}
	}
	return 0
}

// copyGateways provisions n more gateways in organisation A with COPY,
// each with a fresh API key stored as auth stores it (SHA-256), and
// returns them with organisation A's own gateway first.
func (w *world) copyGateways(ctx context.Context, n int) []fleetsim.Gateway {
	w.t.Helper()
	gws := []fleetsim.Gateway{{ID: w.a.id.String(), Key: w.a.key}}
	rows := make([][]any, 0, n)
	for i := range n {
		key, hash, err := auth.NewSecret(auth.PrefixAPIKey)
		if err != nil {
			w.t.Fatal(err)
		}
		id := uuid.New()
		gws = append(gws, fleetsim.Gateway{ID: id.String(), Key: key})
		rows = append(rows, []any{id, w.a.org, fmt.Sprintf("FLEET-%05d", i), hash, "offline"})
	}
	if _, err := w.admin.CopyFrom(ctx, pgx.Identifier{"gateway_instances"}, []string{"id", "organization_id", "serial", "api_key_hash", "status"},
		pgx.CopyFromRows(rows)); err != nil {
		w.t.Fatalf("copy gateways: %v", err)
	}
	return gws
}

// simProcess is one `staffctl simulate gateways` child.
type simProcess struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout bytes.Buffer
	log    string
	ready  string
	done   chan error
}

func startSimulator(b *testing.B, bin, dir, server string, gws []fleetsim.Gateway, i int) *simProcess {
	b.Helper()
	keys := filepath.Join(dir, fmt.Sprintf("keys-%d.txt", i))
	var kb strings.Builder
	for _, g := range gws {
		fmt.Fprintf(&kb, "%s %s\n", g.ID, g.Key)
	}
	if err := os.WriteFile(keys, []byte(kb.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	p := &simProcess{log: filepath.Join(dir, fmt.Sprintf("sim-%d.log", i)), ready: filepath.Join(dir, fmt.Sprintf("ready-%d.json", i)), done: make(chan error, 1)}
	logf, err := os.Create(p.log)
	if err != nil {
		b.Fatal(err)
	}
	p.cmd = exec.Command(bin, "simulate", "gateways", "--server", server, "--keys", keys, "--ready-file", p.ready, "--stdin", "--duration", "30m")
	p.cmd.Stdout = &p.stdout
	p.cmd.Stderr = logf
	// The child dies with this process: its stdin reaches EOF, and the
	// kernel sends SIGKILL when the parent goes.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		b.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait(); logf.Close() }()
	b.Cleanup(func() { p.stop(b) })
	return p
}

// stop closes the child's stdin, waits up to 30 s for it to exit, then
// kills it; it returns the counters the child printed.
func (p *simProcess) stop(b *testing.B) fleetsim.Stats {
	if p.stdin != nil {
		p.stdin.Close()
		p.stdin = nil
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
			b.Errorf("simulator %d did not stop within 30 s; killed", p.cmd.Process.Pid)
		}
	}
	var s fleetsim.Stats
	_ = json.Unmarshal(bytes.TrimSpace(p.stdout.Bytes()), &s)
	return s
}

// logTail is the end of the child's log, for failure messages.
func (p *simProcess) logTail() string {
	data, _ := os.ReadFile(p.log)
	if len(data) > 2000 {
		data = data[len(data)-2000:]
	}
	return string(data)
}

// exited reports whether the child has exited (and then why).
func (p *simProcess) exited() (bool, error) {
	select {
	case err := <-p.done:
		p.done <- err
		return true, err
	default:
		return false, nil
	}
}

// rss is this process's resident set after returning freed memory to the
// operating system.
func rss() float64 {
	debug.FreeOSMemory()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			return kb * 1024
		}
	}
	return 0
}

func fleetRunProcesses(b *testing.B, bin string, n int) fleetResult {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var res fleetResult
	w := newWorld(b)
	gws := w.copyGateways(ctx, n-1)
	var reps []*fleetReplica
	for range fleetProcesses {
		reps = append(reps, w.fleetReplica(ctx))
	}
	time.Sleep(200 * time.Millisecond) // LISTEN in place
	heapBefore, rssBefore := memInUse(), rss()
	stackBefore, goroutinesBefore := stackInUse(), runtime.NumGoroutine()

	// Connect: one child per replica, the gateways dealt alternately.
	dir := b.TempDir()
	start := time.Now()
	var sims []*simProcess
	for i, r := range reps {
		var share []fleetsim.Gateway
		for j := i; j < len(gws); j += fleetProcesses {
			share = append(share, gws[j])
		}
		sims = append(sims, startSimulator(b, bin, dir, r.srv.URL, share, i))
	}
	totalConnected := func() int {
		k := 0
		for _, r := range reps {
			k += r.connected()
		}
		return k
	}
	deadline := time.Now().Add(10 * time.Minute)
	for {
		ready := 0
		for _, p := range sims {
			if ended, err := p.exited(); ended {
				b.Fatalf("simulator exited before the fleet was ready: %v\n%s", err, p.logTail())
			}
			if _, err := os.Stat(p.ready); err == nil {
				ready++
			}
		}
		if ready == len(sims) && totalConnected() == n {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("after 10 min, %d of %d simulators ready, %d of %d sockets on the replicas\n%s", ready, len(sims), totalConnected(), n, sims[0].logTail())
		}
		time.Sleep(100 * time.Millisecond)
	}
	res.connect = time.Since(start)
	var online int
	if err := w.admin.QueryRow(ctx, `SELECT count(*) FROM gateway_instances WHERE organization_id = $1 AND status = 'online'`, w.a.org).Scan(&online); err != nil || online != n {
		b.Fatalf("%d of %d gateways online in the database (err %v)", online, n, err)
	}
	time.Sleep(2 * time.Second) // let the connect burst's garbage go
	res.heapPerConn = (memInUse() - heapBefore) / float64(n)
	res.rssPerConn = (rss() - rssBefore) / float64(n)
	res.stackPerConn = (stackInUse() - stackBefore) / float64(n)
	res.goroutinesPerConn = float64(runtime.NumGoroutine()-goroutinesBefore) / float64(n)
	if path := os.Getenv(envHeapProfile); path != "" {
		writeHeapProfile(b, path)
	}
	res.idleP50, res.idleP99 = w.idleReceipt(b, ctx, gws, 200)

	// Release and distribute. The distribution is advanced every 100 ms
	// during the canary stage (as BenchmarkFleetRelease does), then every
	// 2 s as the Agent API does: an advance reads every target, so a tight
	// loop would load the database in proportion to the fleet. Progress is
	// watched with one aggregate query every 100 ms.
	pool, err := postgresConnect(ctx, w.db.DashboardURL)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	psvc, err := policy.New(pool)
	if err != nil {
		b.Fatal(err)
	}
	actor := accounts.Actor{Name: "hr", Tenant: w.a.tenant}
	p, err := psvc.Create(ctx, actor, "Fleet "+uuid.NewString()[:8], []byte(`{"screenshots":{"enabled":true,"interval_seconds":120}}`))
	if err != nil {
		b.Fatal(err)
	}
	start = time.Now()
	v, err := psvc.Release(ctx, actor, p.ID, false)
	if err != nil {
		b.Fatal(err)
	}
	dist := policy.NewDistributor(pool, mustDashQueue(b, pool))
	distID, err := dist.Distribute(ctx, actor, p.ID, v.Version, nil, 10)
	if err != nil {
		b.Fatal(err)
	}
	advancer := policy.NewDistributor(w.ingest, mustQueue(b, w))
	// Advanced as the Agent API does: the ready distributions every 250 ms
	// (agentapi.DefaultAdvanceInterval).
	var stage string
	lastAdvance := time.Time{}
	deadline = time.Now().Add(10 * time.Minute)
	for {
		if time.Since(lastAdvance) >= 250*time.Millisecond {
			if err := advancer.AdvanceReady(ctx); err != nil {
				b.Fatal(err)
			}
			lastAdvance = time.Now()
		}
		var applied, failed int
		if err := w.admin.QueryRow(ctx, `SELECT count(*) FILTER (WHERE c.status = 'completed'), count(*) FILTER (WHERE c.status IN ('failed', 'expired', 'cancelled')),
			(SELECT stage FROM policy_distributions WHERE id = $1)
			FROM policy_distribution_targets t JOIN gateway_commands c ON c.id = t.command_id WHERE t.distribution_id = $1`, distID).Scan(&applied, &failed, &stage); err != nil {
			b.Fatal(err)
		}
		el := time.Since(start)
		if res.to50 == 0 && applied*2 >= n {
			res.to50 = el
		}
		if res.to95 == 0 && applied*100 >= 95*n {
			res.to95 = el
		}
		if applied == n || failed > 0 || stage == policy.StageHalted {
			res.to100 = el
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("after 10 min: %d of %d applied, stage %s", applied, n, stage)
		}
		for _, s := range sims {
			if ended, err := s.exited(); ended {
				b.Fatalf("simulator exited during the release: %v\n%s", err, s.logTail())
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := advancer.Advance(ctx, postgres.Tenant{OrganizationID: w.a.org}, distID); err != nil {
		b.Fatal(err)
	}
	prog, err := dist.Progress(ctx, w.a.tenant, distID)
	if err != nil {
		b.Fatal(err)
	}
	if prog.Stage != policy.StageDone || prog.Applied != n || prog.Total != n {
		b.Fatalf("progress %+v, want done with %d applied; the failed targets' errors: %v\n%s", summary(prog), n, targetErrors(prog), sims[0].logTail())
	}
	b.Logf("%d gateways: %s", n, w.phases(b, ctx, distID))
	// Every gateway reported the released version; the receipt latency is
	// the release's commands' enqueue → received acknowledgement.
	var wrong int
	var p50, p99 float64
	if err := w.admin.QueryRow(ctx, `SELECT count(*) FILTER (WHERE c.result->>'applied_version' IS DISTINCT FROM $2),
		percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM c.received_at - c.created_at)),
		percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM c.received_at - c.created_at))
		FROM policy_distribution_targets t JOIN gateway_commands c ON c.id = t.command_id WHERE t.distribution_id = $1`, distID, v.Version).
		Scan(&wrong, &p50, &p99); err != nil || wrong != 0 {
		b.Fatalf("%d commands without applied_version %s (err %v)", wrong, v.Version, err)
	}
	res.receiptP50 = time.Duration(p50 * float64(time.Second))
	res.receiptP99 = time.Duration(p99 * float64(time.Second))

	var applied, failed, sessions int64
	for _, s := range sims {
		st := s.stop(b)
		applied += st.Applied
		failed += st.Failed
		sessions += st.Sessions
	}
	if applied < int64(n) || failed != 0 {
		b.Fatalf("simulators applied %d, failed %d, want %d applied and none failed", applied, failed, n)
	}
	res.reconnects = sessions - int64(n)
	b.Logf("%d gateways: connected in %v; heap %.1f KiB/conn, RSS %.1f KiB/conn; release → 50 %% %v, 95 %% %v, 100 %% %v; idle receipt p50 %v p99 %v, release receipt p50 %v p99 %v; reconnects %d",
		n, res.connect.Round(time.Millisecond), res.heapPerConn/1024, res.rssPerConn/1024, res.to50.Round(time.Millisecond), res.to95.Round(time.Millisecond),
		res.to100.Round(time.Millisecond), res.idleP50.Round(time.Microsecond), res.idleP99.Round(time.Microsecond), res.receiptP50.Round(time.Millisecond), res.receiptP99.Round(time.Millisecond), res.reconnects)
	return res
}

// idleReceipt enqueues k commands one at a time, each to another gateway
// of the idle fleet, and returns the p50 and p99 of enqueue → received
// acknowledgement, both on the database's clock (the command's created_at
// and received_at).
func (w *world) idleReceipt(b *testing.B, ctx context.Context, gws []fleetsim.Gateway, k int) (p50, p99 time.Duration) {
	b.Helper()
	lat := make([]time.Duration, 0, k)
	for i := range k {
		g := gws[(i*7919)%len(gws)]
		c, err := w.enqueue.Enqueue(ctx, w.a.tenant, commandqueue.NewCommand{GatewayID: uuid.MustParse(g.ID), Type: protocol.CommandRestartAgent,
			Payload: json.RawMessage(`{"agent":"all","mode":"graceful","reason":"benchmark"}`)})
		if err != nil {
			b.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			var sec *float64
			if err := w.admin.QueryRow(ctx, `SELECT extract(epoch FROM received_at - created_at)::float8 FROM gateway_commands WHERE id = $1`, c.ID).Scan(&sec); err != nil {
				b.Fatal(err)
			}
			if sec != nil {
				lat = append(lat, time.Duration(*sec*float64(time.Second)))
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("command %s to gateway %s not received within 30 s", c.ID, g.ID)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	slices.Sort(lat)
	return lat[len(lat)/2], lat[len(lat)*99/100]
}

// phases says where a distribution's time went, on the database's clock
// from the distribution's creation: the canaries applied, the rest
// enqueued (their first delivery: the advance commits them all at once),
// and the last delivery, received acknowledgement and completion.
func (w *world) phases(b *testing.B, ctx context.Context, distID uuid.UUID) string {
	b.Helper()
	var canary, enqueued, delivered, received, completed float64
	if err := w.admin.QueryRow(ctx, `SELECT
		extract(epoch FROM max(c.completed_at) FILTER (WHERE t.canary) - d.created_at)::float8,
		extract(epoch FROM coalesce(min(c.delivered_at) FILTER (WHERE NOT t.canary), max(c.delivered_at)) - d.created_at)::float8,
		extract(epoch FROM max(c.delivered_at) - d.created_at)::float8,
		extract(epoch FROM max(c.received_at) - d.created_at)::float8,
		extract(epoch FROM max(c.completed_at) - d.created_at)::float8
		FROM policy_distributions d JOIN policy_distribution_targets t ON t.distribution_id = d.id JOIN gateway_commands c ON c.id = t.command_id
		WHERE d.id = $1 GROUP BY d.created_at`, distID).Scan(&canary, &enqueued, &delivered, &received, &completed); err != nil {
		b.Fatal(err)
	}
	return fmt.Sprintf("from the distribution's start: canaries applied %.1fs, the rest enqueued %.1fs, all delivered %.1fs, received %.1fs, completed %.1fs",
		canary, enqueued, delivered, received, completed)
}

func mustDashQueue(b *testing.B, pool *pgxpool.Pool) *commandqueue.Queue {
	b.Helper()
	q, err := commandqueue.New(pool, commandqueue.Options{}, service.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	return q
}

// targetErrors counts a distribution's failed targets by their error, for
// the message of a failed run.
func targetErrors(p policy.Progress) map[string]int {
	out := map[string]int{}
	for _, g := range p.Gateways {
		if g.Error != "" {
			out[g.Error]++
		}
	}
	return out
}

// stackInUse is the memory in goroutine stacks after a collection.
func stackInUse() float64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return float64(m.StackInuse)
}

func writeHeapProfile(b *testing.B, path string) {
	b.Helper()
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	runtime.GC()
	if err := pprof.WriteHeapProfile(f); err != nil {
		b.Fatal(err)
	}
}
