package check

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

// composeFile is the development stack.
var composeFile = filepath.Join("..", "..", "compose", "compose.yml")

// loadCompose loads compose.yml as `docker compose config` does, with the
// library docker compose itself uses (compose-go): the Compose
// Specification's JSON schema, interpolation, merges, profiles, paths and
// consistency checks (every depends_on, volume, secret and network is
// declared). Variables come from env (and nothing else).
func loadCompose(t *testing.T, env map[string]string) (*types.Project, error) {
	t.Helper()
	opts, err := cli.NewProjectOptions([]string{composeFile},
		cli.WithWorkingDirectory(filepath.Dir(composeFile)),
		cli.WithEnv(envList(env)),
		cli.WithProfiles([]string{"tools"}),
		cli.WithConsistency(true),
		cli.WithResolvedPaths(true),
	)
	if err != nil {
		t.Fatal(err)
	}
	return opts.LoadProject(context.Background())
}

// exampleEnv reads deploy/compose/env.example, the variables a copy of it
// sets, and points the pgpass secret at its example.
func exampleEnv(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "compose", "env.example"))
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"STAFF_PGPASS_FILE": "./secrets/pgpass.example"}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(strings.TrimSpace(k), "#") {
			env[strings.TrimSpace(k)] = v
		}
	}
	return env
}

// TestComposeConfig: compose.yml is what `docker compose config -q` accepts
// (docker compose is not needed: compose-go is its loader), and with the
// example environment every service is there, with its image tag.
func TestComposeConfig(t *testing.T) {
	p, err := loadCompose(t, exampleEnv(t))
	if err != nil {
		t.Fatalf("compose.yml: %v", err)
	}
	for _, name := range []string{"postgres", "migrate", "staffctl", "agent-api", "dashboard-api", "gateway", "prometheus", "grafana", "loki", "alloy", "tempo"} {
		s, ok := p.Services[name]
		if !ok {
			t.Errorf("no service %s", name)
			continue
		}
		if s.Image == "" || strings.HasSuffix(s.Image, ":") || strings.Contains(s.Image, "${") {
			t.Errorf("%s: image %q after interpolation", name, s.Image)
		}
	}
	if got := p.Services["agent-api"].Image; got != "staffcontrol/agent-api:dev" {
		t.Errorf("agent-api image %q, want staffcontrol/agent-api:dev", got)
	}
}

// TestComposeConfigRefuses: the loader refuses what docker compose would,
// so that TestComposeConfig means something.
func TestComposeConfigRefuses(t *testing.T) {
	env := exampleEnv(t)
	delete(env, "TENANT_CONTEXT_KEY")
	if _, err := loadCompose(t, env); err == nil || !strings.Contains(err.Error(), "TENANT_CONTEXT_KEY") {
		t.Errorf("without TENANT_CONTEXT_KEY: %v, want an error naming it", err)
	}
	raw, err := os.ReadFile(composeFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, from, to string }{
		{"unknown key", "    read_only: true\n", "    read_only: true\n    readonly: true\n"},
		{"wrong type", "      retries: 20", "      retries: twenty"},
		{"undeclared volume", "      - files:/var/lib/staffcontrol/files", "      - filez:/var/lib/staffcontrol/files"},
		{"unknown dependency", "      agent-api: {condition: service_started}", "      agent-apj: {condition: service_started}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := strings.Replace(string(raw), tc.from, tc.to, 1)
			if bad == string(raw) {
				t.Fatalf("%q is not in compose.yml: the test is out of date", tc.from)
			}
			dir := t.TempDir()
			f := filepath.Join(dir, "compose.yml")
			if err := os.WriteFile(f, []byte(bad), 0o644); err != nil {
				t.Fatal(err)
			}
			opts, err := cli.NewProjectOptions([]string{f}, cli.WithWorkingDirectory(dir), cli.WithEnv(envList(exampleEnv(t))),
				cli.WithConsistency(true), cli.WithProfiles([]string{"tools"}))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := opts.LoadProject(context.Background()); err == nil {
				t.Error("the loader accepted it")
			} else {
				t.Log(err)
			}
		})
	}
}

func envList(env map[string]string) []string {
	var l []string
	for k, v := range env {
		l = append(l, k+"="+v)
	}
	return l
}
