package ingest_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// cpuMeter reads the CPU seconds of this process and of the PostgreSQL
// server (the postmaster, its live children and those it reaped) from
// /proc, so that a benchmark can report CPU time per event beside its rate
// (much less noisy than rates on a shared machine). Off Linux, or for a
// server this machine does not run, the PostgreSQL figure stays zero.
type cpuMeter struct {
	postmaster int
}

// newCPUMeter finds the postmaster as the parent of conn's backend.
func newCPUMeter(tb testing.TB, conn *pgx.Conn) *cpuMeter {
	tb.Helper()
	var backend int
	if err := conn.QueryRow(context.Background(), "SELECT pg_backend_pid()").Scan(&backend); err != nil {
		tb.Fatal(err)
	}
	m := &cpuMeter{}
	if st, err := readStat(backend); err == nil {
		m.postmaster = st.ppid
	}
	return m
}

type procTimes struct {
	ppid           int
	utime, stime   float64
	cutime, cstime float64
}

func readStat(pid int) (procTimes, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procTimes{}, err
	}
	s := string(raw)
	end := strings.LastIndexByte(s, ')')
	if end < 0 || end+2 > len(s) {
		return procTimes{}, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(s[end+2:])
	if len(f) < 15 {
		return procTimes{}, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	num := func(i int) float64 { v, _ := strconv.ParseFloat(f[i], 64); return v / 100 } // USER_HZ
	ppid, _ := strconv.Atoi(f[1])
	return procTimes{ppid: ppid, utime: num(11), stime: num(12), cutime: num(13), cstime: num(14)}, nil
}

// read returns the CPU seconds used so far by this process and by the
// PostgreSQL server.
func (m *cpuMeter) read() (self, server float64) {
	if st, err := readStat(os.Getpid()); err == nil {
		self = st.utime + st.stime
	}
	if m == nil || m.postmaster <= 0 {
		return self, 0
	}
	if st, err := readStat(m.postmaster); err == nil {
		server = st.utime + st.stime + st.cutime + st.cstime
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return self, server
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := readStat(pid); err == nil && st.ppid == m.postmaster {
			server += st.utime + st.stime
		}
	}
	return self, server
}
