package uplink

import (
	"context"
	"encoding/json"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/staffcontrol/staffcontrol/internal/edge/buffer"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
	"github.com/staffcontrol/staffcontrol/internal/sim/fakecloud"
)

// BenchmarkDrain measures how fast a backlog leaves the buffer: b.N events
// are buffered first, then the uplink sends them to a loopback sink that
// only decodes (gzip + JSON). Reported: events/s drained.
func BenchmarkDrain(b *testing.B) {
	sink, err := fakecloud.New(fakecloud.Options{APIKey: apiKey, DecodeOnly: true})
	if err != nil {
		b.Fatal(err)
	}
	defer sink.Close()
	buf, err := buffer.Open(context.Background(), buffer.Options{Config: buffer.Config{Path: filepath.Join(b.TempDir(), "b.sqlite"), MaxBytes: 1 << 40}, FSUsage: func(string) (float64, error) { return 0, nil }})
	if err != nil {
		b.Fatal(err)
	}
	defer buf.Close()
	ctx := context.Background()
	now := time.Now().UTC()
	for done := 0; done < b.N; done += 1000 {
		recs := make([]buffer.Record, min(1000, b.N-done))
		for i := range recs {
			id := uuid.Must(uuid.NewV7()).String()
			d := int64(42)
			p, _ := json.Marshal(protocol.Event{EventID: id, Type: protocol.TypeActiveWindow, AgentUID: "sim-1a2b3c4d-0007",
				ComputerName: "SIM-PC-1a2b3c4d-0007", UserSID: "S-1-5-21-1004336348-1177238915-682003330-1007", Datetime: now,
				DurationSeconds: &d, ReceivedAt: &now, WindowTitle: "Quarterly report.xlsx - Excel", ProcessName: "EXCEL.EXE"})
			recs[i] = buffer.Record{Class: protocol.ClassLog, Type: protocol.TypeActiveWindow, EventID: id, Payload: p}
		}
		if _, err := buf.Append(ctx, recs); err != nil {
			b.Fatal(err)
		}
	}
	u, err := New(buf, Options{ServerURL: sink.URL, APIKey: apiKey, Config: Config{FlushInterval: 10 * time.Millisecond}})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	cpu0 := cpuTime()
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { u.Run(rctx); close(done) }()
	for sink.Stats().Events < b.N {
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	cpu := cpuTime() - cpu0
	b.StopTimer()
	cancel()
	<-done
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(sink.Stats().Bytes)/float64(b.N), "wire-bytes/event")
	// The sink's decoding runs in this process too (the same on both sides
	// of a comparison).
	b.ReportMetric(float64(cpu)/1e3/float64(b.N), "cpu-µs/event")
}

// cpuTime is the process's CPU time so far (user + system).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
