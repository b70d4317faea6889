package pgcluster

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// helperEnv makes the test binary act as a process that starts a cluster
// and then hangs, to be killed by the test.
const helperEnv = "PGCLUSTER_TEST_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		c, err := Start(context.Background(), Options{})
		if err != nil {
			os.Stdout.WriteString("error " + err.Error() + "\n")
			os.Exit(1)
		}
		os.Stdout.WriteString("dir " + c.dir + "\n")
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func query(ctx context.Context, t *testing.T, url string) int {
	t.Helper()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	var one int
	if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		t.Fatal(err)
	}
	return one
}

func TestStartStopRestartClose(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, err := Start(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if query(ctx, t, c.URL("postgres")) != 1 {
		t.Fatal("bad answer")
	}
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if conn, err := pgx.Connect(ctx, c.URL("postgres")); err == nil {
		conn.Close(ctx)
		t.Fatal("connected to a stopped cluster")
	}
	if err := c.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	query(ctx, t, c.URL("postgres"))
	dir := c.dir
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("cluster directory %s still exists after Close", dir)
	}
}

// TestClusterOfAKilledProcessIsCleanedUp SIGKILLs a process that started a
// cluster: its postmaster must die with it, and Sweep must remove the
// directory it left behind.
func TestClusterOfAKilledProcessIsCleanedUp(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "dir ") {
		_ = cmd.Process.Kill()
		t.Fatalf("helper said %q (%v)", line, err)
	}
	dir := strings.TrimSpace(strings.TrimPrefix(line, "dir "))
	pidFile := filepath.Join(dir, "data", "postmaster.pid")
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	first, _, _ := strings.Cut(string(b), "\n")
	postmaster, _ := strconv.Atoi(strings.TrimSpace(first))
	if !processAlive(postmaster) {
		t.Fatalf("postmaster %d not running", postmaster)
	}

	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()

	deadline := time.Now().Add(20 * time.Second)
	for processAlive(postmaster) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if processAlive(postmaster) {
		_ = syscall.Kill(postmaster, syscall.SIGKILL)
		t.Fatalf("postmaster %d outlived its parent", postmaster)
	}
	// The dead process's directory stays until a sweep removes it (another
	// test binary starting meanwhile may sweep it first).
	Sweep()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("Sweep left %s behind", dir)
	}
}
