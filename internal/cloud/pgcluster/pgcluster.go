// Package pgcluster runs a throwaway PostgreSQL cluster from the local
// PostgreSQL binaries: initdb into a temporary directory, a postmaster on a
// free loopback port, and removal of everything on Stop. Tests and the
// one-machine demo (`staffctl up`) use it when no database URL is given.
//
// When the calling process runs as root, the cluster runs as the "postgres"
// system user (PostgreSQL refuses to run as root). Clusters left behind by a
// process that died are found and removed by Sweep.
package pgcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// dirPrefix names every cluster directory under the temporary directory, so
// that Sweep can find clusters whose owner process has died.
const dirPrefix = "staffcontrol-pg-"

// Options configures a cluster.
type Options struct {
	// BinDir holds initdb and postgres; empty means discover (PG_BINDIR,
	// pg_config --bindir, /usr/lib/postgresql/*/bin, then PATH).
	BinDir string
	// Durable keeps fsync on. Tests leave it off for speed; the demo turns
	// it on only when asked.
	Durable bool
	// Settings are extra postgres -c settings.
	Settings map[string]string
	// Stderr receives the server log; nil keeps it in the cluster directory.
	LogFile string
}

// Cluster is one running throwaway PostgreSQL server.
type Cluster struct {
	dir     string
	dataDir string
	sockDir string
	port    int
	binDir  string
	cred    *syscall.Credential
	opts    Options
	cmd     *exec.Cmd
	done    chan error
}

// Start creates and starts a new cluster. The superuser is "postgres" with
// trust authentication on loopback only.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	binDir, err := findBinDir(opts.BinDir)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", fmt.Sprintf("%s%d-", dirPrefix, os.Getpid()))
	if err != nil {
		return nil, fmt.Errorf("pgcluster: create directory: %w", err)
	}
	c := &Cluster{dir: dir, dataDir: filepath.Join(dir, "data"), sockDir: filepath.Join(dir, "sock"), binDir: binDir, opts: opts}
	if err := c.prepare(ctx); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	if err := c.startServer(ctx); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return c, nil
}

func (c *Cluster) prepare(ctx context.Context) error {
	if err := os.MkdirAll(c.sockDir, 0o700); err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	if os.Geteuid() == 0 {
		cred, err := postgresCredential()
		if err != nil {
			return err
		}
		c.cred = cred
		for _, p := range []string{c.dir, c.sockDir} {
			if err := os.Chown(p, int(cred.Uid), int(cred.Gid)); err != nil {
				return fmt.Errorf("pgcluster: chown %s: %w", p, err)
			}
		}
	}
	cmd := exec.CommandContext(ctx, filepath.Join(c.binDir, "initdb"),
		"-D", c.dataDir, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("pgcluster: initdb: %w: %s", err, strings.TrimSpace(out.String()))
	}
	return nil
}

// startServer starts the postmaster on a free port and waits until it
// accepts connections. A port taken between choosing and binding is retried.
func (c *Cluster) startServer(ctx context.Context) error {
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			return err
		}
		c.port = port
		if err := c.spawn(); err != nil {
			return err
		}
		if lastErr = c.waitReady(ctx); lastErr == nil {
			return nil
		}
		_ = c.kill()
	}
	return fmt.Errorf("pgcluster: server did not start: %w (log: %s)", lastErr, c.logTail())
}

func (c *Cluster) logPath() string {
	if c.opts.LogFile != "" {
		return c.opts.LogFile
	}
	return filepath.Join(c.dir, "server.log")
}

func (c *Cluster) spawn() error {
	settings := map[string]string{
		"listen_addresses":          "127.0.0.1",
		"port":                      strconv.Itoa(c.port),
		"unix_socket_directories":   c.sockDir,
		"max_connections":           "300",
		"shared_buffers":            "128MB",
		"max_locks_per_transaction": "256",
		"log_min_messages":          "warning",
	}
	if !c.opts.Durable {
		settings["fsync"] = "off"
		settings["synchronous_commit"] = "off"
		settings["full_page_writes"] = "off"
	}
	for k, v := range c.opts.Settings {
		settings[k] = v
	}
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	args := []string{"-D", c.dataDir}
	for _, k := range keys {
		args = append(args, "-c", k+"="+settings[k])
	}
	logf, err := os.OpenFile(c.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("pgcluster: open log: %w", err)
	}
	cmd := exec.Command(filepath.Join(c.binDir, "postgres"), args...)
	// The postmaster gets SIGQUIT (immediate shutdown) if this process dies,
	// and runs in its own process group so terminal signals reach us first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred, Pdeathsig: syscall.SIGQUIT, Setpgid: true}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return fmt.Errorf("pgcluster: start postgres: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait(); _ = logf.Close() }()
	c.cmd, c.done = cmd, done
	return nil
}

