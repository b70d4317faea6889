package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"runtime/debug"
	"sort"
	"syscall"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/bench/stack"
	"github.com/staffcontrol/staffcontrol/internal/edge/config"
	"github.com/staffcontrol/staffcontrol/internal/edge/gateway"
	"github.com/staffcontrol/staffcontrol/internal/logging"
)

// Gateway is a running Agent Gateway under the benchmark's control.
type Gateway interface {
	// Kill ends it abruptly (SIGKILL for a process) and waits until it is
	// gone.
	Kill() error
	// Stop ends it gracefully.
	Stop(ctx context.Context) error
}

// Starter starts a gateway with env (STAFF_GATEWAY_* keys; its listen
// address is fixed in env, so a restarted gateway is found at the same
// address) and returns once it answers /health.
type Starter func(ctx context.Context, env map[string]string) (Gateway, error)

// InProcess starts gateways in this process. Kill is a graceful Stop there
// (a goroutine cannot be SIGKILLed): crash tests use Process.
func InProcess(logger *slog.Logger) Starter {
	return func(ctx context.Context, env map[string]string) (Gateway, error) {
		g, err := stack.StartGateway(ctx, env, gateway.Deps{Logger: logger, Version: "bench"})
		if err != nil {
			return nil, err
		}
		return inProcess{g}, nil
	}
}

type inProcess struct{ g *gateway.Gateway }

func (p inProcess) Kill() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return p.g.Stop(ctx)
}

func (p inProcess) Stop(ctx context.Context) error { return p.g.Stop(ctx) }

// Process starts each gateway as a child process running command (argv;
// e.g. this executable with a hidden subcommand that calls ServeGateway),
// with the gateway's env added to this process's environment. The child's
// output goes to output (nil: discarded).
func Process(command []string, output io.Writer) Starter {
	return func(ctx context.Context, env map[string]string) (Gateway, error) {
		if len(command) == 0 {
			return nil, errors.New("pipeline: gateway process: no command")
		}
		cmd := exec.Command(command[0], command[1:]...)
		cmd.Env = os.Environ()
		keys := make([]string, 0, len(env))
		for k := range env {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			cmd.Env = append(cmd.Env, k+"="+env[k])
		}
		if output == nil {
			output = io.Discard
		}
		cmd.Stdout, cmd.Stderr = output, output
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("pipeline: gateway process: %w", err)
		}
		p := &process{cmd: cmd, done: make(chan error, 1)}
		go func() { p.done <- cmd.Wait() }()
		if err := waitHealthy(ctx, "http://"+env[envListen], p.done); err != nil {
			_ = p.Kill()
			return nil, fmt.Errorf("pipeline: gateway process: %w", err)
		}
		return p, nil
	}
}

type process struct {
	cmd  *exec.Cmd
	done chan error
	err  error
	gone bool
}

func (p *process) wait() error {
	if !p.gone {
		p.err, p.gone = <-p.done, true
	}
	return p.err
}

// PID is the gateway process's id (for its CPU time).
func (p *process) PID() int { return p.cmd.Process.Pid }

func (p *process) Kill() error {
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("pipeline: kill gateway: %w", err)
	}
	_ = p.wait()
	return nil
}

func (p *process) Stop(ctx context.Context) error {
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("pipeline: stop gateway: %w", err)
	}
	select {
	case p.err = <-p.done:
		p.gone = true
		return p.err
	case <-ctx.Done():
		return p.Kill()
	}
}

// waitHealthy polls base/health until it answers 200, the process exits
// (done) or 60 s pass.
func waitHealthy(ctx context.Context, base string, done <-chan error) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/health", nil)
		if err != nil {
			return err
		}
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-done:
			return fmt.Errorf("exited during start: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return errors.New("not healthy within 60 s")
		}
	}
}

// ServeGateway is the body of a gateway process started by Process: it
// loads the configuration from getenv (the STAFF_GATEWAY_* keys) and runs
// the gateway until ctx ends. Its logs (warnings and above) go to stderr.
func ServeGateway(ctx context.Context, getenv func(string) string, stderr io.Writer) error {
	cfg, err := config.Load("", getenv)
	if err != nil {
		return err
	}
	if getenv("GOGC") == "" {
		// As cmd/gateway does: a small heap and plentiful short-lived
		// garbage (JSON); GOGC in the environment overrides.
		debug.SetGCPercent(400)
	}
	logger := logging.New(stderr, logging.Options{Level: slog.LevelWarn, Service: "gateway"})
	g, err := gateway.New(ctx, cfg, gateway.Deps{Logger: logger, Version: "bench"})
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	if err := g.Start(ctx); err != nil {
		return errors.Join(fmt.Errorf("gateway start: %w", err), g.Stop(context.WithoutCancel(ctx)))
	}
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	return g.Stop(sctx)
}
