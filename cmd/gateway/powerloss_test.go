//go:build linux

package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/lazyfs"
	"github.com/staffcontrol/staffcontrol/internal/logtest"
	"github.com/staffcontrol/staffcontrol/internal/sim/agentsim"
	"github.com/staffcontrol/staffcontrol/internal/sim/fakecloud"
)

// Power-loss tests: the gateway's buffer directory (buffer, WAL, key file,
// screenshots) lives on a lazyfs mount, which keeps every write in memory
// until it is fsynced. A power cut discards every unsynced write: the
// underlying directory is then what a power cut would have left, and the
// gateway is restarted on it. Cuts alternate between SIGKILL of the gateway
// followed by lazyfs's Crash, and lazyfs's PowerOff while the gateway runs
// (an fsync in flight is lost too) followed by SIGKILL and PowerOn. The
// in-test cloud then tells, per event id, whether every acknowledged event
// arrived exactly once.

// Messages of the gateway's log the tests look for.
const (
	logUncleanCheck = "buffer checked after an unclean stop"
	logQuarantine   = "ALERT: buffer file was corrupt"
	logAlert        = "ALERT"
)

// syncDelay is lazyfs's added fsync latency.
const syncDelay = 3 * time.Millisecond

// cloudLatency delays every answer of the test cloud, so that acknowledged
// events wait in the buffer (at risk) for a while before the cloud has
// them: each cut then finds some.
const cloudLatency = 100 * time.Millisecond

// exitWait bounds the wait for a killed gateway to exit. A process blocked
// on a hung FUSE request cannot exit even on SIGKILL; the mount is then
// aborted, which fails the request.
const exitWait = 20 * time.Second

// killNow SIGKILLs the gateway and waits (bounded) until it has exited and
// been reaped, so that all its file system requests have been answered.
func killNow(t *testing.T, c *child, fsys *lazyfs.FS) {
	t.Helper()
	c.cmd.Process.Kill()
	select {
	case <-c.done:
		return
	case <-time.After(exitWait):
	}
	fsys.Unmount() // aborts the FUSE connection
	select {
	case <-c.done:
	case <-time.After(exitWait):
	}
	t.Fatalf("the gateway did not exit within %s of SIGKILL: a FUSE request hung", exitWait)
}

// mountLazy mounts a lazyfs over a fresh directory for the test and
// unmounts it at cleanup. It skips the test only when FUSE is unavailable:
// no /dev/fuse, or (not root) the mount is refused.
func mountLazy(t *testing.T) *lazyfs.FS {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skipf("FUSE unavailable (no /dev/fuse): %v", err)
	}
	under, mnt := t.TempDir(), t.TempDir()
	log := logtest.New(t)
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	// A slow disk's fsync: a cut then often finds a commit's WAL frames
	// written but not yet synced, which must be lost without harm.
	fsys, err := lazyfs.Mount(mnt, under, lazyfs.Options{Logger: log, SyncDelay: syncDelay})
	if err != nil {
		if os.Geteuid() != 0 {
			t.Skipf("FUSE unavailable (not root, and the mount was refused): %v", err)
		}
		t.Fatalf("mount lazyfs as root: %v", err)
	}
	// Registered after the temporary directories, so it runs before they
	// are removed.
	t.Cleanup(func() {
		if err := fsys.Unmount(); err != nil {
			t.Errorf("unmount lazyfs: %v", err)
		}
	})
	return fsys
}

// cut is one power cut's record.
type cut struct {
	up      time.Duration // how long the gateway ran before it
	dropped int64         // bytes lazyfs discarded
	atRisk  int           // acknowledged events only the buffer held at the cut (first time)
	lost    int           // of which the cut left no trace
	data    int64         // of which of the buffer's data: file, WAL, screenshots
	files   string        // what lost how much
	acked   int           // events acknowledged so far
}

// bufferData tells whether a file of the mount holds buffer data (as
// opposed to SQLite's -shm index, which is never synced and rebuilt after
// a crash, or the control plane's ledger).
func bufferData(name string) bool {
	return name == "buffer.sqlite" || name == "buffer.sqlite-wal" || strings.HasPrefix(name, "screenshots/")
}

