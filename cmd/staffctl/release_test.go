package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/staffcontrol/staffcontrol/internal/bench/stack"
	"github.com/staffcontrol/staffcontrol/internal/logtest"
)

// moduleRoot is the module's root seen from this package's directory.
const moduleRoot = "../.."

// requireTool returns the tool's path; without it the test is skipped, or
// fails when requireEnv is set to 1 (CI installs the tool and sets it).
func requireTool(t *testing.T, tool, requireEnv string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		if os.Getenv(requireEnv) == "1" {
			t.Fatalf("%s is required (%s=1): %v", tool, requireEnv, err)
		}
		t.Skipf("%s not installed (set %s=1 to fail instead)", tool, requireEnv)
	}
	return p
}

func TestReleaseKeysAndVerify(t *testing.T) {
	dir := t.TempDir()
	out, _, err := staffctl(t, nil, "release", "keygen", "--out", filepath.Join(dir, "k"))
	if err != nil || !strings.Contains(out, "k.key") {
		t.Fatalf("keygen: %v %q", err, out)
	}
	if fi, err := os.Stat(filepath.Join(dir, "k.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("private key mode: %v %v", fi, err)
	}
	if _, _, err := staffctl(t, nil, "release", "keygen", "--out", filepath.Join(dir, "k")); err == nil {
		t.Fatal("keygen overwrote an existing key")
	}
	key, err := readPrivateKey(filepath.Join(dir, "k.key"))
	if err != nil {
		t.Fatal(err)
	}
	rel := filepath.Join(dir, "rel")
	if err := os.Mkdir(rel, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{"a-linux-amd64": "binary a", "b.tar.gz": "package b"} {
		if err := os.WriteFile(filepath.Join(rel, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sums, err := checksums(rel, []string{"b.tar.gz", "a-linux-amd64"})
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^[0-9a-f]{64}  a-linux-amd64\n[0-9a-f]{64}  b\.tar\.gz\n$`).Match(sums) {
		t.Fatalf("SHA256SUMS not sorted sha256sum lines:\n%s", sums)
	}
	write := func(name string, data []byte) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(rel, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("SHA256SUMS", sums)
	sig := signSums(key, sums)
	write("SHA256SUMS.sig", sig)
	verify := func() error {
		_, _, err := staffctl(t, nil, "release", "verify", "--dir", rel, "--public-key", filepath.Join(dir, "k.pub"))
		return err
	}
	if err := verify(); err != nil {
		t.Fatalf("verify of a good release: %v", err)
	}
	// An independent verifier: openssl reads the PEM keys and the raw signature.
	if openssl, err := exec.LookPath("openssl"); err == nil {
		cmd := exec.Command(openssl, "pkeyutl", "-verify", "-pubin", "-inkey", filepath.Join(dir, "k.pub"), "-rawin",
			"-in", filepath.Join(rel, "SHA256SUMS"), "-sigfile", filepath.Join(rel, "SHA256SUMS.sig"))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("openssl does not verify the signature: %v %s", err, out)
		}
	}

	tests := []struct {
		name   string
		tamper func()
		undo   func()
	}{
		{"file changed", func() { write("b.tar.gz", []byte("package B")) }, func() { write("b.tar.gz", []byte("package b")) }},
		{"file missing", func() { os.Remove(filepath.Join(rel, "a-linux-amd64")) }, func() { write("a-linux-amd64", []byte("binary a")) }},
		{"sums changed", func() { write("SHA256SUMS", bytes.Replace(sums, []byte("a-linux"), []byte("A-linux"), 1)) }, func() { write("SHA256SUMS", sums) }},
		{"signature changed", func() {
			bad := append([]byte(nil), sig...)
			bad[10] ^= 1
			write("SHA256SUMS.sig", bad)
		}, func() { write("SHA256SUMS.sig", sig) }},
		{"signature truncated", func() { write("SHA256SUMS.sig", sig[:63]) }, func() { write("SHA256SUMS.sig", sig) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.tamper()
			defer tt.undo()
			if err := verify(); err == nil {
				t.Fatal("verify accepted a tampered release")
			}
		})
	}
	other := filepath.Join(dir, "other")
	mustStaffctl(t, nil)("release", "keygen", "--out", other)
	if _, _, err := staffctl(t, nil, "release", "verify", "--dir", rel, "--public-key", other+".pub"); err == nil {
		t.Fatal("verify accepted another key's signature")
	}
}

func TestParseSums(t *testing.T) {
	h := strings.Repeat("ab", 32)
	tests := []struct {
		name, in string
		ok       bool
	}{
		{"two files", h + "  a\n" + h + " *b\n", true},
		{"empty", "", false},
		{"short hash", "abcd  a\n", false},
		{"path", h + "  ../etc/passwd\n", false},
		{"directory", h + "  d/a\n", false},
		{"duplicate", h + "  a\n" + h + "  a\n", false},
		{"no name", h + "  \n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := parseSums([]byte(tt.in)); (err == nil) != tt.ok {
				t.Fatalf("parseSums(%q) error %v, want ok=%v", tt.in, err, tt.ok)
			}
		})
	}
}

func FuzzParseSums(f *testing.F) {
	f.Add([]byte(strings.Repeat("0", 64) + "  gateway-linux-amd64\n"))
	f.Add([]byte("x  y\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		sums, err := parseSums(data)
		if err != nil {
			return
		}
		for name, hash := range sums {
			if len(hash) != 64 || strings.ContainsAny(name, "/\\\x00") || name == ".." || name == "" {
				t.Fatalf("accepted %q → %q", name, hash)
			}
		}
	})
}

func TestTarGzDeterministic(t *testing.T) {
	files := []tarFile{{"z.sh", 0o755, []byte("#!/bin/sh\n")}, {"a.yml", 0o644, []byte("a: 1\n")}}
	mtime := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var one, two bytes.Buffer
	if err := writeTarGz(&one, "pkg", files, mtime); err != nil {
		t.Fatal(err)
	}
	if err := writeTarGz(&two, "pkg", []tarFile{files[1], files[0]}, mtime); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(one.Bytes(), two.Bytes()) {
		t.Fatal("the same files in another order gave other bytes")
	}
	zr, err := gzip.NewReader(&one)
	if err != nil {
		t.Fatal(err)
	}
	if !zr.ModTime.IsZero() || zr.Name != "" {
		t.Fatalf("gzip header carries %v %q", zr.ModTime, zr.Name)
	}
	tr := tar.NewReader(zr)
	var got []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" || !h.ModTime.Equal(mtime) {
			t.Fatalf("%s: owner %d:%d %q:%q time %v", h.Name, h.Uid, h.Gid, h.Uname, h.Gname, h.ModTime)
		}
		got = append(got, h.Name+" "+fs.FileMode(h.Mode).String())
	}
	want := []string{"pkg/ -rwxr-xr-x", "pkg/a.yml -rw-r--r--", "pkg/z.sh -rwxr-xr-x"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("entries %v, want %v", got, want)
	}
}

// copySource copies what a build reads (go.mod, go.sum, cmd, internal,
// deploy) into a new directory, so two builds run from different paths.
func copySource(t *testing.T, dst string) {
	t.Helper()
	for _, top := range []string{"go.mod", "go.sum", "cmd", "internal", "deploy"} {
		err := filepath.WalkDir(filepath.Join(moduleRoot, top), func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(moduleRoot, path)
			if err != nil {
				return err
			}
			target := filepath.Join(dst, rel)
			switch {
			case d.IsDir():
				return os.MkdirAll(target, 0o755)
			case !d.Type().IsRegular():
				return nil
			}
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			return os.WriteFile(target, data, info.Mode().Perm())
		})
		if err != nil {
			t.Fatalf("copy source: %v", err)
		}
	}
}

// testRelease is one release build of the gateway for this machine's
// architecture (so the install test can run it) from a copy of the source.
func testRelease(t *testing.T, key, src, out string) {
	t.Helper()
	copySource(t, src)
	stdout, stderr, err := staffctl(t, nil, "release", "build", "--source", src, "--out", out, "--signing-key", key,
		"--arch", runtime.GOARCH, "--binaries", "gateway",
		"--version", "v2.0.0-test.1", "--commit", "0123456789abcdef0123456789abcdef01234567", "--date", "2026-12-01T10:00:00Z")
	if err != nil {
		t.Fatalf("release build: %v\n%s\n%s", err, stdout, stderr)
	}
}

// TestRelease builds the gateway's release twice from two copies of the
// source at different paths into different directories and compares every
// byte (binary, package, SHA256SUMS, signature); then installs it with
// install-gateway.sh into a throwaway root against a real Agent API, and
// checks that tampered packages and signatures are refused with nothing
// written.
func TestRelease(t *testing.T) {
	if runtime.GOOS != "linux" || (runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64") {
		t.Skip("releases are built and installed on linux/amd64 and linux/arm64")
	}
	dir := t.TempDir()
	mustStaffctl(t, nil)("release", "keygen", "--out", filepath.Join(dir, "release"))
	key, pub := filepath.Join(dir, "release.key"), filepath.Join(dir, "release.pub")
	one, two := filepath.Join(dir, "one", "out"), filepath.Join(dir, "elsewhere", "two", "dist")
	testRelease(t, key, filepath.Join(dir, "one", "src"), one)
	testRelease(t, key, filepath.Join(dir, "elsewhere", "two", "source-copy"), two)
	pkg := "staff-gateway-v2.0.0-test.1-linux-" + runtime.GOARCH + ".tar.gz"
	names := []string{"gateway-linux-" + runtime.GOARCH, pkg, "install-gateway.sh", "SHA256SUMS", "SHA256SUMS.sig"}

	t.Run("reproducible", func(t *testing.T) {
		for _, n := range names {
			a, err := os.ReadFile(filepath.Join(one, n))
			if err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(filepath.Join(two, n))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(a, b) {
				t.Errorf("%s differs between two builds (%d and %d bytes)", n, len(a), len(b))
			}
		}
		bin, err := os.ReadFile(filepath.Join(one, "gateway-linux-"+runtime.GOARCH))
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []string{"v2.0.0-test.1", "0123456789abcdef0123456789abcdef01234567", "2026-12-01T10:00:00Z"} {
			if !bytes.Contains(bin, []byte(s)) {
				t.Errorf("the binary lacks the stamped %q", s)
			}
		}
		if bytes.Contains(bin, []byte(filepath.Join(dir, "one"))) {
			t.Error("the binary contains its build directory (not -trimpath)")
		}
		out := mustStaffctl(t, nil)("release", "verify", "--dir", one, "--public-key", pub)
		if !strings.Contains(out, "3 files") {
			t.Errorf("verify: %q", out)
		}
		v, err := exec.Command(filepath.Join(one, "gateway-linux-"+runtime.GOARCH), "--version").Output()
		if err != nil || !strings.Contains(string(v), "gateway v2.0.0-test.1 (commit 0123456789ab, 2026-12-01T10:00:00Z") {
			t.Errorf("--version: %q %v", v, err)
		}
	})

	t.Run("install", func(t *testing.T) { testInstall(t, dir, one, pkg, pub) })
}

// installScript runs the release's install-gateway.sh with args, standard
// input not a terminal and no STAFF_GATEWAY_* from the test's environment.
func installScript(t *testing.T, release string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", append([]string{filepath.Join(release, "install-gateway.sh")}, args...)...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "STAFF_GATEWAY_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func testInstall(t *testing.T, dir, release, pkg, pub string) {
	requireTool(t, "openssl", "OPENSSL_REQUIRE")
	ctx := context.Background()
	db := pg.NewDatabase(t)
	st, err := stack.Start(ctx, stack.Options{DatabaseURL: db.AdminURL, Replicas: 1, PoolSize: 2, Logger: logtest.New(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close(context.Background()) })
	org, err := st.NewOrganization(ctx, "Install Test", "install-test")
	if err != nil {
		t.Fatal(err)
	}
	reg, err := st.RegisterGateway(ctx, org.ID, "gw-install-1")
	if err != nil {
		t.Fatal(err)
	}
	flags := func(root string) []string {
		return []string{"--package", filepath.Join(release, pkg), "--public-key", pub, "--cloud-url", st.URL,
			"--organization-id", itoa(org.ID), "--provisioning-token", reg.Token, "--serial", reg.Serial, "--root", root}
	}

	// Refusals first: each leaves its root empty.
	refusals := []struct {
		name, want string
		prepare    func(t *testing.T, rel string) // tampers with a copy of the release
		args       func(root, rel string) []string
	}{
		{"package changed", "does not match its checksum", func(t *testing.T, rel string) { flipByte(t, filepath.Join(rel, pkg), 1000) }, nil},
		{"signature changed", "does not verify", func(t *testing.T, rel string) { flipByte(t, filepath.Join(rel, "SHA256SUMS.sig"), 5) }, nil},
		{"checksums changed", "does not verify", func(t *testing.T, rel string) { flipByte(t, filepath.Join(rel, "SHA256SUMS"), 3) }, nil},
		{"another key", "does not verify", func(t *testing.T, rel string) {
			mustStaffctl(t, nil)("release", "keygen", "--out", filepath.Join(rel, "other"))
		}, func(root, rel string) []string {
			a := flags(root)
			a[3] = filepath.Join(rel, "other.pub")
			return a
		}},
		{"no token, no terminal", "--provisioning-token is required", nil, func(root, rel string) []string {
			a := flags(root)
			return append(a[:8], a[10:]...)
		}},
	}
	for i, r := range refusals {
		t.Run("refuses "+r.name, func(t *testing.T) {
			rel := filepath.Join(dir, "tampered", itoa(int64(i)))
			copyDir(t, release, rel)
			if r.prepare != nil {
				r.prepare(t, rel)
			}
			root := filepath.Join(dir, "refused-root", itoa(int64(i)))
			if err := os.MkdirAll(root, 0o755); err != nil {
				t.Fatal(err)
			}
			args := flags(root)
			args[1] = filepath.Join(rel, pkg)
			if r.args != nil {
				args = r.args(root, rel)
				args[1] = filepath.Join(rel, pkg)
			}
			out, err := installScript(t, rel, args...)
			if err == nil || !strings.Contains(out, r.want) {
				t.Fatalf("want a refusal with %q, got %v:\n%s", r.want, err, out)
			}
			if entries, _ := os.ReadDir(root); len(entries) != 0 {
				t.Fatalf("a refused installation wrote %v", entries)
			}
		})
	}

	root := filepath.Join(dir, "root")
	out, err := installScript(t, release, flags(root)...)
	if err != nil {
		t.Fatalf("install: %v\n%s", err, out)
	}
	for _, want := range []string{"signature and checksum of " + pkg + " verified", "provisioned as gateway " + reg.ID,
		"OK: connected to " + st.URL + " as gateway " + reg.ID, "install-gateway.sh: done"} {
		if !strings.Contains(out, want) {
			t.Errorf("install output lacks %q:\n%s", want, out)
		}
	}
	modes := map[string]fs.FileMode{
		"usr/local/bin/staff-gateway":              0o755,
		"etc/staff-gateway":                        0o750,
		"etc/staff-gateway/gateway.yml":            0o600,
		"etc/staff-gateway/gateway.yml.example":    0o640,
		"etc/systemd/system/staff-gateway.service": 0o644,
		"var/lib/staff-gateway":                    0o700,
		"var/lib/staff-gateway/gateway-key.json":   0o600,
		"var/log/staff-gateway":                    0o750,
	}
	for p, want := range modes {
		fi, err := os.Stat(filepath.Join(root, p))
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode().Perm(), want)
		}
	}
	conf, err := os.ReadFile(filepath.Join(root, "etc/staff-gateway/gateway.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`url: "` + st.URL + `"`, "id: " + itoa(org.ID), `provisioning_token: "` + reg.Token + `"`,
		"path: /var/lib/staff-gateway/buffer.sqlite", `serial: "` + reg.Serial + `"`} {
		if !strings.Contains(string(conf), want) {
			t.Errorf("gateway.yml lacks %q:\n%s", want, conf)
		}
	}
	var creds struct {
		GatewayID string `json:"gateway_id"`
		APIKey    string `json:"api_key"`
	}
	data, err := os.ReadFile(filepath.Join(root, "var/lib/staff-gateway/gateway-key.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &creds); err != nil || creds.GatewayID != reg.ID || creds.APIKey == "" {
		t.Fatalf("key file: %v %+v", err, creds)
	}
	unit, err := os.ReadFile(filepath.Join(moduleRoot, "deploy/gateway/staff-gateway.service"))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(root, "etc/systemd/system/staff-gateway.service")); !bytes.Equal(got, unit) {
		t.Error("the installed unit is not the source's")
	}

	// Again: the configuration and the enrolment are kept, the test passes.
	out, err = installScript(t, release, flags(root)...)
	if err != nil || !strings.Contains(out, "keeping the existing") || !strings.Contains(out, "already provisioned as gateway "+reg.ID) ||
		!strings.Contains(out, "OK: connected") {
		t.Fatalf("second install: %v\n%s", err, out)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func flipByte(t *testing.T, path string, at int) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[at%len(data)] ^= 0x20
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), data, info.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
}

// TestInstallScriptShellcheck keeps install-gateway.sh shellcheck-clean.
func TestInstallScriptShellcheck(t *testing.T) {
	sc := requireTool(t, "shellcheck", "SHELLCHECK_REQUIRE")
	out, err := exec.Command(sc, "--shell=sh", "--severity=style", filepath.Join(moduleRoot, "deploy/gateway/install-gateway.sh")).CombinedOutput()
	if err != nil {
		t.Fatalf("shellcheck: %v\n%s", err, out)
	}
}

// gatewayExposure is the unit's `systemd-analyze security` exposure score,
// as docs/operations.md states it; a change to the hardening changes it.
const gatewayExposure = "1.1"

// TestGatewayUnit checks the systemd unit with systemd-analyze: verify clean
// (ExecStart pointed at an existing file, which verify requires) and the
// exposure score.
func TestGatewayUnit(t *testing.T) {
	sa := requireTool(t, "systemd-analyze", "SYSTEMD_ANALYZE_REQUIRE")
	unit, err := os.ReadFile(filepath.Join(moduleRoot, "deploy/gateway/staff-gateway.service"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "staff-gateway")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(unit, []byte("ExecStart=/usr/local/bin/staff-gateway ")) {
		t.Fatal("the unit's ExecStart is not /usr/local/bin/staff-gateway")
	}
	path := filepath.Join(dir, "staff-gateway.service")
	if err := os.WriteFile(path, bytes.ReplaceAll(unit, []byte("/usr/local/bin/staff-gateway"), []byte(bin)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(sa, "verify", path).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	out, err = exec.Command(sa, "security", "--offline=true", "--no-pager", path).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for staff-gateway\.service: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure level in:\n%s", out)
	}
	if string(m[1]) != gatewayExposure {
		t.Fatalf("exposure %s, want %s (update the hardening or docs/operations.md and this constant)\n%s", m[1], gatewayExposure, out)
	}
}

func TestVersionFlag(t *testing.T) {
	out, _, err := staffctl(t, nil, "--version")
	if err != nil || !strings.HasPrefix(out, "staffctl ") || !strings.Contains(out, "go1.") {
		t.Fatalf("--version: %v %q", err, out)
	}
}
