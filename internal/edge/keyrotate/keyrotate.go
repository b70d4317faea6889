// Package keyrotate executes the rotate_api_key command on the gateway.
//
// The command carries no key. The handler asks the cloud for a new key with
// the current one (POST /v2/gateway/keys/rotate), saves it through the
// Keyring (key file written and synced before the key is used), and
// confirms it with the new key (POST /v2/gateway/keys/confirm). The cloud
// promotes a pending key at its first use, so the old key keeps working
// until the gateway provably holds the new one on disk:
//
//   - crash before the new key is saved: the gateway restarts with the old
//     key, which still works; a redelivered command rotates again (the
//     pending key is replaced), otherwise the pending key is discarded once
//     the overlap has passed;
//   - crash after the key is saved, before the confirmation: the gateway
//     restarts with the new key; its first request promotes it and
//     completes the command;
//   - a re-run of a command whose rotation is complete gets "rotated" from
//     the cloud and issues no new key.
package keyrotate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/backoff"
	"github.com/staffcontrol/staffcontrol/internal/edge/cloudclient"
	"github.com/staffcontrol/staffcontrol/internal/edge/enroll"
	"github.com/staffcontrol/staffcontrol/internal/edge/executor"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// Retry pacing of both requests: failures a retry can fix (network errors,
// 408, 425, 429, 5xx; see cloudclient.Retryable) are retried until
// attempts requests were made, after full-jitter delays capped at 1, 2, 4,
// 8 s, or the cloud's Retry-After when longer (up to pace.Max).
const (
	attempts       = 5
	requestTimeout = 15 * time.Second
)

var pace = backoff.Policy{Initial: time.Second, Max: 8 * time.Second}

// Handler returns the executor handler of rotate_api_key commands. ring is
// the gateway's Keyring (it must persist to the key file), client the HTTP
// client towards the cloud (TLS configured), baseURL the Agent API
// (https://host). Register it as Options.Handlers[protocol.CommandRotateAPIKey].
func Handler(ring *enroll.Keyring, client *http.Client, baseURL string, log *slog.Logger) executor.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &rotator{ring: ring, cloud: cloudclient.New(cloudclient.Options{BaseURL: baseURL, APIKey: ring.APIKey, HTTP: client}), log: log}
	return r.handle
}

type rotator struct {
	ring  *enroll.Keyring
	cloud *cloudclient.Client
	log   *slog.Logger
}

// payload is protocol.RotateAPIKeyPayload plus the field an old sender
// might have put a key in, so that such a command is refused loudly.
type payload struct {
	protocol.RotateAPIKeyPayload
	NewKey string `json:"new_key"`
}

