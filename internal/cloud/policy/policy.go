// Package policy keeps agent policies: JSON content validated against a
// schema; releases as versions (semantic version by documented bump rules,
// SHA-256 of the canonical JSON, requires-restart flag, who released it);
// an audit row with a JSON diff for every change; comparison of two
// versions; and rollback, which releases an earlier version's content as a
// new version. Every operation runs through postgres.InTenant.
package policy

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/cloud/accounts"
	"github.com/staffcontrol/staffcontrol/internal/cloud/policy/policydb"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

//go:embed policy.schema.json
var schemaJSON []byte

// ErrNotFound means no such policy or version for the actor.
var ErrNotFound = errors.New("policy: not found")

// ErrStale means the policy changed since the version the caller read.
var ErrStale = errors.New("policy: changed since read")

// Service manages policies.
type Service struct {
	db     *pgxpool.Pool
	schema *jsonschema.Schema
}

// New returns a Service over db (the dashboard role, or an administrator).
func New(db *pgxpool.Pool) (*Service, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schemaJSON))
	if err != nil {
		return nil, fmt.Errorf("policy: schema: %w", err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("policy.schema.json", doc); err != nil {
		return nil, fmt.Errorf("policy: schema: %w", err)
	}
	sch, err := c.Compile("policy.schema.json")
	if err != nil {
		return nil, fmt.Errorf("policy: schema: %w", err)
	}
	return &Service{db: db, schema: sch}, nil
}

// Validate checks content against the policy schema, naming the offending
// member as a field path ("content.screenshots.interval_seconds").
func (s *Service) Validate(content []byte) error {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(content))
	if err != nil {
		return &apperr.FieldError{Field: "content", Message: "is not valid JSON"}
	}
	if err := s.schema.Validate(doc); err != nil {
		var ve *jsonschema.ValidationError
		if errors.As(err, &ve) {
			leaf := ve
			for len(leaf.Causes) > 0 {
				leaf = leaf.Causes[0]
			}
			field := strings.Join(append([]string{"content"}, leaf.InstanceLocation...), ".")
			msg := leaf.Error()
			if i := strings.LastIndex(msg, ": "); i >= 0 {
				msg = msg[i+2:]
			}
			return &apperr.FieldError{Field: field, Message: msg}
		}
		return &apperr.FieldError{Field: "content", Message: err.Error()}
	}
	return nil
}

// Policy is a policy and its draft content.
type Policy struct {
	ID             int64
	OrganizationID int64
	Name           string
	Content        json.RawMessage
	CurrentVersion string
	CreatedAt      time.Time
	// UpdatedAt is when the draft or the current version last changed;
	// its microseconds are the policy's version (Version).
	UpdatedAt time.Time
}

// Version is the policy's version for optimistic concurrency (the
// microseconds of UpdatedAt until policies carry a version column).
func (p Policy) Version() int64 { return p.UpdatedAt.UnixMicro() }

// Version is a released version of a policy.
type Version struct {
	ID              uuid.UUID
	PolicyID        int64
	Version         string
	Content         json.RawMessage
	Checksum        string
	RequiresRestart bool
	ReleasedAt      time.Time
	ReleasedBy      *int64
}

func userRef(a accounts.Actor) *int64 {
	if a.UserID == 0 {
		return nil
	}
	return &a.UserID
}

// Create creates a policy in the actor's organisation with draft content.
func (s *Service) Create(ctx context.Context, a accounts.Actor, name string, content []byte) (Policy, error) {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 255 {
		return Policy{}, &apperr.FieldError{Field: "name", Message: "is required (at most 255 characters)"}
	}
	if a.Tenant.OrganizationID == 0 {
		return Policy{}, &apperr.FieldError{Field: "organization", Message: "a policy belongs to an organisation"}
	}
	if err := s.Validate(content); err != nil {
		return Policy{}, err
	}
	canon, _ := Canonical(content)
	p := Policy{OrganizationID: a.Tenant.OrganizationID, Name: name, Content: canon}
	err := postgres.InTenant(ctx, s.db, a.Tenant, func(tx pgx.Tx) error {
		var err error
		p.ID, err = policydb.New(tx).CreatePolicy(ctx, policydb.CreatePolicyParams{OrganizationID: p.OrganizationID, Name: name,
			Content: canon, CreatedBy: userRef(a)})
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "23505" {
			return &apperr.FieldError{Field: "name", Message: fmt.Sprintf("a policy named %q exists already", name)}
		}
		if err != nil {
			return fmt.Errorf("policy: create: %w", err)
		}
		changes, _ := Diff([]byte(`{}`), canon)
		return s.audit(ctx, tx, a, p.ID, nil, "create", changes)
	})
	return p, err
}

