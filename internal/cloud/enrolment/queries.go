package enrolment

import _ "embed" // the SQL files below

// The service's statements, one file each (sql/*.sql).
var (
	//go:embed sql/rotate.sql
	sqlRotate string
	//go:embed sql/verifier.sql
	sqlVerifier string
	//go:embed sql/record_agent.sql
	sqlRecordAgent string
	//go:embed sql/revoke_agent.sql
	sqlRevokeAgent string
	//go:embed sql/active_gateways.sql
	sqlActiveGateways string
)
