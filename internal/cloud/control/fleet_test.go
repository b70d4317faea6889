package control_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"

	"github.com/staffcontrol/staffcontrol/internal/cloud/accounts"
	"github.com/staffcontrol/staffcontrol/internal/cloud/auth"
	"github.com/staffcontrol/staffcontrol/internal/cloud/commandqueue"
	"github.com/staffcontrol/staffcontrol/internal/cloud/control"
	"github.com/staffcontrol/staffcontrol/internal/cloud/policy"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// simGateway is a protocol-faithful stand-in for a gateway's control
// client: it holds the socket, and on a policy_update fetches the version,
// checks its checksum, acknowledges received then completed with the
// version it applied. It applies each command id once.
type simGateway struct {
	id      uuid.UUID
	key     string
	base    string
	applied atomic.Value // string
	seen    sync.Map
}

func (g *simGateway) run(ctx context.Context, t testing.TB, wsURL string, ready *sync.WaitGroup) {
	ws, _, err := websocket.DefaultDialer.DialContext(ctx, wsURL, http.Header{protocol.HeaderAPIKey: {g.key}})
	ready.Done()
	if err != nil {
		t.Errorf("gateway %s: dial: %v", g.id, err)
		return
	}
	defer ws.Close()
	go func() { <-ctx.Done(); ws.Close() }()
	var wmu sync.Mutex
	send := func(typ string, v any) {
		data, _ := json.Marshal(v)
		wmu.Lock()
		defer wmu.Unlock()
		_ = ws.WriteJSON(protocol.Envelope{V: protocol.ControlVersion, Type: typ, Data: data})
	}
	for {
		var env protocol.Envelope
		if err := ws.ReadJSON(&env); err != nil {
			return
		}
		if env.Type != protocol.MsgCommand {
			continue
		}
		var cmd protocol.Command
		_ = json.Unmarshal(env.Data, &cmd)
		send(protocol.MsgCommandAck, protocol.CommandAck{CommandID: cmd.ID, Phase: protocol.AckReceived})
		if _, dup := g.seen.LoadOrStore(cmd.ID, true); dup {
			send(protocol.MsgCommandAck, protocol.CommandAck{CommandID: cmd.ID, Phase: protocol.AckCompleted})
			continue
		}
		var pl policy.UpdatePayload
		_ = json.Unmarshal(cmd.Payload, &pl)
		doc, err := g.fetch(ctx, pl)
		if err != nil {
			send(protocol.MsgCommandAck, protocol.CommandAck{CommandID: cmd.ID, Phase: protocol.AckFailed, Error: err.Error()})
			continue
		}
		g.applied.Store(doc.Version)
		res, _ := json.Marshal(map[string]string{"applied_version": doc.Version})
		send(protocol.MsgCommandAck, protocol.CommandAck{CommandID: cmd.ID, Phase: protocol.AckCompleted, Result: res})
	}
}