// Get reads a policy visible to the actor.
func (s *Service) Get(ctx context.Context, a accounts.Actor, id int64) (Policy, error) {
	var p Policy
	err := postgres.InTenant(ctx, s.db, a.Tenant, func(tx pgx.Tx) error {
		r, err := policydb.New(tx).GetPolicy(ctx, id)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		p = policyOf(r)
		return err
	})
	return p, err
}

func policyOf(r policydb.GetPolicyRow) Policy {
	p := Policy{ID: r.ID, OrganizationID: r.OrganizationID, Name: r.Name, Content: r.Content, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
	if cur := r.CurrentVersion; cur != nil {
		p.CurrentVersion = *cur
	}
	return p
}

// List lists one page of the policies visible to the actor: at most limit
// after afterID, by id.
func (s *Service) List(ctx context.Context, a accounts.Actor, afterID int64, limit int) ([]Policy, error) {
	var out []Policy
	err := postgres.InTenant(ctx, s.db, a.Tenant, func(tx pgx.Tx) error {
		rows, err := policydb.New(tx).ListPolicies(ctx, policydb.ListPoliciesParams{AfterID: afterID, MaxRows: int32(limit)})
		if err != nil {
			return fmt.Errorf("policy: list: %w", err)
		}
		out = make([]Policy, 0, len(rows))
		for _, r := range rows {
			out = append(out, policyOf(policydb.GetPolicyRow(r)))
		}
		return nil
	})
	return out, err
}

// VersionCursor is where a page of versions starts: after the version
// released at ReleasedAt with ID (zero: from the newest).
type VersionCursor struct {
	ReleasedAt time.Time
	ID         uuid.UUID
}

// Versions lists one page of a policy's released versions, newest first:
// at most limit after cursor. A policy the actor cannot see is ErrNotFound.
func (s *Service) Versions(ctx context.Context, a accounts.Actor, id int64, after VersionCursor, limit int) ([]Version, error) {
	var out []Version
	err := postgres.InTenant(ctx, s.db, a.Tenant, func(tx pgx.Tx) error {
		q := policydb.New(tx)
		if _, err := q.GetPolicy(ctx, id); errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		} else if err != nil {
			return err
		}
		p := policydb.ListVersionsParams{PolicyID: id, MaxRows: int32(limit)}
		if !after.ReleasedAt.IsZero() {
			p.AfterReleasedAt, p.AfterID = pgtype.Timestamptz{Time: after.ReleasedAt, Valid: true}, &after.ID
		}
		rows, err := q.ListVersions(ctx, p)
		if err != nil {
			return fmt.Errorf("policy: versions: %w", err)
		}
		out = make([]Version, 0, len(rows))
		for _, r := range rows {
			out = append(out, Version(r))
		}
		return nil
	})
	return out, err
}

// Update replaces a policy's draft content, auditing the diff.
func (s *Service) Update(ctx context.Context, a accounts.Actor, id int64, content []byte) (Policy, error) {
	return s.UpdateVersion(ctx, a, id, content, 0)
}

// UpdateVersion is Update if the policy is still at version (as
// Policy.Version reported it; 0: whatever its version), ErrStale if not.
func (s *Service) UpdateVersion(ctx context.Context, a accounts.Actor, id int64, content []byte, version int64) (Policy, error) {
	if err := s.Validate(content); err != nil {
		return Policy{}, err
	}
	canon, _ := Canonical(content)
	var p Policy
	err := postgres.InTenant(ctx, s.db, a.Tenant, func(tx pgx.Tx) error {
		q := policydb.New(tx)
		old, err := q.LockPolicyContent(ctx, id)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if version != 0 && old.UpdatedAt.UnixMicro() != version {
			return ErrStale
		}
		changes, err := Diff(old.Content, canon)
		if err != nil {
			return err
		}
		if err := q.UpdatePolicyContent(ctx, policydb.UpdatePolicyContentParams{ID: id, Content: canon}); err != nil {
			return fmt.Errorf("policy: update: %w", err)
		}
		return s.audit(ctx, tx, a, id, nil, "update", changes)
	})
	if err != nil {
		return Policy{}, err
	}
	p, err = s.Get(ctx, a, id)
	return p, err
}

// Release makes the policy's draft content a new version.
func (s *Service) Release(ctx context.Context, a accounts.Actor, id int64, requiresRestart bool) (Version, error) {
	return s.release(ctx, a, id, nil, requiresRestart, "release")
}

// Rollback releases the content of an earlier version as a new version.
func (s *Service) Rollback(ctx context.Context, a accounts.Actor, id int64, toVersion string, requiresRestart bool) (Version, error) {
	old, err := s.Version(ctx, a, id, toVersion)
	if err != nil {
		return Version{}, err
	}
	return s.release(ctx, a, id, old.Content, requiresRestart, "rollback")
}

