package devices

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// cmdReq is one command waiting for its device.
type cmdReq struct {
	ctx context.Context
	cmd Command
	res chan cmdRes
}

type cmdRes struct {
	res Result
	err error
}

// Execute queues cmd for the device and waits for its answer. Commands run
// one at a time, while the device is online; one still waiting when ctx
// ends (CommandTimeout when ctx has no deadline) fails with ErrOffline if
// the device was not online then. A full queue fails at once with
// ErrQueueFull, a device whose credentials were refused with ErrOffline.
func (s *Supervisor) Execute(ctx context.Context, cmd Command) (Result, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.cfg.CommandTimeout)
		defer cancel()
	}
	st := s.Status()
	switch st.State {
	case StateStopped:
		s.countCommand("stopped")
		return Result{}, fmt.Errorf("device %s: %s: %w", s.dev.Name, cmd.Type, ErrStopped)
	case StateAuthFailed:
		s.countCommand("offline")
		return Result{}, fmt.Errorf("device %s: %s: %w: credentials refused (%s)", s.dev.Name, cmd.Type, ErrOffline, st.LastError)
	}
	req := &cmdReq{ctx: ctx, cmd: cmd, res: make(chan cmdRes, 1)}
	if !s.enqueue(req) {
		s.countCommand("queue_full")
		return Result{}, fmt.Errorf("device %s: %s: %w (%d waiting)", s.dev.Name, cmd.Type, ErrQueueFull, s.cfg.CommandQueue)
	}
	defer s.withdraw(req)
	select {
	case r := <-req.res:
		if r.err != nil {
			s.countCommand("error")
			return r.res, fmt.Errorf("device %s: %s: %w", s.dev.Name, cmd.Type, r.err)
		}
		s.countCommand("ok")
		return r.res, nil
	case <-ctx.Done():
		// The answer may have arrived just now.
		select {
		case r := <-req.res:
			if r.err == nil {
				s.countCommand("ok")
				return r.res, nil
			}
		default:
		}
		st := s.Status()
		if st.State != StateOnline {
			s.countCommand("offline")
			msg := string(st.State)
			if st.LastError != "" {
				msg += "; last error: " + st.LastError
			}
			return Result{}, fmt.Errorf("device %s: %s: %w (%s)", s.dev.Name, cmd.Type, ErrOffline, msg)
		}
		s.countCommand("error")
		return Result{}, fmt.Errorf("device %s: %s: no answer before the deadline: %w", s.dev.Name, cmd.Type, ctx.Err())
	case <-s.done:
		s.countCommand("stopped")
		return Result{}, fmt.Errorf("device %s: %s: %w", s.dev.Name, cmd.Type, ErrStopped)
	}
}

// enqueue adds req to the queue unless it is full (requests whose callers
// gave up are dropped first) and wakes the session.
func (s *Supervisor) enqueue(req *cmdReq) bool {
	s.qmu.Lock()
	live := s.queue[:0]
	for _, r := range s.queue {
		if r.ctx.Err() == nil {
			live = append(live, r)
		}
	}
	clear(s.queue[len(live):])
	s.queue = live
	if len(s.queue) >= s.cfg.CommandQueue {
		s.qmu.Unlock()
		return false
	}
	s.queue = append(s.queue, req)
	s.qmu.Unlock()
	s.signal()
	return true
}

// withdraw removes req from the queue if it is still waiting there.
func (s *Supervisor) withdraw(req *cmdReq) {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	for i, r := range s.queue {
		if r == req {
			copy(s.queue[i:], s.queue[i+1:])
			s.queue[len(s.queue)-1] = nil
			s.queue = s.queue[:len(s.queue)-1]
			return
		}
	}
}

// dequeue takes the oldest waiting command (nil when none) and reports
// whether more wait.
func (s *Supervisor) dequeue() (*cmdReq, bool) {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	if len(s.queue) == 0 {
		return nil, false
	}
	req := s.queue[0]
	s.queue[0] = nil
	s.queue = s.queue[1:]
	return req, len(s.queue) > 0
}

// waiting is how many commands wait for the device.
func (s *Supervisor) waiting() int {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	return len(s.queue)
}

// signal wakes the session to run a queued command.
func (s *Supervisor) signal() {
	select {
	case s.qsig <- struct{}{}:
	default:
	}
}

func (s *Supervisor) countCommand(result string) {
	s.mu.Lock()
	s.st.Counts.Commands++
	if result != "ok" {
		s.st.Counts.CommandErrors++
	}
	s.mu.Unlock()
	s.m.commands.WithLabelValues(s.dev.Type, s.dev.Name, result).Inc()
}

// runCommand runs one queued command on the session's adapter. It returns
// an error, ending the session, when the adapter's state is unknown after
// it: a timeout, a panic, a protocol or auth error, or a call cut short by
// its caller.
func (s *Supervisor) runCommand(sctx context.Context, a Adapter, req *cmdReq) error {
	if req.ctx.Err() != nil {
		return nil // the caller gave up while it waited
	}
	timeout := s.cfg.CallTimeout
	if dl, ok := req.ctx.Deadline(); ok {
		timeout = max(min(timeout, time.Until(dl)), time.Millisecond)
	}
	cctx, cancel := context.WithCancel(sctx)
	defer cancel()
	stop := context.AfterFunc(req.ctx, cancel)
	defer stop()
	res, err := call(cctx, "execute "+req.cmd.Type, timeout, s.cfg.Grace, func(c context.Context) (Result, error) {
		return a.Execute(c, req.cmd)
	})
	if err == nil && req.cmd.Type == CmdReboot {
		s.mu.Lock()
		s.rebootUntil = time.Now().Add(s.cfg.RebootGrace)
		s.mu.Unlock()
	}
	req.res <- cmdRes{res, err}
	if err == nil || errors.Is(err, ErrUnsupported) {
		return nil
	}
	switch classify(err) {
	case FailureTimeout, FailurePanic, FailureProtocol, FailureAuth:
		return fmt.Errorf("execute %s: %w", req.cmd.Type, err)
	}
	if sctx.Err() == nil && cctx.Err() != nil {
		return fmt.Errorf("execute %s: cut short by its caller, session state unknown: %w", req.cmd.Type, err)
	}
	return nil
}
