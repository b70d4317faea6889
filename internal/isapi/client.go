package isapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
)

// AuthFailure is a request the device refused after credentials were
// sent (a 401 without stale, or a 403 naming a lock), with the userCheck
// body when the device sent one. The caller must not retry it in a loop:
// each attempt counts towards the device's lockout.
type AuthFailure struct {
	// HTTPStatus is 401 or 403.
	HTTPStatus int
	// Check is the decoded userCheck; HasCheck is false when the body
	// held none.
	Check    UserCheck
	HasCheck bool
}

// Error names the status and, when known, the lock and attempts left.
func (e *AuthFailure) Error() string {
	s := fmt.Sprintf("isapi: credentials refused (HTTP %d)", e.HTTPStatus)
	if e.HasCheck {
		if e.Check.Locked() {
			s += fmt.Sprintf(", locked for %d s", e.Check.UnlockTime)
		} else if e.Check.RetryLoginTime != nil {
			s += fmt.Sprintf(", %d attempts left", *e.Check.RetryLoginTime)
		}
	}
	return s
}

// maxErrorBody bounds a 401/403 body read for its userCheck.
const maxErrorBody = 64 << 10

// Client is a Digest-authenticating ISAPI client. It caches the last
// challenge and counts nc under it, so an established session sends one
// request per call. On a 401 it takes the fresh challenge and retries, at
// most once for each reason: the refused request carried no credentials
// (the probe); the device said stale="TRUE" (the credentials were right,
// the nonce expired); or the refused credentials were computed on a cached
// nonce, which a device that does not flag stale nonces (after a reboot,
// say) refuses like a bad password. A 401 to credentials computed on the
// challenge just received is an *AuthFailure at once. So a wrong password
// costs one failed login on a new session and two on an established one,
// and the client never loops. Safe for concurrent use.
type Client struct {
	// BaseURL is scheme://host:port.
	BaseURL string
	// Username and Password are the device account.
	Username, Password string

	mu sync.Mutex
	ch *Challenge
	nc uint32
}

// Forget drops the cached challenge (the next request starts with an
// unauthenticated probe).
func (c *Client) Forget() {
	c.mu.Lock()
	c.ch, c.nc = nil, 0
	c.mu.Unlock()
}

// authorize returns the Authorization for one request, or "" without a
// cached challenge.
func (c *Client) authorize(method, uri string) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ch == nil {
		return "", nil
	}
	c.nc++
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("isapi: cnonce: %w", err)
	}
	return Respond(*c.ch, c.Username, c.Password, method, uri, hex.EncodeToString(b[:]), c.nc).String(), nil
}

func (c *Client) setChallenge(ch Challenge) {
	c.mu.Lock()
	c.ch, c.nc = &ch, 0
	c.mu.Unlock()
}

// Do sends one request through hc (body may be nil) and returns the
// response with its body open for the caller to read and close. A refusal
// of the credentials is an *AuthFailure; a 401 with an unusable challenge
// wraps ErrBadChallenge.
func (c *Client) Do(ctx context.Context, hc *http.Client, method, uri string, body []byte, contentType string) (*http.Response, error) {
	probed, staleRetried, rechallenged := false, false, false
	fresh := false // the cached challenge came from a 401 of this call
	for {
		req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.BaseURL, "/")+uri, bytes.NewReader(body))
		if err != nil {
			return nil, fmt.Errorf("isapi: %s %s: %w", method, uri, err)
		}
		if body == nil {
			req.Body, req.ContentLength, req.GetBody = http.NoBody, 0, nil
		} else if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		authz, err := c.authorize(method, uri)
		if err != nil {
			return nil, err
		}
		if authz != "" {
			req.Header.Set("Authorization", authz)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return nil, fmt.Errorf("isapi: %s %s: %w", method, uri, err)
		}
		if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusForbidden {
			return resp, nil
		}
		raw, rerr := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		resp.Body.Close()
		failure := &AuthFailure{HTTPStatus: resp.StatusCode}
		if uc, err := DecodeUserCheck(raw); err == nil && (uc.StatusValue != 0 || uc.LockStatus != "") {
			failure.Check, failure.HasCheck = uc, true
		}
		if resp.StatusCode == http.StatusForbidden {
			if failure.HasCheck && failure.Check.Locked() {
				return nil, failure
			}
			// An ordinary 403 (ResponseStatus): hand it back to the caller.
			if rerr != nil {
				return nil, fmt.Errorf("isapi: %s %s: read 403: %w", method, uri, rerr)
			}
			resp.Body = io.NopCloser(bytes.NewReader(raw))
			return resp, nil
		}
		ch, perr := firstChallenge(resp.Header.Values("WWW-Authenticate"))
		switch {
		case failure.HasCheck && failure.Check.Locked():
			return nil, failure
		case perr != nil && authz != "":
			return nil, failure
		case perr != nil:
			return nil, fmt.Errorf("isapi: %s %s: 401: %w", method, uri, perr)
		case authz == "" && !probed:
			probed = true
		case authz != "" && ch.Stale && !staleRetried:
			staleRetried = true
		case authz != "" && !fresh && !rechallenged:
			rechallenged = true
		case authz == "":
			return nil, fmt.Errorf("isapi: %s %s: challenged twice without credentials", method, uri)
		default:
			return nil, failure
		}
		c.setChallenge(ch)
		fresh = true
	}
}

// firstChallenge returns the first usable Digest challenge of values.
func firstChallenge(values []string) (Challenge, error) {
	err := fmt.Errorf("%w: no Digest challenge", ErrBadChallenge)
	for _, v := range values {
		ch, e := ParseChallenge(v)
		if e == nil {
			return ch, nil
		}
		err = e
	}
	return Challenge{}, err
}

// ReadBody reads resp's body (at most limit bytes; more is an error) and
// closes it.
func ReadBody(resp *http.Response, limit int64) ([]byte, error) {
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w: body over %d bytes", ErrMalformed, limit)
	}
	return b, nil
}
