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
func (c *Cluster) Instances(ctx context.Context) ([]platform.Instance, error) {
	if c.p.launcher != nil {
		return c.remoteInstances(ctx)
	}
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

// joinWindow bounds the background boot and join of an instance the agent
// started; an instance that has not joined by then stays unjoined, and the
// agent's join_timeout deals with it, as with a cloud instance whose user
// data failed.
const joinWindow = 5 * time.Minute

// LabelsNodesAtJoin says the platform labels every node it starts with
// its pool's labels as it joins it (platform.JoinLabeller), so the agent
// does not label a local cluster's nodes.
func (c *Cluster) LabelsNodesAtJoin() {}

// StartInstance launches a node of pool and returns at once, as a cloud's
// RunInstances does; the node boots and joins the swarm in the background,
// the local platform's user data. A new manager gets its agent once joined.
func (c *Cluster) StartInstance(ctx context.Context, pool policy.Pool) (platform.Instance, error) {
	if c.p.launcher != nil {
		return c.remoteStart(ctx, pool)
	}
	if err := c.p.checkHost(); err != nil {
		return platform.Instance{}, err
	}
	pool.Cluster = c.name
	f, err := c.p.launch(c.name, pool.Name, pool.Role)
	if err != nil {
		return platform.Instance{}, err
	}
	go c.bootAndJoin(f, pool)
	f.Running = true
	return f.Instance, nil
}

func (c *Cluster) bootAndJoin(f instanceFile, pool policy.Pool) {
	ctx, cancel := context.WithTimeout(context.Background(), joinWindow)
	defer cancel()
	fail := func(err error) {
		c.p.progress("instance did not join; it stays unjoined", "instance", f.ID, "error", err.Error())
	}
	if err := c.p.boot(ctx, f); err != nil {
		fail(err)
		return
	}
	mgr, err := c.p.manager(ctx, c.name)
	if err != nil {
		fail(err)
		return
	}
	defer mgr.Close()
	if err := c.p.join(ctx, mgr, &f, pool); err != nil {
		fail(err)
		return
	}
	if pool.Role == policy.RoleManager {
		if d, err := c.Descriptor(ctx); err == nil && d.Agent != nil && d.Agent.Enabled {
			if err := c.p.startAgent(&f, d); err != nil {
				fail(err)
			}
		}
	}
}

// TerminateInstance stops an instance's processes and removes its directory.
func (c *Cluster) TerminateInstance(ctx context.Context, id string) error {
	if c.p.launcher != nil {
		return c.remoteTerminate(ctx, id)
	}
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

// agentWatchdog is how long a supervised agent may go without finishing an
// evaluation before its supervisor kills and restarts it: six evaluation
// intervals, and never under 30s.
func agentWatchdog(interval string) time.Duration {
	every, err := policy.ParseEvaluationInterval(interval)
	if err != nil {
		every = policy.DefaultEvaluationInterval
	}
	return max(30*time.Second, 6*every)
}

// agentStopWait bounds how long stopAgent waits for the supervisor after
// SIGTERM: the supervisor gives the agent agentStopTimeout, then SIGKILL.
const (
	agentStopTimeout = 10 * time.Second
	agentStopWait    = agentStopTimeout + 5*time.Second
)

// agentPIDFile is where the supervisor beside a manager records the pid of
// the agent it runs.
func agentPIDFile(f instanceFile) string { return filepath.Join(f.Dir, "agent.pid") }

// startAgent starts autarky-agent beside a manager under its supervisor
// (`autarky-agent supervise`), in its own session so it outlives the
// caller, logging to the node's agent.log. The supervisor restarts the agent
// when it exits, and kills and restarts it when its evaluations stop coming
// round (the watchdog); AgentPID is the supervisor's pid, and the agent's
// own is in agent.pid.
func (p *Platform) startAgent(f *instanceFile, c policy.Cluster) error {
	bin, err := agentBinary(c.Agent.Binary)
	if err != nil {
		return err
	}
	listen := net.JoinHostPort(f.Addr, strconv.Itoa(policy.AgentPort))
	args := []string{"supervise",
		"--watchdog", agentWatchdog(c.Agent.EvaluationInterval).String(),
		"--stop-timeout", agentStopTimeout.String(),
		"--pid-file", agentPIDFile(*f),
		"--log-format", "json",
		"--",
		"run",
		"--cluster", c.Name,
		"--platform", policy.PlatformLocal,
		"--state-dir", p.stateDir,
		"--docker-host", f.DockerHost,
		"--listen", listen,
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
	p.progress("agent started", "instance", f.ID, "listen", listen)
	return writeInstance(*f)
}

// agentSupervised reports whether the running agent process is a
// supervisor; an agent started bare (by an older provider) is not.
func agentSupervised(f instanceFile) bool {
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", f.AgentPID))
	if err != nil {
		return false
	}
	args := splitNul(cmdline)
	return len(args) > 1 && args[1] == "supervise"
}

// stopAgent stops the agent beside a manager: SIGTERM to its supervisor,
// which stops the agent and exits; if it has not after agentStopWait, its
// whole process group (the supervisor's session: itself and the agent) gets
// SIGKILL.
func stopAgent(f *instanceFile) {
	if agentRunning(*f) {
		_ = syscall.Kill(f.AgentPID, syscall.SIGTERM)
		deadline := time.Now().Add(agentStopWait)
		for agentRunning(*f) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if agentRunning(*f) {
			if pgid, err := syscall.Getpgid(f.AgentPID); err == nil && pgid == f.AgentPID {
				_ = syscall.Kill(-pgid, syscall.SIGKILL)
			}
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
		if agentRunning(*f) && (!enabled || restart || !agentSupervised(*f)) {
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

// Restart starts a stopped instance's dockerd again on its own data, as
// powering a machine back on does: it rejoins the swarm as the same node.
func (c *Cluster) Restart(ctx context.Context, id string) error {
	if c.p.launcher != nil {
		return c.remoteRestart(ctx, id)
	}
	if err := c.p.checkHost(); err != nil {
		return err
	}
	files, err := c.p.instances(c.name, "")
	if err != nil {
		return err
	}
	for _, f := range files {
		if f.ID != id {
			continue
		}
		if f.Running {
			return nil
		}
		if err := c.p.startProcess(&f, engineLabels(f.Instance)); err != nil {
			return err
		}
		return c.p.boot(ctx, f)
	}
	return fmt.Errorf("instance %s: %w", id, platform.ErrNotFound)
}
