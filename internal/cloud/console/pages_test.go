package console

import (
	"regexp"
	"slices"
	"testing"

	"github.com/staffcontrol/staffcontrol/internal/cloud/console/consoledb"
)

// TestPageCatalogues checks the pages' catalogues as TestCatalogues checks
// the first: every language has English's keys, non-empty, with the same
// verbs, and none of them shadows a key of catalogues.
func TestPageCatalogues(t *testing.T) {
	verbs := regexp.MustCompile(`%[a-z]`)
	for _, l := range languages {
		for key, en := range pageCatalogues[English] {
			m, ok := pageCatalogues[l][key]
			if !ok || m == "" {
				t.Errorf("%s lacks %s", l, key)
				continue
			}
			if !slices.Equal(verbs.FindAllString(m, -1), verbs.FindAllString(en, -1)) {
				t.Errorf("%s %s: verbs of %q differ from English %q", l, key, m, en)
			}
		}
		for key := range pageCatalogues[l] {
			if _, ok := pageCatalogues[English][key]; !ok {
				t.Errorf("%s has %s, which English lacks", l, key)
			}
			if _, ok := catalogues[l][key]; ok {
				t.Errorf("%s: %s is in both catalogues", l, key)
			}
		}
	}
}

func TestDepartmentTree(t *testing.T) {
	p := func(id int64) *int64 { return &id }
	rows := []consoledb.DepartmentsWithCountsRow{
		{ID: 1, Name: "A", Employees: 1},
		{ID: 2, ParentID: p(1), Name: "B", Employees: 2},
		{ID: 3, ParentID: p(2), Name: "C", Employees: 3},
		{ID: 4, ParentID: p(99), Name: "D (parent unseen)", Employees: 4},
		{ID: 5, ParentID: p(6), Name: "E (cycle)", Employees: 5},
		{ID: 6, ParentID: p(5), Name: "F (cycle)", Employees: 6},
		{ID: 7, ParentID: p(7), Name: "G (own parent)", Employees: 7},
	}
	roots := departmentTree(rows)
	got := map[int64]int64{}
	count := 0
	var walk func(n *deptNode, depth int)
	walk = func(n *deptNode, depth int) {
		count++
		if depth > len(rows) {
			t.Fatal("the tree loops")
		}
		got[n.ID] = n.Total
		for _, ch := range n.Children {
			walk(ch, depth+1)
		}
	}
	for _, r := range roots {
		walk(r, 0)
	}
	if count != len(rows) {
		t.Errorf("the tree holds %d nodes, want %d", count, len(rows))
	}
	for id, want := range map[int64]int64{1: 6, 2: 5, 3: 3, 4: 4, 5: 11, 7: 7} {
		if got[id] != want {
			t.Errorf("department %d: total %d, want %d", id, got[id], want)
		}
	}
	if len(roots) != 4 { // A, D, E (lifted from the cycle), G
		t.Errorf("%d roots, want 4", len(roots))
	}
}

// FuzzErrorOf: any API error body becomes an error with a message.
func FuzzErrorOf(f *testing.F) {
	f.Add(422, []byte(`{"code":"validation_failed","message":"bad","field":"/content/a"}`))
	f.Add(500, []byte(`not json`))
	f.Add(404, []byte(``))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		err := errorOf(status, body)
		if err == nil || err.Error() == "" {
			t.Fatalf("errorOf(%d, %q) = %v", status, body, err)
		}
	})
}

// FuzzDepartmentTree: whatever parents the rows name (cycles, themselves,
// rows absent), every row is in the tree exactly once and the totals add
// up.
func FuzzDepartmentTree(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3})
	f.Add([]byte{2, 3, 1, 1, 5, 5})
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 1})
	f.Fuzz(func(t *testing.T, parents []byte) {
		if len(parents) > 64 {
			parents = parents[:64]
		}
		var rows []consoledb.DepartmentsWithCountsRow
		var want int64
		for i, b := range parents {
			r := consoledb.DepartmentsWithCountsRow{ID: int64(i + 1), Name: "d", Employees: int64(b % 7)}
			if b%3 != 0 {
				parent := int64(b%16) + 1
				r.ParentID = &parent
			}
			want += r.Employees
			rows = append(rows, r)
		}
		seen := map[int64]bool{}
		var walk func(n *deptNode, depth int)
		walk = func(n *deptNode, depth int) {
			if seen[n.ID] || depth > len(rows) {
				t.Fatalf("department %d placed twice or the tree loops", n.ID)
			}
			seen[n.ID] = true
			for _, ch := range n.Children {
				walk(ch, depth+1)
			}
		}
		var total int64
		for _, r := range departmentTree(rows) {
			walk(r, 0)
			total += r.Total
		}
		if len(seen) != len(rows) || total != want {
			t.Fatalf("%d of %d rows placed, total %d, want %d", len(seen), len(rows), total, want)
		}
	})
}
