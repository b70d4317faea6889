package compose

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/staffcontrol/staffcontrol/internal/edge/config"
)

// service is the part of a compose service the rules look at.
type service struct {
	Image       string            `yaml:"image"`
	User        string            `yaml:"user"`
	ReadOnly    bool              `yaml:"read_only"`
	CapDrop     []string          `yaml:"cap_drop"`
	SecurityOpt []string          `yaml:"security_opt"`
	Environment map[string]string `yaml:"environment"`
	Volumes     []string          `yaml:"volumes"`
	Ports       []string          `yaml:"ports"`
	Secrets     []string          `yaml:"secrets"`
	Build       *struct {
		Context    string `yaml:"context"`
		Dockerfile string `yaml:"dockerfile"`
		Target     string `yaml:"target"`
	} `yaml:"build"`
}

// composeFile is the part of compose.yml the rules look at.
type composeFile struct {
	Services map[string]service `yaml:"services"`
	Secrets  map[string]struct {
		File string `yaml:"file"`
	} `yaml:"secrets"`
	Volumes map[string]any `yaml:"volumes"`
}

// dockerSocket is the host's Docker API socket (the log shipper's source).
const dockerSocket = "/var/run/docker.sock"

// ourImage is the repository prefix of the images deploy/docker/Dockerfile builds.
const ourImage = "staffcontrol/"

// pendingPaths are mounted paths another branch (the "obs" helper's
// Prometheus rules and Grafana dashboards) provides: while the whole
// directory is absent they are reported in the log, not as failures; once
// it exists, every path in it must.
var pendingPaths = []string{"../prometheus/", "../grafana/"}

// checkEnv knows which environment keys a service reads.
type checkEnv struct {
	// cloudKeys maps each key of docs/operations.md's "Configuration keys"
	// table to its Service cell.
	cloudKeys map[string]string
	// gatewayKeys holds every STAFF_GATEWAY_* key the gateway reads.
	gatewayKeys map[string]bool
	// exists reports whether a path relative to deploy/compose exists.
	exists func(string) bool
	// targets are the Dockerfile's stage names.
	targets map[string]bool
}

