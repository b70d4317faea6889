package k8s

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// object is one manifest, decoded generically.
type object = map[string]any

func kind(o object) string { return str(o, "kind") }
func name(o object) string { return str(o, "metadata", "name") }

// get walks maps by key and lists by index ("0").
func get(v any, path ...string) any {
	for _, p := range path {
		switch x := v.(type) {
		case map[string]any:
			v = x[p]
		case []any:
			var i int
			if _, err := fmt.Sscan(p, &i); err != nil || i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return v
}

func str(v any, path ...string) string { s, _ := get(v, path...).(string); return s }
func list(v any, path ...string) []any { l, _ := get(v, path...).([]any); return l }
func num(v any, path ...string) int    { n, _ := get(v, path...).(int); return n }
func boolean(v any, path ...string) (bool, bool) {
	b, ok := get(v, path...).(bool)
	return b, ok
}

// decodeAll reads every YAML document of r.
func decodeAll(r io.Reader) ([]object, error) {
	dec := yaml.NewDecoder(r)
	var objs []object
	for {
		var o object
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, err
		}
		if o != nil {
			objs = append(objs, o)
		}
	}
}

// manifests reads deploy/k8s: the applied manifests (*.yaml but the
// kustomization) and the example Secrets.
func manifests(t *testing.T) (applied, examples []object, files []string) {
	t.Helper()
	paths, err := filepath.Glob("*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		if p == "kustomization.yaml" {
			continue
		}
		files = append(files, p)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		objs, err := decodeAll(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		applied = append(applied, objs...)
	}
	b, err := os.ReadFile("secrets.yaml.example")
	if err != nil {
		t.Fatal(err)
	}
	if examples, err = decodeAll(bytes.NewReader(b)); err != nil {
		t.Fatalf("secrets.yaml.example: %v", err)
	}
	return applied, examples, files
}

// documentedKeys reads docs/operations.md's "Configuration keys" table:
// every backquoted upper-case key of a row's first cell, mapped to the
// row's Service cell.
func documentedKeys(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	start := strings.Index(text, "\n## Configuration keys\n")
	if start < 0 {
		t.Fatal("docs/operations.md: no \"## Configuration keys\" section")
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
		t.Fatalf("docs/operations.md: found %d configuration keys; did the table's format change?", len(keys))
	}
	return keys
}

// rules holds what check needs besides the manifests.
type rules struct {
	// cloudKeys maps each documented configuration key to its Service cell.
	cloudKeys map[string]string
	// files are the manifest files; kustomization lists them.
	files []string
	// kustomization is kustomization.yaml, decoded.
	kustomization object
}

// check returns every rule the manifests break, one message each.
func check(applied, examples []object, r rules) []string {
	var errs []string
	bad := func(format string, a ...any) { errs = append(errs, fmt.Sprintf(format, a...)) }
	byKind := map[string][]object{}
	for _, o := range applied {
		byKind[kind(o)] = append(byKind[kind(o)], o)
		if ns := str(o, "metadata", "namespace"); kind(o) != "Namespace" && ns != "staffcontrol" {
			bad("%s %s: namespace %q, want staffcontrol", kind(o), name(o), ns)
		}
	}
	if len(byKind["Secret"]) > 0 {
		bad("a Secret is in the applied manifests: Secrets are referenced, never committed (secrets.yaml.example)")
	}
	exampleKeys := map[string]map[string]bool{}
	for _, s := range examples {
		if kind(s) != "Secret" {
			bad("secrets.yaml.example: %s %s: only Secrets belong here", kind(s), name(s))
			continue
		}
		exampleKeys[name(s)] = map[string]bool{}
		for k, v := range get(s, "stringData").(map[string]any) {
			exampleKeys[name(s)][k] = true
			if vs, _ := v.(string); !strings.Contains(vs, "CHANGE-ME") {
				bad("secrets.yaml.example: %s/%s: a placeholder containing CHANGE-ME, never a real value", name(s), k)
			}
		}
	}
	accounts := map[string]bool{}
	for _, sa := range byKind["ServiceAccount"] {
		accounts[name(sa)] = true
		if b, ok := boolean(sa, "automountServiceAccountToken"); !ok || b {
			bad("ServiceAccount %s: automountServiceAccountToken: false", name(sa))
		}
	}
	var pods []object // every pod template, with its owner for messages
	for _, d := range byKind["Deployment"] {
		if n := num(d, "spec", "replicas"); n < 2 {
			bad("Deployment %s: replicas %d, want at least 2", name(d), n)
		}
		pods = append(pods, object{"owner": "Deployment " + name(d), "spec": get(d, "spec", "template", "spec"), "labels": get(d, "spec", "template", "metadata", "labels")})
		checkDeploymentCompanions(d, byKind, bad)
	}
	for _, j := range byKind["Job"] {
		pods = append(pods, object{"owner": "Job " + name(j), "spec": get(j, "spec", "template", "spec"), "labels": get(j, "spec", "template", "metadata", "labels")})
	}
	if len(byKind["Deployment"]) < 2 || len(byKind["Job"]) < 1 {
		bad("want the agent-api and dashboard-api Deployments and the migrate Job")
	}
	for _, p := range pods {
		owner := p["owner"].(string)
		spec := p["spec"]
		if sa := str(spec, "serviceAccountName"); !accounts[sa] {
			bad("%s: serviceAccountName %q is not a ServiceAccount of the manifests", owner, sa)
		}
		if b, ok := boolean(spec, "automountServiceAccountToken"); !ok || b {
			bad("%s: automountServiceAccountToken: false", owner)
		}
		if b, _ := boolean(spec, "securityContext", "runAsNonRoot"); !b {
			bad("%s: pod securityContext.runAsNonRoot: true", owner)
		}
		if str(spec, "securityContext", "seccompProfile", "type") != "RuntimeDefault" {
			bad("%s: pod seccompProfile RuntimeDefault", owner)
		}
		if !selectedByPolicy(p["labels"], byKind["NetworkPolicy"]) {
			bad("%s: no NetworkPolicy selects its pods", owner)
		}
		for _, c := range list(spec, "containers") {
			checkContainer(owner, c, strings.HasPrefix(owner, "Deployment "), r.cloudKeys, exampleKeys, bad)
		}
	}
	checkNetworkPolicies(byKind, bad)
	listed := map[string]bool{}
	for _, f := range list(r.kustomization, "resources") {
		listed[f.(string)] = true
	}
	for _, f := range r.files {
		if !listed[f] {
			bad("kustomization.yaml: resources does not list %s", f)
		}
		delete(listed, f)
	}
	for f := range listed {
		bad("kustomization.yaml: resources lists %s, which is not a manifest here", f)
	}
	sort.Strings(errs)
	return errs
}

// checkContainer: pinned image, hardened security context, resources,
// probes (long-running services), and environment variables that are
// documented keys of the service or Secret references to the example's keys.
func checkContainer(owner string, c any, service bool, cloudKeys map[string]string, exampleKeys map[string]map[string]bool, bad func(string, ...any)) {
	name := str(c, "name")
	at := owner + " container " + name
	image := str(c, "image")
	if i := strings.LastIndex(image, ":"); i < 0 || strings.Contains(image[i:], "/") || image[i+1:] == "latest" {
		bad("%s: image %q: pin a tag (not latest)", at, image)
	}
	sc := get(c, "securityContext")
	for _, want := range []struct {
		path []string
		val  bool
	}{{[]string{"runAsNonRoot"}, true}, {[]string{"readOnlyRootFilesystem"}, true}, {[]string{"allowPrivilegeEscalation"}, false}} {
		if b, ok := boolean(sc, want.path...); !ok || b != want.val {
			bad("%s: securityContext.%s: %v", at, strings.Join(want.path, "."), want.val)
		}
	}
	if drop := list(sc, "capabilities", "drop"); !slices.Contains(drop, any("ALL")) {
		bad("%s: securityContext.capabilities.drop: [ALL]", at)
	}
	if str(sc, "seccompProfile", "type") != "RuntimeDefault" {
		bad("%s: securityContext.seccompProfile RuntimeDefault", at)
	}
	for _, res := range []string{"requests/cpu", "requests/memory", "limits/memory"} {
		kind, what, _ := strings.Cut(res, "/")
		if str(c, "resources", kind, what) == "" {
			bad("%s: resources.%s.%s is missing", at, kind, what)
		}
	}
	if service {
		if p := str(c, "readinessProbe", "httpGet", "path"); p != "/health/ready" {
			bad("%s: readinessProbe httpGet path %q, want /health/ready", at, p)
		}
		if p := str(c, "livenessProbe", "httpGet", "path"); p != "/health" {
			bad("%s: livenessProbe httpGet path %q, want /health", at, p)
		}
	}
	for _, e := range list(c, "env") {
		key := str(e, "name")
		if ref := get(e, "valueFrom", "secretKeyRef"); ref != nil {
			sec, k := str(ref, "name"), str(ref, "key")
			if !exampleKeys[sec][k] {
				bad("%s: %s refers to Secret %s key %s, which secrets.yaml.example does not show", at, key, sec, k)
			}
		} else if get(e, "valueFrom") != nil {
			bad("%s: %s: only secretKeyRef is expected", at, key)
		} else if strings.Contains(strings.ToLower(key), "password") || strings.HasSuffix(key, "_KEY") || strings.HasSuffix(key, "_KEYS") || strings.HasSuffix(key, "DATABASE_URL") {
			bad("%s: %s holds a secret: take it from a Secret (secretKeyRef), not a value", at, key)
		}
		if strings.HasPrefix(key, "OTEL_") {
			continue
		}
		who, ok := cloudKeys[key]
		switch {
		case !ok:
			bad("%s: %s is not in docs/operations.md's \"Configuration keys\" table", at, key)
		case name == "migrate":
			// staffctl reads DATABASE_URL and TENANT_CONTEXT_KEY (docs/operations.md).
			if key != "DATABASE_URL" && key != "TENANT_CONTEXT_KEY" {
				bad("%s: staffctl migrate does not read %s", at, key)
			}
		case !strings.Contains(who, "both") && !strings.Contains(who, name):
			bad("%s: %s is documented for %q only", at, key, who)
		}
	}
}

// checkDeploymentCompanions: a Service selecting the Deployment's pods on a
// port its container names, a PodDisruptionBudget and an autoscaler.
func checkDeploymentCompanions(d object, byKind map[string][]object, bad func(string, ...any)) {
	labels := get(d, "spec", "template", "metadata", "labels")
	ports := map[string]bool{}
	for _, c := range list(d, "spec", "template", "spec", "containers") {
		for _, p := range list(c, "ports") {
			ports[str(p, "name")] = true
			ports[fmt.Sprint(num(p, "containerPort"))] = true
		}
	}
	found := false
	for _, s := range byKind["Service"] {
		if matches(get(s, "spec", "selector"), labels) {
			found = true
			for _, p := range list(s, "spec", "ports") {
				if tp := fmt.Sprint(get(p, "targetPort")); !ports[tp] {
					bad("Service %s: targetPort %s is not a port of Deployment %s", name(s), tp, name(d))
				}
			}
		}
	}
	if !found {
		bad("Deployment %s: no Service selects its pods", name(d))
	}
	found = false
	for _, p := range byKind["PodDisruptionBudget"] {
		if matches(get(p, "spec", "selector", "matchLabels"), labels) {
			found = true
		}
	}
	if !found {
		bad("Deployment %s: no PodDisruptionBudget selects its pods", name(d))
	}
	found = false
	for _, h := range byKind["HorizontalPodAutoscaler"] {
		if str(h, "apiVersion") == "autoscaling/v2" && str(h, "spec", "scaleTargetRef", "kind") == "Deployment" && str(h, "spec", "scaleTargetRef", "name") == name(d) {
			found = true
			if num(h, "spec", "minReplicas") < 2 {
				bad("HorizontalPodAutoscaler %s: minReplicas at least 2", name(h))
			}
		}
	}
	if !found {
		bad("Deployment %s: no autoscaling/v2 HorizontalPodAutoscaler scales it", name(d))
	}
}

// checkNetworkPolicies: a default deny of both directions for every pod,
// and every policy's ingress names ports.
func checkNetworkPolicies(byKind map[string][]object, bad func(string, ...any)) {
	deny := false
	for _, np := range byKind["NetworkPolicy"] {
		types := list(np, "spec", "policyTypes")
		sel, _ := get(np, "spec", "podSelector").(map[string]any)
		if len(sel) == 0 && slices.Contains(types, any("Ingress")) && slices.Contains(types, any("Egress")) &&
			get(np, "spec", "ingress") == nil && get(np, "spec", "egress") == nil {
			deny = true
		}
		for _, rule := range list(np, "spec", "ingress") {
			if len(list(rule, "ports")) == 0 {
				bad("NetworkPolicy %s: an ingress rule without ports opens every port", name(np))
			}
		}
	}
	if !deny {
		bad("no default-deny NetworkPolicy (podSelector {}, policyTypes Ingress and Egress, no rules)")
	}
}

// selectedByPolicy: a NetworkPolicy other than the default deny selects labels.
func selectedByPolicy(labels any, policies []object) bool {
	for _, np := range policies {
		sel, _ := get(np, "spec", "podSelector", "matchLabels").(map[string]any)
		if len(sel) > 0 && matches(sel, labels) {
			return true
		}
	}
	return false
}

// matches: every key of selector has the same value in labels.
func matches(selector, labels any) bool {
	sel, _ := selector.(map[string]any)
	lab, _ := labels.(map[string]any)
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if lab[k] != v {
			return false
		}
	}
	return true
}

