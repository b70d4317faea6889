package check

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// repoRoot is the build context of deploy/docker/Dockerfile.
var repoRoot = filepath.Join("..", "..", "..")

// checkDockerfile parses a Dockerfile with BuildKit's own parser (syntax,
// instruction flags, its build-check linter) and returns every rule it
// breaks: each program's stage starts from the distroless runtime image,
// copies only from the build stage, runs as 65532:65532 and has an
// exec-form ENTRYPOINT; every file copied from the context exists and is
// not excluded by .dockerignore; no image is :latest.
func checkDockerfile(src []byte, exists func(string) bool, ignored func(string) bool) []string {
	var errs []string
	bad := func(format string, a ...any) { errs = append(errs, fmt.Sprintf(format, a...)) }
	ast, err := parser.Parse(bytes.NewReader(src))
	if err != nil {
		return []string{"parse: " + err.Error()}
	}
	lint := linter.New(&linter.Config{Warn: func(rule, desc, url, msg string, _ []parser.Range) {
		bad("build check %s: %s", rule, msg)
	}})
	stages, metaArgs, err := instructions.Parse(ast.AST, lint)
	if err != nil {
		return append(errs, "instructions: "+err.Error())
	}
	defaults := map[string]string{}
	for _, a := range metaArgs {
		for _, kv := range a.Args {
			if kv.Value != nil {
				defaults[kv.Key] = *kv.Value
			}
		}
	}
	for k, v := range defaults {
		if strings.HasSuffix(k, "_IMAGE") && (!strings.Contains(v, ":") || strings.HasSuffix(v, ":latest")) {
			bad("ARG %s=%s: pin the image's tag", k, v)
		}
	}
	names := map[string]bool{}
	programs := 0
	for i, st := range stages {
		names[st.Name] = true
		if i == 0 {
			if st.Name != "build" {
				bad("the first stage is %q, want build", st.Name)
			}
		} else {
			programs++
			if st.BaseName != "${RUNTIME_IMAGE}" || !strings.HasPrefix(defaults["RUNTIME_IMAGE"], "gcr.io/distroless/static") {
				bad("stage %s: FROM %s, want ${RUNTIME_IMAGE} (distroless static)", st.Name, st.BaseName)
			}
		}
		var user string
		var entry []string
		for _, c := range st.Commands {
			switch c := c.(type) {
			case *instructions.CopyCommand:
				if c.From != "" {
					if !names[c.From] {
						bad("stage %s: COPY --from=%s, no earlier stage of that name", st.Name, c.From)
					}
					continue
				}
				if i > 0 {
					bad("stage %s: copies from the build context; only the build stage may", st.Name)
				}
				for _, s := range c.SourcePaths {
					if !exists(s) {
						bad("stage %s: COPY %s: no such file in the repository", st.Name, s)
					} else if ignored(s) {
						bad("stage %s: COPY %s: excluded by .dockerignore", st.Name, s)
					}
				}
			case *instructions.UserCommand:
				user = c.User
			case *instructions.EntrypointCommand:
				if !c.PrependShell {
					entry = c.CmdLine
				} else {
					bad("stage %s: ENTRYPOINT in shell form (no shell in the image)", st.Name)
				}
			case *instructions.RunCommand:
				if i > 0 {
					bad("stage %s: RUN in a runtime stage (no shell in the image)", st.Name)
				}
			}
		}
		if i == 0 {
			continue
		}
		if user != "65532:65532" {
			bad("stage %s: USER %q, want 65532:65532", st.Name, user)
		}
		if len(entry) != 1 || entry[0] != "/usr/local/bin/"+st.Name {
			bad("stage %s: ENTRYPOINT %q, want [\"/usr/local/bin/%s\"]", st.Name, entry, st.Name)
		}
	}
	for _, want := range []string{"agent-api", "dashboard-api", "gateway", "staffctl"} {
		if !names[want] {
			bad("no stage %s", want)
		}
	}
	return errs
}

func repoChecks(t *testing.T) (exists, ignored func(string) bool) {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatal(err)
	}
	exists = func(p string) bool { _, err := os.Stat(filepath.Join(repoRoot, p)); return err == nil }
	ignored = func(p string) bool {
		m, err := pm.MatchesOrParentMatches(filepath.Clean(p))
		return err != nil || m
	}
	return exists, ignored
}

// TestDockerfile: deploy/docker/Dockerfile parses as BuildKit parses it and
// follows the rules (no docker engine needed).
func TestDockerfile(t *testing.T) {
	src, err := os.ReadFile(filepath.Join(repoRoot, "deploy", "docker", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	exists, ignored := repoChecks(t)
	for _, e := range checkDockerfile(src, exists, ignored) {
		t.Error(e)
	}
	// What the build needs is in the context; what it must not see is not.
	for _, p := range []string{"go.mod", "go.sum", "cmd/gateway/main.go", "internal/cloud/postgres/migrations"} {
		if ignored(p) {
			t.Errorf(".dockerignore excludes %s, which the build needs", p)
		}
	}
	for _, p := range []string{".git", "deploy/compose/.env", "docs/operations.md", "internal/cloud/postgres/migrate_test.go"} {
		if !ignored(p) {
			t.Errorf(".dockerignore lets %s into the build context", p)
		}
	}
}

// TestDockerfileRulesCatchViolations: each rule reports a Dockerfile that
// breaks it.
func TestDockerfileRulesCatchViolations(t *testing.T) {
	src, err := os.ReadFile(filepath.Join(repoRoot, "deploy", "docker", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	exists, ignored := repoChecks(t)
	doc := string(src)
	for _, tc := range []struct{ name, from, to, want string }{
		{"root user", "USER 65532:65532\nEXPOSE 3001", "USER root\nEXPOSE 3001", "USER \"root\""},
		{"shell entrypoint", `ENTRYPOINT ["/usr/local/bin/gateway"]`, `ENTRYPOINT /usr/local/bin/gateway`, "shell form"},
		{"latest runtime", "static-debian12:nonroot", "static-debian12:latest", "pin the image's tag"},
		{"missing source", "COPY internal ./internal", "COPY internals ./internal", "no such file"},
		{"ignored source", "COPY cmd ./cmd", "COPY docs ./cmd", "excluded by .dockerignore"},
		{"unknown stage", "COPY --from=build /out/bin/staffctl", "COPY --from=builder /out/bin/staffctl", "no earlier stage"},
		{"run in runtime", "USER 65532:65532\nENTRYPOINT [\"/usr/local/bin/staffctl\"]", "RUN true\nUSER 65532:65532\nENTRYPOINT [\"/usr/local/bin/staffctl\"]", "RUN in a runtime stage"},
		{"bad flag", "COPY --from=build /out/bin/agent-api", "COPY --form=build /out/bin/agent-api", "instructions"},
		{"casing", "FROM ${RUNTIME_IMAGE} AS gateway", "FROM ${RUNTIME_IMAGE} as gateway", "build check"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := strings.Replace(doc, tc.from, tc.to, 1)
			if bad == doc {
				t.Fatalf("%q is not in the Dockerfile: the test is out of date", tc.from)
			}
			errs := checkDockerfile([]byte(bad), exists, ignored)
			if !slices.ContainsFunc(errs, func(e string) bool { return strings.Contains(e, tc.want) }) {
				t.Errorf("want a problem containing %q, got %q", tc.want, errs)
			}
		})
	}
}
