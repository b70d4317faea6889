package gateway

import (
	"context"
	"crypto/tls"
	"fmt"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/edge/agentauth"
	"github.com/staffcontrol/staffcontrol/internal/edge/cloudclient"
	"github.com/staffcontrol/staffcontrol/internal/edge/enroll"
	"github.com/staffcontrol/staffcontrol/internal/lifecycle"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// Agent enrolment on the gateway's side of the cloud: the verifier of the
// organisation's enrolment secret comes from the cloud (GET
// /v2/gateway/enrolment with the gateway's API key) every
// collector.enrolment_refresh, and whenever a wrong secret is presented (at
// most every 10 s, so a rotation is picked up at once); it is kept in the
// buffer so enrolment works across a restart while the cloud is away. Each
// enrolment is reported to the cloud (POST /v2/gateway/agents), which
// records the agent in agent_instances; a report that fails is retried at
// the next refresh (the buffer remembers which agents are unreported).

// errNotProvisioned: the gateway has no API key yet.
var errNotProvisioned = fmt.Errorf("gateway: not provisioned yet: %w", agentauth.ErrNoVerifier)

// fetchVerifier asks the cloud for the enrolment verifier.
func (g *Gateway) fetchVerifier(ctx context.Context) (string, error) {
	if g.enrol.keys() == nil {
		return "", errNotProvisioned
	}
	return enroll.EnrolmentVerifier(ctx, g.cloud)
}

// syncEnrolment keeps the verifier fresh and reports enrolled agents until
// ctx ends: at once, every collector.enrolment_refresh, and when an agent
// enrols (reported at once; the verifier is refreshed too, cheaply). It
// runs with the online parts (see onlineParts).
func (g *Gateway) syncEnrolment(ctx context.Context) error {
	log := g.log.With("component", "agentauth")
	return lifecycle.EveryOrWake(ctx, g.cfg.Collector.EnrolmentRefresh, true, g.auth.Enrolled(), func(ctx context.Context) {
		fctx, cancel := context.WithTimeout(ctx, g.cfg.Server.Timeout)
		if v, err := g.fetchVerifier(fctx); err != nil {
			if ctx.Err() == nil {
				log.Warn("enrolment verifier not refreshed; keeping the last one", "err", err)
			}
		} else if err := g.auth.SetVerifier(fctx, v); err != nil {
			log.Error("enrolment verifier refused", "err", err)
		}
		cancel()
		g.reportAgents(ctx)
	})
}

// reportBatch is how many unreported agents one buffer read returns.
const reportBatch = 100

// reportAgents tells the cloud of agents enrolled since the last report.
func (g *Gateway) reportAgents(ctx context.Context) {
	for ctx.Err() == nil {
		agents, err := g.buf.UnreportedAgents(ctx, reportBatch)
		if err != nil || len(agents) == 0 {
			return
		}
		for _, a := range agents {
			rctx, cancel := context.WithTimeout(ctx, g.cfg.Server.Timeout)
			err := enroll.ReportAgent(rctx, g.cloud,
				protocol.AgentEnrolled{AgentUID: a.AgentUID, ComputerName: a.ComputerName, EnrolledAt: a.EnrolledAt})
			cancel()
			if se := cloudclient.Status(err); err != nil && (se == nil || se.Retryable() || se.Unauthorized()) {
				if ctx.Err() == nil {
					g.log.Warn("agent enrolment not reported to the cloud; retrying later", "agent_uid", a.AgentUID, "err", err)
				}
				return
			}
			if err != nil {
				// The cloud refuses this report for good (a 4xx naming a
				// field): retrying cannot help.
				g.log.Error("the cloud refused an agent enrolment report", "agent_uid", a.AgentUID, "err", err)
			}
			if err := g.buf.MarkAgentReported(ctx, a, time.Now()); err != nil {
				return
			}
		}
	}
}

// collectorTLS loads the gateway's certificate for the collector, or nil
// when gateway.tls is not configured.
func collectorTLS(certFile, keyFile string) (*tls.Config, error) {
	if certFile == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("gateway.tls.cert_file: with gateway.tls.key_file: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}
