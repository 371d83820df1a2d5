package agentconfig_test

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	agentpkg "github.com/autarky/terraform-provider-autarky/internal/agent"
	"github.com/autarky/terraform-provider-autarky/internal/agentconfig"
	"github.com/autarky/terraform-provider-autarky/internal/platform"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
	"github.com/autarky/terraform-provider-autarky/internal/testenv"
)

// restartConfig adopts the hand-built swarm's workers with a scaling
// policy that grows the pool for pending tasks (and shrinks it only after
// an hour of nodes it does not need: never in the test).
const restartConfig = `
cluster             = "handmade"
platform            = "local"
docker_host         = "unix:///tmp/handmade/m1/docker.sock"
listen              = "127.200.0.1:9910"
evaluation_interval = "1s"
drain_timeout       = "30s"

local {
  state_dir = "/tmp/handmade/state"
}

adopt {
  node_pool "workers" {
    min_size = 2
    max_size = 5

    healing_policy {
      unhealthy_after       = "5s"
      min_node_age          = "0s"
      max_unhealthy_percent = 50
    }

    scaling_policy {
      cooldown_up    = "1s"
      cooldown_down  = "1s"
      scale_in_after = "1h"
      max_step       = 3
      pending_tasks {}
    }
  }
}
`

// TestAdoptedSizeSurvivesRestart: the agent grows an adopted pool from the
// file's desired_size 2 to 5 nodes for pending tasks, each node then
// running one; the agent restarts (a crash, an upgrade, leadership moving
// to another manager's agent: a new process that never saw the scale-out).
// The restarted agent takes the pool's size from what exists (5), not from
// the file: for a while it drains, removes and starts nothing, every task
// keeps running, and its status says desired 5. Then the tasks go and one
// of the agent's nodes dies: healing replaces it, as a failed node of a
// pool at its size is, instead of removing it as a surplus above the
// file's 2 and leaving the pool at 4 (nothing pending would grow it back).
func TestAdoptedSizeSurvivesRestart(t *testing.T) {
	h := newHandmade(t)
	if err := os.WriteFile(filepath.Join(h.dir, "agent.hcl"), []byte(h.sub(restartConfig)), 0o600); err != nil {
		t.Fatal(err)
	}
	m1 := "unix://" + filepath.Join(h.dir, "m1", "docker.sock")
	state := filepath.Join(h.dir, "state")

	// The task image: the sleeper, imported into every worker, the
	// agent's as they appear (a task placed before is retried).
	image := sleeperImage(t, h.dir)
	imported := map[string]bool{}
	importInto := func(host string) bool {
		if imported[host] {
			return true
		}
		out, err := dockerOut(host, "image", "import", "--change", `ENTRYPOINT ["/sleeper"]`, image, "autarky/sleeper:latest")
		if err != nil {
			t.Logf("import into %s: %v %s", host, err, out)
			return false
		}
		imported[host] = true
		return true
	}
	for _, w := range []string{"w1", "w2"} {
		if !importInto("unix://" + filepath.Join(h.dir, w, "docker.sock")) {
			t.Fatalf("cannot import the task image into %s", w)
		}
	}
	importAll := func() {
		for _, r := range testenv.Records(state, "handmade", "workers") {
			importInto(r.DockerHost)
		}
	}

	first := h.startAgent()
	// Each task reserves most of a node's CPUs: one per node, five nodes.
	cpus := strings.TrimSpace(testenv.Docker(t, m1, "info", "--format", "{{.NCPU}}"))
	var n float64
	if _, err := fmt.Sscan(cpus, &n); err != nil {
		t.Fatalf("NCPU %q: %v", cpus, err)
	}
	testenv.Docker(t, m1, "service", "create", "--detach", "--name", "busy", "--replicas", "5",
		"--reserve-cpu", fmt.Sprintf("%.1f", n-0.5), "--replicas-max-per-node", "1", "--restart-delay", "1s",
		"--constraint", "engine.labels.autarky.pool==workers", "autarky/sleeper:latest")
	running := func() int {
		out, _ := dockerOut(m1, "service", "ps", "busy", "--filter", "desired-state=running", "--format", "{{.CurrentState}}")
		return strings.Count(out, "Running")
	}
	testenv.WaitFor(t, "the pool grown to 5 nodes, each running a task", 4*time.Minute, func() (bool, string) {
		importAll()
		ns := poolNodes(t, h)
		return len(ns) == 5 && running() == 5, fmt.Sprintf("%d nodes %v, %d tasks running", len(ns), ns, running())
	})
	before := poolNodes(t, h)
	if d := desired(t); d != 5 {
		t.Errorf("the agent that scaled the pool out says desired %d, want 5", d)
	}

	first.stop()
	second := h.startAgent()
	// The restarted agent evaluates every second: watch it for 20 s.
	end := time.Now().Add(20 * time.Second)
	for time.Now().Before(end) {
		now := poolNodes(t, h)
		if strings.Join(now, " ") != strings.Join(before, " ") {
			t.Fatalf("after the restart the pool's nodes changed from %v to %v", before, now)
		}
		if r := running(); r != 5 {
			t.Fatalf("after the restart %d of the 5 tasks run", r)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if d := desired(t); d != 5 {
		t.Errorf("the restarted agent says pool handmade/workers has desired size %d, want 5: the size it finds, not the file's 2", d)
	}
	relearnOnLead(t, h)

	// With no task left, one of the agent's own engines dies: nothing is
	// pending, so only healing keeps the pool at its size.
	testenv.Docker(t, m1, "service", "rm", "busy")
	recs := testenv.Records(state, "handmade", "workers")
	if len(recs) != 3 {
		t.Fatalf("the state dir holds %d engines of pool workers, want the 3 the agent started", len(recs))
	}
	victim := recs[0]
	if err := syscall.Kill(victim.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "a replacement for "+victim.ID+", and the dead node removed", 90*time.Second, func() (bool, string) {
		importAll()
		all, err := h.mgr.Nodes(t.Context())
		if err != nil {
			return false, err.Error()
		}
		ns := poolNodes(t, h)
		for _, n := range all {
			if n.ID == victim.NodeID {
				return false, fmt.Sprintf("%s still listed (%s); ready nodes %v", n.ID, n.State, ns)
			}
		}
		return len(ns) == 5, fmt.Sprintf("ready nodes %v", ns)
	})
	if log := second.log.String(); !strings.Contains(log, "replacement started") || !strings.Contains(log, "for_instance="+victim.ID) {
		t.Errorf("the restarted agent did not replace the dead %s (it removed it as a surplus?):\n%s", victim.ID, log)
	}
}

// relearnOnLead: an agent that becomes the leader learns the pool's size
// again, since what it kept in memory may be stale: the leader before it
// resized the pool. Here an agent (in this process, deciding only) whose
// memory says 3 for the 5 nodes becomes the leader at its first
// evaluation (as after the lead moved to its manager) and says 5.
func relearnOnLead(t *testing.T, h *handmade) {
	t.Helper()
	path := filepath.Join(h.dir, "agent.hcl")
	f, err := agentconfig.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	a, err := f.Adoption("handmade", policy.PlatformLocal)
	if err != nil {
		t.Fatal(err)
	}
	m1 := "unix://" + filepath.Join(h.dir, "m1", "docker.sock")
	opened, err := platform.Open(t.Context(), policy.PlatformLocal, platform.AgentSettings{Cluster: "handmade",
		StateDir: filepath.Join(h.dir, "state"), DockerHost: m1, Adopt: a})
	if err != nil {
		t.Fatal(err)
	}
	if err := opened.Cluster.SetDesiredSize(t.Context(), "workers", 3); err != nil {
		t.Fatal(err)
	}
	ag, err := agentpkg.New(agentpkg.Config{DockerHost: m1, Listen: "127.0.0.1:0", EvaluationInterval: time.Second, DryRun: true,
		Logger: hclog.NewNullLogger()}, opened.Cluster)
	if err != nil {
		t.Fatal(err)
	}
	ag.Evaluate(t.Context())
	st := ag.Status()
	for _, p := range st.Pools {
		if p.ID == "handmade/workers" {
			if p.Desired != 5 {
				t.Errorf("an agent that became the leader with 3 in memory says desired %d, want the 5 that exist", p.Desired)
			}
			return
		}
	}
	t.Errorf("the agent's status has no pool handmade/workers: %+v", st)
}

// poolNodes are the swarm's Ready, active nodes of pool workers, sorted.
func poolNodes(t *testing.T, h *handmade) []string {
	t.Helper()
	ns, err := h.mgr.Nodes(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, n := range ns {
		if n.EngineLabels["autarky.pool"] == "workers" && n.State == "ready" && n.Availability == "active" {
			out = append(out, n.ID)
		}
	}
	sort.Strings(out)
	return out
}

// desired is the agent's desired size of pool handmade/workers, from its
// status.
func desired(t *testing.T) int {
	t.Helper()
	body, err := agentpkg.FetchStatus(handmadeStatus, "")
	if err != nil {
		t.Fatal(err)
	}
	var st agentpkg.Status
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatal(err)
	}
	for _, p := range st.Pools {
		if p.ID == "handmade/workers" {
			return p.Desired
		}
	}
	t.Fatalf("the agent's status has no pool handmade/workers: %s", body)
	return 0
}

// sleeperImage writes the sleeper as a root filesystem tarball (/sleeper)
// under dir, for `docker image import`.
func sleeperImage(t *testing.T, dir string) string {
	bin, err := os.ReadFile(testenv.SleeperBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: "sleeper", Mode: 0o755, Size: int64(len(bin)), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(bin); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "sleeper.tar")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func dockerOut(host string, args ...string) (string, error) {
	b, err := exec.Command("docker", append([]string{"-H", host}, args...)...).CombinedOutput()
	return string(b), err
}
