// Command k8sschemas writes the JSON schemas of Kubernetes' API objects
// (the version check.KubernetesVersion names) for kubeconform's
// -schema-location, offline but for the Go module proxy:
//
//	go run ./cmd/k8sschemas -out DIR
//	kubeconform -strict -summary -skip Kustomization \
//	  -schema-location 'DIR/{{ .ResourceKind }}{{ .KindSuffix }}.json' ../*.yaml
//
// -spec reads a swagger.json instead of downloading the k8s.io/kubernetes
// module.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"

	"github.com/staffcontrol/staffcontrol/deploy/k8s/check"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "k8sschemas:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("k8sschemas", flag.ContinueOnError)
	out := fs.String("out", "", "directory to write the schemas into (created; required)")
	spec := fs.String("spec", "", "Kubernetes swagger.json (default: "+check.KubernetesVersion+"'s, from the k8s.io/kubernetes module)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		return errors.New("-out is required")
	}
	path := *spec
	if path == "" {
		var err error
		if path, err = check.DownloadSpec(ctx); err != nil {
			return err
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	n, err := check.Generate(b, *out)
	if err != nil {
		return err
	}
	fmt.Printf("%d schemas of Kubernetes %s in %s\n", n, check.KubernetesVersion, *out)
	return nil
}
