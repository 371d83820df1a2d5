package agent_test

import (
	"context"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/agent"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
	"github.com/autarky/terraform-provider-autarky/internal/testenv"
)

// BenchmarkSwarm100Nodes measures the agent on a real Swarm of 3 managers
// and 100 workers on this machine (issue 15, item 1): every node a real
// dockerd, heartbeat 1s. The nodes run no task: under vfs every node holds
// its own copy of the workload image (the agent binary, ~120 MB), and a
// first run that loaded it into 100 nodes filled this machine's 43 GB of
// free disk (about 400 MB a node, image and its layer) before the last
// node joined. Reported:
//   - the time to boot and join the 100 workers, and the memory (the sum
//     of the nodes' processes' resident sets) and disk (the state dir)
//     the cluster takes;
//   - one evaluation of an in-process agent (dry run, so it changes
//     nothing) beside the leader: wall and CPU time, Engine API calls
//     (through the fault proxy, which counts them), allocated bytes;
//   - worker MTTR with 100 nodes (the host agents, 2s evaluations,
//     unhealthy_after 2s);
//   - the reaction to 200 pending tasks (a service of 200 replicas
//     constrained to a pool of 0 nodes with a pending_tasks policy: tasks
//     that cannot be placed need no container): the time to the first
//     instance asked for.
//
// Run it alone: `flock /tmp/autarky-swarm.lock go test -run '^$' -bench
// BenchmarkSwarm100Nodes -benchtime 1x -timeout 60m ./internal/agent`.
func BenchmarkSwarm100Nodes(b *testing.B) {
	const workers = 100
	const unhealthyAfter = 2 * time.Second
	h := newHarnessWith(b, "hund", 3, true, "2s", false)
	ctx := context.Background()
	start := time.Now()
	bootCtx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	if _, err := h.p.CreatePool(bootCtx, policy.Pool{Cluster: h.name, Name: "web", Role: policy.RoleWorker, MinSize: 0, MaxSize: workers,
		DesiredSize: workers, WaitForCapacityTimeout: "25m", Labels: map[string]string{"tier": "web"}}, 25*time.Minute); err != nil {
		b.Fatal(err)
	}
	boot := time.Since(start)
	h.heal(*healing("hund/web", unhealthyAfter.String()))
	host := h.records(policy.ManagerPoolName)[0].DockerHost
	b.ReportMetric(boot.Seconds(), "s-boot-100")
	b.ReportMetric(float64(nodeMemory(b, h.stateDir))/(1<<20), "MB-rss-nodes")
	b.ReportMetric(float64(diskUsage(b, h.stateDir))/(1<<20), "MB-disk")

	// One evaluation, measured in-process beside the leader.
	proxy := testenv.NewDockerProxy(b, leaderHost(b, h))
	a := h.inProcessWith(func(c *agent.Config) { c.DryRun, c.DockerHost = true, proxy.Host })
	a.Evaluate(ctx)
	const evals = 5
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	proxy.Reset()
	cpu0, wall0 := cpuTime(), time.Now()
	for i := 0; i < evals; i++ {
		a.Evaluate(ctx)
	}
	wall, cpu := time.Since(wall0)/evals, (cpuTime()-cpu0)/evals
	runtime.ReadMemStats(&ms1)
	b.ReportMetric(float64(wall.Milliseconds()), "ms-eval-wall")
	b.ReportMetric(float64(cpu.Milliseconds()), "ms-eval-cpu")
	b.ReportMetric(float64(proxy.Calls("", ""))/evals, "engine-calls/eval")
	b.ReportMetric(float64(ms1.TotalAlloc-ms0.TotalAlloc)/evals/(1<<20), "MB-alloc/eval")
	b.ReportMetric(float64(ms1.HeapInuse)/(1<<20), "MB-heap-inuse")

	// Worker MTTR at 100 nodes.
	var victim string
	for _, in := range h.instances("web") {
		if in.Running {
			victim = in.ID
			break
		}
	}
	m := measureRepair(b, h, "web", "worker", victim, unhealthyAfter)
	b.ReportMetric(float64(m.total.Milliseconds()), "ms-worker-mttr")
	b.ReportMetric(float64((m.detect + unhealthyAfter + m.boot).Milliseconds()), "ms-mttr-floor")

	// 200 pending tasks: the pool "big" has no node; its scaling policy
	// asks for one.
	if _, err := h.p.CreatePool(ctx, policy.Pool{Cluster: h.name, Name: "big", Role: policy.RoleWorker, MinSize: 0, MaxSize: 2,
		DesiredSize: 0, WaitForCapacityTimeout: "0s", Labels: map[string]string{"tier": "big"}}, 0); err != nil {
		b.Fatal(err)
	}
	sp := policy.DefaultScaling("hund/big")
	sp.PendingTasks = &policy.PendingTasksCheck{}
	sp.CooldownUp = "0s"
	if err := h.p.PutScalingPolicy(ctx, sp); err != nil {
		b.Fatal(err)
	}
	time.Sleep(2 * 2 * time.Second) // two of the agents' evaluations: they read the policy
	pendingStart := time.Now()
	testenv.Docker(b, host, "service", "create", "--detach", "--name", "pending", "--replicas", "200",
		"--constraint", "node.labels.tier==big", "autarky/workload:latest")
	var asked time.Duration
	h.waitFor("an instance asked for the 200 pending tasks", 5*time.Minute, func() (bool, string) {
		if len(h.records("big")) > 0 {
			asked = time.Since(pendingStart)
			return true, ""
		}
		return false, "no instance of pool big yet"
	})
	b.ReportMetric(float64(asked.Milliseconds()), "ms-200-pending-to-request")
	b.ReportMetric(0, "ns/op")
}

// leaderHost is the Docker endpoint of the manager that leads the swarm.
func leaderHost(b *testing.B, h *harness) string {
	b.Helper()
	ns, err := h.nodes()
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range ns {
		if n.Leader {
			for _, r := range h.records(policy.ManagerPoolName) {
				if r.ID == n.EngineLabels[policy.LabelInstance] {
					return r.DockerHost
				}
			}
		}
	}
	b.Fatal("no leader found")
	return ""
}

// nodeMemory is the sum of the resident sets of every process whose
// command line names dir (the nodes' dockerd, containerd, shims, agents).
func nodeMemory(b *testing.B, dir string) int64 {
	b.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		b.Fatal(err)
	}
	var total int64
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		cmd, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || !strings.Contains(string(cmd), dir+"/") {
			continue
		}
		status, err := os.ReadFile("/proc/" + e.Name() + "/status")
		if err != nil {
			continue
		}
		if n, ok := statusBytes(string(status), "VmRSS:"); ok {
			total += n
		}
	}
	return total
}

// diskUsage is what du says dir holds, in bytes.
func diskUsage(b *testing.B, dir string) int64 {
	b.Helper()
	out, err := exec.Command("du", "-sb", dir).Output()
	if err != nil {
		b.Fatal(err)
	}
	n, err := strconv.ParseInt(strings.Fields(string(out))[0], 10, 64)
	if err != nil {
		b.Fatal(err)
	}
	return n
}
