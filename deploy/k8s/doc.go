// Package k8s holds no code: its tests check the Kubernetes manifests of
// deploy/k8s against the rules of docs/operations.md ("Deploying the
// cloud"): replicas, probes, resources and security contexts of every
// workload, a Service, PodDisruptionBudget, HorizontalPodAutoscaler and
// NetworkPolicy for each Deployment, Secrets only by reference, and
// environment keys the services really read. The schema validation with
// kubeconform is the separate module deploy/k8s/check.
package k8s
