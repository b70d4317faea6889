//go:build unix

package buffer

import (
	"fmt"
	"syscall"
)

// filesystemUsage returns the used share of the filesystem holding dir, as
// an unprivileged process sees it (blocks reserved for root count as used).
func filesystemUsage(dir string) (float64, error) {
	var s syscall.Statfs_t
	if err := syscall.Statfs(dir, &s); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	if s.Blocks == 0 {
		return 0, nil
	}
	return 1 - float64(s.Bavail)/float64(s.Blocks), nil
}
