package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

const releaseUsage = `usage:
  staffctl release build  --out DIR --signing-key FILE [--version V] [--commit SHA] [--date RFC3339]
                          [--source DIR] [--arch amd64,arm64] [--binaries gateway,agent-api,dashboard-api,staffctl]
  staffctl release keygen --out PREFIX
  staffctl release verify --dir DIR --public-key FILE

build: static binaries (CGO_ENABLED=0, -trimpath, no build id, version, commit and
date stamped in) for linux/amd64 and linux/arm64, the gateway package
staff-gateway-V-linux-ARCH.tar.gz (binary, systemd unit, install-gateway.sh,
sample gateway.yml; a deterministic tar), install-gateway.sh, SHA256SUMS and
SHA256SUMS.sig (ed25519 over SHA256SUMS). Two builds of one commit with one Go
toolchain give the same bytes. The version defaults to git describe, the commit
and date to HEAD's (the date is the commit's, never the clock).
keygen: an ed25519 key pair, PEM (PREFIX.key, mode 0600; PREFIX.pub), readable
by openssl.
verify: the signature over SHA256SUMS and every file it lists.
`

func runRelease(ctx context.Context, e env, args []string) error {
	sub, rest, err := subcommand(e, args, releaseUsage, "build", "keygen", "verify")
	if err != nil {
		return err
	}
	fs := flag.NewFlagSet("staffctl release "+sub, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() { fmt.Fprint(fs.Output(), releaseUsage+"\nflags:\n"); fs.PrintDefaults() }
	switch sub {
	case "keygen":
		out := fs.String("out", "", "path prefix of the key pair: PREFIX.key and PREFIX.pub (required)")
		if err := parseFlags(fs, rest); err != nil {
			return err
		}
		if *out == "" {
			return usagef("release keygen: --out is required")
		}
		if err := writeKeyPair(*out); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "wrote %s.key (secret, mode 0600) and %s.pub\n", *out, *out)
		return nil
	case "verify":
		dir := fs.String("dir", ".", "the release directory (SHA256SUMS, SHA256SUMS.sig and the files)")
		pub := fs.String("public-key", "", "the release public key, PEM (required)")
		if err := parseFlags(fs, rest); err != nil {
			return err
		}
		if *pub == "" {
			return usagef("release verify: --public-key is required")
		}
		n, err := verifyRelease(*dir, *pub)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "OK: the signature and %d files of %s verified\n", n, *dir)
		return nil
	}
	var o buildOptions
	fs.StringVar(&o.out, "out", "", "output directory, new or empty (required)")
	fs.StringVar(&o.signingKey, "signing-key", "", "ed25519 private key, PEM (from `staffctl release keygen`; required)")
	fs.StringVar(&o.version, "version", "", "version to stamp (default: git describe --tags --always --dirty)")
	fs.StringVar(&o.commit, "commit", "", "commit to stamp (default: git rev-parse HEAD)")
	date := fs.String("date", "", "build date to stamp and file times, RFC 3339 (default: HEAD's commit time)")
	fs.StringVar(&o.source, "source", ".", "the module's root directory")
	arches := fs.String("arch", "amd64,arm64", "linux architectures, comma-separated")
	bins := fs.String("binaries", strings.Join(releaseBinaries, ","), "binaries to build, comma-separated")
	if err := parseFlags(fs, rest); err != nil {
		return err
	}
	if o.out == "" || o.signingKey == "" {
		return usagef("release build: --out and --signing-key are required")
	}
	o.arches = splitList(*arches)
	o.binaries = splitList(*bins)
	if err := o.defaults(ctx, *date); err != nil {
		return err
	}
	if err := o.check(); err != nil {
		return usagef("release build: %v", err)
	}
	files, err := buildRelease(ctx, o, e.stderr)
	if err != nil {
		return err
	}
	for _, f := range files {
		fmt.Fprintln(e.stdout, filepath.Join(o.out, f))
	}
	return nil
}

// releaseBinaries are the commands a release ships.
var releaseBinaries = []string{"gateway", "agent-api", "dashboard-api", "staffctl"}

// buildOptions is what one release build needs.
type buildOptions struct {
	out, signingKey, source string
	version, commit         string
	date                    time.Time
	arches, binaries        []string
}

// stampPattern is what may be stamped with -X (no spaces or quotes).
var stampPattern = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z._+-]{0,99}$`)

// defaults fills the version, commit and date from git where not given.
func (o *buildOptions) defaults(ctx context.Context, date string) error {
	var err error
	if o.version == "" {
		if o.version, err = gitOutput(ctx, o.source, "describe", "--tags", "--always", "--dirty"); err != nil {
			return fmt.Errorf("release build: no --version and %w", err)
		}
	}
	if o.commit == "" {
		if o.commit, err = gitOutput(ctx, o.source, "rev-parse", "HEAD"); err != nil {
			return fmt.Errorf("release build: no --commit and %w", err)
		}
	}
	if date == "" {
		if date, err = gitOutput(ctx, o.source, "log", "-1", "--format=%ct"); err != nil {
			return fmt.Errorf("release build: no --date and %w", err)
		}
		secs, err := strconv.ParseInt(date, 10, 64)
		if err != nil {
			return fmt.Errorf("release build: commit time %q: %w", date, err)
		}
		o.date = time.Unix(secs, 0).UTC()
		return nil
	}
	t, err := time.Parse(time.RFC3339, date)
	if err != nil {
		return usagef("release build: --date: %v", err)
	}
	o.date = t.UTC().Truncate(time.Second)
	return nil
}

func (o *buildOptions) check() error {
	if !stampPattern.MatchString(o.version) {
		return fmt.Errorf("--version %q: want letters, digits and . _ + - only", o.version)
	}
	if !stampPattern.MatchString(o.commit) {
		return fmt.Errorf("--commit %q: want letters, digits and . _ + - only", o.commit)
	}
	if len(o.arches) == 0 || len(o.binaries) == 0 {
		return errors.New("--arch and --binaries must name at least one each")
	}
	for _, a := range o.arches {
		if a != "amd64" && a != "arm64" {
			return fmt.Errorf("--arch %q: want amd64 or arm64", a)
		}
	}
	for _, b := range o.binaries {
		known := false
		for _, r := range releaseBinaries {
			known = known || b == r
		}
		if !known {
			return fmt.Errorf("--binaries %q: want some of %s", b, strings.Join(releaseBinaries, ", "))
		}
	}
	if _, err := os.Stat(filepath.Join(o.source, "go.mod")); err != nil {
		return fmt.Errorf("--source %s is not the module's root: %w", o.source, err)
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