func (c *Cluster) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-c.done:
			c.done = nil
			return fmt.Errorf("postgres exited: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if _, err := os.Stat(filepath.Join(c.sockDir, fmt.Sprintf(".s.PGSQL.%d", c.port))); err != nil {
			continue
		}
		conn, err := net.DialTimeout("tcp", c.Addr(), time.Second)
		if err == nil {
			_ = conn.Close()
			// The socket exists before recovery finishes; pg_isready tells.
			if c.isReady(ctx) {
				return nil
			}
		}
	}
	return errors.New("timed out waiting for postgres")
}

func (c *Cluster) isReady(ctx context.Context) bool {
	cmd := exec.CommandContext(ctx, filepath.Join(c.binDir, "pg_isready"), "-q", "-h", "127.0.0.1", "-p", strconv.Itoa(c.port), "-U", "postgres")
	return cmd.Run() == nil
}

func (c *Cluster) logTail() string {
	b, _ := os.ReadFile(c.logPath())
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
}

// Addr is host:port of the server.
func (c *Cluster) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port)) }

// Port is the TCP port the server listens on.
func (c *Cluster) Port() int { return c.port }

// URL is a connection URL for the superuser "postgres" and database dbname.
func (c *Cluster) URL(dbname string) string {
	return (&url.URL{Scheme: "postgres", User: url.User("postgres"), Host: c.Addr(), Path: "/" + dbname, RawQuery: "sslmode=disable"}).String()
}

// Stop shuts the server down (fast mode) without removing its data, so that
// Restart can bring the same cluster back. Tests use it to simulate an
// outage of a database.
func (c *Cluster) Stop() error {
	if c.cmd == nil {
		return nil
	}
	_ = c.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-c.done:
	case <-time.After(20 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
	c.cmd, c.done = nil, nil
	return nil
}

// Restart starts a stopped cluster again on the same port.
func (c *Cluster) Restart(ctx context.Context) error {
	if c.cmd != nil {
		return nil
	}
	if err := c.spawn(); err != nil {
		return err
	}
	if err := c.waitReady(ctx); err != nil {
		_ = c.kill()
		return fmt.Errorf("pgcluster: restart: %w (log: %s)", err, c.logTail())
	}
	return nil
}

func (c *Cluster) kill() error {
	if c.cmd == nil {
		return nil
	}
	_ = c.cmd.Process.Signal(syscall.SIGQUIT)
	if c.done != nil {
		select {
		case <-c.done:
		case <-time.After(10 * time.Second):
			_ = c.cmd.Process.Kill()
			<-c.done
		}
	}
	c.cmd, c.done = nil, nil
	return nil
}

// Close stops the server immediately and removes the cluster directory.
func (c *Cluster) Close() error {
	_ = c.kill()
	if err := os.RemoveAll(c.dir); err != nil {
		return fmt.Errorf("pgcluster: remove %s: %w", c.dir, err)
	}
	return nil
}

// Sweep removes clusters left behind by processes that no longer exist:
// it stops their postmaster (read from postmaster.pid) and deletes the
// directory. It returns how many it removed.
func Sweep() int {
	entries, err := os.ReadDir(os.TempDir())
	if err != nil {
		return 0
	}
	removed := 0
	for _, e := range entries {
		name := e.Name()
		if !e.IsDir() || !strings.HasPrefix(name, dirPrefix) {
			continue
		}
		rest := strings.TrimPrefix(name, dirPrefix)
		pidStr, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid == os.Getpid() || processAlive(pid) {
			continue
		}
		dir := filepath.Join(os.TempDir(), name)
		if b, err := os.ReadFile(filepath.Join(dir, "data", "postmaster.pid")); err == nil {
			first, _, _ := strings.Cut(string(b), "\n")
			if ppid, err := strconv.Atoi(strings.TrimSpace(first)); err == nil && processAlive(ppid) {
				_ = syscall.Kill(ppid, syscall.SIGQUIT)
				for i := 0; i < 100 && processAlive(ppid); i++ {
					time.Sleep(50 * time.Millisecond)
				}
			}
		}
		if os.RemoveAll(dir) == nil {
			removed++
		}
	}
	return removed
}

func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgcluster: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func postgresCredential() (*syscall.Credential, error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("pgcluster: running as root needs the 'postgres' system user (install PostgreSQL's server package): %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// findBinDir locates the directory holding initdb and postgres.
func findBinDir(explicit string) (string, error) {
	var candidates []string
	if explicit != "" {
		candidates = append(candidates, explicit)
	}
	if d := os.Getenv("PG_BINDIR"); d != "" {
		candidates = append(candidates, d)
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		candidates = append(candidates, strings.TrimSpace(string(out)))
	}
	if matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin"); len(matches) > 0 {
		sort.Sort(sort.Reverse(sort.StringSlice(matches)))
		candidates = append(candidates, matches...)
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			candidates = append(candidates, filepath.Dir(r))
		}
	}
	for _, d := range candidates {
		if fileExists(filepath.Join(d, "initdb")) && fileExists(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	return "", errors.New("pgcluster: PostgreSQL server binaries (initdb, postgres) not found; install PostgreSQL (Debian: apt-get install -y postgresql) or set PG_BINDIR")
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}
