package packaging

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/platform/local"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
	"github.com/autarky/terraform-provider-autarky/internal/testenv"
)

const guide = "templates/guides/agent-service.md.tmpl"

// The agent as a Swarm service, as the guide tells it, on a real local
// cluster whose provider-started agents are off: the guide's blocks build
// the image (make build, then docker build of the repository's
// Dockerfile on the nodes' engines), start the launcher on the machine and
// deploy the stack file. Then one agent task runs on every manager and
// none on the workers, each healthy by the image's HEALTHCHECK, and
// exactly one, the one on the Raft leader's node, says it leads. A worker's
// dockerd is killed (a machine failure): the leader's agent, and no other,
// starts its replacement through the launcher, a dockerd of the machine
// in no container, and the pool is back to two Ready nodes without the
// dead one. The image's size is logged.
func TestAgentStackHealsOnLocalCluster(t *testing.T) {
	testenv.RequireLocalPlatform(t)
	root := testenv.RepoRoot(t)
	stateDir := testenv.StateDir(t)
	const cluster = "stk"
	p, err := local.New(stateDir, func(msg string, kv ...any) { t.Log(append([]any{msg}, kv...)...) }, local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// No Agent: the provider starts no agent beside the managers.
	if _, err := p.CreateCluster(ctx, policy.Cluster{Name: cluster, Platform: policy.PlatformLocal, ManagerCount: 3, HeartbeatPeriod: "1s"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.DeleteCluster(context.Background(), cluster); err != nil {
			t.Errorf("delete cluster: %v", err)
		}
		if left := testenv.Leftovers(stateDir); len(left) > 0 {
			t.Errorf("left behind: %v", left)
		}
	})
	pool := policy.Pool{Cluster: cluster, Name: "web", Role: policy.RoleWorker, MaxSize: 5, DesiredSize: 2, WaitForCapacityTimeout: "2m"}
	if _, err := p.CreatePool(ctx, pool, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	heal := policy.DefaultHealing(pool.ID())
	heal.UnhealthyAfter, heal.MinNodeAge = "3s", "0s"
	if err := p.PutHealingPolicy(ctx, heal); err != nil {
		t.Fatal(err)
	}
	managers := testenv.Records(stateDir, cluster, policy.ManagerPoolName)
	if len(managers) != 3 {
		t.Fatalf("%d managers", len(managers))
	}
	env := append(os.Environ(), "AUTARKY_STATE_DIR="+stateDir, "CLUSTER="+cluster, "DOCKER_HOST="+managers[0].DockerHost,
		"PATH="+filepath.Join(root, "bin")+":"+os.Getenv("PATH"))
	run := func(block string) string {
		t.Helper()
		text := testenv.DocBlock(t, guide, block)
		cmd := exec.Command("bash", "-euo", "pipefail", "-c", text)
		cmd.Dir, cmd.Env = root, env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("the guide's block %s: %v\n%s\n%s", block, err, text, out)
		}
		return string(out)
	}
	docker := func(host string, args ...string) string {
		t.Helper()
		return testenv.Docker(t, host, args...)
	}

	run("image-build")
	run("local-launcher")
	pidFile := filepath.Join(stateDir, "launcher.pid")
	b, err := os.ReadFile(pidFile)
	pid, perr := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || perr != nil {
		t.Fatalf("the launcher's pid file: %v %v", err, perr)
	}
	t.Cleanup(func() {
		// The guide's removal (local-remove) stopped it; a test that
		// failed before stops it here.
		_ = syscall.Kill(pid, syscall.SIGTERM)
		for i := 0; i < 100 && syscall.Kill(pid, 0) == nil; i++ {
			time.Sleep(100 * time.Millisecond)
		}
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(stateDir, "launcher.log"))
			t.Logf("launcher.log:\n%s", log)
		}
	})
	socket := local.LauncherSocket(stateDir)
	testenv.WaitFor(t, "the launcher's socket", 30*time.Second, func() (bool, string) {
		st, err := os.Stat(socket)
		if err != nil {
			return false, err.Error()
		}
		return st.Mode()&os.ModeSocket != 0 && st.Mode().Perm() == 0o600, st.Mode().String()
	})
	run("local-image")
	size := docker(managers[0].DockerHost, "image", "ls", "autarky/agent:dev", "--format", "{{.Size}}")
	t.Logf("image autarky/agent:dev on a node: %s (docker image ls)", size)

	run("local-deploy")
	removed := false
	t.Cleanup(func() {
		if t.Failed() && !removed {
			t.Logf("docker service logs autarky_agent:\n%s", dockerOut(managers[0].DockerHost, "service", "logs", "--tail", "20", "autarky_agent"))
		}
		if !removed {
			cmd := exec.Command("docker", "stack", "rm", "autarky")
			cmd.Env = env
			_ = cmd.Run()
		}
		waitAgentsGone(managers)
	})

	// One healthy task on every manager; the leader's agent alone leads.
	agents := map[string]string{} // manager instance id -> container id
	testenv.WaitFor(t, "an agent healthy on every manager", 3*time.Minute, func() (bool, string) {
		var notes []string
		for _, m := range managers {
			cid := strings.TrimSpace(dockerOut(m.DockerHost, "ps", "-q", "--filter", "label=com.docker.swarm.service.name=autarky_agent"))
			if cid == "" || strings.Contains(cid, "\n") {
				notes = append(notes, m.ID+": containers "+strconv.Quote(cid))
				continue
			}
			health := strings.TrimSpace(dockerOut(m.DockerHost, "inspect", "--format", "{{.State.Health.Status}}", cid))
			if health != "healthy" {
				notes = append(notes, m.ID+": "+health)
				continue
			}
			agents[m.ID] = cid
		}
		return len(notes) == 0, strings.Join(notes, "; ") + "\n" + dockerOut(managers[0].DockerHost, "service", "ps", "--no-trunc", "autarky_agent")
	})
	for _, w := range testenv.Records(stateDir, cluster, "web") {
		if cid := strings.TrimSpace(dockerOut(w.DockerHost, "ps", "-aq")); cid != "" {
			t.Fatalf("worker %s runs containers %s: the service is for managers only", w.ID, cid)
		}
	}
	ps := run("local-ps")
	for _, m := range managers {
		if !strings.Contains(ps, m.ID) {
			t.Fatalf("docker service ps does not show a task on %s:\n%s", m.ID, ps)
		}
	}
	leaderNode := ""
	for _, line := range strings.Split(docker(managers[0].DockerHost, "node", "ls", "--format", "{{.Hostname}} {{.ManagerStatus}}"), "\n") {
		if host, status, _ := strings.Cut(line, " "); status == "Leader" {
			leaderNode = host
		}
	}
	var leading []string
	testenv.WaitFor(t, "every agent to see the leader's agent up", time.Minute, func() (bool, string) {
		var down string
		leading, down = leadingAgents(t, managers)
		return down == "", down
	})
	if len(leading) != 1 || leading[0] != leaderNode {
		t.Fatalf("agents that say they lead: %v, want only the one on the leader %s", leading, leaderNode)
	}

	// A machine failure: the worker's dockerd is killed.
	web := testenv.Records(stateDir, cluster, "web")
	victim := web[0]
	if err := syscall.Kill(victim.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed %s (pid %d)", victim.ID, victim.PID)
	var replacement testenv.Record
	testenv.WaitFor(t, "the pool healed", 4*time.Minute, func() (bool, string) {
		recs := testenv.Records(stateDir, cluster, "web")
		var ids []string
		for _, r := range recs {
			ids = append(ids, r.ID)
			if r.ID == victim.ID {
				return false, "the dead instance is still recorded: " + strings.Join(ids, " ")
			}
		}
		if len(recs) != 2 {
			return false, fmt.Sprintf("%d instances %v", len(recs), ids)
		}
		ready := 0
		for _, line := range strings.Split(dockerOut(managers[0].DockerHost, "node", "ls", "--format", "{{.Hostname}} {{.Status}}"), "\n") {
			host, status, _ := strings.Cut(line, " ")
			for _, r := range recs {
				if r.ID == host && status == "Ready" {
					ready++
				}
			}
			if host == victim.ID {
				return false, "the dead node is still in the swarm"
			}
		}
		for _, r := range recs {
			if r.ID != web[1].ID {
				replacement = r
			}
		}
		return ready == 2, fmt.Sprintf("%d of %v Ready", ready, ids)
	})
	// The replacement is a dockerd of the machine, in no container's
	// cgroup: the launcher started it, not the agent's container.
	cg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", replacement.PID))
	if err != nil || strings.Contains(string(cg), "docker") || strings.Contains(string(cg), "autarky-127.") {
		t.Fatalf("the replacement %s (pid %d) runs in %q (%v): not a process of the machine", replacement.ID, replacement.PID, cg, err)
	}
	mine, _ := os.Readlink("/proc/self/ns/pid")
	if ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", replacement.PID)); err != nil || ns != mine {
		t.Fatalf("the replacement %s (pid %d) is in PID namespace %s (%v), not the machine's %s", replacement.ID, replacement.PID, ns, err, mine)
	}
	if log, _ := os.ReadFile(filepath.Join(stateDir, "launcher.log")); !strings.Contains(string(log), replacement.ID) {
		t.Fatalf("the launcher did not start %s:\n%s", replacement.ID, log)
	}
	// The leader's agent replaced it; the followers only watched.
	for id, cid := range agents {
		m := recordOf(managers, id)
		logs := dockerOut(m.DockerHost, "logs", cid)
		acted := strings.Contains(logs, `"replacement started"`)
		if acted != (id == leaderNode) {
			t.Fatalf("agent on %s (leader %s) started a replacement: %t\n%s", id, leaderNode, acted, logs)
		}
	}

	// The guide's removal: the agents go, then the launcher.
	run("local-remove")
	removed = true
	waitAgentsGone(managers)
	testenv.WaitFor(t, "the launcher to exit", 30*time.Second, func() (bool, string) {
		return syscall.Kill(pid, 0) != nil, fmt.Sprintf("pid %d", pid)
	})
	if _, err := os.Stat(socket); err == nil {
		t.Errorf("the launcher left its socket %s", socket)
	}
}

