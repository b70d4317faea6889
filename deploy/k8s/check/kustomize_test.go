package check

import (
	"bytes"
	"strings"
	"testing"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// TestKustomizeBuild: `kubectl apply -k deploy/k8s` applies what kustomize
// renders from kustomization.yaml (kustomize's own library, as kubectl
// embeds it): it renders, every resource of it validates against the
// Kubernetes schemas, and the images carry the kustomization's tags.
func TestKustomizeBuild(t *testing.T) {
	v := newValidator(t)
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), manifestDir)
	if err != nil {
		t.Fatalf("kustomize build: %v", err)
	}
	out, err := m.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	problems, valid := validate(v, "kustomize build", bytes.NewReader(out))
	for _, p := range problems {
		t.Error(p)
	}
	if valid < 17 {
		t.Errorf("%d resources rendered and valid, want 17 (everything but the Secrets)", valid)
	}
	for _, img := range []string{"staffcontrol/agent-api:2.0.0", "staffcontrol/dashboard-api:2.0.0", "staffcontrol/staffctl:2.0.0"} {
		if !strings.Contains(string(out), "image: "+img+"\n") {
			t.Errorf("the rendered manifests do not run %s", img)
		}
	}
	if strings.Contains(string(out), "kind: Secret\n") {
		t.Error("kustomize renders a Secret: Secrets are never in the repository")
	}
}
