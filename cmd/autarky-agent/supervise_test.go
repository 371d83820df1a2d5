package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/supervise"
	"github.com/autarky/terraform-provider-autarky/internal/testenv"
)

// Bad flags to `supervise` are refused before anything starts, naming the
// flag.
func TestSuperviseRefusesBadFlags(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		args []string
		want string
	}{
		{[]string{}, "nothing to supervise"},
		{[]string{"--"}, "nothing to supervise"},
		{[]string{"--watchdog", "-1s", "--", "run"}, "--watchdog -1s: use 0 (no watchdog) or at least 1s"},
		{[]string{"--watchdog", "10ms", "--", "run"}, "--watchdog 10ms"},
		{[]string{"--watchdog", "soon", "--", "run"}, `invalid value "soon" for flag -watchdog`},
		{[]string{"--restart-delay", "0s", "--", "run"}, "--restart-delay 0s: use 100ms to 30s"},
		{[]string{"--restart-delay", "1m", "--", "run"}, "--restart-delay 1m0s"},
		{[]string{"--stop-timeout", "0s", "--", "run"}, "--stop-timeout 0s: use at least 1s"},
		{[]string{"--log-format", "xml", "--", "run"}, `--log-format "xml": use json or text`},
		{[]string{"--pid-file", filepath.Join(dir, "missing", "agent.pid"), "--", "run"}, "--pid-file " + filepath.Join(dir, "missing", "agent.pid") + ": its directory"},
		{[]string{"--", "supervise", "--", "run"}, "is supervise itself"},
		{[]string{"--", "status"}, `"status" after -- is not a command to supervise`},
	}
	for _, c := range cases {
		var out, errb bytes.Buffer
		code := run(append([]string{"autarky-agent", "supervise"}, c.args...), &out, &errb)
		if code == 0 || !strings.Contains(errb.String(), c.want) {
			t.Errorf("supervise %q: code %d, stderr %q, want it to name %q", c.args, code, errb.String(), c.want)
		}
	}
	var out, errb bytes.Buffer
	if run([]string{"autarky-agent", "help"}, &out, &errb); !strings.Contains(out.String(), "supervise") {
		t.Errorf("usage does not list supervise:\n%s", out.String())
	}
}

// The real binary supervises itself: an agent that cannot start (here it
// lacks --cluster) is restarted, each restart is logged with its reason,
// and SIGTERM stops the supervisor.
func TestSuperviseRestartsFailingAgent(t *testing.T) {
	bin := testenv.AgentBinary(t)
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "agent.pid")
	var stderr testenv.LockedBuffer
	cmd := exec.Command(bin, "supervise", "--restart-delay", "100ms", "--watchdog", "5s", "--pid-file", pidFile, "--", "run")
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		t.Logf("supervise stderr:\n%s", stderr.String())
	})
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(stderr.String(), "restarting the child") < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("no two restarts within 10s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	log := stderr.String()
	for _, want := range []string{"--cluster is required", "reason=\"exited with status 1\"", "restart_in=100ms", "restart_in=200ms", "notify_socket=" + filepath.Join(dir, "agent.notify")} {
		if !strings.Contains(log, want) {
			t.Errorf("supervise stderr lacks %s", want)
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("supervise after SIGTERM: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("supervise did not exit within 5s of SIGTERM")
	}
	if _, err := os.Stat(filepath.Join(dir, "agent.notify")); !os.IsNotExist(err) {
		t.Errorf("notify socket left behind: %v", err)
	}
	if _, err := supervise.ReadPIDFile(pidFile); err == nil {
		t.Errorf("pid file left behind")
	}
}