func (s *Service) release(ctx context.Context, a accounts.Actor, id int64, content []byte, requiresRestart bool, kind string) (Version, error) {
	var v Version
	err := postgres.InTenant(ctx, s.db, a.Tenant, func(tx pgx.Tx) error {
		q := policydb.New(tx)
		r, err := q.LockPolicyForRelease(ctx, id)
		org, draft, cur := r.OrganizationID, []byte(r.Content), r.CurrentVersion
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if content == nil {
			content = draft
		}
		prevContent := []byte(`{}`)
		prev := ""
		if cur != nil {
			prev = *cur
			c, err := q.VersionContent(ctx, policydb.VersionContentParams{PolicyID: id, Version: prev})
			if err != nil {
				return fmt.Errorf("policy: previous version: %w", err)
			}
			prevContent = c
		}
		changes, err := Diff(prevContent, content)
		if err != nil {
			return err
		}
		next, err := Bump(prev, changes, requiresRestart)
		if err != nil {
			return &apperr.FieldError{Field: "content", Message: err.Error()}
		}
		canon, _ := Canonical(content)
		sum, _ := Checksum(content)
		v = Version{PolicyID: id, Version: next, Content: canon, Checksum: sum, RequiresRestart: requiresRestart, ReleasedBy: userRef(a)}
		ins, err := q.InsertVersion(ctx, policydb.InsertVersionParams{OrganizationID: org, PolicyID: id, Version: next, Content: canon,
			Checksum: sum, RequiresRestart: requiresRestart, ReleasedBy: userRef(a)})
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "23505" {
			// The policy's current version is not its latest (versions
			// written around the service): a conflict to resolve, not a
			// server error.
			return apperr.New(apperr.Conflict, "version", "version %s of this policy exists already, but the policy's current version is %q", next, prev)
		}
		if err != nil {
			return fmt.Errorf("policy: insert version: %w", err)
		}
		v.ID, v.ReleasedAt = ins.ID, ins.ReleasedAt
		if err := q.SetCurrentVersion(ctx, policydb.SetCurrentVersionParams{ID: id, Version: &next, Content: canon}); err != nil {
			return fmt.Errorf("policy: update current version: %w", err)
		}
		return s.audit(ctx, tx, a, id, &v.ID, kind, changes)
	})
	return v, err
}

// Version reads one released version.
func (s *Service) Version(ctx context.Context, a accounts.Actor, id int64, version string) (Version, error) {
	var v Version
	err := postgres.InTenant(ctx, s.db, a.Tenant, func(tx pgx.Tx) error {
		r, err := policydb.New(tx).GetVersion(ctx, policydb.GetVersionParams{PolicyID: id, Version: version})
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		v = Version(r)
		return err
	})
	return v, err
}

// Compare lists the changes from version a to version b of a policy.
func (s *Service) Compare(ctx context.Context, actor accounts.Actor, id int64, a, b string) ([]Change, error) {
	va, err := s.Version(ctx, actor, id, a)
	if err != nil {
		return nil, err
	}
	vb, err := s.Version(ctx, actor, id, b)
	if err != nil {
		return nil, err
	}
	return Diff(va.Content, vb.Content)
}

func (s *Service) audit(ctx context.Context, tx pgx.Tx, a accounts.Actor, policyID int64, versionID *uuid.UUID, kind string, changes []Change) error {
	if changes == nil {
		changes = []Change{}
	}
	set, err := json.Marshal(map[string]any{"actor": a.Name, "changes": changes})
	if err != nil {
		return err
	}
	if err := policydb.New(tx).InsertChange(ctx, policydb.InsertChangeParams{PolicyID: policyID, VersionID: versionID, ChangedBy: userRef(a),
		Changeset: set, ChangeType: kind}); err != nil {
		return fmt.Errorf("policy: audit: %w", err)
	}
	return nil
}

// Released reads a released version of policy id as a gateway of the
// tenant's organisation fetches it: version, or the current one when
// version is "". Another organisation's policy is as absent as a missing
// one: ErrNotFound.
func Released(ctx context.Context, db postgres.Beginner, t postgres.Tenant, id int64, version string) (protocol.PolicyDocument, error) {
	var doc protocol.PolicyDocument
	err := postgres.InTenant(ctx, db, t, func(tx pgx.Tx) error {
		r, err := policydb.New(tx).ReleasedDocument(ctx, policydb.ReleasedDocumentParams{PolicyID: id, Version: version})
		doc = protocol.PolicyDocument(r)
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return doc, ErrNotFound
	}
	return doc, err
}