func (r *rotator) handle(ctx context.Context, cmd protocol.Command) (json.RawMessage, error) {
	if !r.ring.Persistent() {
		return nil, errors.New("rotate_api_key: this gateway's API key comes from its configuration (organization.api_key), not from its key file, " +
			"so a rotated key would be lost at the next start; provision the gateway with a token to rotate its key")
	}
	var p payload
	if len(bytes.TrimSpace(cmd.Payload)) > 0 {
		if err := json.Unmarshal(cmd.Payload, &p); err != nil {
			return nil, fmt.Errorf("rotate_api_key: payload: %w", err)
		}
	}
	if p.NewKey != "" {
		return nil, errors.New("rotate_api_key: the payload carries a key; keys never travel in commands (the gateway asks the cloud for its new key)")
	}
	if s := p.OverlapSeconds; s != 0 && (s < protocol.MinKeyOverlapSeconds || s > protocol.MaxKeyOverlapSeconds) {
		return nil, fmt.Errorf("rotate_api_key: overlap_seconds %d is outside %d…%d", s, protocol.MinKeyOverlapSeconds, protocol.MaxKeyOverlapSeconds)
	}

	old := r.ring.APIKey()
	var rot protocol.KeyRotateResponse
	err := r.retry(ctx, "rotate", false, func(ctx context.Context) error {
		return r.cloud.Call(ctx, cloudclient.Request{Method: http.MethodPost, Path: protocol.PathGatewayKeyRotate, Key: old,
			JSON: protocol.KeyRotateRequest{CommandID: cmd.ID, OverlapSeconds: p.OverlapSeconds}, MaxAnswer: maxAnswer}, &rot)
	})
	if err != nil {
		return nil, fmt.Errorf("rotate_api_key: ask for a new key: %w", err)
	}
	switch rot.Status {
	case protocol.KeyStatusPending:
		if rot.KeyPrefix == "" || !strings.HasPrefix(rot.APIKey, rot.KeyPrefix) || len(rot.APIKey) < 32 {
			return nil, errors.New("rotate_api_key: the cloud's answer holds no usable key")
		}
		if err := r.ring.Replace(rot.APIKey); err != nil {
			return nil, fmt.Errorf("rotate_api_key: %w; the old key stays in use and the new one is discarded after the overlap", err)
		}
		r.log.InfoContext(ctx, "rotate_api_key: new key saved; confirming it", "key_prefix", rot.KeyPrefix, "command", cmd.ID)
	case protocol.KeyStatusRotated:
		r.log.InfoContext(ctx, "rotate_api_key: this command's rotation is complete already", "key_prefix", rot.KeyPrefix, "command", cmd.ID)
	default:
		return nil, fmt.Errorf("rotate_api_key: unknown rotation status %q", rot.Status)
	}

	// The new key is on disk and in use from here on. The confirmation is
	// made even if ctx ends meanwhile (one attempt), so that a stopping
	// gateway leaves no rotation half done when it can avoid it.
	var conf protocol.KeyConfirmResponse
	err = r.retry(ctx, "confirm", true, func(ctx context.Context) error {
		// No Key: the keyring's, now the new one.
		return r.cloud.Call(ctx, cloudclient.Request{Method: http.MethodPost, Path: protocol.PathGatewayKeyConfirm, MaxAnswer: maxAnswer}, &conf)
	})
	if err != nil {
		if se := cloudclient.Status(err); rot.Status == protocol.KeyStatusPending && se != nil && se.Status == http.StatusUnauthorized {
			// The cloud discarded the new key: the overlap passed and the
			// old key was used after it. The old key is still valid.
			if rerr := r.ring.Replace(old); rerr != nil {
				return nil, fmt.Errorf("rotate_api_key: the cloud refused the new key and the old one cannot be restored: %w", rerr)
			}
			r.log.WarnContext(ctx, "rotate_api_key: the cloud refused the new key before it was confirmed; back to the old key", "key_prefix", rot.KeyPrefix)
			return nil, errors.New("rotate_api_key: the new key expired before it was confirmed (overlap too short?); the gateway keeps its old key")
		}
		return nil, fmt.Errorf("rotate_api_key: confirm key %s: %w (the key is saved and in use; the cloud promotes it at its first use)", rot.KeyPrefix, err)
	}
	r.log.InfoContext(ctx, "rotate_api_key: key rotated", "key_prefix", conf.KeyPrefix, "command", cmd.ID)
	return json.Marshal(protocol.RotateAPIKeyResult{KeyPrefix: conf.KeyPrefix, RotatedAt: conf.RotatedAt})
}

// maxAnswer bounds an answer of the cloud.
const maxAnswer = 64 << 10

// retry runs fn until it succeeds, fails for good, runs out of attempts
// or ctx ends. Each attempt is bounded by requestTimeout; a detached
// attempt is not cancelled with ctx (but no attempt starts after ctx ends,
// except the first).
func (r *rotator) retry(ctx context.Context, step string, detached bool, fn func(context.Context) error) error {
	var err error
	for i := 1; ; i++ {
		parent := ctx
		if detached {
			parent = context.WithoutCancel(ctx)
		}
		actx, cancel := context.WithTimeout(parent, requestTimeout)
		err = fn(actx)
		cancel()
		if err == nil || !cloudclient.Retryable(err) || i == attempts || ctx.Err() != nil {
			return err
		}
		wait := pace.Delay(i - 1)
		if se := cloudclient.Status(err); se != nil {
			wait = backoff.Floor(wait, se.RetryAfter, pace.Max)
		}
		r.log.WarnContext(ctx, "rotate_api_key: retrying", "step", step, "attempt", i, "err", err, "in", wait)
		if !backoff.Sleep(ctx, wait) {
			return err
		}
	}
}
