// Package ledger is the executor's SQLite ledger of executed commands:
// the schema and the typed queries sqlc generates from queries.sql
// (../sqlc.yaml; the generated files are committed).
package ledger

import _ "embed" // the schema is embedded

//go:embed schema.sql
var schema string

// Schema is the ledger's schema (idempotent: CREATE … IF NOT EXISTS).
func Schema() string { return schema }
