// Package archrules holds no code: its test checks that every package's
// imports follow the rules written in docs/architecture.md (the "May import"
// column of its package tables, and the edge/cloud separation), so that the
// document and the code cannot drift apart unnoticed.
package archrules