// check returns every rule compose.yml breaks, one message each.
func check(f composeFile, env checkEnv) []string {
	var errs []string
	bad := func(format string, a ...any) { errs = append(errs, fmt.Sprintf(format, a...)) }
	hostPorts := map[string]string{}
	names := make([]string, 0, len(f.Services))
	for n := range f.Services {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(names) == 0 {
		bad("no services")
	}
	for _, name := range names {
		s := f.Services[name]
		if !nonRootUser(s.User) {
			bad("%s: user %q: every service runs as a non-root numeric user", name, s.User)
		}
		if !pinned(s.Image) {
			bad("%s: image %q: pin a tag (not latest)", name, s.Image)
		}
		ours := strings.HasPrefix(s.Image, ourImage)
		if ours {
			if !s.ReadOnly {
				bad("%s: our services run with read_only: true", name)
			}
			if !slices.Contains(s.CapDrop, "ALL") {
				bad("%s: our services drop every capability (cap_drop: [ALL])", name)
			}
			if s.Build == nil || !env.targets[s.Build.Target] {
				bad("%s: build target must be a stage of deploy/docker/Dockerfile", name)
			}
		}
		if !slices.Contains(s.SecurityOpt, "no-new-privileges:true") {
			bad("%s: security_opt no-new-privileges:true is missing", name)
		}
		for _, v := range s.Volumes {
			src := strings.SplitN(v, ":", 2)[0]
			if !strings.HasPrefix(src, ".") && !strings.HasPrefix(src, "/") {
				if _, ok := f.Volumes[src]; !ok {
					bad("%s: volume %q is not declared under volumes", name, src)
				}
				continue
			}
			if src == dockerSocket {
				// The host's, not the repository's: the log shipper reads
				// the containers' logs through it, read-only.
				if !strings.HasSuffix(v, ":ro") {
					bad("%s: %s must be mounted read-only (:ro)", name, dockerSocket)
				}
				continue
			}
			if !env.exists(src) {
				bad("%s: mounted path %s does not exist (relative to deploy/compose)", name, src)
			}
		}
		for _, p := range s.Ports {
			host, err := hostPort(p)
			if err != nil {
				bad("%s: port %q: %v", name, p, err)
				continue
			}
			if other, dup := hostPorts[host]; dup {
				bad("%s: host port %s is already published by %s", name, host, other)
			}
			hostPorts[host] = name
		}
		for _, sec := range s.Secrets {
			if _, ok := f.Secrets[sec]; !ok {
				bad("%s: secret %q is not declared under secrets", name, sec)
			}
		}
		if !ours {
			continue
		}
		for key := range s.Environment {
			if strings.HasPrefix(key, "OTEL_") {
				continue // the OpenTelemetry SDK's standard variables
			}
			switch {
			case name == "gateway":
				if !env.gatewayKeys[key] {
					bad("gateway: %s is not a gateway configuration key (gateway --print-config-keys)", key)
				}
			case name == "agent-api" || name == "dashboard-api":
				who, ok := env.cloudKeys[key]
				if !ok {
					bad("%s: %s is not in docs/operations.md's \"Configuration keys\" table", name, key)
				} else if !strings.Contains(who, "both") && !strings.Contains(who, name) {
					bad("%s: %s is documented for %q only", name, key, who)
				}
			}
		}
	}
	for name, sec := range f.Secrets {
		file := expandDefault(sec.File)
		if !env.exists(file) && !env.exists(file+".example") {
			bad("secret %s: neither %s nor %s.example exists", name, file, file)
		}
	}
	return errs
}

// nonRootUser: "uid[:gid]" with a numeric uid other than 0.
func nonRootUser(u string) bool {
	uid, _, _ := strings.Cut(u, ":")
	n, err := strconv.Atoi(uid)
	return err == nil && n > 0
}

// pinned: the image names a tag (or digest) and the tag is not latest.
func pinned(image string) bool {
	if strings.Contains(image, "@sha256:") {
		return true
	}
	i := strings.LastIndex(image, ":")
	if i < 0 || strings.Contains(image[i:], "/") {
		return false
	}
	tag := expandDefault(image[i+1:])
	return tag != "" && tag != "latest" && !strings.HasPrefix(tag, "latest-")
}

// hostPort returns the host side ("ip:port" or "port") of a published port.
func hostPort(p string) (string, error) {
	parts := strings.Split(p, ":")
	switch len(parts) {
	case 2:
		return parts[0], nil
	case 3:
		return parts[0] + ":" + parts[1], nil
	}
	return "", fmt.Errorf("want host:container or ip:host:container (publish explicitly)")
}

var defaultRe = regexp.MustCompile(`\$\{[A-Z0-9_]+:-([^}]*)\}`)

// expandDefault replaces ${VAR:-default} by its default.
func expandDefault(s string) string { return defaultRe.ReplaceAllString(s, "$1") }

// documentedKeys reads docs/operations.md's "Configuration keys" table of
// the cloud services: every backquoted upper-case key of a row's first
// cell, mapped to the row's Service cell.
func documentedKeys(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	start := strings.Index(text, "\n## Configuration keys\n")
	if start < 0 {
		t.Fatalf("%s: no \"## Configuration keys\" section", path)
	}
	text = text[start+1:]
	if end := strings.Index(text[3:], "\n#"); end >= 0 {
		text = text[:end+3]
	}
	keyRe := regexp.MustCompile("`([A-Z][A-Z0-9_]+)`")
	keys := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 4 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`") {
			continue
		}
		for _, m := range keyRe.FindAllStringSubmatch(cells[1], -1) {
			keys[m[1]] = strings.TrimSpace(cells[2])
		}
	}
	if len(keys) < 20 {
		t.Fatalf("%s: found %d configuration keys; did the table's format change?", path, len(keys))
	}
	return keys
}

// dockerfileTargets returns the stage names of a Dockerfile, and checks its
// rules: every stage after the first (the programs) runs as 65532 on a
// distroless image.
func dockerfileTargets(t *testing.T, path string) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	targets := map[string]bool{}
	stageRe := regexp.MustCompile(`(?im)^FROM\s+(?:--platform=\S+\s+)?(\S+)\s+AS\s+(\S+)\s*$`)
	stages := stageRe.FindAllStringSubmatchIndex(string(b), -1)
	if len(stages) < 5 {
		t.Fatalf("%s: %d stages, want build + agent-api, dashboard-api, gateway, staffctl", path, len(stages))
	}
	text := string(b)
	if !strings.Contains(text, "CGO_ENABLED=0") || !strings.Contains(text, "-trimpath") {
		t.Errorf("%s: binaries must be built with CGO_ENABLED=0 and -trimpath", path)
	}
	if !strings.Contains(text, "ARG RUNTIME_IMAGE=gcr.io/distroless/static-debian12:nonroot") {
		t.Errorf("%s: the runtime image must be distroless static (nonroot)", path)
	}
	for i, st := range stages {
		name := text[st[4]:st[5]]
		targets[name] = true
		if i == 0 {
			continue
		}
		end := len(text)
		if i+1 < len(stages) {
			end = stages[i+1][0]
		}
		body := text[st[0]:end]
		if text[st[2]:st[3]] != "${RUNTIME_IMAGE}" {
			t.Errorf("%s: stage %s must start FROM ${RUNTIME_IMAGE}", path, name)
		}
		if !regexp.MustCompile(`(?m)^USER 65532:65532$`).MatchString(body) {
			t.Errorf("%s: stage %s must set USER 65532:65532", path, name)
		}
		if !regexp.MustCompile(`(?m)^ENTRYPOINT \["/usr/local/bin/` + regexp.QuoteMeta(name) + `"\]$`).MatchString(body) {
			t.Errorf("%s: stage %s must run /usr/local/bin/%s (exec form)", path, name, name)
		}
	}
	for _, want := range []string{"agent-api", "dashboard-api", "gateway", "staffctl"} {
		if !targets[want] {
			t.Errorf("%s: no stage %s", path, want)
		}
	}
	return targets
}

func loadCompose(t *testing.T) (composeFile, []byte) {
	t.Helper()
	raw, err := os.ReadFile("compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var f composeFile
	if err := yaml.Unmarshal(raw, &f); err != nil {
		t.Fatalf("compose.yml: %v", err)
	}
	return f, raw
}

func realEnv(t *testing.T) checkEnv {
	gw := map[string]bool{}
	for _, k := range config.Keys() {
		gw[k.Env()] = true
	}
	absent := map[string]bool{}
	for _, pre := range pendingPaths {
		if _, err := os.Stat(pre); err != nil {
			absent[pre] = true
			t.Logf("paths under %s not checked: another branch's, not here yet", pre)
		}
	}
	return checkEnv{
		cloudKeys:   documentedKeys(t, "../../docs/operations.md"),
		gatewayKeys: gw,
		targets:     dockerfileTargets(t, "../docker/Dockerfile"),
		exists: func(p string) bool {
			if _, err := os.Stat(p); err == nil {
				return true
			}
			return slices.ContainsFunc(pendingPaths, func(pre string) bool { return absent[pre] && strings.HasPrefix(p, pre) })
		},
	}
}

// TestComposeRules: compose.yml follows every rule.
func TestComposeRules(t *testing.T) {
	f, _ := loadCompose(t)
	for _, want := range []string{"postgres", "migrate", "agent-api", "dashboard-api", "gateway", "prometheus", "grafana", "loki", "alloy", "tempo"} {
		if _, ok := f.Services[want]; !ok {
			t.Errorf("compose.yml: no service %s", want)
		}
	}
	for _, e := range check(f, realEnv(t)) {
		t.Error(e)
	}
}

// TestComposeVariablesInExample: every ${VAR} compose.yml interpolates is
// shown in env.example, so that a copy of it configures everything.
func TestComposeVariablesInExample(t *testing.T) {
	_, raw := loadCompose(t)
	ex, err := os.ReadFile("env.example")
	if err != nil {
		t.Fatal(err)
	}
	shown := map[string]bool{}
	for _, line := range strings.Split(string(ex), "\n") {
		if k, _, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(k, "#") {
			shown[strings.TrimSpace(k)] = true
		}
	}
	for _, m := range regexp.MustCompile(`\$\{([A-Z0-9_]+)`).FindAllStringSubmatch(string(raw), -1) {
		if !shown[m[1]] && m[1] != "STAFF_PGPASS_FILE" {
			t.Errorf("compose.yml uses ${%s}, which env.example does not show", m[1])
		}
	}
}

// TestComposeRulesCatchViolations: each rule reports a file that breaks it,
// so that TestComposeRules cannot pass by checking nothing.
func TestComposeRulesCatchViolations(t *testing.T) {
	base, _ := loadCompose(t)
	env := realEnv(t)
	for _, tc := range []struct {
		name   string
		mutate func(f *composeFile)
		want   string
	}{
		{"root user", func(f *composeFile) { set(f, "agent-api", func(s *service) { s.User = "0:0" }) }, "non-root"},
		{"no user", func(f *composeFile) { set(f, "loki", func(s *service) { s.User = "" }) }, "non-root"},
		{"writable root", func(f *composeFile) { set(f, "dashboard-api", func(s *service) { s.ReadOnly = false }) }, "read_only"},
		{"latest tag", func(f *composeFile) { set(f, "grafana", func(s *service) { s.Image = "grafana/grafana:latest" }) }, "pin a tag"},
		{"no tag", func(f *composeFile) { set(f, "tempo", func(s *service) { s.Image = "grafana/tempo" }) }, "pin a tag"},
		{"missing mount", func(f *composeFile) {
			set(f, "loki", func(s *service) { s.Volumes = append(s.Volumes, "./nope.yml:/etc/nope.yml:ro") })
		}, "does not exist"},
		{"writable docker socket", func(f *composeFile) {
			set(f, "alloy", func(s *service) {
				for i, v := range s.Volumes {
					s.Volumes[i] = strings.TrimSuffix(v, ":ro")
				}
			})
		}, "read-only"},
		{"duplicate port", func(f *composeFile) {
			set(f, "gateway", func(s *service) { s.Ports = append(s.Ports, "3001:3001") })
		}, "already published"},
		{"unknown cloud key", func(f *composeFile) {
			set(f, "agent-api", func(s *service) { s.Environment = map[string]string{"DATABASE_URI": "x"} })
		}, "Configuration keys"},
		{"key of the other service", func(f *composeFile) {
			set(f, "agent-api", func(s *service) { s.Environment = map[string]string{"DASHBOARD_TOKEN_KEYS": "x"} })
		}, "documented for"},
		{"unknown gateway key", func(f *composeFile) {
			set(f, "gateway", func(s *service) { s.Environment = map[string]string{"STAFF_GATEWAY_BUFER_PATH": "x"} })
		}, "not a gateway configuration key"},
		{"unknown build target", func(f *composeFile) {
			set(f, "agent-api", func(s *service) { c := *s.Build; c.Target = "agent"; s.Build = &c })
		}, "build target"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := clone(base)
			tc.mutate(&f)
			errs := check(f, env)
			if !slices.ContainsFunc(errs, func(e string) bool { return strings.Contains(e, tc.want) }) {
				t.Errorf("want a problem containing %q, got %q", tc.want, errs)
			}
		})
	}
}

func set(f *composeFile, name string, fn func(*service)) {
	s := f.Services[name]
	fn(&s)
	f.Services[name] = s
}

func clone(f composeFile) composeFile {
	c := f
	c.Services = map[string]service{}
	for n, s := range f.Services {
		s.Volumes = slices.Clone(s.Volumes)
		s.Ports = slices.Clone(s.Ports)
		c.Services[n] = s
	}
	return c
}

// TestDockerComposeConfig runs `docker compose config -q` where docker
// compose works (with placeholder values for the required variables and
// the example pgpass); elsewhere it skips, unless COMPOSE_REQUIRE=1.
func TestDockerComposeConfig(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "docker", "compose", "version").CombinedOutput(); err != nil {
		msg := fmt.Sprintf("docker compose does not work here (%v: %s)", err, bytes.TrimSpace(out))
		if os.Getenv("COMPOSE_REQUIRE") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg + "; set COMPOSE_REQUIRE=1 to make this a failure")
	}
	ex, err := os.ReadFile("env.example")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, "docker", "compose", "-f", "compose.yml", "--env-file", "env.example", "--profile", "tools", "config", "-q")
	cmd.Env = append(os.Environ(), "STAFF_PGPASS_FILE="+filepath.Join("secrets", "pgpass.example"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("docker compose config -q: %v\n%s", err, out)
	}
	if len(ex) == 0 {
		t.Fatal("env.example is empty")
	}
}
