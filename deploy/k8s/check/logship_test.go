package check

import (
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
)

// alloyConfig is the log shipper's configuration, mounted by compose.yml.
var alloyConfig = filepath.Join("..", "..", "compose", "alloy.alloy")

// alloyProblems returns what is wrong with the log shipper: its service in
// the loaded project p (pinned image, the config file mounted, the Docker
// socket read-only, started after Loki) and its configuration cfg (only
// this project's containers, the labels service and level, pushed to the
// project's Loki service on the port Loki publishes). Alloy's own parser is
// not a module the proxy serves, so the configuration is read as text: the
// blocks and attributes that matter, and balanced braces and quotes.
func alloyProblems(p *types.Project, cfg string) []string {
	var errs []string
	bad := func(s string) { errs = append(errs, s) }
	s, ok := p.Services["alloy"]
	if !ok {
		return []string{"compose.yml: no alloy service"}
	}
	if !regexp.MustCompile(`^grafana/alloy:v\d+\.\d+\.\d+$`).MatchString(s.Image) {
		bad("alloy: image " + s.Image + ": pin a release tag")
	}
	var config, socket bool
	for _, v := range s.Volumes {
		switch v.Target {
		case "/etc/alloy/config.alloy":
			config = v.Source != "" && v.ReadOnly
			if _, err := os.Stat(v.Source); err != nil {
				bad("alloy: its configuration " + v.Source + " does not exist")
			}
		case "/var/run/docker.sock":
			socket = v.ReadOnly
		}
	}
	if !config || !socket {
		bad("alloy: mount its configuration at /etc/alloy/config.alloy and the Docker socket, both read-only")
	}
	if !slices.Contains(s.Command, "/etc/alloy/config.alloy") {
		bad("alloy: the command must run /etc/alloy/config.alloy")
	}
	if _, ok := s.DependsOn["loki"]; !ok {
		bad("alloy: must depend on loki")
	}

	text := regexp.MustCompile(`(?m)^\s*//.*$`).ReplaceAllString(cfg, "")
	if strings.Count(text, "{") != strings.Count(text, "}") || strings.Count(text, `"`)%2 != 0 {
		bad("alloy.alloy: unbalanced braces or quotes")
	}
	for _, block := range []string{`discovery.docker "`, `loki.source.docker "`, `loki.process "`, `loki.write "`} {
		if !strings.Contains(text, block) {
			bad("alloy.alloy: no " + strings.TrimSuffix(block, ` "`) + " block")
		}
	}
	if !strings.Contains(text, `"com.docker.compose.project=`+p.Name+`"`) {
		bad("alloy.alloy: discovery must keep this project's (" + p.Name + ") containers only")
	}
	if !regexp.MustCompile(`source_labels = \["__meta_docker_container_label_com_docker_compose_service"\]\s*target_label\s*=\s*"service"`).MatchString(text) {
		bad("alloy.alloy: the compose service must become the label service")
	}
	if !regexp.MustCompile(`stage\.json \{\s*expressions = \{ level = "level" \}`).MatchString(text) ||
		!regexp.MustCompile(`stage\.labels \{\s*values = \{ level = "" \}`).MatchString(text) {
		bad("alloy.alloy: the JSON level must become the label level")
	}
	m := regexp.MustCompile(`url = "([^"]+)"`).FindStringSubmatch(text)
	if m == nil {
		bad("alloy.alloy: loki.write has no endpoint url")
		return errs
	}
	u, err := url.Parse(m[1])
	if err != nil || u.Path != "/loki/api/v1/push" {
		bad("alloy.alloy: endpoint " + m[1] + ": want http://<loki service>:<port>/loki/api/v1/push")
		return errs
	}
	loki, ok := p.Services[u.Hostname()]
	if !ok || !strings.HasPrefix(loki.Image, "grafana/loki:") {
		bad("alloy.alloy: endpoint host " + u.Hostname() + " is not the project's Loki service")
		return errs
	}
	port, _ := strconv.ParseUint(u.Port(), 10, 32)
	if !slices.ContainsFunc(loki.Ports, func(pc types.ServicePortConfig) bool { return uint64(pc.Target) == port }) {
		bad("alloy.alloy: endpoint port " + u.Port() + " is not a port the Loki service listens on")
	}
	return errs
}

// TestLogShipper: compose.yml's log shipper and its configuration ship the
// project's containers' logs to its Loki with the labels service and
// level, and Grafana has that Loki as a datasource.
func TestLogShipper(t *testing.T) {
	p, err := loadCompose(t, exampleEnv(t))
	if err != nil {
		t.Fatalf("compose.yml: %v", err)
	}
	cfg, err := os.ReadFile(alloyConfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range alloyProblems(p, string(cfg)) {
		t.Error(e)
	}
	ds, err := os.ReadFile(filepath.Join("..", "..", "grafana", "provisioning", "datasources", "datasources.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^\s+type: loki\n\s+access: proxy\n\s+url: http://loki:3100$`).Match(ds) {
		t.Error("Grafana's provisioned datasources have no Loki at http://loki:3100")
	}
}

// TestLogShipperProblems: each check reports a configuration that breaks
// it, so that TestLogShipper cannot pass by checking nothing.
func TestLogShipperProblems(t *testing.T) {
	p, err := loadCompose(t, exampleEnv(t))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(alloyConfig)
	if err != nil {
		t.Fatal(err)
	}
	good := string(raw)
	if errs := alloyProblems(p, good); len(errs) != 0 {
		t.Fatalf("the real configuration: %v", errs)
	}
	for _, tc := range []struct{ name, from, to, want string }{
		{"other project", "com.docker.compose.project=staffcontrol", "com.docker.compose.project=other", "this project's"},
		{"no service label", `target_label  = "service"`, `target_label  = "svc"`, "label service"},
		{"no level label", `values = { level = "" }`, `values = { }`, "label level"},
		{"wrong host", "http://loki:3100/", "http://lokki:3100/", "not the project's Loki"},
		{"wrong port", "http://loki:3100/", "http://loki:3101/", "not a port"},
		{"wrong path", "/loki/api/v1/push", "/api/prom/push", "want http://"},
		{"unbalanced", "forward_to = [loki.write.loki.receiver]\n}", "forward_to = [loki.write.loki.receiver]\n", "unbalanced"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := strings.Replace(good, tc.from, tc.to, 1)
			if bad == good {
				t.Fatalf("%q is not in alloy.alloy: the test is out of date", tc.from)
			}
			errs := alloyProblems(p, bad)
			if !slices.ContainsFunc(errs, func(e string) bool { return strings.Contains(e, tc.want) }) {
				t.Errorf("want a problem containing %q, got %q", tc.want, errs)
			}
		})
	}
	t.Run("writable socket", func(t *testing.T) {
		q, err := loadCompose(t, exampleEnv(t))
		if err != nil {
			t.Fatal(err)
		}
		s := q.Services["alloy"]
		for i := range s.Volumes {
			if s.Volumes[i].Target == "/var/run/docker.sock" {
				s.Volumes[i].ReadOnly = false
			}
		}
		q.Services["alloy"] = s
		if errs := alloyProblems(q, good); !slices.ContainsFunc(errs, func(e string) bool { return strings.Contains(e, "read-only") }) {
			t.Errorf("a writable socket: %q", errs)
		}
	})
}