// waitUnsyncedBufferData waits, at most within, until the buffer has data
// written but not yet synced (a commit in flight, most likely), so that the
// power cut that follows finds some.
func waitUnsyncedBufferData(fsys *lazyfs.FS, within time.Duration) {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		for name := range fsys.Unsynced() {
			if bufferData(name) {
				return
			}
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// summarize condenses a crash report: bytes by file, screenshots together.
func summarize(rep lazyfs.CrashReport) (data int64, files string) {
	by := map[string]int64{}
	for name, n := range rep.Files {
		if bufferData(name) {
			data += n
		}
		if strings.HasPrefix(name, "screenshots/") {
			name = "screenshots/*"
		}
		by[name] += n
	}
	names := make([]string, 0, len(by))
	for name := range by {
		names = append(names, name)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, name := range names {
		parts[i] = fmt.Sprintf("%s %d", name, by[name])
	}
	return data, strings.Join(parts, ", ")
}

// powerLoss is the outcome of one run.
type powerLoss struct {
	h          *harness
	l          *ledger
	fs         *lazyfs.FS
	shots      map[string]bool // acknowledged screenshot ids
	cuts       []cut
	unclean    int             // restarts that checked the buffer after an unclean stop
	alerts     int             // restarts that quarantined the buffer
	alertLogs  map[string]bool // every ALERT line seen in the gateway's log
	sim        agentsim.Result
	drainedIn  time.Duration
	lostAtCuts int             // acknowledged events that cuts left neither in the buffer nor in the cloud
	lostIDs    map[string]bool // those events
	riskIDs    map[string]bool // acknowledged events a cut found only in the buffer
}

// plConfig configures runPowerLoss.
type plConfig struct {
	// synchronous is buffer.synchronous: full or normal.
	synchronous string
	// minCuts power cuts at least; more, up to maxCuts, until one of them
	// lost an acknowledged event.
	minCuts, maxCuts int
	// durable: every acknowledged event must survive every cut and reach
	// the cloud (synchronous=full); otherwise losses are only counted.
	durable bool
}

// runPowerLoss runs agents against a gateway whose buffer is on lazyfs,
// cuts the power at random instants, then lets everything drain and stops
// the gateway cleanly.
func runPowerLoss(t *testing.T, c plConfig) *powerLoss {
	t.Helper()
	synchronous := c.synchronous
	h := newHarness(t, "")
	fsys := mountLazy(t)
	// The buffer, and beside it the key file and the screenshots, on the
	// mount.
	cfg, err := os.ReadFile(h.cfg)
	if err != nil {
		t.Fatal(err)
	}
	old := "  path: " + filepath.Join(h.dir, "buffer.sqlite") + "\n"
	if !strings.Contains(string(cfg), old) {
		t.Fatalf("harness config has no %q", old)
	}
	repl := "  path: " + filepath.Join(fsys.Dir(), "buffer.sqlite") + "\n  synchronous: " + synchronous + "\n"
	if err := os.WriteFile(h.cfg, []byte(strings.Replace(string(cfg), old, repl, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	h.dir = fsys.Dir()

	// The gateway running now; killed at cleanup if the test stops early
	// (before the unmount, which a live process would keep busy).
	var cur *child
	alive := false
	t.Cleanup(func() {
		if alive {
			killNow(t, cur, fsys)
		}
	})
	cur, alive = h.start(), true
	h.srv.SetLatency(cloudLatency)

	pl := &powerLoss{h: h, l: newLedger(), fs: fsys, shots: map[string]bool{}, alertLogs: map[string]bool{},
		lostIDs: map[string]bool{}, riskIDs: map[string]bool{}}
	var shotsMu sync.Mutex
	observe := func(ids []string, o agentsim.Outcome) {
		pl.l.observe(ids, o)
		// Event batches carry BatchSize ids; a screenshot request one.
		if o == agentsim.Acked && len(ids) == 1 {
			shotsMu.Lock()
			pl.shots[ids[0]] = true
			shotsMu.Unlock()
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	simDone := make(chan agentsim.Result, 1)
	go func() {
		res, _ := agentsim.Run(ctx, agentsim.Options{EnrolmentSecret: fakecloud.DefaultEnrolmentSecret, GatewayURL: h.url, Agents: 6, Rate: 400, BatchSize: 25,
			ScreenshotEvery: 8, ScreenshotBytes: 8 << 10, Observe: observe,
			Client: &http.Client{Timeout: 5 * time.Second}, MaxRetryAfter: 200 * time.Millisecond})
		simDone <- res
	}()

	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, seed>>1))
	t.Logf("synchronous=%s, %d to %d power cuts, seed %d", synchronous, c.minCuts, c.maxCuts, seed)
	for i := 0; i < c.maxCuts && (i < c.minCuts || pl.lostAtCuts == 0); i++ {
		up := 150*time.Millisecond + time.Duration(rng.Int64N(int64(700*time.Millisecond)))
		time.Sleep(up)
		// Two kinds of cut, alternately. Either the process dies first
		// (all its file system requests answered, so an fsync in flight
		// completes) and then the power goes; or the power goes while it
		// runs, preferably while buffer data is written but not synced
		// (an fsync in flight fails and its data is lost, and nothing the
		// process does afterwards reaches the disk), and the process is
		// killed in the dark.
		var rep lazyfs.CrashReport
		kind := "kill, then power cut"
		if i%2 == 1 {
			kind = "power cut, then kill"
			waitUnsyncedBufferData(fsys, 100*time.Millisecond)
			rep = fsys.PowerOff()
			killNow(t, cur, fsys)
			fsys.PowerOn()
		} else {
			killNow(t, cur, fsys)
			rep = fsys.Crash()
		}
		alive = false
		// Batches the cloud was still answering (cloudLatency) land now.
		time.Sleep(cloudLatency + 50*time.Millisecond)
		check, survivors := checkCopy(t, fsys.Underlying())
		if check != "ok" {
			t.Fatalf("cut %d: integrity_check of what the power cut left: %s", i+1, check)
		}
		atRisk, lost := pl.exposure(survivors)
		pl.lostAtCuts += len(lost)
		if c.durable && len(lost) > 0 {
			t.Errorf("cut %d (%s) lost %d acknowledged events: neither the cloud nor the buffer left by the cut has them, e.g. %v",
				i+1, kind, len(lost), lost[:min(3, len(lost))])
		}
		logBefore := h.logBuf.String()
		cur, alive = h.start(), true
		startLog := logSince(logBefore, h.logBuf.String())
		if strings.Contains(startLog, logUncleanCheck) {
			pl.unclean++
		}
		for _, line := range linesWith(startLog, logAlert) {
			pl.alertLogs[line] = true
		}
		if strings.Contains(startLog, logQuarantine) {
			pl.alerts++
			t.Logf("cut %d: the gateway quarantined its buffer: %s", i+1, lineWith(startLog, logQuarantine))
		}
		pl.l.mu.Lock()
		acked := len(pl.l.acked)
		pl.l.mu.Unlock()
		data, files := summarize(rep)
		pl.cuts = append(pl.cuts, cut{up: up, dropped: rep.Bytes, data: data, files: files, acked: acked, atRisk: atRisk, lost: len(lost)})
		t.Logf("cut %2d (%s) after %3dms up: %4d more acknowledged events only in the buffer, %4d lost (%6d acknowledged so far); lazyfs dropped %7d unsynced bytes (%s)",
			i+1, kind, up.Milliseconds(), atRisk, len(lost), acked, rep.Bytes, files)
	}
	time.Sleep(300 * time.Millisecond)
	cancel()
	pl.sim = <-simDone
	t.Logf("simulator: %s", pl.sim)
	start := time.Now()
	if c.durable {
		h.waitDelivered(t, pl.l, 60*time.Second)
	}
	waitEmpty(t, h, 60*time.Second)
	pl.drainedIn = time.Since(start)
	cur.stop(t)
	alive = false
	for _, line := range linesWith(h.logBuf.String(), logAlert) {
		pl.alertLogs[line] = true
	}
	if check, _ := checkCopy(t, fsys.Underlying()); check != "ok" {
		t.Fatalf("integrity_check after the clean stop: %s", check)
	}
	return pl
}

// exposure looks at the acknowledged events the cloud does not have: only
// the buffer held them at the cut (atRisk), and those of them that are not
// among the survivors (event ids in what the cut left) are lost. Both count
// events not counted at an earlier cut only.
func (pl *powerLoss) exposure(survivors map[string]bool) (atRisk int, lost []string) {
	got := pl.h.srv.Deliveries()
	pl.l.mu.Lock()
	defer pl.l.mu.Unlock()
	for id := range pl.l.acked {
		if got[id] > 0 || pl.lostIDs[id] {
			continue
		}
		if !pl.riskIDs[id] {
			pl.riskIDs[id] = true
			atRisk++
		}
		if !survivors[id] {
			pl.lostIDs[id] = true
			lost = append(lost, id)
		}
	}
	return atRisk, lost
}

// logSince returns what was logged after before (the log buffer may have
// been reset meanwhile).
func logSince(before, now string) string {
	if len(now) >= len(before) && now[:len(before)] == before {
		return now[len(before):]
	}
	return now
}

func lineWith(s, sub string) string {
	if l := linesWith(s, sub); len(l) > 0 {
		return l[0]
	}
	return ""
}

func linesWith(s, sub string) []string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if strings.Contains(line, sub) {
			out = append(out, line)
		}
	}
	return out
}

// checkCopy runs PRAGMA integrity_check on a copy of the buffer file and
// its WAL taken from dir (the mount's underlying directory: what the power
// cut left), and returns the event ids the copy holds. A copy, because
// opening the file replays and checkpoints its WAL, which would change the
// state the gateway restarts on; and not through the mount, because SQLite
// would map the WAL index (-shm) of a file served by this very process.
func checkCopy(t *testing.T, dir string) (string, map[string]bool) {
	t.Helper()
	dst, err := os.MkdirTemp("", "powerloss-check-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dst)
	for _, suffix := range []string{"", "-wal"} {
		data, err := os.ReadFile(filepath.Join(dir, "buffer.sqlite"+suffix))
		if errors.Is(err, os.ErrNotExist) && suffix != "" {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, "buffer.sqlite"+suffix), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dst, "buffer.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var res string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&res); err != nil {
		return err.Error(), nil
	}
	ids := map[string]bool{}
	for _, table := range []string{"agent_data_buffer", "device_data_buffer"} {
		if err := eventIDs(db, table, ids); err != nil {
			return fmt.Sprintf("list events of %s: %v", table, err), nil
		}
	}
	return res, ids
}

// eventIDs adds the event ids of table to ids; a table that does not exist
// (a cut lost the schema's first commit) holds none.
func eventIDs(db *sql.DB, table string, ids map[string]bool) error {
	var n int
	if err := db.QueryRow("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?", table).Scan(&n); err != nil || n == 0 {
		return err
	}
	rows, err := db.Query("SELECT event_id FROM " + table)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return err
		}
		ids[id] = true
	}
	return rows.Err()
}

// tally is the per-id verdict without failing: like check, but counted.
type tally struct {
	acked, lost, duplicated, seqReused, indeterminate int
}

func (h *harness) tally(l *ledger) tally {
	got := h.srv.Deliveries()
	l.mu.Lock()
	defer l.mu.Unlock()
	v := tally{acked: len(l.acked), indeterminate: len(l.indeterminate)}
	for id := range l.acked {
		switch n := got[id]; {
		case n == 0:
			v.lost++
		case n > 1:
			v.duplicated++
		}
	}
	seqs := map[int64]bool{}
	for id := range got {
		s := h.srv.Seq(id)
		if seqs[s] {
			v.seqReused++
		}
		seqs[s] = true
	}
	return v
}

// quarantinedFiles lists buffer files the gateway moved aside.
func quarantinedFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "buffer.sqlite.corrupt-*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// droppedSummary adds up the buffer data (file, WAL, screenshots) the cuts
// dropped, and the acknowledged events they found only in the buffer.
func (pl *powerLoss) droppedSummary() (total int64, cutsWithDrops int, perCut []string, atRisk int) {
	for _, c := range pl.cuts {
		total += c.data
		if c.data > 0 {
			cutsWithDrops++
		}
		perCut = append(perCut, fmt.Sprint(c.data))
		atRisk += c.atRisk
	}
	return total, cutsWithDrops, perCut, atRisk
}

// TestPowerLossLosesNoAcknowledgedEvent is the durability promise of
// buffer.synchronous=full: an event acknowledged to an agent survives a
// power cut. Every acknowledged id reaches the cloud exactly once, the
// buffer passes integrity_check after every cut and is never quarantined,
// and every acknowledged screenshot arrives with the agent's bytes (the
// test cloud refuses an image whose SHA-256 differs from the agent's).
func TestPowerLossLosesNoAcknowledgedEvent(t *testing.T) {
	cuts := 12
	if testing.Short() {
		cuts = 6
	}
	start := time.Now()
	pl := runPowerLoss(t, plConfig{synchronous: "full", minCuts: cuts, maxCuts: cuts, durable: true})
	h := pl.h
	h.check(t, pl.l) // fails on any lost or duplicated acknowledged event

	total, withDrops, perCut, atRisk := pl.droppedSummary()
	t.Logf("lazyfs dropped %d unsynced bytes of buffer data (file, WAL, screenshots) over %d cuts (%d cuts dropped some; per cut: %s); %d fsyncs served",
		total, len(pl.cuts), withDrops, strings.Join(perCut, " "), pl.fs.Stats().Fsyncs)
	t.Logf("the cuts found %d acknowledged events only in the buffer; all survived and reached the cloud", atRisk)
	if total == 0 {
		t.Fatal("no cut dropped any unsynced buffer data: the test exercised nothing")
	}
	if atRisk == 0 {
		t.Fatal("no cut found an acknowledged event that only the buffer held: the test exercised nothing")
	}
	if pl.unclean != len(pl.cuts) {
		t.Errorf("%d of %d restarts checked the buffer after the unclean stop", pl.unclean, len(pl.cuts))
	}
	if pl.alerts > 0 {
		t.Errorf("the buffer was quarantined after %d cuts: with synchronous=full that is data loss", pl.alerts)
	}
	for line := range pl.alertLogs {
		t.Errorf("gateway alert: %s", line)
	}
	if q := quarantinedFiles(t, pl.fs.Underlying()); len(q) > 0 {
		t.Errorf("quarantined buffer files: %v", q)
	}
	for k, n := range h.srv.Drops() {
		if n > 0 {
			t.Errorf("the gateway reported %d %s events dropped (%s)", n, k[1], k[0])
		}
	}
	missing := 0
	for id := range pl.shots {
		if h.srv.ScreenshotSHA(id) == "" {
			missing++
		}
	}
	if len(pl.shots) == 0 || missing > 0 {
		t.Errorf("%d acknowledged screenshots, %d of them not received with the agent's bytes", len(pl.shots), missing)
	}
	if n := h.srv.Stats().Provisions; n != 1 {
		t.Errorf("provisioned %d times; the key file must survive the power cuts", n)
	}
	if pl.sim.Acked < 1000 {
		t.Fatalf("only %d events acknowledged: the test did not exercise the gateway", pl.sim.Acked)
	}
	t.Logf("%d cuts, %d events and %d screenshots acknowledged, all delivered once; drained in %s; %s in all",
		len(pl.cuts), len(pl.l.acked), len(pl.shots), pl.drainedIn.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}

// TestPowerLossDetectsLossWithSynchronousNormal is the negative control:
// with buffer.synchronous=normal a commit is not fsynced, so the same
// procedure must find acknowledged events that never reached the cloud.
// It proves that the power-loss test can fail. A cut loses acknowledged
// events only if it comes after them and before the next checkpoint has
// synced the WAL (200 ms), so it cuts until one did (at most 12 times).
func TestPowerLossDetectsLossWithSynchronousNormal(t *testing.T) {
	cuts := 4
	if testing.Short() {
		cuts = 2
	}
	start := time.Now()
	pl := runPowerLoss(t, plConfig{synchronous: "normal", minCuts: cuts, maxCuts: 12})
	v := pl.h.tally(pl.l)
	total, withDrops, perCut, atRisk := pl.droppedSummary()
	t.Logf("synchronous=normal: %d cuts found %d acknowledged events only in the buffer; lazyfs dropped %d bytes of buffer data (%d cuts dropped some; per cut: %s)",
		len(pl.cuts), atRisk, total, withDrops, strings.Join(perCut, " "))
	t.Logf("acked=%d lost=%d duplicated=%d seq_reused=%d indeterminate=%d quarantines=%d drops=%v; %s in all",
		v.acked, v.lost, v.duplicated, v.seqReused, v.indeterminate, pl.alerts, pl.h.srv.Drops(), time.Since(start).Round(time.Millisecond))
	if pl.lostAtCuts == 0 || v.lost == 0 {
		t.Fatalf("with synchronous=normal %d power cuts lost no acknowledged event (%d seen lost at the cuts): the harness cannot detect loss",
			len(pl.cuts), pl.lostAtCuts)
	}
	if v.lost < pl.lostAtCuts {
		t.Errorf("%d acknowledged events were gone after the cuts, but only %d missing in the cloud at the end", pl.lostAtCuts, v.lost)
	}
}
