package local

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/platform"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

var _ platform.Cluster = (*Cluster)(nil)

// Instances lists every instance of the cluster, dead ones included.
func (c *Cluster) Instances(context.Context) ([]platform.Instance, error) {
	files, err := c.p.instances(c.name, "")
	if err != nil {
		return nil, err
	}
	out := make([]platform.Instance, 0, len(files))
	for _, f := range files {
		out = append(out, f.Instance)
	}
	return out, nil
}

// StartInstance starts a node of pool and joins it; for managers it returns
// once the new manager is Reachable, with its agent started beside it.
func (c *Cluster) StartInstance(ctx context.Context, pool policy.Pool) (platform.Instance, error) {
	if err := c.p.checkHost(); err != nil {
		return platform.Instance{}, err
	}
	pool.Cluster = c.name
	f, err := c.p.startAndJoin(ctx, c.name, pool)
	if err != nil {
		return platform.Instance{}, err
	}
	f.Running = true
	if pool.Role == policy.RoleManager {
		// A new manager gets its agent, as user data gives one on a cloud.
		if d, err := c.Descriptor(ctx); err == nil && d.Agent != nil && d.Agent.Enabled {
			if err := c.p.startAgent(&f, d); err != nil {
				return f.Instance, err
			}
		}
	}
	return f.Instance, nil
}

// TerminateInstance stops an instance's processes and removes its directory.
func (c *Cluster) TerminateInstance(ctx context.Context, id string) error {
	files, err := c.p.instances(c.name, "")
	if err != nil {
		return err
	}
	for _, f := range files {
		if f.ID == id {
			return c.p.removeInstance(ctx, f)
		}
	}
	return nil
}

func (c *Cluster) journalFile() string { return filepath.Join(c.p.clusterDir(c.name), "journal.json") }

// LoadJournal reads the agent's journal.
func (c *Cluster) LoadJournal(_ context.Context, v any) error {
	err := readJSON(c.journalFile(), v)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// SaveJournal replaces the agent's journal atomically.
func (c *Cluster) SaveJournal(_ context.Context, v any) error {
	return writeJSON(c.journalFile(), v)
}

// agentBinary finds autarky-agent: the configured path, beside the running
// executable (the provider's), or on PATH.
func agentBinary(configured string) (string, error) {
	if configured != "" {
		if _, err := os.Stat(configured); err != nil {
			return "", fmt.Errorf("agent.binary %q: %w", configured, err)
		}
		return configured, nil
	}
	if self, err := os.Executable(); err == nil {
		beside := filepath.Join(filepath.Dir(self), "autarky-agent")
		if _, err := os.Stat(beside); err == nil {
			return beside, nil
		}
	}
	if path, err := exec.LookPath("autarky-agent"); err == nil {
		return path, nil
	}
	return "", errors.New("autarky-agent not found: set agent.binary, put it beside terraform-provider-autarky, or on PATH (make install)")
}

// ResolveAgentBinary returns the agent executable a cluster's settings name.
func ResolveAgentBinary(configured string) (string, error) { return agentBinary(configured) }

// agentRunning reports whether the agent beside a manager runs.
func agentRunning(f instanceFile) bool {
	if f.AgentPID <= 0 || !processRunning(f.AgentPID) {
		return false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", f.AgentPID))
	return err == nil && containsArg(cmdline, f.DockerHost)
}

func containsArg(cmdline []byte, arg string) bool {
	for _, a := range splitNul(cmdline) {
		if a == arg {
			return true
		}
	}
	return false
}

func splitNul(b []byte) []string {
	var out []string
	start := 0
	for i, c := range b {
		if c == 0 {
			out = append(out, string(b[start:i]))
			start = i + 1
		}
	}
	return out
}

// startAgent starts autarky-agent beside a manager, in its own session so
// it outlives the caller, logging to the node's agent.log.
func (p *Platform) startAgent(f *instanceFile, c policy.Cluster) error {
	bin, err := agentBinary(c.Agent.Binary)
	if err != nil {
		return err
	}
	args := []string{"run",
		"--cluster", c.Name,
		"--platform", policy.PlatformLocal,
		"--state-dir", p.stateDir,
		"--docker-host", f.DockerHost,
		"--listen", net.JoinHostPort(f.Addr, strconv.Itoa(policy.AgentPort)),
		"--evaluation-interval", c.Agent.EvaluationInterval,
		"--log-format", "json",
	}
	if c.Agent.DryRun {
		args = append(args, "--dry-run")
	}
	logf, err := os.OpenFile(filepath.Join(f.Dir, "agent.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start agent beside %s: %w", f.ID, err)
	}
	f.AgentPID = cmd.Process.Pid
	go func() { _ = cmd.Wait() }()
	p.progress("agent started", "instance", f.ID, "listen", args[10])
	return writeInstance(*f)
}

// stopAgent stops the agent beside a manager.
func stopAgent(f *instanceFile) {
	if agentRunning(*f) {
		_ = syscall.Kill(f.AgentPID, syscall.SIGTERM)
		for i := 0; i < 100 && agentRunning(*f); i++ {
			time.Sleep(50 * time.Millisecond)
		}
		if agentRunning(*f) {
			_ = syscall.Kill(f.AgentPID, syscall.SIGKILL)
		}
	}
	f.AgentPID = 0
	_ = writeInstance(*f)
}

// ensureAgents makes the agents beside the cluster's live managers match
// the descriptor: started when enabled, stopped when not, restarted when
// their settings changed.
func (p *Platform) ensureAgents(_ context.Context, c policy.Cluster, restart bool) error {
	insts, err := p.instances(c.Name, policy.ManagerPoolName)
	if err != nil {
		return err
	}
	for i := range insts {
		f := &insts[i]
		if !f.Running {
			continue
		}
		enabled := c.Agent != nil && c.Agent.Enabled
		if agentRunning(*f) && (!enabled || restart) {
			stopAgent(f)
		}
		if enabled && !agentRunning(*f) {
			if err := p.startAgent(f, c); err != nil {
				return err
			}
		}
	}
	return nil
}
