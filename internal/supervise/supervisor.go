package supervise

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"
)

// Defaults of a Supervisor's zero fields.
const (
	DefaultRestartDelay    = time.Second
	DefaultMaxRestartDelay = 30 * time.Second
	DefaultStableAfter     = time.Minute
	DefaultStopTimeout     = 10 * time.Second
)

// Supervisor runs a child command and keeps it running, as systemd does with
// Restart=always and WatchdogSec=: it restarts the child whenever it exits,
// and kills (SIGKILL) and restarts a child that stopped sending "WATCHDOG=1"
// to its notify socket for Watchdog. A child stopped with SIGSTOP, or stuck
// anywhere, counts as hung: SIGKILL ends it all the same.
//
// The child gets the environment systemd gives a Type=notify service:
// NOTIFY_SOCKET (a unixgram socket only the supervisor reads), and, when the
// watchdog is on, WATCHDOG_USEC and WATCHDOG_PID. Like systemd's
// NotifyAccess=main, only datagrams the child's own process sent count (the
// kernel's SCM_CREDENTIALS say who sent them).
type Supervisor struct {
	// Path and Args are the child's executable and its arguments (without
	// argv[0]).
	Path string
	Args []string
	// Env is the child's environment; nil means the supervisor's. Any
	// NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID in it are replaced.
	Env []string
	// Watchdog is how long the child may go without "WATCHDOG=1" (counted
	// from its start, then from READY=1 and every WATCHDOG=1) before it is
	// killed and restarted; zero turns the watchdog off.
	Watchdog time.Duration
	// RestartDelay is the pause before a restart; rapid restarts double it,
	// up to MaxRestartDelay, and a run longer than StableAfter resets it.
	RestartDelay    time.Duration
	MaxRestartDelay time.Duration
	StableAfter     time.Duration
	// StopTimeout bounds how long a stopping child has after SIGTERM
	// before SIGKILL.
	StopTimeout time.Duration
	// PIDFile, when set, holds the running child's pid; it is removed while
	// no child runs.
	PIDFile string
	// SocketPath is where the notify socket is made (its directory must
	// exist); empty means a private directory under os.TempDir(), removed
	// on return.
	SocketPath string
	// Stdout and Stderr are the child's; nil means the supervisor's own.
	Stdout, Stderr io.Writer
	// Logger reports every start, restart (with its reason) and stop; nil
	// logs to stderr.
	Logger hclog.Logger
}

// notification is one datagram from a notify socket.
type notification struct {
	pid    int // the sender's, from its credentials; 0 when unknown
	fields map[string]string
}

// child is one run of the command.
type child struct {
	cmd     *exec.Cmd
	pid     int
	done    chan error // the Wait result
	started time.Time
}

// Run supervises until ctx ends; then it sends the child SIGTERM (and
// SIGCONT, so a stopped child sees it), waits up to StopTimeout, sends
// SIGKILL if it has to, and returns nil. It returns an error only when it
// cannot start supervising at all.
func (s *Supervisor) Run(ctx context.Context) error {
	s.defaults()
	if s.Path == "" {
		return errors.New("supervise: no command to run")
	}
	conn, sockPath, cleanup, err := s.listen()
	if err != nil {
		return err
	}
	defer cleanup()
	msgs := make(chan notification, 64)
	go readNotifications(conn, msgs)

	env := s.childEnv(sockPath)
	sh := ""
	if s.Watchdog > 0 {
		// WATCHDOG_PID names the child's own pid, known only after the
		// fork: a shell sets it and execs the command in the same process.
		if sh, err = exec.LookPath("/bin/sh"); err != nil {
			s.Logger.Warn("no /bin/sh: the child runs without WATCHDOG_PID")
			sh = ""
		}
	}
	s.Logger.Info("supervising", "command", s.Path, "args", strings.Join(s.Args, " "), "watchdog", s.Watchdog.String(), "notify_socket", sockPath)

	delay := s.RestartDelay
	for {
		c, err := s.start(sh, env)
		var reason string
		var ran time.Duration
		if err != nil {
			reason = "start failed: " + err.Error()
		} else {
			reason = s.watch(ctx, c, msgs)
			ran = time.Since(c.started)
		}
		if ctx.Err() != nil {
			s.Logger.Info("supervisor stopped")
			return nil
		}
		if ran >= s.StableAfter {
			delay = s.RestartDelay
		}
		pid := 0
		if c != nil {
			pid = c.pid
		}
		s.Logger.Warn("restarting the child", "pid", pid, "reason", reason, "ran", ran.Round(time.Millisecond).String(), "restart_in", delay.String())
		timer := time.NewTimer(delay)
	wait:
		for {
			select {
			case <-ctx.Done():
				timer.Stop()
				s.Logger.Info("supervisor stopped")
				return nil
			case <-msgs: // from a child that is gone
			case <-timer.C:
				break wait
			}
		}
		delay = min(2*delay, s.MaxRestartDelay)
	}
}

