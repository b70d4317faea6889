package devices

import (
	"fmt"
	"testing"
)

// TestRecentKeys: the set keeps the last n keys added (a re-added key does
// not move), evicting the oldest, and grows with what is added.
func TestRecentKeys(t *testing.T) {
	for _, tc := range []struct {
		max, add int
		want     []int // keys that must still be there
		gone     []int
	}{
		{max: 3, add: 2, want: []int{0, 1}, gone: []int{2}},
		{max: 3, add: 3, want: []int{0, 1, 2}},
		{max: 3, add: 5, want: []int{2, 3, 4}, gone: []int{0, 1}},
		{max: 3, add: 10, want: []int{7, 8, 9}, gone: []int{0, 5, 6}},
		{max: 0, add: 3, gone: []int{0, 1, 2}},
	} {
		t.Run(fmt.Sprintf("%d of %d", tc.add, tc.max), func(t *testing.T) {
			r := newRecentKeys(tc.max)
			for i := range tc.add {
				r.add(fmt.Sprint(i))
				r.add(fmt.Sprint(i)) // a repeat changes nothing
			}
			for _, k := range tc.want {
				if !r.has(fmt.Sprint(k)) {
					t.Errorf("lost %d", k)
				}
			}
			for _, k := range tc.gone {
				if r.has(fmt.Sprint(k)) {
					t.Errorf("still has %d", k)
				}
			}
			if len(r.set) > tc.max || len(r.ring) > tc.max {
				t.Errorf("holds %d keys (%d in the ring), max %d", len(r.set), len(r.ring), tc.max)
			}
		})
	}
}
