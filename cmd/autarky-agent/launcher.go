package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"syscall"

	"github.com/hashicorp/go-hclog"

	"github.com/autarky/terraform-provider-autarky/internal/platform/local"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

// launcherCmd is `autarky-agent launcher`: the local platform's cloud API
// for agents in containers (internal/platform/local launcher.go). It runs
// as root on the machine until SIGTERM or SIGINT.
func launcherCmd(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("launcher", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, `Usage: autarky-agent launcher [flags]

launcher starts, stops and lists the local platform's nodes for an agent that
runs in a container (the stack file's), which cannot start processes that
outlive it: the agent sets %s to the socket. Run it as root on the
machine of the state dir. Flags:
`, local.LauncherEnv)
		fs.PrintDefaults()
	}
	stateDir := fs.String("state-dir", "", "the provider's state dir (default $AUTARKY_STATE_DIR, else /var/lib/autarky)")
	socket := fs.String("socket", "", "the unix socket to serve on, root's and 0600 (default <state dir>/launcher.sock)")
	logFormat := fs.String("log-format", "text", "log format: json or text")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("launcher takes no arguments, got %q", fs.Args())
	}
	if *logFormat != "json" && *logFormat != "text" {
		return fmt.Errorf("--log-format %q: use json or text", *logFormat)
	}
	logger := hclog.New(&hclog.LoggerOptions{Name: "autarky-launcher", Output: stderr, JSONFormat: *logFormat == "json", Level: hclog.Info})
	dir := policy.StateDirFrom(*stateDir)
	p, err := local.New(dir, func(msg string, kv ...any) { logger.Info(msg, kv...) }, local.Options{})
	if err != nil {
		return err
	}
	if *socket == "" {
		*socket = local.LauncherSocket(p.StateDir())
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return p.ServeLauncher(ctx, *socket)
}