func (s *Supervisor) defaults() {
	if s.RestartDelay <= 0 {
		s.RestartDelay = DefaultRestartDelay
	}
	if s.MaxRestartDelay <= 0 {
		s.MaxRestartDelay = DefaultMaxRestartDelay
	}
	s.MaxRestartDelay = max(s.MaxRestartDelay, s.RestartDelay)
	if s.StableAfter <= 0 {
		s.StableAfter = DefaultStableAfter
	}
	if s.StopTimeout <= 0 {
		s.StopTimeout = DefaultStopTimeout
	}
	if s.Stdout == nil {
		s.Stdout = os.Stdout
	}
	if s.Stderr == nil {
		s.Stderr = os.Stderr
	}
	if s.Logger == nil {
		s.Logger = hclog.New(&hclog.LoggerOptions{Name: "supervise", Output: os.Stderr})
	}
}

// listen makes the notify socket, readable and writable by its owner only,
// and asks the kernel for every sender's credentials.
func (s *Supervisor) listen() (*net.UnixConn, string, func(), error) {
	path, dir := s.SocketPath, ""
	if path == "" {
		var err error
		if dir, err = os.MkdirTemp("", "autarky-supervise-"); err != nil {
			return nil, "", nil, fmt.Errorf("supervise: notify socket: %w", err)
		}
		path = filepath.Join(dir, "notify")
	} else {
		// One left by a supervisor that was killed.
		_ = os.Remove(path)
	}
	removeAll := func() {
		if dir != "" {
			_ = os.RemoveAll(dir)
		} else {
			_ = os.Remove(path)
		}
	}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		removeAll()
		return nil, "", nil, fmt.Errorf("supervise: notify socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		conn.Close()
		removeAll()
		return nil, "", nil, fmt.Errorf("supervise: notify socket: %w", err)
	}
	raw, err := conn.SyscallConn()
	if err == nil {
		cerr := raw.Control(func(fd uintptr) {
			err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, 1)
		})
		if cerr != nil {
			err = cerr
		}
	}
	if err != nil {
		conn.Close()
		removeAll()
		return nil, "", nil, fmt.Errorf("supervise: notify socket credentials: %w", err)
	}
	return conn, path, func() { conn.Close(); removeAll() }, nil
}

// readNotifications passes on every datagram until conn is closed. It never
// blocks on a full channel (a sender must never wait on the supervisor).
func readNotifications(conn *net.UnixConn, out chan<- notification) {
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(unix.SizeofUcred))
	for {
		n, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		m := notification{pid: senderPID(oob[:oobn]), fields: map[string]string{}}
		for _, line := range strings.Split(string(buf[:n]), "\n") {
			if k, v, ok := strings.Cut(line, "="); ok {
				m.fields[k] = v
			}
		}
		select {
		case out <- m:
		default:
		}
	}
}

func senderPID(oob []byte) int {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0
	}
	for _, m := range msgs {
		if cred, err := unix.ParseUnixCredentials(&m); err == nil {
			return int(cred.Pid)
		}
	}
	return 0
}

// childEnv is env without any supervisor's variables, plus this one's.
func (s *Supervisor) childEnv(sockPath string) []string {
	base := s.Env
	if base == nil {
		base = os.Environ()
	}
	env := make([]string, 0, len(base)+3)
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID":
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "NOTIFY_SOCKET="+sockPath)
	if s.Watchdog > 0 {
		env = append(env, "WATCHDOG_USEC="+strconv.FormatInt(s.Watchdog.Microseconds(), 10))
	}
	return env
}

// trampoline sets WATCHDOG_PID to the shell's pid and becomes the command.
const trampoline = `WATCHDOG_PID=$$; export WATCHDOG_PID; exec "$0" "$@"`

// start starts the child and records its pid. The child gets SIGKILL if
// the supervisor dies (Pdeathsig), so a killed supervisor leaves no child
// behind; the thread that forks it stays locked until the child is reaped,
// since the kernel ties Pdeathsig to that thread.
func (s *Supervisor) start(sh string, env []string) (*child, error) {
	var cmd *exec.Cmd
	if sh != "" {
		cmd = exec.Command(sh, append([]string{"-c", trampoline, s.Path}, s.Args...)...)
	} else {
		cmd = exec.Command(s.Path, s.Args...)
	}
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = s.Stdout, s.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	started := make(chan error, 1)
	c := &child{cmd: cmd, done: make(chan error, 1)}
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		c.done <- cmd.Wait()
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	c.pid = cmd.Process.Pid
	c.started = time.Now()
	if err := s.writePID(c.pid); err != nil {
		s.Logger.Error("cannot write the pid file", "pid_file", s.PIDFile, "error", err)
	}
	s.Logger.Info("child started", "pid", c.pid)
	return c, nil
}