// waitAgentsGone waits, a while at most, for the agents' containers to
// leave the managers.
func waitAgentsGone(managers []testenv.Record) {
	for _, m := range managers {
		for i := 0; i < 300; i++ {
			out, err := exec.Command("docker", "-H", m.DockerHost, "ps", "-q", "--filter", "label=com.docker.swarm.service.name=autarky_agent").Output()
			if err != nil || strings.TrimSpace(string(out)) == "" {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// leadingAgents asks each manager's agent, on its node's address (the
// stack's --listen node:9910), whether it leads, and returns the managers
// whose agent does, and what keeps any agent from seeing the leader's up
// (every agent reaches the leader's, as on separate machines).
func leadingAgents(t *testing.T, managers []testenv.Record) (leading []string, down string) {
	t.Helper()
	for _, m := range managers {
		b, err := exec.Command("curl", "-fsS", "--max-time", "5", fmt.Sprintf("http://%s:%d/v1/status", m.Addr, policy.AgentPort)).CombinedOutput()
		raw := string(b)
		if err != nil {
			t.Fatalf("status of the agent on %s: %v\n%s", m.ID, err, raw)
		}
		var st struct {
			Leader      bool `json:"leader"`
			LeaderAgent struct {
				Up    bool   `json:"up"`
				Error string `json:"error"`
			} `json:"leader_agent"`
		}
		if err := json.Unmarshal([]byte(raw), &st); err != nil {
			t.Fatalf("status of the agent on %s: %v\n%s", m.ID, err, raw)
		}
		if !st.LeaderAgent.Up {
			down += m.ID + ": " + st.LeaderAgent.Error + "; "
		}
		if st.Leader {
			leading = append(leading, m.ID)
		}
	}
	return leading, down
}

func recordOf(recs []testenv.Record, id string) testenv.Record {
	for _, r := range recs {
		if r.ID == id {
			return r
		}
	}
	return testenv.Record{}
}

// dockerOut is the docker CLI's output against host, errors included.
func dockerOut(host string, args ...string) string {
	out, _ := exec.Command("docker", append([]string{"-H", host}, args...)...).CombinedOutput()
	return string(out)
}
