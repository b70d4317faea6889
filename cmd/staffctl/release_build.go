package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/buildinfo"
)

// The gateway package's files from the source tree (deploy/gateway), and
// their modes in the package.
var gatewayPackageFiles = []struct {
	name string
	mode int64
}{
	{"gateway.yml", 0o644},
	{"install-gateway.sh", 0o755},
	{"staff-gateway.service", 0o644},
}

// gitOutput runs git in dir and returns its trimmed standard output.
func gitOutput(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}

// buildRelease writes a release into o.out (new or empty) and returns the
// names of the files written, SHA256SUMS and its signature last.
func buildRelease(ctx context.Context, o buildOptions, log io.Writer) ([]string, error) {
	key, err := readPrivateKey(o.signingKey)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return nil, fmt.Errorf("release build: %w", err)
	}
	if entries, err := os.ReadDir(o.out); err != nil {
		return nil, fmt.Errorf("release build: %w", err)
	} else if len(entries) > 0 {
		return nil, fmt.Errorf("release build: %s is not empty (a release directory holds one release)", o.out)
	}
	var files []string
	for _, arch := range o.arches {
		for _, bin := range o.binaries {
			name := fmt.Sprintf("%s-linux-%s", bin, arch)
			fmt.Fprintf(log, "building %s (%s)\n", name, o.version)
			if err := goBuild(ctx, o, arch, bin, filepath.Join(o.out, name)); err != nil {
				return nil, err
			}
			files = append(files, name)
		}
		if contains(o.binaries, "gateway") {
			name := fmt.Sprintf("staff-gateway-%s-linux-%s.tar.gz", o.version, arch)
			if err := writeGatewayPackage(o, filepath.Join(o.out, "gateway-linux-"+arch), filepath.Join(o.out, name)); err != nil {
				return nil, err
			}
			files = append(files, name)
		}
	}
	if contains(o.binaries, "gateway") {
		script, err := os.ReadFile(filepath.Join(o.source, "deploy", "gateway", "install-gateway.sh"))
		if err != nil {
			return nil, fmt.Errorf("release build: %w", err)
		}
		if err := writeFileAt(filepath.Join(o.out, "install-gateway.sh"), script, 0o755, o.date); err != nil {
			return nil, err
		}
		files = append(files, "install-gateway.sh")
	}
	sums, err := checksums(o.out, files)
	if err != nil {
		return nil, err
	}
	if err := writeFileAt(filepath.Join(o.out, "SHA256SUMS"), sums, 0o644, o.date); err != nil {
		return nil, err
	}
	if err := writeFileAt(filepath.Join(o.out, "SHA256SUMS.sig"), signSums(key, sums), 0o644, o.date); err != nil {
		return nil, err
	}
	return append(files, "SHA256SUMS", "SHA256SUMS.sig"), nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// goBuild builds ./cmd/bin for linux/arch into out: static, without paths,
// build id or VCS stamp of the toolchain's own, with the release's version,
// commit and date; the environment that would change the bytes is pinned.
func goBuild(ctx context.Context, o buildOptions, arch, bin, out string) error {
	abs, err := filepath.Abs(out)
	if err != nil {
		return fmt.Errorf("release build: %w", err)
	}
	ldflags := fmt.Sprintf("-s -w -buildid= -X %[1]s.version=%[2]s -X %[1]s.commit=%[3]s -X %[1]s.date=%[4]s",
		buildinfo.Path, o.version, o.commit, o.date.Format(time.RFC3339))
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false", "-mod=readonly",
		"-ldflags", ldflags, "-o", abs, "./cmd/"+bin)
	cmd.Dir = o.source
	cmd.Env = append(withoutKeys(os.Environ(), "GOOS", "GOARCH", "CGO_ENABLED", "GOFLAGS", "GOAMD64", "GOARM64",
		"GOEXPERIMENT", "GOWORK", "GO_EXTLINK_ENABLED"),
		"GOOS=linux", "GOARCH="+arch, "CGO_ENABLED=0", "GOFLAGS=", "GOAMD64=v1", "GOARM64=v8.0", "GOEXPERIMENT=", "GOWORK=off")
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("release build: go build ./cmd/%s for linux/%s: %v\n%s", bin, arch, err, stderr.String())
	}
	return os.Chtimes(abs, o.date, o.date)
}

// withoutKeys drops the variables named in keys from environ.
func withoutKeys(environ []string, keys ...string) []string {
	var out []string
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		if !contains(keys, k) {
			out = append(out, kv)
		}
	}
	return out
}

