// Package compose holds no code: its tests check deploy/compose/compose.yml
// (the development and demonstration stack) and deploy/docker/Dockerfile
// against the rules of docs/operations.md ("Deploying the cloud"): non-root
// users, read-only root filesystems for our services, pinned image tags,
// mounted paths that exist, unique host ports, and environment keys the
// services really read. `docker compose config -q` runs too where docker
// compose works.
package compose
