package agentconfig_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	agentpkg "github.com/autarky/terraform-provider-autarky/internal/agent"
	"github.com/autarky/terraform-provider-autarky/internal/platform/local"
	"github.com/autarky/terraform-provider-autarky/internal/swarm"
	"github.com/autarky/terraform-provider-autarky/internal/testenv"
)

// handmade is the adopting guide's hand-built swarm on this machine (its
// block adopt-local-swarm: a manager m1 and workers w1 and w2 labelled for
// pool workers of cluster handmade), in a directory of the test's own in
// place of the guide's /tmp/handmade, with the agents the test starts
// from it. Its cleanup stops them and every engine, the agent's too, with
// the guide's cleanup block, and fails the test if anything is left.
type handmade struct {
	t        *testing.T
	dir, bin string
	env      []string
	mgr      *swarm.Client
	agents   []*handmadeAgent
}

// handmadeAgent is one `autarky-agent run` the test started.
type handmadeAgent struct {
	cmd *exec.Cmd
	log testenv.LockedBuffer
}

// handmadeStatus is where the guide's configuration has the agent listen.
const handmadeStatus = "http://127.200.0.1:9910"

func newHandmade(t *testing.T) *handmade {
	testenv.RequireLocalPlatform(t)
	for _, tool := range []string{"docker", "unshare"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed: run `%s`", tool, testenv.Setup)
		}
	}
	bin := testenv.AgentBinary(t)
	dir, err := os.MkdirTemp("", "akh")
	if err != nil {
		t.Fatal(err)
	}
	h := &handmade{t: t, dir: dir, bin: bin, env: append(os.Environ(), "PATH="+filepath.Dir(bin)+":"+os.Getenv("PATH"))}
	t.Cleanup(h.cleanup)
	h.bash("adopt-local-swarm")
	if h.mgr, err = swarm.Dial("unix://" + filepath.Join(dir, "m1", "docker.sock")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	if err := h.mgr.WaitNodes(ctx, "the hand-built swarm's 3 nodes to be ready", func(ns []swarm.Node) bool {
		return len(ns) == 3 && ready(ns) == 3
	}); err != nil {
		t.Fatal(err)
	}
	return h
}

// sub puts the test's directory in place of the guide's one placeholder,
// its directory /tmp/handmade.
func (h *handmade) sub(s string) string { return strings.ReplaceAll(s, "/tmp/handmade", h.dir) }

// bash runs the guide's block name, bounded: the guide waits for the
// engines without a bound, the test gives up after three minutes.
func (h *handmade) bash(name string) string {
	h.t.Helper()
	bctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(bctx, "bash", "-e", "-c", h.sub(testenv.DocBlock(h.t, guide, name)))
	cmd.Env = h.env
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		h.t.Fatalf("the guide's %s: %v\n%s", name, err, out)
	}
	return string(out)
}

// startAgent runs the guide's adopt-local-run (the configuration is
// dir/agent.hcl) and waits until the agent's status names the adopted
// pool: it has read the file and the swarm.
func (h *handmade) startAgent() *handmadeAgent {
	h.t.Helper()
	a := &handmadeAgent{cmd: exec.Command("bash", "-c", "exec "+h.sub(testenv.DocBlock(h.t, guide, "adopt-local-run")))}
	a.cmd.Env = h.env
	a.cmd.Stdout, a.cmd.Stderr = &a.log, &a.log
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := a.cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	h.agents = append(h.agents, a)
	deadline := time.Now().Add(time.Minute)
	for {
		body, err := agentpkg.FetchStatus(handmadeStatus, "")
		if err == nil && strings.Contains(string(body), `"handmade/workers"`) {
			return a
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("the agent's status does not name pool handmade/workers: %v\n%s\nagent log:\n%s", err, body, a.log.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// stop ends the agent as systemd or Ctrl-C would (SIGTERM) and waits.
func (a *handmadeAgent) stop() {
	if a.cmd.ProcessState != nil {
		return
	}
	_ = syscall.Kill(-a.cmd.Process.Pid, syscall.SIGTERM)
	_ = a.cmd.Wait()
}

func (h *handmade) cleanup() {
	t := h.t
	for i, a := range h.agents {
		a.stop()
		if t.Failed() {
			t.Logf("log of agent %d:\n%s", i+1, a.log.String())
		}
	}
	if h.mgr != nil {
		h.mgr.Close()
	}
	p, err := local.New(filepath.Join(h.dir, "state"), nil, local.Options{})
	if err == nil {
		if err := p.DeleteCluster(context.Background(), "handmade"); err != nil {
			t.Errorf("delete the agent's engines: %v", err)
		}
	}
	cleanup := exec.Command("bash", "-c", h.sub(testenv.DocBlock(t, guide, "adopt-local-cleanup")))
	if out, err := cleanup.CombinedOutput(); err != nil {
		t.Errorf("the guide's cleanup: %v\n%s", err, out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(testenv.Leftovers(h.dir)) > 0 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	if left := testenv.Leftovers(h.dir); len(left) > 0 {
		t.Errorf("the guide's cleanup left:\n%s", strings.Join(left, "\n"))
	}
	_ = os.RemoveAll(h.dir)
}
