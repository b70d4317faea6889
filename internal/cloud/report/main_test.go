package report_test

import (
	"testing"

	"github.com/staffcontrol/staffcontrol/internal/cloud/pgtest"
)

var pg *pgtest.Server

func TestMain(m *testing.M) { pgtest.Main(m, &pg) }
