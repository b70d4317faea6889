package main

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func TestGenerateCommand(t *testing.T) {
	t.Parallel()
	db := pg.NewDatabase(t)
	env := map[string]string{"DATABASE_URL": db.AdminURL}
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("correct horse battery\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	shots := t.TempDir()
	out := mustStaffctl(t, env)("generate", "--org-slug", "demo", "--employees", "4", "--days", "2", "--end-date", "2026-11-25",
		"--seed", "3", "--password-file", pw, "--screenshot-files", shots, "--time-zone", "Asia/Tashkent")
	for _, want := range []string{
		`Organisation 1 (slug "demo", time zone Asia/Tashkent): 10 departments, 4 employees, days 2026-11-24 to 2026-11-25`,
		"Time series       partitions",
		"HR               hr@demo.example / (from --password-file)",
		"EMPLOYEE         employee@demo.example / (from --password-file)",
		"DEPARTMENT_LEAD  lead-engineering@demo.example",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	m := regexp.MustCompile(`screenshots\s+(\d+) rows`).FindStringSubmatch(out)
	files, _ := filepath.Glob(filepath.Join(shots, "screenshots", "1", "*", "*.png"))
	if m == nil || m[1] == "0" || m[1] != strconv.Itoa(len(files)) {
		t.Errorf("screenshot rows %v, %d files", m, len(files))
	}

	// The same slug again is refused naming it; a missing slug is a usage error.
	if _, _, err := staffctl(t, env, "generate", "--org-slug", "demo", "--employees", "1", "--days", "1"); err == nil || !strings.Contains(err.Error(), "slug") {
		t.Errorf("a second demo: err = %v", err)
	}
	var u usageError
	if _, _, err := staffctl(t, env, "generate"); !errors.As(err, &u) {
		t.Errorf("no slug: err = %v, want a usage error", err)
	}
}
