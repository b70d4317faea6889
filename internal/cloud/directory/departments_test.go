package directory_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/cloud/directory"
)

// render draws a tree as "name(child,child)".
func render(nodes []directory.DepartmentNode) string {
	parts := make([]string, len(nodes))
	for i, n := range nodes {
		parts[i] = n.Name
		if len(n.Children) > 0 {
			parts[i] += "(" + render(n.Children) + ")"
		}
	}
	return strings.Join(parts, ",")
}

func TestDepartmentTree(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	mk := func(name string, parent *int64) directory.Department {
		t.Helper()
		d, err := e.svc.CreateDepartment(e.ctx, e.dash, e.hrA, directory.DepartmentInput{Name: name, ParentID: parent})
		if err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
		return d
	}
	ops := mk("Operations", nil)
	sales := mk("Sales", nil)
	north := mk("North", &sales.ID)
	south := mk("South", &sales.ID)
	depot := mk("Depot", &north.ID)
	if got := render(mustTree(t, e)); got != "Engineering,Operations,Sales(North(Depot),South)" {
		t.Fatalf("tree %s", got)
	}

	// Cycles: under itself, under a child, under a grandchild.
	for _, parent := range []int64{sales.ID, north.ID, depot.ID} {
		_, err := e.svc.UpdateDepartment(e.ctx, e.dash, e.hrA, sales.ID, sales.Version, directory.DepartmentInput{Name: "Sales", ParentID: &parent})
		wantCode(t, fmt.Sprintf("Sales under %d", parent), err, apperr.Invalid, "parent_id", "")
	}
	// A legal move, then its stale repetition.
	moved, err := e.svc.UpdateDepartment(e.ctx, e.dash, e.hrA, north.ID, north.Version, directory.DepartmentInput{Name: "North", ParentID: &ops.ID})
	if err != nil || moved.Version != 2 || *moved.ParentID != ops.ID {
		t.Fatalf("move North under Operations: %v %+v", err, moved)
	}
	_, err = e.svc.UpdateDepartment(e.ctx, e.dash, e.hrA, north.ID, north.Version, directory.DepartmentInput{Name: "North"})
	wantCode(t, "stale move", err, apperr.Conflict, "", directory.ReasonStale)
	if got := render(mustTree(t, e)); got != "Engineering,Operations(North(Depot)),Sales(South)" {
		t.Errorf("tree after the move %s", got)
	}
	// Now Sales may go under Depot? No: Depot is not Sales's descendant
	// any more, so yes.
	if _, err := e.svc.UpdateDepartment(e.ctx, e.dash, e.hrA, sales.ID, sales.Version, directory.DepartmentInput{Name: "Sales", ParentID: &depot.ID}); err != nil {
		t.Errorf("Sales under Depot after North moved away: %v", err)
	}

	// Names: unique per organisation, the same in another is fine.
	_, err = e.svc.CreateDepartment(e.ctx, e.dash, e.hrA, directory.DepartmentInput{Name: "Operations"})
	wantCode(t, "duplicate name", err, apperr.Conflict, "name", "")
	_, err = e.svc.UpdateDepartment(e.ctx, e.dash, e.hrA, south.ID, south.Version, directory.DepartmentInput{Name: "Depot", ParentID: &sales.ID})
	wantCode(t, "rename to a taken name", err, apperr.Conflict, "name", "")
	if _, err := e.svc.CreateDepartment(e.ctx, e.dash, e.hrB, directory.DepartmentInput{Name: "Operations"}); err != nil {
		t.Errorf("same name in B: %v", err)
	}
	for _, c := range []struct {
		in    directory.DepartmentInput
		field string
	}{
		{directory.DepartmentInput{Name: " "}, "name"},
		{directory.DepartmentInput{Name: strings.Repeat("d", 256)}, "name"},
		{directory.DepartmentInput{Name: "X", ParentID: ptr(int64(0))}, "parent_id"},
		{directory.DepartmentInput{Name: "X", ParentID: ptr(int64(987654))}, "parent_id"},
	} {
		_, err := e.svc.CreateDepartment(e.ctx, e.dash, e.hrA, c.in)
		wantCode(t, fmt.Sprintf("create %+v", c.in), err, apperr.Invalid, c.field, "")
	}

	// Delete: refused with children or employees, fine for a leaf.
	err = e.svc.DeleteDepartment(e.ctx, e.dash, e.hrA, ops.ID, ops.Version)
	wantCode(t, "delete with children", err, apperr.Conflict, "", "")
	err = e.svc.DeleteDepartment(e.ctx, e.dash, e.hrA, e.a.DepartmentID, 1)
	wantCode(t, "delete with employees (and a user)", err, apperr.Conflict, "", "")
	err = e.svc.DeleteDepartment(e.ctx, e.dash, e.hrA, south.ID, 7)
	wantCode(t, "stale delete", err, apperr.Conflict, "", directory.ReasonStale)
	if err := e.svc.DeleteDepartment(e.ctx, e.dash, e.hrA, south.ID, south.Version); err != nil {
		t.Errorf("delete a leaf: %v", err)
	}
	_, err = e.svc.GetDepartment(e.ctx, e.dash, e.hrA, south.ID)
	wantCode(t, "get deleted", err, apperr.NotFound, "", "")

	// Audit rows: 5 creates, 2 updates (the move and Sales'), 1 delete.
	got := e.one(t, `SELECT string_agg(action, ',' ORDER BY id) FROM audit_log WHERE resource_type = 'department' AND organization_id = $1`, e.a.OrganizationID)
	if got != "create,create,create,create,create,update,update,delete" {
		t.Errorf("audit actions %s", got)
	}
	details := e.one(t, `SELECT details::text FROM audit_log WHERE resource_type = 'department' AND action = 'update' ORDER BY id LIMIT 1`)
	want := fmt.Sprintf(`{"changes": [{"op": "replace", "new": %d, "old": %d, "path": "/parent_id"}]}`, ops.ID, sales.ID)
	if details != want {
		t.Errorf("move's audit details %s, want %s", details, want)
	}
}

