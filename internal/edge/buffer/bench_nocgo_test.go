//go:build !sqlite_cgo

package buffer

// cgoDrivers is empty in the default (CGO-free) build.
var cgoDrivers []string