// selfTick and selfStallGap: how often the supervisor notes that it runs,
// and the gap in those notes that means it was stopped itself.
const (
	selfTick     = 250 * time.Millisecond
	selfStallGap = 2 * time.Second
)

// watch follows a running child until it exits, is killed by the watchdog
// or ctx ends (then it stops the child), and says why it ended.
func (s *Supervisor) watch(ctx context.Context, c *child, msgs <-chan notification) string {
	var watchdog <-chan time.Time
	var timer *time.Timer
	if s.Watchdog > 0 {
		timer = time.NewTimer(s.Watchdog)
		defer timer.Stop()
		watchdog = timer.C
	}
	pet := func() {
		if timer != nil {
			timer.Reset(s.Watchdog)
		}
	}
	// A supervisor that was stopped itself (SIGSTOP of its process group,
	// a paused machine) does not blame its child for that time: when its
	// own ticks show a gap, the watchdog's period starts again.
	tick := time.NewTicker(selfTick)
	defer tick.Stop()
	lastTick := time.Now()
	stalled := func() bool {
		gap := time.Since(lastTick)
		if gap <= selfStallGap {
			return false
		}
		s.Logger.Warn("the supervisor itself was stopped: the watchdog's period starts again", "gap", gap.Round(time.Millisecond).String(), "pid", c.pid)
		lastTick = time.Now()
		pet()
		return true
	}
	killed := ""
	for {
		select {
		case <-tick.C:
			stalled()
			lastTick = time.Now()
		case err := <-c.done:
			s.removePID()
			if killed != "" {
				return killed
			}
			return exitReason(err)
		case m := <-msgs:
			if m.pid != c.pid {
				continue // NotifyAccess=main: not the child's own process
			}
			if m.fields["READY"] == "1" {
				s.Logger.Info("child ready", "pid", c.pid)
				pet()
			}
			switch m.fields["WATCHDOG"] {
			case "1":
				pet()
			case "trigger":
				if killed == "" {
					s.Logger.Error("the child asked for its watchdog (WATCHDOG=trigger): killing it with SIGKILL", "pid", c.pid)
					killed = "watchdog triggered by the child (killed with SIGKILL)"
					_ = c.cmd.Process.Signal(syscall.SIGKILL)
				}
			}
			if m.fields["STOPPING"] == "1" {
				s.Logger.Info("child stopping", "pid", c.pid)
			}
		case <-watchdog:
			if stalled() {
				continue
			}
			watchdog = nil
			if killed == "" {
				s.Logger.Error(fmt.Sprintf("watchdog: no WATCHDOG=1 for %s: killing the child with SIGKILL", s.Watchdog), "pid", c.pid)
				killed = fmt.Sprintf("watchdog timeout: no WATCHDOG=1 for %s (killed with SIGKILL)", s.Watchdog)
				_ = c.cmd.Process.Signal(syscall.SIGKILL)
			}
		case <-ctx.Done():
			s.stop(c)
			return "stopped"
		}
	}
}

// stop ends the child: SIGTERM (and SIGCONT), then SIGKILL after
// StopTimeout.
func (s *Supervisor) stop(c *child) {
	s.Logger.Info("stopping the child", "pid", c.pid)
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	_ = c.cmd.Process.Signal(syscall.SIGCONT)
	timer := time.NewTimer(s.StopTimeout)
	defer timer.Stop()
	var err error
	select {
	case err = <-c.done:
	case <-timer.C:
		s.Logger.Warn(fmt.Sprintf("the child did not stop within %s of SIGTERM: killing it with SIGKILL", s.StopTimeout), "pid", c.pid)
		_ = c.cmd.Process.Signal(syscall.SIGKILL)
		err = <-c.done
	}
	s.removePID()
	s.Logger.Info("child stopped", "pid", c.pid, "status", exitReason(err))
}

// exitReason describes how a child ended, from its Wait result.
func exitReason(err error) string {
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return "wait failed: " + err.Error()
	}
	if ee == nil {
		return "exited with status 0"
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		name := unix.SignalName(ws.Signal())
		if name == "" {
			name = ws.Signal().String()
		}
		return "killed by signal " + name
	}
	return fmt.Sprintf("exited with status %d", ee.ExitCode())
}

func (s *Supervisor) writePID(pid int) error {
	if s.PIDFile == "" {
		return nil
	}
	tmp := s.PIDFile + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, s.PIDFile)
}

func (s *Supervisor) removePID() {
	if s.PIDFile != "" {
		_ = os.Remove(s.PIDFile)
	}
}

// ReadPIDFile reads the pid a Supervisor's PIDFile holds.
func ReadPIDFile(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("pid file %s: %q is not a pid", path, strings.TrimSpace(string(b)))
	}
	return pid, nil
}
