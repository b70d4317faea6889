package e2e_test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/cloud/accounts"
	"github.com/staffcontrol/staffcontrol/internal/cloud/commandqueue"
	"github.com/staffcontrol/staffcontrol/internal/cloud/enrolment"
	"github.com/staffcontrol/staffcontrol/internal/cloud/postgres"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// heartbeatAs sends a heartbeat with cred and returns the status.
func heartbeatAs(t *testing.T, base, cred string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+protocol.PathAgentHeartbeat, strings.NewReader(`{"computer_name":"E2E-PC"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(protocol.HeaderAuthorization, "Bearer "+cred)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestAgentRevokedFromTheCloud: an agent enrolled at a gateway is recorded
// in the cloud; revoking it there (what staffctl agent revoke does) sends a
// revoke_agent command over the control channel, the gateway drops the
// credential and acknowledges, and the agent's requests get 401 while
// another agent's pass.
func TestAgentRevokedFromTheCloud(t *testing.T) {
	t.Parallel()
	w := newGCWorld(t, commandqueue.Options{AckTimeout: 5 * time.Second}, false)
	_, base := startGCGateway(t, w, map[string]string{"STAFF_GATEWAY_ORGANIZATION_PROVISIONING_TOKEN": w.token})
	code, leaked := enrolAt(t, base, w.secret, "leaked-agent")
	if code != http.StatusCreated {
		t.Fatalf("enrol: %d", code)
	}
	_, other := enrolAt(t, base, w.secret, "other-agent")
	waitUntil(t, "the enrolment recorded in the cloud", 30*time.Second, func() bool {
		var n int
		_ = w.admin.QueryRow(context.Background(), `SELECT count(*) FROM agent_instances
			WHERE agent_uid = 'leaked-agent' AND organization_id = $1 AND enrolled_at IS NOT NULL AND revoked_at IS NULL`, w.orgID).Scan(&n)
		return n == 1
	})
	if c := heartbeatAs(t, base, leaked); c != 200 {
		t.Fatalf("before revocation: %d", c)
	}
	svc := enrolment.New(w.adminDB)
	cmds, err := svc.RevokeAgent(context.Background(), postgres.Tenant{OrganizationID: w.orgID, Role: postgres.AppAdmin}, w.queue, "leaked-agent", "e2e")
	if err != nil || len(cmds) != 1 || cmds[0].Type != protocol.CommandRevokeAgent {
		t.Fatalf("revoke: %+v %v", cmds, err)
	}
	waitUntil(t, "revoke_agent completed", 30*time.Second, func() bool {
		return w.command(t, cmds[0].ID.String()).Status == commandqueue.StatusCompleted
	})
	if c := w.command(t, cmds[0].ID.String()); !strings.Contains(c.Result, `"revoked": true`) && !strings.Contains(c.Result, `"revoked":true`) {
		t.Fatalf("result %+v", c)
	}
	if c := heartbeatAs(t, base, leaked); c != http.StatusUnauthorized {
		t.Fatalf("revoked agent: %d, want 401", c)
	}
	if c := heartbeatAs(t, base, other); c != 200 {
		t.Fatalf("another agent after the revocation: %d", c)
	}
	var revoked bool
	if err := w.admin.QueryRow(context.Background(), `SELECT revoked_at IS NOT NULL FROM agent_instances WHERE agent_uid = 'leaked-agent'`).Scan(&revoked); err != nil || !revoked {
		t.Fatalf("agent_instances not marked revoked: %v", err)
	}
	// An agent_uid that is not text is refused by the cloud function.
	if _, err := svc.RevokeAgent(context.Background(), postgres.Tenant{OrganizationID: w.orgID, Role: postgres.AppAdmin}, w.queue, "", "e2e"); err == nil {
		t.Fatal("revoking an empty agent uid succeeded")
	}
}

// TestEnrolmentSecretBelongsToOneOrganisation: two organisations, a
// gateway each: a gateway never accepts the other organisation's secret,
// and an agent enrolled at B's gateway is recorded in B only.
func TestEnrolmentSecretBelongsToOneOrganisation(t *testing.T) {
	t.Parallel()
	w := newGCWorld(t, commandqueue.Options{}, false)
	ctx := context.Background()
	acc := accounts.New(w.adminDB, time.Now)
	admin := accounts.Actor{Name: "e2e", Tenant: postgres.Tenant{Role: postgres.AppAdmin}}
	orgB, err := acc.CreateOrganization(ctx, admin, "Beta", "")
	if err != nil {
		t.Fatal(err)
	}
	regB, err := acc.RegisterGateway(ctx, admin, orgB.ID, "GW-B", "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	secretB := newEnrolmentSecret(t, w.adminDB, orgB.ID)
	_, baseA := startGCGateway(t, w, map[string]string{"STAFF_GATEWAY_ORGANIZATION_PROVISIONING_TOKEN": w.token})
	_, baseB := startGCGateway(t, w, map[string]string{"STAFF_GATEWAY_ORGANIZATION_PROVISIONING_TOKEN": regB.ProvisioningToken,
		"STAFF_GATEWAY_ORGANIZATION_ID": strconv.FormatInt(orgB.ID, 10), "STAFF_GATEWAY_GATEWAY_SERIAL": "GW-B"})

	for _, c := range []struct {
		base, secret, uid string
		want              int
	}{
		{baseB, w.secret, "a-at-b", http.StatusUnauthorized},
		{baseA, secretB, "b-at-a", http.StatusUnauthorized},
		{baseB, secretB, "b-at-b", http.StatusCreated},
		{baseA, w.secret, "a-at-a", http.StatusCreated},
	} {
		if code, cred := enrolAt(t, c.base, c.secret, c.uid); code != c.want || (c.want == 201) != (cred != "") {
			t.Fatalf("enrol %s: %d (credential %v), want %d", c.uid, code, cred != "", c.want)
		}
	}
	waitUntil(t, "both enrolments recorded", 30*time.Second, func() bool {
		var n int
		_ = w.admin.QueryRow(ctx, `SELECT count(*) FROM agent_instances WHERE enrolled_at IS NOT NULL`).Scan(&n)
		return n == 2
	})
	rows, err := w.admin.Query(ctx, `SELECT agent_uid, organization_id FROM agent_instances WHERE enrolled_at IS NOT NULL ORDER BY agent_uid`)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for rows.Next() {
		var uid string
		var org int64
		_ = rows.Scan(&uid, &org)
		got[uid] = org
	}
	rows.Close()
	if len(got) != 2 || got["a-at-a"] != w.orgID || got["b-at-b"] != orgB.ID {
		t.Fatalf("agent_instances %v, want a-at-a in %d and b-at-b in %d", got, w.orgID, orgB.ID)
	}
}
