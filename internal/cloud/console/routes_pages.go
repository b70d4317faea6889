package console

import (
	"bytes"
	"html/template"
	"net/http"
)

// pageTemplates are the templates of the pages beyond the first slice
// (each parsed with the layout, as the others).
var pageTemplates = []string{"departments", "gateways", "gateway", "devices", "device", "commands", "audit", "users", "reports", "attendance", "policies", "policy", "policyversion", "policydiff", "distribution", "day", "profile"}

// pageFuncs are the template helpers of those pages.
var pageFuncs = template.FuncMap{
	// node pairs a tree node with the page's view for the recursive
	// department template.
	"node": func(v view, n *deptNode) deptItem { return deptItem{V: v, N: n} },
	// list is its arguments, for a template's fixed choices.
	"list": func(s ...string) []string { return s },
}

// deptItem is a department node with the page's view.
type deptItem struct {
	V view
	N *deptNode
}

// pageRoutes adds the pages beyond the first slice.
func (c *Console) pageRoutes() {
	c.mux.HandleFunc("GET "+Prefix+"employees/{id}/day", c.page(c.employeeDay))
	c.mux.HandleFunc("GET "+Prefix+"profile", c.page(c.profile))
	c.mux.HandleFunc("POST "+Prefix+"profile", c.page(c.saveProfile))
	c.mux.HandleFunc("GET "+Prefix+"departments", c.page(c.departments))
	c.mux.HandleFunc("GET "+Prefix+"gateways", c.page(c.gateways))
	c.mux.HandleFunc("GET "+Prefix+"gateways/{id}", c.page(c.gateway))
	c.mux.HandleFunc("POST "+Prefix+"gateways/{id}/rotate-key", c.page(c.rotateGatewayKey))
	c.mux.HandleFunc("GET "+Prefix+"devices", c.page(c.devices))
	c.mux.HandleFunc("GET "+Prefix+"devices/{id}", c.page(c.device))
	c.mux.HandleFunc("POST "+Prefix+"devices/{id}/open-door", c.page(c.openDoor))
	c.mux.HandleFunc("GET "+Prefix+"devices/{id}/events", c.page(c.deviceEvents))
	c.mux.HandleFunc("GET "+Prefix+"device-commands/{id}/status", c.page(c.deviceCommandStatus))
	c.mux.HandleFunc("GET "+Prefix+"commands", c.page(c.commands))
	c.mux.HandleFunc("GET "+Prefix+"audit-log", c.page(c.auditLog))
	c.mux.HandleFunc("GET "+Prefix+"users", c.page(c.users))
	c.mux.HandleFunc("POST "+Prefix+"users", c.page(c.createUser))
	c.mux.HandleFunc("POST "+Prefix+"users/{id}/disable", c.page(c.setUserActive))
	c.mux.HandleFunc("POST "+Prefix+"users/{id}/enable", c.page(c.setUserActive))
	c.mux.HandleFunc("GET "+Prefix+"reports", c.page(c.reports))
	c.mux.HandleFunc("GET "+Prefix+"reports/export", c.page(c.exportReport))
	c.mux.HandleFunc("GET "+Prefix+"attendance", c.page(c.attendance))
	c.mux.HandleFunc("GET "+Prefix+"policies", c.page(c.policies))
	c.mux.HandleFunc("GET "+Prefix+"policies/{id}", c.page(c.policy))
	c.mux.HandleFunc("POST "+Prefix+"policies/{id}", c.page(c.savePolicy))
	c.mux.HandleFunc("POST "+Prefix+"policies/{id}/release", c.page(c.releasePolicy))
	c.mux.HandleFunc("GET "+Prefix+"policies/{id}/versions/{version}", c.page(c.policyVersion))
	c.mux.HandleFunc("GET "+Prefix+"policies/{id}/compare", c.page(c.comparePolicy))
	c.mux.HandleFunc("POST "+Prefix+"policies/{id}/distributions", c.page(c.distributePolicy))
	c.mux.HandleFunc("GET "+Prefix+"policies/{id}/distributions/{did}", c.page(c.distribution))
	c.mux.HandleFunc("GET "+Prefix+"policies/{id}/distributions/{did}/progress", c.page(c.distribution))
}

// renderFragment writes the template block name of page (no layout): the
// parts htmx polls.
func (c *Console) renderFragment(w http.ResponseWriter, page, block string, v view) {
	var buf bytes.Buffer
	if err := c.pages[page].ExecuteTemplate(&buf, block, v); err != nil {
		c.d.Logger.Error("console: render", "page", page, "block", block, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Language", string(v.Lang))
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf.Bytes())
}

// S is a status's word in the page's language (the status itself when
// the catalogue has none).
func (v view) S(status string) string {
	key := "status." + status
	if m := v.T(key); m != key {
		return m
	}
	return status
}
