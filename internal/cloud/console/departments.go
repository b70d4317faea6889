package console

import (
	"fmt"
	"net/http"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/staffcontrol/staffcontrol/internal/cloud/console/consoledb"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
)

// maxTreeNodes bounds the departments the tree shows (the page stays
// under 100 KB); the rest are a note and the employee list's filter.
const maxTreeNodes = 400

// Role groups, as the Dashboard API's routes table has them.
var (
	// orgManagers change the fleet, policies and users.
	orgManagers = []postgres.AppRole{postgres.AppAdmin, postgres.AppOrgAdmin}
	// peopleAdmins read the fleet, commands and policies.
	peopleAdmins = []postgres.AppRole{postgres.AppAdmin, postgres.AppOrgAdmin, postgres.AppHR}
)

// Can reports whether the signed-in user's role is in the group named
// ("manage": ADMIN, ORG_ADMIN; "people": those and HR), for the links
// and buttons a page shows (the API decides what is done).
func (v view) Can(group string) bool {
	if v.User == nil {
		return false
	}
	switch group {
	case "manage":
		return slices.Contains(orgManagers, v.User.Tenant.Role)
	case "people":
		return slices.Contains(peopleAdmins, v.User.Tenant.Role)
	}
	return false
}

// deptNode is a department of the tree with its employees (in it, and in
// it and its subdepartments).
type deptNode struct {
	ID        int64
	Name      string
	Employees int64
	Total     int64
	Children  []*deptNode
}

// departmentsData is the departments page's data.
type departmentsData struct {
	Roots     []*deptNode
	Count     int
	Truncated bool
}

// departments shows the departments the caller sees as a tree by parent
// (a department whose parent the caller does not see is a root), each
// with its employee counts: one statement.
func (c *Console) departments(w http.ResponseWriter, r *http.Request, p Principal) error {
	var rows []consoledb.DepartmentsWithCountsRow
	err := postgres.InTenant(r.Context(), p.DB, p.Tenant, func(tx pgx.Tx) error {
		var err error
		rows, err = consoledb.New(tx).DepartmentsWithCounts(r.Context(), maxTreeNodes+1)
		if err != nil {
			return fmt.Errorf("departments: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	d := departmentsData{Truncated: len(rows) > maxTreeNodes}
	if d.Truncated {
		rows = rows[:maxTreeNodes]
	}
	d.Roots, d.Count = departmentTree(rows), len(rows)
	v := c.newView(w, r, &p, "departments.title")
	v.Data = d
	c.render(w, r, http.StatusOK, "departments", v, nil)
	return nil
}

// departmentTree nests rows (sorted by name) under their parents: a row
// whose parent is absent is a root, and a cycle (rows are data) is broken
// by making its first member a root.
func departmentTree(rows []consoledb.DepartmentsWithCountsRow) []*deptNode {
	nodes := make(map[int64]*deptNode, len(rows))
	for _, r := range rows {
		nodes[r.ID] = &deptNode{ID: r.ID, Name: r.Name, Employees: r.Employees}
	}
	placed := make(map[int64]bool, len(rows))
	var roots []*deptNode
	for _, r := range rows {
		if r.ParentID == nil || nodes[*r.ParentID] == nil || *r.ParentID == r.ID {
			roots = append(roots, nodes[r.ID])
			placed[r.ID] = true
		}
	}
	for _, r := range rows {
		if !placed[r.ID] {
			parent := nodes[*r.ParentID]
			parent.Children = append(parent.Children, nodes[r.ID])
		}
	}
	// Rows in a cycle hang from each other and from no root: reach what
	// the roots reach, then lift the first unreached row of each cycle.
	reached := make(map[int64]bool, len(rows))
	var walk func(n *deptNode)
	walk = func(n *deptNode) {
		if reached[n.ID] {
			return
		}
		reached[n.ID] = true
		for _, ch := range n.Children {
			walk(ch)
		}
	}
	for _, n := range roots {
		walk(n)
	}
	for _, r := range rows {
		if reached[r.ID] {
			continue
		}
		n := nodes[r.ID]
		parent := nodes[*r.ParentID]
		parent.Children = slices.DeleteFunc(parent.Children, func(x *deptNode) bool { return x == n })
		roots = append(roots, n)
		walk(n)
	}
	var total func(n *deptNode) int64
	total = func(n *deptNode) int64 {
		n.Total = n.Employees
		for _, ch := range n.Children {
			n.Total += total(ch)
		}
		return n.Total
	}
	for _, n := range roots {
		total(n)
	}
	return roots
}
