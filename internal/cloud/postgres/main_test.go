package postgres_test

import (
	"testing"

	"github.com/staffcontrol/staffcontrol/internal/cloud/pgtest"
)

// pg is the PostgreSQL server this test binary uses (see pgtest.Main).
var pg *pgtest.Server

func TestMain(m *testing.M) { pgtest.Main(m, &pg) }
