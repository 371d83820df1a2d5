// Package testenv gives tests the real parts they run against — root,
// dockerd, the Terraform CLI — and fails, naming the setup command, when one
// is missing. Tests never skip for a missing part.
package testenv

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
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

// AgentBinary builds autarky-agent as a static executable into a temporary
// directory and returns its path; it is also the workload image's binary.
func AgentBinary(t testing.TB, flags ...string) string {
	t.Helper()
	return StaticBinary(t, "github.com/autarky/terraform-provider-autarky/cmd/autarky-agent", flags...)
}

// SleeperBinary builds the sleeper (internal/testenv/sleeper), static and
// stripped, for tests that want many tasks and no service: loaded as a
// cluster's workload image (local.Options.WorkloadBinary) it costs about
// a megabyte a container.
func SleeperBinary(t testing.TB) string {
	t.Helper()
	return StaticBinary(t, "github.com/autarky/terraform-provider-autarky/internal/testenv/sleeper", "-trimpath", "-ldflags=-s -w")
}

// StaticBinary builds the main package pkg with cgo off (a static
// executable, as nodes and images want) and the given go build flags,
// into a temporary directory named after the package, and returns its
// path.
func StaticBinary(t testing.TB, pkg string, flags ...string) string {
	t.Helper()
	name := pkg[strings.LastIndex(pkg, "/")+1:]
	out := filepath.Join(t.TempDir(), name)
	cmd := exec.Command("go", append(append([]string{"build"}, flags...), "-o", out, pkg)...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", name, err, b)
	}
	return out
}

// Docker runs the docker CLI against host, as a user would, and returns its
// trimmed output.
func Docker(t testing.TB, host string, args ...string) string {
	t.Helper()
	cmd := exec.Command("docker", append([]string{"-H", host}, args...)...)
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	return strings.TrimSpace(string(b))
}

// Record is the part of the local platform's instance.json tests read, as an
// operator would read the state dir.
type Record struct {
	ID         string `json:"id"`
	Cluster    string `json:"cluster"`
	Pool       string `json:"pool"`
	Role       string `json:"role"`
	Addr       string `json:"addr"`
	DockerHost string `json:"docker_host"`
	PID        int    `json:"pid"`
	AgentPID   int    `json:"agent_pid"`
	NodeID     string `json:"node_id"`
}

// Records lists the instance records of a cluster's pool ("" = every pool)
// in a local platform state dir.
func Records(stateDir, cluster, pool string) []Record {
	entries, _ := os.ReadDir(filepath.Join(stateDir, "nodes"))
	var out []Record
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(stateDir, "nodes", e.Name(), "instance.json"))
		if err != nil {
			continue
		}
		var r Record
		if json.Unmarshal(b, &r) != nil {
			continue
		}
		if r.Cluster == cluster && (pool == "" || r.Pool == pool) {
			out = append(out, r)
		}
	}
	return out
}

// WaitFor polls cond every 200 ms until it holds, and fails the test after
// timeout with what it waited for and cond's last detail.
func WaitFor(t testing.TB, what string, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		ok, detail := cond()
		if ok {
			return
		}
		last = detail
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s; last: %s", timeout, what, last)
}