func loadRules(t *testing.T, files []string) rules {
	b, err := os.ReadFile("kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var k object
	if err := yaml.Unmarshal(b, &k); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	return rules{cloudKeys: documentedKeys(t), files: files, kustomization: k}
}

// TestManifestRules: deploy/k8s follows every rule.
func TestManifestRules(t *testing.T) {
	applied, examples, files := manifests(t)
	for _, e := range check(applied, examples, loadRules(t, files)) {
		t.Error(e)
	}
}

// TestManifestRulesCatchViolations: each rule reports manifests that break
// it, so that TestManifestRules cannot pass by checking nothing.
func TestManifestRulesCatchViolations(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(string) string // applied to the concatenated manifests
		want string
	}{
		{"one replica", func(s string) string { return strings.Replace(s, "replicas: 2", "replicas: 1", 1) }, "replicas 1"},
		{"writable root", func(s string) string {
			return strings.Replace(s, "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false", 1)
		}, "readOnlyRootFilesystem"},
		{"escalation", func(s string) string {
			return strings.Replace(s, "allowPrivilegeEscalation: false", "allowPrivilegeEscalation: true", 1)
		}, "allowPrivilegeEscalation"},
		{"readiness on /health", func(s string) string { return strings.Replace(s, "path: /health/ready", "path: /health", 1) }, "readinessProbe"},
		{"latest image", func(s string) string {
			return strings.Replace(s, "staffcontrol/agent-api:2.0.0", "staffcontrol/agent-api:latest", 1)
		}, "pin a tag"},
		{"token mounted", func(s string) string {
			return strings.Replace(s, "automountServiceAccountToken: false", "automountServiceAccountToken: true", 1)
		}, "automountServiceAccountToken"},
		{"no PDB", func(s string) string {
			return strings.Replace(s, "kind: PodDisruptionBudget", "kind: PodDisruptionBudgetX", -1)
		}, "PodDisruptionBudget selects"},
		{"no default deny", func(s string) string {
			return strings.Replace(s, "  podSelector: {}\n", "  podSelector: {matchLabels: {a: b}}\n", 1)
		}, "default-deny"},
		{"undocumented key", func(s string) string { return strings.Replace(s, "name: LOG_LEVEL", "name: LOGLEVEL", 1) }, "Configuration keys"},
		{"secret as a value", func(s string) string {
			return strings.Replace(s, "- name: LOG_LEVEL\n              value: info", "- name: TENANT_CONTEXT_KEY\n              value: k1:abc", 1)
		}, "holds a secret"},
		{"unknown secret key", func(s string) string { return strings.Replace(s, "key: tenant-context-key", "key: tenant-key", 1) }, "does not show"},
		{"committed secret", func(s string) string {
			return s + "\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: x, namespace: staffcontrol}\n"
		}, "Secrets are referenced"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, examples, files := manifests(t)
			var all []byte
			for _, f := range files {
				b, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				all = append(append(all, b...), "\n---\n"...)
			}
			edited := tc.edit(string(all))
			if edited == string(all) {
				t.Fatal("the edit changed nothing: the test is out of date")
			}
			objs, err := decodeAll(strings.NewReader(edited))
			if err != nil {
				t.Fatal(err)
			}
			errs := check(objs, examples, loadRules(t, files))
			if !slices.ContainsFunc(errs, func(e string) bool { return strings.Contains(e, tc.want) }) {
				t.Errorf("want a problem containing %q, got %q", tc.want, errs)
			}
		})
	}
}
