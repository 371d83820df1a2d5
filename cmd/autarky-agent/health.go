package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/agent"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

// healthCmd is `autarky-agent health`: exit 0 when the agent's /healthz
// answers 200, 1 otherwise, saying why. It is the container image's
// HEALTHCHECK, which has no shell or curl to run (FROM scratch): the
// binary checks itself. /healthz is open, so it needs no token.
func healthCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("health", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("address", fmt.Sprintf("127.0.0.1:%d", policy.AgentPort), "the agent's HTTP address; host \"node\" (node:9910) is the node's own address in its swarm, as for run's --listen")
	dockerHost := fs.String("docker-host", "unix:///var/run/docker.sock", "with --address node:PORT: the engine that says the node's address")
	timeout := fs.Duration("timeout", 5*time.Second, "how long to wait for the answer")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("health takes no arguments, got %q", fs.Args())
	}
	base := *addr
	if !strings.Contains(base, "://") {
		resolved, err := agent.ResolveListen(context.Background(), *dockerHost, base)
		if err != nil {
			return err
		}
		base = resolved
	}
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	client := &http.Client{Timeout: *timeout}
	resp, err := client.Get(strings.TrimRight(base, "/") + "/healthz")
	if err != nil {
		return fmt.Errorf("agent at %s: %w", base, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("agent at %s: /healthz answered %s: %s", base, resp.Status, strings.TrimSpace(string(body)))
	}
	_, err = fmt.Fprintf(stdout, "%s\n", strings.TrimSpace(string(body)))
	return err
}
