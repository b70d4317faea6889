package pipeline

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// cpuTimes is CPU seconds used so far, read from /proc (Linux; elsewhere,
// or for a PostgreSQL this machine does not run, the figures stay zero).
type cpuTimes struct {
	// bench is this process: agents, balancer, Agent API replicas, the
	// CopyFrom client (and the gateway when it runs in this process).
	bench float64
	// gateway is the gateway process (zero in process mode).
	gateway float64
	// postgres is the postmaster, its live children and the children it
	// reaped.
	postgres float64
}

func (a cpuTimes) sub(b cpuTimes) cpuTimes {
	return cpuTimes{a.bench - b.bench, a.gateway - b.gateway, a.postgres - b.postgres}
}

// CPU is CPU time per event (or row), in microseconds, by process group.
type CPU struct {
	// Bench is staffctl's own process: the agents, the balancer and the
	// Agent API replicas (and the gateway with --gateway inprocess), or
	// the CopyFrom client.
	Bench float64 `json:"bench_us"`
	// Gateway is the gateway process.
	Gateway float64 `json:"gateway_us"`
	// Postgres is the PostgreSQL server's processes.
	Postgres float64 `json:"postgres_us"`
	// Total is their sum.
	Total float64 `json:"total_us"`
}

func (d cpuTimes) per(n int64) CPU {
	if n <= 0 {
		return CPU{}
	}
	f := 1e6 / float64(n)
	c := CPU{Bench: d.bench * f, Gateway: d.gateway * f, Postgres: d.postgres * f}
	c.Total = c.Bench + c.Gateway + c.Postgres
	return c
}

// cpuMeter reads the CPU times of the run's processes.
type cpuMeter struct {
	hz         float64
	postmaster int // 0: unknown
	gateway    func() int
}

// newCPUMeter finds the postmaster through a backend of conn (the parent
// of the backend serving it).
func newCPUMeter(ctx context.Context, conn *pgx.Conn, gateway func() int) *cpuMeter {
	m := &cpuMeter{hz: 100, gateway: gateway}
	var backend int
	if err := conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&backend); err == nil {
		if st, err := procStat(backend); err == nil {
			m.postmaster = st.ppid
		}
	}
	return m
}

type stat struct {
	ppid           int
	utime, stime   float64 // ticks
	cutime, cstime float64 // ticks of reaped children
	comm           string
}

// procStat reads /proc/PID/stat.
func procStat(pid int) (stat, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return stat{}, err
	}
	s := string(raw)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open || end+2 > len(s) {
		return stat{}, fmt.Errorf("pipeline: /proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(s[end+2:])
	if len(f) < 15 {
		return stat{}, fmt.Errorf("pipeline: /proc/%d/stat: unexpected format", pid)
	}
	num := func(i int) float64 { v, _ := strconv.ParseFloat(f[i], 64); return v }
	ppid, _ := strconv.Atoi(f[1])
	return stat{ppid: ppid, utime: num(11), stime: num(12), cutime: num(13), cstime: num(14), comm: s[open+1 : end]}, nil
}

// read returns the CPU seconds used so far.
func (m *cpuMeter) read() cpuTimes {
	var t cpuTimes
	if st, err := procStat(os.Getpid()); err == nil {
		t.bench = (st.utime + st.stime) / m.hz
	}
	if pid := m.gateway(); pid > 0 {
		if st, err := procStat(pid); err == nil {
			t.gateway = (st.utime + st.stime) / m.hz
		}
	}
	if m.postmaster <= 0 {
		return t
	}
	if st, err := procStat(m.postmaster); err == nil {
		t.postgres = (st.utime + st.stime + st.cutime + st.cstime) / m.hz
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return t
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := procStat(pid); err == nil && st.ppid == m.postmaster {
			t.postgres += (st.utime + st.stime) / m.hz
		}
	}
	return t
}