// tarFile is one regular file of a package.
type tarFile struct {
	name string
	mode int64
	data []byte
}

// writeGatewayPackage writes the gateway's tar.gz: the binary (as
// "gateway"), the unit, the install script and the sample configuration,
// under one directory named like the package.
func writeGatewayPackage(o buildOptions, binary, out string) error {
	top := strings.TrimSuffix(filepath.Base(out), ".tar.gz")
	bin, err := os.ReadFile(binary)
	if err != nil {
		return fmt.Errorf("release build: %w", err)
	}
	files := []tarFile{{name: "gateway", mode: 0o755, data: bin}}
	for _, f := range gatewayPackageFiles {
		data, err := os.ReadFile(filepath.Join(o.source, "deploy", "gateway", f.name))
		if err != nil {
			return fmt.Errorf("release build: %w", err)
		}
		files = append(files, tarFile{name: f.name, mode: f.mode, data: data})
	}
	var buf bytes.Buffer
	if err := writeTarGz(&buf, top, files, o.date); err != nil {
		return err
	}
	return writeFileAt(out, buf.Bytes(), 0o644, o.date)
}

// writeTarGz writes a deterministic tar.gz: one directory top, the files
// in it sorted by name, ustar headers with owner 0:0 and no owner names,
// every time set to mtime, and a gzip header without name or time.
func writeTarGz(w io.Writer, top string, files []tarFile, mtime time.Time) error {
	sorted := append([]tarFile(nil), files...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].name < sorted[j].name })
	gz, err := gzip.NewWriterLevel(w, gzip.BestCompression)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(gz)
	hdr := func(name string, mode int64, typ byte, size int64) *tar.Header {
		return &tar.Header{Name: name, Mode: mode, Typeflag: typ, Size: size, ModTime: mtime, Format: tar.FormatUSTAR}
	}
	if err := tw.WriteHeader(hdr(top+"/", 0o755, tar.TypeDir, 0)); err != nil {
		return fmt.Errorf("release build: tar: %w", err)
	}
	for _, f := range sorted {
		if err := tw.WriteHeader(hdr(top+"/"+f.name, f.mode, tar.TypeReg, int64(len(f.data)))); err != nil {
			return fmt.Errorf("release build: tar: %w", err)
		}
		if _, err := tw.Write(f.data); err != nil {
			return fmt.Errorf("release build: tar: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("release build: tar: %w", err)
	}
	return gz.Close()
}

// writeFileAt writes data to path with mode and sets its times.
func writeFileAt(path string, data []byte, mode os.FileMode, t time.Time) error {
	if err := os.WriteFile(path, data, mode); err != nil {
		return fmt.Errorf("release build: %w", err)
	}
	if err := os.Chmod(path, mode); err != nil {
		return fmt.Errorf("release build: %w", err)
	}
	return os.Chtimes(path, t, t)
}

// checksums is SHA256SUMS for names in dir: "hash  name" lines sorted by
// name, the format `sha256sum -c` reads.
func checksums(dir string, names []string) ([]byte, error) {
	sorted := append([]string(nil), names...)
	sort.Strings(sorted)
	var b bytes.Buffer
	for _, n := range sorted {
		sum, err := fileSHA256(filepath.Join(dir, n))
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(&b, "%s  %s\n", sum, n)
	}
	return b.Bytes(), nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("release: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("release: %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// parseSums reads SHA256SUMS: each line "<64 hex>  <name>" (or " *name"),
// a plain file name (no directories); at least one line.
func parseSums(data []byte) (map[string]string, error) {
	sums := map[string]string{}
	for i, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		hash, name, ok := strings.Cut(line, " ")
		name = strings.TrimPrefix(strings.TrimPrefix(name, " "), "*")
		if _, err := hex.DecodeString(hash); !ok || err != nil || len(hash) != 64 {
			return nil, fmt.Errorf("release: SHA256SUMS line %d: want \"<sha256 hex>  <name>\"", i+1)
		}
		if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\\\x00") {
			return nil, fmt.Errorf("release: SHA256SUMS line %d: %q is not a plain file name", i+1, name)
		}
		if _, dup := sums[name]; dup {
			return nil, fmt.Errorf("release: SHA256SUMS line %d: %s listed twice", i+1, name)
		}
		sums[name] = strings.ToLower(hash)
	}
	if len(sums) == 0 {
		return nil, errors.New("release: SHA256SUMS lists no file")
	}
	return sums, nil
}
