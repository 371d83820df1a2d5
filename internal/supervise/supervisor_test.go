package supervise_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/autarky/terraform-provider-autarky/internal/supervise"
	"github.com/autarky/terraform-provider-autarky/internal/testenv"
)

// The test binary plays both other parts when re-executed with
// SUPERVISE_TEST_MODE: "child" is a supervised program that speaks
// sd_notify, and "supervisor" runs a Supervisor of such a child in its own
// process, for the tests that signal the supervisor itself.
const (
	modeEnv   = "SUPERVISE_TEST_MODE"
	logEnv    = "SUPERVISE_TEST_LOG"    // the child appends "start ..." and "term ..." lines here
	exitEnv   = "SUPERVISE_TEST_EXIT"   // the child exits 1 after this duration
	ignoreEnv = "SUPERVISE_TEST_IGNORE" // the child ignores SIGTERM
	pidEnv    = "SUPERVISE_TEST_PIDFILE"
	wdEnv     = "SUPERVISE_TEST_WATCHDOG"
)

func TestMain(m *testing.M) {
	switch os.Getenv(modeEnv) {
	case "child":
		childMain()
	case "supervisor":
		supervisorMain()
	default:
		os.Exit(m.Run())
	}
}

// childMain sends READY=1, then WATCHDOG=1 every 100ms. SIGUSR1 makes it
// exit with status 3, SIGUSR2 makes it stop pinging (alive, but silent),
// SIGTERM makes it exit 0 (unless told to ignore it).
func childMain() {
	logLine := func(format string, a ...any) {
		f, err := os.OpenFile(os.Getenv(logEnv), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err == nil {
			fmt.Fprintf(f, format+"\n", a...)
			f.Close()
		}
	}
	logLine("start %d watchdog_pid=%s watchdog_usec=%s notify_socket=%s", os.Getpid(),
		os.Getenv("WATCHDOG_PID"), os.Getenv("WATCHDOG_USEC"), os.Getenv("NOTIFY_SOCKET"))
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGTERM)
	var exitAfter <-chan time.Time
	if d, err := time.ParseDuration(os.Getenv(exitEnv)); err == nil {
		exitAfter = time.After(d)
	}
	if err := supervise.Notify("READY=1"); err != nil {
		logLine("notify failed: %v", err)
	}
	ping := time.NewTicker(100 * time.Millisecond)
	pinging := true
	for {
		select {
		case <-exitAfter:
			os.Exit(1)
		case s := <-sigs:
			switch s {
			case syscall.SIGUSR1:
				os.Exit(3)
			case syscall.SIGUSR2:
				pinging = false
			case syscall.SIGTERM:
				logLine("term %d", os.Getpid())
				if os.Getenv(ignoreEnv) == "" {
					os.Exit(0)
				}
			}
		case <-ping.C:
			if pinging {
				_ = supervise.Notify("WATCHDOG=1")
			}
		}
	}
}

