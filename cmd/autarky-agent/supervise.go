package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/autarky/terraform-provider-autarky/internal/supervise"
)

const superviseUsage = `Usage: autarky-agent supervise [flags] -- run <run flags...>

supervise runs autarky-agent (this executable) with the arguments after --
and keeps it running where no systemd does: it restarts the agent whenever it
exits, and kills (SIGKILL) and restarts an agent that stopped sending
WATCHDOG=1 to its notify socket for --watchdog. SIGTERM or SIGINT stop the
agent (SIGTERM, then SIGKILL after --stop-timeout) and the supervisor.

Flags:
`

// maxUnixSocketPath is the longest path a unix socket address holds
// (sun_path is 108 bytes, with its NUL).
const maxUnixSocketPath = 107

// superviseCmd is `autarky-agent supervise`.
func superviseCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("supervise", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, superviseUsage)
		fs.PrintDefaults()
	}
	watchdog := fs.Duration("watchdog", 0, "kill and restart the agent when it sends no WATCHDOG=1 for this long (0: no watchdog; else at least 1s)")
	delay := fs.Duration("restart-delay", supervise.DefaultRestartDelay, "pause before a restart (100ms to 30s); rapid restarts double it up to 30s")
	stopTimeout := fs.Duration("stop-timeout", supervise.DefaultStopTimeout, "how long the agent has to stop after SIGTERM before SIGKILL (at least 1s)")
	pidFile := fs.String("pid-file", "", "file that holds the running agent's pid (its notify socket is made beside it)")
	logFormat := fs.String("log-format", "text", "log format of the supervisor's own lines: json or text")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *watchdog < 0 || (*watchdog > 0 && *watchdog < time.Second) {
		return fmt.Errorf("--watchdog %s: use 0 (no watchdog) or at least 1s", *watchdog)
	}
	if *delay < 100*time.Millisecond || *delay > supervise.DefaultMaxRestartDelay {
		return fmt.Errorf("--restart-delay %s: use 100ms to %s", *delay, supervise.DefaultMaxRestartDelay)
	}
	if *stopTimeout < time.Second {
		return fmt.Errorf("--stop-timeout %s: use at least 1s", *stopTimeout)
	}
	if *logFormat != "json" && *logFormat != "text" {
		return fmt.Errorf("--log-format %q: use json or text", *logFormat)
	}
	socket := ""
	if *pidFile != "" {
		abs, err := filepath.Abs(*pidFile)
		if err != nil {
			return fmt.Errorf("--pid-file: %w", err)
		}
		if st, err := os.Stat(filepath.Dir(abs)); err != nil || !st.IsDir() {
			return fmt.Errorf("--pid-file %s: its directory %s does not exist", *pidFile, filepath.Dir(abs))
		}
		*pidFile = abs
		socket = strings.TrimSuffix(abs, filepath.Ext(abs)) + ".notify"
		if len(socket) > maxUnixSocketPath {
			socket = "" // too long for a socket address: a private one in $TMPDIR
		}
	}
	child := fs.Args()
	if len(child) == 0 {
		return errors.New("nothing to supervise: give the agent's command after --, as in autarky-agent supervise --watchdog 30s -- run --cluster NAME")
	}
	switch child[0] {
	case "run", "workload":
	case "supervise":
		return errors.New("supervise: the command after -- is supervise itself; give run and its flags")
	default:
		return fmt.Errorf("supervise: %q after -- is not a command to supervise: use run (or workload)", child[0])
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("supervise: cannot find this executable: %w", err)
	}
	logger := hclog.New(&hclog.LoggerOptions{Name: "autarky-agent.supervise", Output: stderr, JSONFormat: *logFormat == "json", Level: hclog.Info})
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	s := &supervise.Supervisor{
		Path: exe, Args: child,
		Watchdog: *watchdog, RestartDelay: *delay, StopTimeout: *stopTimeout,
		PIDFile: *pidFile, SocketPath: socket,
		Stdout: stdout, Stderr: stderr, Logger: logger,
	}
	return s.Run(ctx)
}
