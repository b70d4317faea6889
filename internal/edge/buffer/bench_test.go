package buffer

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// benchDrivers lists the drivers linked into this build; the cgo driver
// joins with -tags sqlite_cgo (see bench_cgo_test.go).
func benchDrivers() []string { return append([]string{"sqlite"}, cgoDrivers...) }

// cpuTime is the process's CPU time so far (user + system).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the process's CPU time since start per event (b.N
// events): less noisy than rates on a shared machine.
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime()-start)/1e3/float64(b.N), "cpu-µs/event")
}

// payload320 is a realistic ~320-byte stored event.
func payload320(id string) []byte {
	return []byte(`{"event_id":"` + id + `","type":"active_window","agent_uid":"sim-1a2b3c4d-0007","computer_name":"SIM-PC-1a2b3c4d-0007",` +
		`"user_sid":"S-1-5-21-1004336348-1177238915-682003330-1007","datetime":"2026-11-22T10:00:00.123Z","duration_seconds":42,` +
		`"received_at":"2026-11-22T10:00:01.456Z","window_title":"Quarterly report.xlsx - Excel","process_name":"EXCEL.EXE"}`)
}

// BenchmarkAppend measures group-committed appends: 50 writers, 100 events
// per Append (one agent request each), per driver and synchronous mode.
// b.N counts events.
func BenchmarkAppend(b *testing.B) {
	for _, driver := range benchDrivers() {
		for _, sync := range []string{"FULL", "NORMAL"} {
			b.Run(fmt.Sprintf("driver=%s/sync=%s", driver, sync), func(b *testing.B) {
				benchAppend(b, driver, sync, 50, 100)
			})
		}
	}
}

func benchAppend(b *testing.B, driver, syncMode string, writers, batch int) {
	buf, err := Open(context.Background(), Options{Config: Config{Path: filepath.Join(b.TempDir(), "b.sqlite"), MaxBytes: 1 << 40, Synchronous: syncMode}, Driver: driver, FSUsage: func(string) (float64, error) { return 0, nil }})
	if err != nil {
		b.Fatal(err)
	}
	defer buf.Close()
	var left atomic.Int64
	left.Store(int64(b.N))
	var wg sync.WaitGroup
	var maxLat atomic.Int64
	b.ResetTimer()
	start := time.Now()
	cpu0 := cpuTime()
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				n := min(int64(batch), left.Add(-int64(batch))+int64(batch))
				if n <= 0 {
					return
				}
				recs := make([]Record, n)
				for i := range recs {
					id := uuid.Must(uuid.NewV7()).String()
					recs[i] = Record{Class: protocol.ClassLog, Type: protocol.TypeActiveWindow, EventID: id, Payload: payload320(id)}
				}
				t0 := time.Now()
				if _, err := buf.Append(context.Background(), recs); err != nil {
					b.Error(err)
					return
				}
				if d := int64(time.Since(t0)); d > maxLat.Load() {
					maxLat.Store(d)
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	reportCPU(b, cpu0)
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
	b.ReportMetric(float64(maxLat.Load())/1e6, "max-ms")
}

// BenchmarkClaimAck measures the uplink's buffer work without HTTP: claim a
// 1000-event batch, then delete it. b.N counts events.
func BenchmarkClaimAck(b *testing.B) {
	for _, driver := range benchDrivers() {
		b.Run("driver="+driver, func(b *testing.B) {
			buf, err := Open(context.Background(), Options{Config: Config{Path: filepath.Join(b.TempDir(), "b.sqlite"), MaxBytes: 1 << 40}, Driver: driver, FSUsage: func(string) (float64, error) { return 0, nil }})
			if err != nil {
				b.Fatal(err)
			}
			defer buf.Close()
			ctx := context.Background()
			for done := 0; done < b.N; done += 1000 {
				recs := make([]Record, min(1000, b.N-done))
				for i := range recs {
					id := uuid.Must(uuid.NewV7()).String()
					recs[i] = Record{Class: protocol.ClassLog, Type: protocol.TypeActiveWindow, EventID: id, Payload: payload320(id)}
				}
				if _, err := buf.Append(ctx, recs); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			start := time.Now()
			cpu0 := cpuTime()
			for {
				bt, err := buf.Claim(ctx, StreamLogs, 1000, 1<<30, true)
				if err != nil {
					b.Fatal(err)
				}
				if bt == nil {
					break
				}
				if err := buf.Ack(ctx, bt); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, cpu0)
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
		})
	}
}