// supervisorMain supervises a child as `autarky-agent supervise` does.
func supervisorMain() {
	wd, _ := time.ParseDuration(os.Getenv(wdEnv))
	exe, _ := os.Executable()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	s := &supervise.Supervisor{
		Path: exe, Env: append(os.Environ(), modeEnv+"=child"),
		Watchdog: wd, RestartDelay: 100 * time.Millisecond, StopTimeout: 2 * time.Second,
		PIDFile: os.Getenv(pidEnv),
		Logger:  hclog.New(&hclog.LoggerOptions{Name: "supervise", Output: os.Stderr, JSONFormat: true}),
	}
	if err := s.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// syncBuffer collects the supervisor's log lines.
type syncBuffer struct{ testenv.LockedBuffer }

// lines are the supervisor's JSON log lines.
func (b *syncBuffer) lines() []map[string]any {
	var out []map[string]any
	for _, l := range strings.Split(b.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

type fixture struct {
	t        *testing.T
	dir      string
	pidFile  string
	childLog string
	log      *syncBuffer
	s        *supervise.Supervisor
	stop     context.CancelFunc
	done     chan error
}

// newFixture prepares a Supervisor of a child; env adds to the child's.
func newFixture(t *testing.T, watchdog time.Duration, env ...string) *fixture {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	f := &fixture{t: t, dir: dir, pidFile: filepath.Join(dir, "child.pid"), childLog: filepath.Join(dir, "child.log"), log: &syncBuffer{}}
	f.s = &supervise.Supervisor{
		Path:         exe,
		Env:          append(append(os.Environ(), modeEnv+"=child", logEnv+"="+f.childLog), env...),
		Watchdog:     watchdog,
		RestartDelay: 100 * time.Millisecond,
		StopTimeout:  2 * time.Second,
		PIDFile:      f.pidFile,
		Logger:       hclog.New(&hclog.LoggerOptions{Name: "supervise", Output: f.log, JSONFormat: true}),
	}
	return f
}

// run starts the supervisor; cleanup stops it and checks that no child is
// left.
func (f *fixture) run() {
	ctx, cancel := context.WithCancel(context.Background())
	f.stop, f.done = cancel, make(chan error, 1)
	go func() { f.done <- f.s.Run(ctx) }()
	f.t.Cleanup(func() {
		pid, _ := supervise.ReadPIDFile(f.pidFile)
		f.shutdown(10 * time.Second)
		if pid > 0 && testenv.Alive(pid) {
			f.t.Errorf("child %d survives its supervisor", pid)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		f.t.Logf("supervisor log:\n%s", f.log.String())
	})
}

// shutdown cancels the supervisor and waits for Run to return.
func (f *fixture) shutdown(bound time.Duration) time.Duration {
	f.t.Helper()
	start := time.Now()
	f.stop()
	select {
	case err := <-f.done:
		f.done <- err // for a later call
		if err != nil {
			f.t.Errorf("Run: %v", err)
		}
	case <-time.After(bound):
		f.t.Fatalf("the supervisor did not return within %s of its stop", bound)
	}
	return time.Since(start)
}

// child waits until the pid file names a live child other than not, whose
// parent is parent, and returns its pid.
func (f *fixture) child(not, parent int, timeout time.Duration) int {
	f.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		pid, err := supervise.ReadPIDFile(f.pidFile)
		if err == nil && pid != not && testenv.Alive(pid) && testenv.ParentPID(pid) == parent {
			return pid
		}
		time.Sleep(20 * time.Millisecond)
	}
	f.t.Fatalf("no new child (other than %d, of parent %d) in %s within %s\nsupervisor log:\n%s", not, parent, f.pidFile, timeout, f.log.String())
	return 0
}

// started waits until the child pid has sent READY=1 (the supervisor logs
// it), so its watchdog counts from then.
func (f *fixture) ready(pid int) {
	f.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, l := range f.log.lines() {
			if l["@message"] == "child ready" && l["pid"] == float64(pid) {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	f.t.Fatalf("child %d never reported READY=1\n%s", pid, f.log.String())
}

// restartReason is the reason logged for the restart after child pid.
func (f *fixture) restartReason(pid int) string {
	for _, l := range f.log.lines() {
		if l["@message"] == "restarting the child" && l["pid"] == float64(pid) {
			s, _ := l["reason"].(string)
			return s
		}
	}
	return ""
}

func waitGone(t *testing.T, pid int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for testenv.Alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("process %d is still alive after %s", pid, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The child gets the environment of a systemd Type=notify service with a
// watchdog, and is restarted when it exits.
func TestRestartsChildThatExits(t *testing.T) {
	f := newFixture(t, 5*time.Second)
	f.run()
	first := f.child(0, os.Getpid(), 5*time.Second)
	f.ready(first)
	log, _ := os.ReadFile(f.childLog)
	want := fmt.Sprintf("start %d watchdog_pid=%d watchdog_usec=5000000 notify_socket=/", first, first)
	if !strings.Contains(string(log), want) {
		t.Errorf("child log lacks %q:\n%s", want, log)
	}
	if err := syscall.Kill(first, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	second := f.child(first, os.Getpid(), 5*time.Second)
	if r := f.restartReason(first); r != "exited with status 3" {
		t.Errorf("restart reason %q, want exited with status 3", r)
	}
	f.ready(second)
}

// kill -9 of the child: restarted.
func TestRestartsKilledChild(t *testing.T) {
	f := newFixture(t, 0)
	f.run()
	first := f.child(0, os.Getpid(), 5*time.Second)
	start := time.Now()
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	f.child(first, os.Getpid(), 5*time.Second)
	t.Logf("kill -9 -> new child in %s", time.Since(start))
	if r := f.restartReason(first); r != "killed by signal SIGKILL" {
		t.Errorf("restart reason %q, want killed by signal SIGKILL", r)
	}
}

// A SIGSTOPped child sends no WATCHDOG=1: the watchdog kills it with SIGKILL
// (which a stopped process cannot hold off) and the supervisor restarts it,
// within the watchdog timeout plus the restart delay and a small bound.
func TestWatchdogRestartsFrozenChild(t *testing.T) {
	const watchdog = 2 * time.Second
	f := newFixture(t, watchdog)
	f.run()
	first := f.child(0, os.Getpid(), 5*time.Second)
	f.ready(first)
	time.Sleep(500 * time.Millisecond) // a few WATCHDOG=1 arrive
	if err := syscall.Kill(first, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	second := f.child(first, os.Getpid(), watchdog+5*time.Second)
	took := time.Since(start)
	t.Logf("SIGSTOP -> new child in %s (watchdog %s)", took, watchdog)
	if bound := watchdog + f.s.RestartDelay + time.Second; took > bound {
		t.Errorf("the frozen child was replaced after %s, want at most %s", took, bound)
	}
	if took < watchdog-300*time.Millisecond {
		t.Errorf("the frozen child was replaced after %s, before its watchdog of %s ran out", took, watchdog)
	}
	if testenv.Alive(first) {
		t.Errorf("the frozen child %d is still there", first)
	}
	if r := f.restartReason(first); !strings.HasPrefix(r, "watchdog timeout: no WATCHDOG=1 for 2s") {
		t.Errorf("restart reason %q, want the watchdog's", r)
	}
	f.ready(second)
}

// A child that runs but stops pinging is killed by the watchdog too.
func TestWatchdogRestartsSilentChild(t *testing.T) {
	f := newFixture(t, time.Second)
	f.run()
	first := f.child(0, os.Getpid(), 5*time.Second)
	f.ready(first)
	// Pinging keeps it: well past the watchdog, the same child runs.
	time.Sleep(2500 * time.Millisecond)
	if pid, _ := supervise.ReadPIDFile(f.pidFile); pid != first || !testenv.Alive(first) {
		t.Fatalf("a child that pings was replaced: pid file says %d, first was %d", pid, first)
	}
	if err := syscall.Kill(first, syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	f.child(first, os.Getpid(), 5*time.Second)
	if r := f.restartReason(first); !strings.HasPrefix(r, "watchdog timeout") {
		t.Errorf("restart reason %q, want the watchdog's", r)
	}
}

// Only the child's own datagrams count (NotifyAccess=main): WATCHDOG=1 from
// another process does not keep a frozen child alive.
func TestWatchdogIgnoresOtherSenders(t *testing.T) {
	f := newFixture(t, time.Second)
	f.s.SocketPath = filepath.Join(f.dir, "notify")
	f.run()
	first := f.child(0, os.Getpid(), 5*time.Second)
	f.ready(first)
	t.Setenv("NOTIFY_SOCKET", f.s.SocketPath)
	stopSpoof := make(chan struct{})
	spoofed := make(chan error, 1)
	go func() {
		var last error
		for {
			select {
			case <-stopSpoof:
				spoofed <- last
				return
			case <-time.After(50 * time.Millisecond):
				if err := supervise.Notify("WATCHDOG=1"); err != nil {
					last = err
				}
			}
		}
	}()
	if err := syscall.Kill(first, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	f.child(first, os.Getpid(), 5*time.Second)
	close(stopSpoof)
	if err := <-spoofed; err != nil {
		t.Errorf("the spoofed datagrams did not reach the socket: %v", err)
	}
	if r := f.restartReason(first); !strings.HasPrefix(r, "watchdog timeout") {
		t.Errorf("restart reason %q, want the watchdog's", r)
	}
}

// Rapid restarts double the delay up to its cap; a stable run resets it.
func TestRestartDelayBacksOff(t *testing.T) {
	delays := func(f *fixture) []string {
		var out []string
		for _, l := range f.log.lines() {
			if l["@message"] == "restarting the child" {
				out = append(out, l["restart_in"].(string))
			}
		}
		return out
	}
	t.Run("rapid", func(t *testing.T) {
		f := newFixture(t, 0, exitEnv+"=0s")
		f.s.RestartDelay, f.s.MaxRestartDelay, f.s.StableAfter = 50*time.Millisecond, 400*time.Millisecond, time.Hour
		f.run()
		deadline := time.Now().Add(10 * time.Second)
		for len(delays(f)) < 6 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		got := delays(f)
		if len(got) > 6 {
			got = got[:6]
		}
		want := []string{"50ms", "100ms", "200ms", "400ms", "400ms", "400ms"}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("restart delays %v, want %v", got, want)
		}
	})
	t.Run("stable", func(t *testing.T) {
		f := newFixture(t, 0, exitEnv+"=400ms")
		f.s.RestartDelay, f.s.MaxRestartDelay, f.s.StableAfter = 50*time.Millisecond, 400*time.Millisecond, 300*time.Millisecond
		f.run()
		deadline := time.Now().Add(10 * time.Second)
		for len(delays(f)) < 3 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		got := delays(f)
		if len(got) < 3 {
			t.Fatalf("%d restarts, want 3", len(got))
		}
		for _, d := range got[:3] {
			if d != "50ms" {
				t.Errorf("restart delays %v after stable runs, want 50ms each", got)
				break
			}
		}
	})
}

// Stopping the supervisor sends the child SIGTERM, and SIGCONT, so a frozen
// child stops too.
func TestStopSendsSIGTERMToFrozenChild(t *testing.T) {
	f := newFixture(t, 0)
	f.run()
	pid := f.child(0, os.Getpid(), 5*time.Second)
	f.ready(pid)
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	took := f.shutdown(5 * time.Second)
	if took > f.s.StopTimeout {
		t.Errorf("stopping took %s: the frozen child needed SIGKILL", took)
	}
	if log, _ := os.ReadFile(f.childLog); !strings.Contains(string(log), fmt.Sprintf("term %d", pid)) {
		t.Errorf("the child never saw SIGTERM:\n%s", log)
	}
	waitGone(t, pid, time.Second)
	if _, err := os.Stat(f.pidFile); !os.IsNotExist(err) {
		t.Errorf("pid file left after stop: %v", err)
	}
}

// A child that ignores SIGTERM is killed after StopTimeout.
func TestStopKillsChildIgnoringSIGTERM(t *testing.T) {
	f := newFixture(t, 0, ignoreEnv+"=1")
	f.s.StopTimeout = time.Second
	f.run()
	pid := f.child(0, os.Getpid(), 5*time.Second)
	f.ready(pid)
	took := f.shutdown(5 * time.Second)
	if took < f.s.StopTimeout || took > f.s.StopTimeout+time.Second {
		t.Errorf("stopping took %s, want about the stop timeout %s", took, f.s.StopTimeout)
	}
	waitGone(t, pid, time.Second)
	if !strings.Contains(f.log.String(), "did not stop within 1s of SIGTERM") {
		t.Errorf("the SIGKILL is not logged")
	}
}

// startSupervisorProcess runs a Supervisor in a process of its own.
func startSupervisorProcess(t *testing.T, f *fixture) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), modeEnv+"=supervisor", logEnv+"="+f.childLog, pidEnv+"="+f.pidFile, wdEnv+"=5s")
	cmd.Stderr = f.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		t.Logf("supervisor log:\n%s", f.log.String())
	})
	return cmd
}

// SIGTERM to the supervisor stops the child and the supervisor; its pid
// file names the live child until then.
func TestSIGTERMStopsSupervisorAndChild(t *testing.T) {
	f := newFixture(t, 0)
	sup := startSupervisorProcess(t, f)
	pid := f.child(0, sup.Process.Pid, 5*time.Second)
	f.ready(pid)
	if err := sup.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- sup.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("supervisor: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the supervisor did not exit within 5s of SIGTERM")
	}
	waitGone(t, pid, time.Second)
	if log, _ := os.ReadFile(f.childLog); !strings.Contains(string(log), fmt.Sprintf("term %d", pid)) {
		t.Errorf("the child never saw SIGTERM:\n%s", log)
	}
	if _, err := os.Stat(f.pidFile); !os.IsNotExist(err) {
		t.Errorf("pid file left after stop: %v", err)
	}
}

// A supervisor killed with SIGKILL takes its child with it (Pdeathsig): no
// unsupervised agent is left behind.
func TestKilledSupervisorLeavesNoChild(t *testing.T) {
	f := newFixture(t, 0)
	sup := startSupervisorProcess(t, f)
	pid := f.child(0, sup.Process.Pid, 5*time.Second)
	f.ready(pid)
	if err := sup.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = sup.Wait()
	waitGone(t, pid, 2*time.Second)
}

// A supervisor stopped together with its child (SIGSTOP of both, as a
// paused machine or a frozen process group would) for longer than the
// watchdog does not kill the child when both resume: the child did not
// hang, the time passed for both.
func TestSupervisorFrozenWithChildKeepsIt(t *testing.T) {
	f := newFixture(t, 0)
	sup := startSupervisorProcess(t, f) // watchdog 5s
	pid := f.child(0, sup.Process.Pid, 5*time.Second)
	f.ready(pid)
	for _, p := range []int{sup.Process.Pid, pid} {
		if err := syscall.Kill(p, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(7 * time.Second)
	for _, p := range []int{pid, sup.Process.Pid} {
		if err := syscall.Kill(p, syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(3 * time.Second) // the child pings again meanwhile
	if now, err := supervise.ReadPIDFile(f.pidFile); err != nil || now != pid || !testenv.Alive(pid) {
		t.Fatalf("the child %d was replaced (pid file %d, %v) after its supervisor resumed", pid, now, err)
	}
	if !strings.Contains(f.log.String(), "the supervisor itself was stopped") {
		t.Errorf("the supervisor did not say it was stopped itself:\n%s", f.log.String())
	}
}
