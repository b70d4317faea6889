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
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/cloud/accounts"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
)

//go:embed policy.schema.json
var schemaJSON []byte

// ErrNotFound means no such policy or version for the actor.
var ErrNotFound = errors.New("policy: not found")

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
}

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
		err := tx.QueryRow(ctx, `INSERT INTO policies (organization_id, name, content, created_by) VALUES ($1, $2, $3, $4) RETURNING id`,
			p.OrganizationID, name, canon, userRef(a)).Scan(&p.ID)
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
		var cur *string
		err := tx.QueryRow(ctx, `SELECT id, organization_id, name, content, current_version FROM policies WHERE id = $1`, id).
			Scan(&p.ID, &p.OrganizationID, &p.Name, &p.Content, &cur)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if cur != nil {
			p.CurrentVersion = *cur
		}
		return err
	})
	return p, err
}

// Update replaces a policy's draft content, auditing the diff.
func (s *Service) Update(ctx context.Context, a accounts.Actor, id int64, content []byte) (Policy, error) {
	if err := s.Validate(content); err != nil {
		return Policy{}, err
	}
	canon, _ := Canonical(content)
	var p Policy
	err := postgres.InTenant(ctx, s.db, a.Tenant, func(tx pgx.Tx) error {
		var old []byte
		err := tx.QueryRow(ctx, `SELECT content FROM policies WHERE id = $1 FOR UPDATE`, id).Scan(&old)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		changes, err := Diff(old, canon)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE policies SET content = $2, updated_at = now() WHERE id = $1`, id, canon); err != nil {
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
		var org int64
		var draft []byte
		var cur *string
		err := tx.QueryRow(ctx, `SELECT organization_id, content, current_version FROM policies WHERE id = $1 FOR UPDATE`, id).Scan(&org, &draft, &cur)
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
			if err := tx.QueryRow(ctx, `SELECT content FROM policy_versions WHERE policy_id = $1 AND version = $2`, id, prev).Scan(&prevContent); err != nil {
				return fmt.Errorf("policy: previous version: %w", err)
			}
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
		if err := tx.QueryRow(ctx, `INSERT INTO policy_versions (organization_id, policy_id, version, content, checksum, requires_restart, released_by)
			VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id, released_at`, org, id, next, canon, sum, requiresRestart, userRef(a)).Scan(&v.ID, &v.ReleasedAt); err != nil {
			return fmt.Errorf("policy: insert version: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE policies SET current_version = $2, content = $3, updated_at = now() WHERE id = $1`, id, next, canon); err != nil {
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
		err := tx.QueryRow(ctx, `SELECT id, policy_id, version, content, checksum, requires_restart, released_at, released_by
			FROM policy_versions WHERE policy_id = $1 AND version = $2`, id, version).
			Scan(&v.ID, &v.PolicyID, &v.Version, &v.Content, &v.Checksum, &v.RequiresRestart, &v.ReleasedAt, &v.ReleasedBy)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
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
	if _, err := tx.Exec(ctx, `INSERT INTO policy_changes (organization_id, policy_id, version_id, changed_by, changeset, change_type)
		SELECT organization_id, id, $2, $3, $4, $5 FROM policies WHERE id = $1`, policyID, versionID, userRef(a), set, kind); err != nil {
		return fmt.Errorf("policy: audit: %w", err)
	}
	return nil
}
