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
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/edge/enroll"
	"github.com/staffcontrol/staffcontrol/internal/edge/executor"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// Retry pacing of both requests: transient failures (network errors, 408,
// 429, 5xx) are retried this many times, 1, 2, 4, 8 … s apart.
const (
	attempts       = 5
	firstBackoff   = time.Second
	requestTimeout = 15 * time.Second
)

// Handler returns the executor handler of rotate_api_key commands. ring is
// the gateway's Keyring (it must persist to the key file), client the HTTP
// client towards the cloud (TLS configured), baseURL the Agent API
// (https://host). Register it as Options.Handlers[protocol.CommandRotateAPIKey].
func Handler(ring *enroll.Keyring, client *http.Client, baseURL string, log *slog.Logger) executor.Handler {
	if client == nil {
		client = http.DefaultClient
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &rotator{ring: ring, client: client, base: strings.TrimRight(baseURL, "/"), log: log}
	return r.handle
}

type rotator struct {
	ring   *enroll.Keyring
	client *http.Client
	base   string
	log    *slog.Logger
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
		return r.post(ctx, protocol.PathGatewayKeyRotate, old, protocol.KeyRotateRequest{CommandID: cmd.ID, OverlapSeconds: p.OverlapSeconds}, &rot)
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
		return r.post(ctx, protocol.PathGatewayKeyConfirm, r.ring.APIKey(), nil, &conf)
	})
	if err != nil {
		var se *StatusError
		if rot.Status == protocol.KeyStatusPending && errors.As(err, &se) && se.Status == http.StatusUnauthorized {
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

// retry runs fn until it succeeds, fails permanently, runs out of attempts
// or ctx ends. Each attempt is bounded by requestTimeout; a detached
// attempt is not cancelled with ctx (but no attempt starts after ctx ends,
// except the first).
func (r *rotator) retry(ctx context.Context, step string, detached bool, fn func(context.Context) error) error {
	wait := firstBackoff
	var err error
	for i := 1; ; i++ {
		parent := ctx
		if detached {
			parent = context.WithoutCancel(ctx)
		}
		actx, cancel := context.WithTimeout(parent, requestTimeout)
		err = fn(actx)
		cancel()
		if err == nil || !transient(err) || i == attempts || ctx.Err() != nil {
			return err
		}
		r.log.WarnContext(ctx, "rotate_api_key: retrying", "step", step, "attempt", i, "err", err, "in", wait)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait *= 2
	}
}

// StatusError is a non-2xx answer of the cloud.
type StatusError struct {
	Status int
	Body   protocol.ErrorResponse
}

// Error implements error.
func (e *StatusError) Error() string {
	return fmt.Sprintf("cloud answered %d %s: %s", e.Status, e.Body.Error, e.Body.Message)
}

func transient(err error) bool {
	var se *StatusError
	if errors.As(err, &se) {
		return se.Status == http.StatusRequestTimeout || se.Status == http.StatusTooManyRequests || se.Status >= 500
	}
	return true // network errors
}

// post sends body (nil: none) as JSON with key and decodes the answer.
func (r *rotator) post(ctx context.Context, path, key string, body, out any) error {
	var rd io.Reader = http.NoBody
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set(protocol.HeaderAPIKey, key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return fmt.Errorf("POST %s: %w", path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return fmt.Errorf("POST %s: read answer: %w", path, err)
	}
	if resp.StatusCode/100 != 2 {
		se := &StatusError{Status: resp.StatusCode}
		_ = json.Unmarshal(data, &se.Body)
		return se
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("POST %s: decode answer: %w", path, err)
	}
	return nil
}
