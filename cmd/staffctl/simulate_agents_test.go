package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/edge/agentauth"
	"github.com/staffcontrol/staffcontrol/internal/edge/config"
	"github.com/staffcontrol/staffcontrol/internal/edge/gateway"
	"github.com/staffcontrol/staffcontrol/internal/logtest"
	"github.com/staffcontrol/staffcontrol/internal/sim/fakecloud"
)

// TestSimulateAgentsEnrolsFirst: simulate agents needs the enrolment
// secret, enrols every agent with it and fails naming the cause when the
// secret is wrong.
func TestSimulateAgentsEnrolsFirst(t *testing.T) {
	t.Parallel()
	cloud, err := fakecloud.New(fakecloud.Options{APIKey: "scgw_simulate-test", OrganizationID: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer cloud.Close()
	env := map[string]string{
		"STAFF_GATEWAY_SERVER_URL":                   cloud.URL,
		"STAFF_GATEWAY_ORGANIZATION_API_KEY":         "scgw_simulate-test",
		"STAFF_GATEWAY_GATEWAY_LISTEN":               "127.0.0.1:0",
		"STAFF_GATEWAY_GATEWAY_GRPC_LISTEN":          "off",
		"STAFF_GATEWAY_BUFFER_PATH":                  filepath.Join(t.TempDir(), "buffer.sqlite"),
		"STAFF_GATEWAY_COLLECTOR_ENROLMENT_VERIFIER": agentauth.Verifier(fakecloud.DefaultEnrolmentSecret),
	}
	cfg, err := config.Load("", func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	g, err := gateway.New(context.Background(), cfg, gateway.Deps{Logger: logtest.New(t), Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = g.Stop(ctx)
	}()
	url := "http://" + g.Addr()
	base := []string{"simulate", "agents", "--count", "2", "--events", "100", "--batch", "10", "--rate", "0", "--duration", "20s", "--gateway", url}

	if _, _, err := staffctl(t, nil, base...); err == nil || exitCode(err) != 2 || !strings.Contains(err.Error(), "--enrolment-secret") {
		t.Fatalf("without a secret: %v", err)
	}
	out, _, err := staffctl(t, map[string]string{"STAFF_ENROLMENT_SECRET": fakecloud.DefaultEnrolmentSecret}, base...)
	if err != nil || !strings.Contains(out, "acked=100") || !strings.Contains(out, "enrolled=2 of 2") {
		t.Fatalf("with the secret: %v\n%s", err, out)
	}
	out, _, err = staffctl(t, nil, append(base, "--enrolment-secret", "sce_wrong")...)
	if err == nil || !strings.Contains(err.Error(), "could not enrol") || !strings.Contains(out, "acked=0") {
		t.Fatalf("with a wrong secret: %v\n%s", err, out)
	}
}
