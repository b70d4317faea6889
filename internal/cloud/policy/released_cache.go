package policy

import (
	"context"
	"sync"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// ReleasedCache keeps released policy documents that a gateway fetched by
// version, for the Agent API: during a release every gateway of the fleet
// fetches the same version within seconds, and a released version's
// content never changes, so one read per replica and TTL serves them all.
// A fetch without a version (the latest) is never cached; entries are per
// organisation, so a gateway still gets only its own organisation's
// documents; a version of a deleted policy may still be served until its
// entry expires.
type ReleasedCache struct {
	db  postgres.Beginner
	ttl time.Duration
	max int

	mu      sync.Mutex
	entries map[releasedKey]releasedEntry
}

type releasedKey struct {
	org, policy int64
	version     string
}

type releasedEntry struct {
	doc     protocol.PolicyDocument
	expires time.Time
}

// NewReleasedCache returns a cache over db holding at most max documents,
// each for ttl.
func NewReleasedCache(db postgres.Beginner, ttl time.Duration, max int) *ReleasedCache {
	return &ReleasedCache{db: db, ttl: ttl, max: max, entries: map[releasedKey]releasedEntry{}}
}

// Released is the package's Released, through the cache when a version is
// named.
func (c *ReleasedCache) Released(ctx context.Context, t postgres.Tenant, id int64, version string) (protocol.PolicyDocument, error) {
	if version == "" || c.ttl <= 0 || c.max <= 0 {
		return Released(ctx, c.db, t, id, version)
	}
	k := releasedKey{org: t.OrganizationID, policy: id, version: version}
	now := time.Now()
	c.mu.Lock()
	e, ok := c.entries[k]
	c.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.doc, nil
	}
	doc, err := Released(ctx, c.db, t, id, version)
	if err != nil {
		return doc, err
	}
	c.mu.Lock()
	if len(c.entries) >= c.max {
		for key, old := range c.entries {
			if !now.Before(old.expires) {
				delete(c.entries, key)
			}
		}
		if len(c.entries) >= c.max {
			clear(c.entries)
		}
	}
	c.entries[k] = releasedEntry{doc: doc, expires: now.Add(c.ttl)}
	c.mu.Unlock()
	return doc, nil
}
