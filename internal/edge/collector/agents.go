package collector

import (
	"sort"
	"sync"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// AgentInfo is what the gateway knows of one agent.
type AgentInfo struct {
	AgentUID      string    `json:"agent_uid"`
	ComputerName  string    `json:"computer_name"`
	AgentVersion  string    `json:"agent_version,omitempty"`
	PolicyVersion string    `json:"policy_version,omitempty"`
	RegisteredAt  time.Time `json:"registered_at,omitzero"`
	LastSeenAt    time.Time `json:"last_seen_at"`
	Connected     bool      `json:"connected"`
}

// Agents is a bounded in-memory registry of agents, keyed by agent uid.
type Agents struct {
	mu     sync.Mutex
	max    int
	stale  time.Duration
	now    func() time.Time
	agents map[string]*AgentInfo
}

func newAgents(max int, stale time.Duration, now func() time.Time) *Agents {
	return &Agents{max: max, stale: stale, now: now, agents: map[string]*AgentInfo{}}
}

// Seen records contact from an agent; full is true for a registration.
func (a *Agents) Seen(reg protocol.AgentRegistration, full bool) {
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	info, ok := a.agents[reg.AgentUID]
	if !ok {
		if len(a.agents) >= a.max {
			a.evictLocked(now)
		}
		info = &AgentInfo{AgentUID: reg.AgentUID}
		a.agents[reg.AgentUID] = info
	}
	info.LastSeenAt = now
	if reg.ComputerName != "" {
		info.ComputerName = reg.ComputerName
	}
	if reg.AgentVersion != "" {
		info.AgentVersion = reg.AgentVersion
	}
	if reg.PolicyVersion != "" {
		info.PolicyVersion = reg.PolicyVersion
	}
	if full {
		info.RegisteredAt = now
	}
}

// evictLocked removes stale agents, or the least recently seen one.
func (a *Agents) evictLocked(now time.Time) {
	var oldest *AgentInfo
	for uid, info := range a.agents {
		if now.Sub(info.LastSeenAt) > a.stale {
			delete(a.agents, uid)
			continue
		}
		if oldest == nil || info.LastSeenAt.Before(oldest.LastSeenAt) {
			oldest = info
		}
	}
	if len(a.agents) >= a.max && oldest != nil {
		delete(a.agents, oldest.AgentUID)
	}
}

// Connected counts agents heard from within three heartbeat intervals.
func (a *Agents) Connected() int {
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, info := range a.agents {
		if now.Sub(info.LastSeenAt) <= a.stale {
			n++
		}
	}
	return n
}

// Lookup returns what is known of one agent.
func (a *Agents) Lookup(uid string) (AgentInfo, bool) {
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	info, ok := a.agents[uid]
	if !ok {
		return AgentInfo{}, false
	}
	c := *info
	c.Connected = now.Sub(info.LastSeenAt) <= a.stale
	return c, true
}

// ConnectedUIDs lists the agents heard from within three heartbeat
// intervals, sorted.
func (a *Agents) ConnectedUIDs() []string {
	now := a.now()
	a.mu.Lock()
	out := []string{}
	for uid, info := range a.agents {
		if now.Sub(info.LastSeenAt) <= a.stale {
			out = append(out, uid)
		}
	}
	a.mu.Unlock()
	sort.Strings(out)
	return out
}

// List returns up to limit agents, most recently seen first.
func (a *Agents) List(limit int) []AgentInfo {
	now := a.now()
	a.mu.Lock()
	out := make([]AgentInfo, 0, len(a.agents))
	for _, info := range a.agents {
		c := *info
		c.Connected = now.Sub(info.LastSeenAt) <= a.stale
		out = append(out, c)
	}
	a.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].LastSeenAt.After(out[j].LastSeenAt) })
	if len(out) > limit {
		out = out[:limit]
	}
	return out
}