func (g *simGateway) fetch(ctx context.Context, pl policy.UpdatePayload) (protocol.PolicyDocument, error) {
	var doc protocol.PolicyDocument
	url := fmt.Sprintf("%s/v2/gateway/policies/%d?version=%s", g.base, pl.PolicyID, pl.Version)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	req.Header.Set(protocol.HeaderAPIKey, g.key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return doc, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return doc, fmt.Errorf("fetch policy: %d", resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		return doc, err
	}
	canon, _ := protocol.CanonicalJSON(doc.Content)
	sum := sha256.Sum256(canon)
	if hex.EncodeToString(sum[:]) != pl.Checksum {
		return doc, fmt.Errorf("checksum mismatch")
	}
	return doc, nil
}

// bulkGateways provisions n more gateways in organisation A directly in
// the database (the provisioning exchange is tested elsewhere).
func (w *world) bulkGateways(t testing.TB, n int) []*simGateway {
	t.Helper()
	var gws []*simGateway
	for lo := 0; lo < n; lo += 1000 {
		batch := &strings.Builder{}
		var args []any
		for i := lo; i < min(lo+1000, n); i++ {
			key, hash, _ := auth.NewSecret(auth.PrefixAPIKey)
			g := &simGateway{id: uuid.New(), key: key}
			gws = append(gws, g)
			if batch.Len() > 0 {
				batch.WriteString(",")
			}
			k := len(args)
			fmt.Fprintf(batch, "($%d, $%d, $%d, $%d, 'offline')", k+1, k+2, k+3, k+4)
			args = append(args, g.id, w.a.org, fmt.Sprintf("FLEET-%05d", i), hash)
		}
		if _, err := w.admin.Exec(context.Background(), `INSERT INTO gateway_instances (id, organization_id, serial, api_key_hash, status) VALUES `+batch.String(), args...); err != nil {
			t.Fatal(err)
		}
	}
	return gws
}

// releaseToAll releases a policy in organisation A, distributes it to every
// gateway with a 10 % canary, advances it as the Agent API does (here every
// 100 ms) and returns the final progress.
func (w *world) releaseToAll(t testing.TB, ctx context.Context) (policy.Progress, string) {
	t.Helper()
	pool, err := postgresConnect(ctx, w.db.DashboardURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	psvc, err := policy.New(pool)
	if err != nil {
		t.Fatal(err)
	}
	actor := accounts.Actor{Name: "hr", Tenant: w.a.tenant}
	p, err := psvc.Create(ctx, actor, "Fleet "+uuid.NewString()[:8], []byte(`{"screenshots":{"enabled":true,"interval_seconds":120}}`))
	if err != nil {
		t.Fatal(err)
	}
	v, err := psvc.Release(ctx, actor, p.ID, false)
	if err != nil {
		t.Fatal(err)
	}
	q, err := commandqueue.New(pool, commandqueue.Options{}, newRegistry())
	if err != nil {
		t.Fatal(err)
	}
	dist := policy.NewDistributor(pool, q)
	id, err := dist.Distribute(ctx, actor, p.ID, v.Version, nil, 10)
	if err != nil {
		t.Fatal(err)
	}
	ingestDist := policy.NewDistributor(w.ingest, mustQueue(t, w))
	var prog policy.Progress
	deadline := time.Now().Add(120 * time.Second)
	for time.Now().Before(deadline) {
		if err := ingestDist.AdvanceReady(ctx); err != nil { // as the Agent API does
			t.Fatal(err)
		}
		if prog, err = dist.Progress(ctx, w.a.tenant, id); err != nil {
			t.Fatal(err)
		}
		if prog.Stage == policy.StageDone || prog.Stage == policy.StageHalted {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	return prog, v.Version
}

// TestPolicyReachesAThousandGatewaysOnTwoReplicas connects 1,000 simulated
// gateways, half to each of two Agent API replicas, distributes a policy
// with a 10 % canary stage, and requires 100 % applied (the seed's floor is
// 95 %), each gateway reporting the released version.
func TestPolicyReachesAThousandGatewaysOnTwoReplicas(t *testing.T) {
	t.Parallel()
	const n = 1000
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := newWorld(t)
	gws := append([]*simGateway{{id: w.a.id, key: w.a.key}}, w.bulkGateways(t, n-1)...)
	r1 := w.replica(control.Options{}, commandqueue.Options{})
	r2 := w.replica(control.Options{}, commandqueue.Options{})
	var ready sync.WaitGroup
	for i, g := range gws {
		r := r1
		if i%2 == 1 {
			r = r2
		}
		g.base = r.srv.URL
		ready.Add(1)
		go g.run(ctx, t, "ws"+strings.TrimPrefix(r.srv.URL, "http")+protocol.PathGatewaySocket, &ready)
	}
	ready.Wait()
	start := time.Now()
	prog, version := w.releaseToAll(t, ctx)
	t.Logf("release → 100%% applied on %d gateways (two replicas): %v; stage %s, applied %d, failed %d", n, time.Since(start), prog.Stage, prog.Applied, prog.Failed)
	if prog.Stage != policy.StageDone || prog.Applied != n || prog.Total != n {
		t.Fatalf("progress %+v (without per-gateway list), want done with %d applied", summary(prog), n)
	}
	for _, g := range gws {
		if got, _ := g.applied.Load().(string); got != version {
			t.Fatalf("gateway %s applied %q, want %s", g.id, got, version)
		}
	}
	// Organisation B's gateway got nothing.
	var forB int
	if err := w.admin.QueryRow(ctx, `SELECT count(*) FROM gateway_commands WHERE gateway_id = $1`, w.b.id).Scan(&forB); err != nil || forB != 0 {
		t.Fatalf("organisation B's gateway has %d commands", forB)
	}
}

func summary(p policy.Progress) policy.Progress {
	p.Gateways = nil
	return p
}
