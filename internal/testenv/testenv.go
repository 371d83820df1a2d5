// Package testenv gives tests the real parts they run against — root,
// dockerd, the Terraform CLI — and fails, naming the setup command, when one
// is missing. Tests never skip for a missing part.
package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Setup is the command that installs every part the tests need.
const Setup = "make tools"

// RequireLocalPlatform fails the test unless it can start dockerd nodes.
func RequireLocalPlatform(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatalf("the local platform needs root: run the tests as root (sudo %s test)", "make")
	}
	if _, err := exec.LookPath("dockerd"); err != nil {
		t.Fatalf("dockerd is not installed: run `%s` (it installs Debian's docker.io)", Setup)
	}
}

// StateDir returns a fresh, short state directory (node sockets live under
// it, and unix socket paths are limited) that is removed after the test.
func StateDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "ak")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// Leftovers lists what remains on the machine under dir: live processes
// whose command line names it and mounts below it.
func Leftovers(dir string) []string {
	var out []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if strings.Trim(e.Name(), "0123456789") != "" {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		if i := strings.LastIndexByte(string(stat), ')'); i > 0 && i+2 < len(stat) && (stat[i+2] == 'Z' || stat[i+2] == 'X') {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(cmd), dir+"/") {
			out = append(out, "process "+e.Name()+": "+strings.ReplaceAll(string(cmd), "\x00", " "))
		}
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(mounts), "\n") {
		if strings.Contains(line, dir+"/") {
			out = append(out, "mount: "+line)
		}
	}
	return out
}
