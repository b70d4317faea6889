package gateway

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"time"
)

// stallProbe measures the machine beside a benchmark run, not the gateway:
// how late a goroutine wakes from a 1 ms sleep (CPU and scheduling stalls)
// and how long a 4 KiB overwrite plus fdatasync of a file next to the
// buffer takes (disk stalls). On a shared VM these stalls make most of the
// acknowledgement tail, and the probe tells such runs apart.
type stallProbe struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	wake   []time.Duration
	syncs  []time.Duration
}

// startStallProbe starts the probe; file is the fdatasync target.
func startStallProbe(file string) (*stallProbe, error) {
	f, err := os.OpenFile(file, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	page := make([]byte, 4096)
	if _, err := f.WriteAt(page, 0); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &stallProbe{cancel: cancel}
	p.wg.Add(2)
	go func() {
		defer p.wg.Done()
		runtime.LockOSThread()
		for ctx.Err() == nil {
			t := time.Now()
			time.Sleep(time.Millisecond)
			p.wake = append(p.wake, time.Since(t)-time.Millisecond)
		}
	}()
	go func() {
		defer p.wg.Done()
		defer f.Close()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			t := time.Now()
			if _, err := f.WriteAt(page, 0); err != nil {
				return
			}
			if err := syscall.Fdatasync(int(f.Fd())); err != nil {
				return
			}
			p.syncs = append(p.syncs, time.Since(t))
		}
	}()
	return p, nil
}

// stop ends the probe and returns the worst wake-up delay and the p99 and
// worst fdatasync, in milliseconds.
func (p *stallProbe) stop() (wakeMax, syncP99, syncMax float64) {
	p.cancel()
	p.wg.Wait()
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	if len(p.wake) > 0 {
		wakeMax = ms(slices.Max(p.wake))
	}
	if n := len(p.syncs); n > 0 {
		slices.Sort(p.syncs)
		syncP99, syncMax = ms(p.syncs[n*99/100]), ms(p.syncs[n-1])
	}
	return wakeMax, syncP99, syncMax
}

func probeFile(dir string) string { return filepath.Join(dir, "probe.dat") }
