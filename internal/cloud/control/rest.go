package control

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/staffcontrol/staffcontrol/internal/apperr"
	"github.com/staffcontrol/staffcontrol/internal/cloud/auth"
	"github.com/staffcontrol/staffcontrol/internal/cloud/commandqueue"
	"github.com/staffcontrol/staffcontrol/internal/cloud/service"
	"github.com/staffcontrol/staffcontrol/internal/protocol"
)

// maxWait bounds a long-poll.
const maxWait = 55 * time.Second

// answerWait is how long a long-poll has to answer once its wait is over:
// its write deadline is the wait plus this, whatever the server's write
// timeout (HTTP_WRITE_TIMEOUT, which may be shorter than the wait).
const answerWait = 30 * time.Second

// ServeCommands is the REST fallback: GET /v2/gateway/commands?wait=30s
// returns the gateway's due commands at once, or waits up to wait for one
// to be enqueued.
func (h *Hub) ServeCommands(w http.ResponseWriter, r *http.Request) {
	gw, _ := auth.GatewayFrom(r.Context())
	wait := time.Duration(0)
	if v := r.URL.Query().Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > maxWait {
			service.WriteError(w, apperr.New(apperr.Malformed, "wait", "must be a duration between 0s and 55s").WithReason(protocol.ErrCodeValidation))
			return
		}
		wait = d
	}
	if wait > 0 {
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(wait + answerWait))
	}
	ctx := r.Context()
	if err := h.touch(context.WithoutCancel(ctx), gw, nil); err != nil {
		h.logger.ErrorContext(ctx, "mark gateway online", "gateway", gw.ID, "err", err)
	}
	ch := make(chan struct{}, 1)
	h.mu.Lock()
	h.waiters[gw.ID] = append(h.waiters[gw.ID], ch)
	h.waiterOrg[gw.ID] = gw.OrganizationID
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		ws := h.waiters[gw.ID]
		for i, x := range ws {
			if x == ch {
				ws = append(ws[:i], ws[i+1:]...)
				break
			}
		}
		if len(ws) == 0 {
			delete(h.waiters, gw.ID)
			delete(h.waiterOrg, gw.ID)
		} else {
			h.waiters[gw.ID] = ws
		}
		h.mu.Unlock()
	}()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		cmds, err := h.claim(ctx, gw)
		if err != nil {
			h.logger.ErrorContext(ctx, "claim commands", "gateway", gw.ID, "err", err)
			service.WriteError(w, &apperr.Error{Code: apperr.Unavailable, Message: "temporarily unavailable", RetryAfter: 5 * time.Second, Err: err})
			return
		}
		if len(cmds) > 0 || wait == 0 {
			h.delivered.WithLabelValues("rest").Add(float64(len(cmds)))
			service.WriteJSON(w, http.StatusOK, protocol.CommandList{Commands: cmds})
			return
		}
		select {
		case <-ch:
		case <-timer.C:
			wait = 0
		case <-ctx.Done():
			return
		}
	}
}

// ServeAck is the REST fallback acknowledgement:
// POST /v2/gateway/commands/{id}/ack with a CommandAck body.
func (h *Hub) ServeAck(w http.ResponseWriter, r *http.Request) {
	gw, _ := auth.GatewayFrom(r.Context())
	var a protocol.CommandAck
	if err := h.json.Decode(http.MaxBytesReader(w, r.Body, 1<<20), &a); err != nil {
		// Every decode failure, size included, is 400 malformed_body here.
		service.WriteError(w, apperr.Wrap(apperr.Malformed, err, "body is not a JSON command_ack"))
		return
	}
	id := r.PathValue("id")
	if _, err := uuid.Parse(id); err != nil {
		service.WriteError(w, apperr.New(apperr.Malformed, "id", "must be a UUID").WithReason(protocol.ErrCodeValidation))
		return
	}
	if a.CommandID != "" && a.CommandID != id {
		service.WriteError(w, apperr.Field("command_id", "does not match the path"))
		return
	}
	a.CommandID = id
	switch a.Phase {
	case protocol.AckReceived, protocol.AckCompleted, protocol.AckFailed:
	default:
		service.WriteError(w, apperr.Field("phase", "must be received, completed or failed"))
		return
	}
	if field, msg := validateAck(a); field != "" {
		service.WriteError(w, apperr.Field(strings.TrimPrefix(field, "data."), "%s", msg))
		return
	}
	ctx, end := h.traceResult(r.Context(), gw, a)
	defer end()
	if err := h.ack(ctx, gw, a); err != nil {
		if errors.Is(err, commandqueue.ErrNotFound) {
			service.WriteError(w, apperr.New(apperr.NotFound, "id", "no such command for this gateway"))
			return
		}
		if isDataError(err) {
			// Sending it again would fail again: not a 5xx.
			h.logger.WarnContext(r.Context(), "acknowledge command: refused by the database", "gateway", gw.ID, "err", err)
			service.WriteError(w, apperr.Wrap(apperr.Invalid, err, "the database refused the acknowledgement"))
			return
		}
		h.logger.ErrorContext(r.Context(), "acknowledge command", "gateway", gw.ID, "err", err)
		service.WriteError(w, apperr.Wrap(apperr.Unavailable, err, "temporarily unavailable"))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
