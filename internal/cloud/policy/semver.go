// Semantic versions of policy releases, bumped by the documented rules.

package policy

import (
	"fmt"
	"strconv"
	"strings"
)

// Bump returns the next semantic version after prev for the changes:
//
//   - major: a setting removed, a value changing JSON type, or the release
//     requires agents to restart — an agent on the old version may misread it;
//   - minor: a setting added (old agents ignore what they do not know);
//   - patch: only values changed.
//
// The first release is 1.0.0. No change at all is an error: there is
// nothing to release.
func Bump(prev string, changes []Change, requiresRestart bool) (string, error) {
	if prev == "" {
		return "1.0.0", nil
	}
	if len(changes) == 0 && !requiresRestart {
		return "", fmt.Errorf("nothing to release: the content equals version %s", prev)
	}
	major, minor, patch, err := parseSemver(prev)
	if err != nil {
		return "", err
	}
	level := 0 // 0 patch, 1 minor, 2 major
	if requiresRestart {
		level = 2
	}
	for _, c := range changes {
		switch {
		case c.Op == "remove", c.Op == "replace" && kind(c.Old) != kind(c.New):
			level = 2
		case c.Op == "add" && level < 1:
			level = 1
		}
	}
	switch level {
	case 2:
		return fmt.Sprintf("%d.0.0", major+1), nil
	case 1:
		return fmt.Sprintf("%d.%d.0", major, minor+1), nil
	}
	return fmt.Sprintf("%d.%d.%d", major, minor, patch+1), nil
}

func parseSemver(v string) (int, int, int, error) {
	parts := strings.Split(v, ".")
	if len(parts) != 3 {
		return 0, 0, 0, fmt.Errorf("version %q is not MAJOR.MINOR.PATCH", v)
	}
	var n [3]int
	for i, p := range parts {
		x, err := strconv.Atoi(p)
		if err != nil || x < 0 {
			return 0, 0, 0, fmt.Errorf("version %q is not MAJOR.MINOR.PATCH", v)
		}
		n[i] = x
	}
	return n[0], n[1], n[2], nil
}
