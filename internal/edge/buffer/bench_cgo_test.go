//go:build sqlite_cgo

package buffer

import _ "github.com/mattn/go-sqlite3" // registers "sqlite3" (cgo) for the comparison

// cgoDrivers adds mattn/go-sqlite3 to the benchmarks in -tags sqlite_cgo builds.
var cgoDrivers = []string{"sqlite3"}