func mustTree(t *testing.T, e *env) []directory.DepartmentNode {
	t.Helper()
	tree, err := e.svc.DepartmentTree(e.ctx, e.dash, e.hrA)
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

// TestConcurrentMovesMakeNoCycle: A under B and B under A at the same time:
// one wins, the other is refused.
func TestConcurrentMovesMakeNoCycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, _ := e.svc.CreateDepartment(e.ctx, e.dash, e.hrA, directory.DepartmentInput{Name: "A"})
	b, _ := e.svc.CreateDepartment(e.ctx, e.dash, e.hrA, directory.DepartmentInput{Name: "B"})
	for range 10 {
		errs := make(chan error, 2)
		go func() {
			_, err := e.svc.UpdateDepartment(e.ctx, e.dash, e.hrA, a.ID, a.Version, directory.DepartmentInput{Name: "A", ParentID: &b.ID})
			errs <- err
		}()
		go func() {
			_, err := e.svc.UpdateDepartment(e.ctx, e.dash, e.hrA, b.ID, b.Version, directory.DepartmentInput{Name: "B", ParentID: &a.ID})
			errs <- err
		}()
		e1, e2 := <-errs, <-errs
		if (e1 == nil) == (e2 == nil) {
			t.Fatalf("both moves: %v, %v; want exactly one refused", e1, e2)
		}
		refused := e1
		if refused == nil {
			refused = e2
		}
		// Refused as a cycle (the loser waited for the winner's lock and
		// saw its move), or as stale (it read before the winner's commit;
		// a retry would see the cycle) — never a deadlock.
		if ae := apperr.As(refused); ae == nil || !(ae.Field == "parent_id" || ae.Reason == directory.ReasonStale) {
			t.Fatalf("refused move: %v, want a cycle on parent_id or stale", refused)
		}
		if c := e.one(t, `SELECT count(*)::text FROM departments WHERE id IN ($1, $2) AND parent_id IS NOT NULL`, a.ID, b.ID); c != "1" {
			t.Fatalf("%s of A and B have a parent, want 1", c)
		}
		// Back to two roots for the next round.
		var err error
		if a, err = e.svc.GetDepartment(e.ctx, e.dash, e.hrA, a.ID); err != nil {
			t.Fatal(err)
		}
		if b, err = e.svc.GetDepartment(e.ctx, e.dash, e.hrA, b.ID); err != nil {
			t.Fatal(err)
		}
		for _, d := range []*directory.Department{&a, &b} {
			if d.ParentID != nil {
				if *d, err = e.svc.UpdateDepartment(e.ctx, e.dash, e.hrA, d.ID, d.Version, directory.DepartmentInput{Name: d.Name}); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}
