package gateway

import (
	"os"
	"strings"
	"sync"
)

// Host sampling for the heartbeat's real state: CPU and memory from /proc
// (0 where /proc is missing); the disk share comes from the buffer's own
// statfs sample (buffer.Stats).

// hostSampler turns /proc/stat samples into the CPU share used between
// two heartbeats, and reads the memory share from /proc/meminfo.
type hostSampler struct {
	mu          sync.Mutex
	busy, total uint64
}

func (h *hostSampler) cpuPercent() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0
	}
	var total, idle uint64
	for i, v := range f[1:] {
		n := parseUint(v)
		total += n
		if i == 3 || i == 4 { // idle, iowait
			idle += n
		}
	}
	busy := total - idle
	h.mu.Lock()
	defer h.mu.Unlock()
	pb, pt := h.busy, h.total
	h.busy, h.total = busy, total
	if pt == 0 || total <= pt || busy < pb {
		if total == 0 {
			return 0
		}
		return 100 * float64(busy) / float64(total) // since boot, for the first sample
	}
	return 100 * float64(busy-pb) / float64(total-pt)
}

// memoryPercent is the share of memory not available (/proc/meminfo).
func (h *hostSampler) memoryPercent() float64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	var total, avail uint64
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "MemTotal:":
			total = parseUint(f[1])
		case "MemAvailable:":
			avail = parseUint(f[1])
		}
	}
	if total == 0 || avail > total {
		return 0
	}
	return 100 * float64(total-avail) / float64(total)
}

func parseUint(s string) uint64 {
	var n uint64
	for _, c := range s {
		if c < '0' || c > '9' {
			return n
		}
		n = n*10 + uint64(c-'0')
	}
	return n
}
