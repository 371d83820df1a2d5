package agent_test

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/api/option"

	"github.com/autarky/terraform-provider-autarky/internal/agent"
	"github.com/autarky/terraform-provider-autarky/internal/platform/gcp"
	"github.com/autarky/terraform-provider-autarky/internal/platform/group"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
	"github.com/autarky/terraform-provider-autarky/internal/swarm"
	"github.com/autarky/terraform-provider-autarky/internal/testenv"
	"github.com/autarky/terraform-provider-autarky/internal/testenv/gce"
)

const (
	gcpTestProject = "autarky-test"
	gcpTestRegion  = "europe-west1"
	gcpTestBucket  = "autarky-test-store"
)

// gcloud is a cluster on Google Cloud whose VMs are real swarm nodes: the
// Compute Engine is the fake of internal/testenv/gce (no emulator exists
// here; it is held to Google's discovery document), the store a real
// fake-gcs-server, and the test plays the startup script: for every
// RUNNING VM of a pool's managed instance group it starts a local dockerd
// guest that joins the swarm with autarky.instance set to the VM's
// numeric id, and removes the guest when the VM is gone or recreated
// (a recreated VM keeps its name and gets a new id). The swarm's first
// manager is the harness's own; the managers' group boots guests only
// when it has a healing policy (gcloudManagers).
type gcloud struct {
	t    testing.TB
	h    *harness
	gce  *gce.Server
	plat *gcp.Platform
	st   *storage.Client
	// clients is the agent's Compute Engine clients (fast retries).
	clients *gcp.Clients
	metrics *gcp.Metrics
	pool    policy.Pool
	mgrs    *policy.Pool

	leaderHost string

	mu     sync.Mutex
	guests map[string]string // VM id -> local guest id
	// boots is how long each VM's guest took from start to Ready.
	boots map[string]time.Duration
}

// newGCloudEmpty makes the fakes, the platform and the cluster (with one
// manager VM, which boots no guest) and no pool.
func newGCloudEmpty(t testing.TB, h *harness) *gcloud {
	return newGCloudCluster(t, h, 1)
}

// newGCloudCluster makes the fakes, the platform and the cluster with
// managers manager VMs.
func newGCloudCluster(t testing.TB, h *harness, managers int64) *gcloud {
	t.Helper()
	ctx := context.Background()
	g := &gcloud{t: t, h: h, guests: map[string]string{}, boots: map[string]time.Duration{}}
	g.gce = gce.Start(t, gce.Options{CreateDelay: 300 * time.Millisecond, DeleteDelay: 200 * time.Millisecond})
	gcsURL := testenv.StartGCS(t)
	st, err := storage.NewClient(ctx, option.WithEndpoint(gcsURL+"/storage/v1/"), option.WithoutAuthentication())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if err := st.Bucket(gcpTestBucket).Create(ctx, gcpTestProject, nil); err != nil {
		t.Fatal(err)
	}
	g.st = st
	connect := func(l gcp.Limits, m *gcp.Metrics) *gcp.Clients {
		c, err := gcp.Connect(ctx, gcp.Config{Project: gcpTestProject, Region: gcpTestRegion, Endpoint: g.gce.URL, NoAuth: true, Limits: l}, m)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	if g.metrics, err = gcp.NewMetrics(prometheus.NewRegistry()); err != nil {
		t.Fatal(err)
	}
	g.clients = connect(gcp.Limits{BaseDelay: 20 * time.Millisecond, MaxDelay: 200 * time.Millisecond, PerSecond: 1000}, g.metrics)
	p, err := gcp.NewPlatform(connect(gcp.Limits{PerSecond: 1000}, nil), st, gcpTestBucket, gcp.Boot{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.Poll = 50 * time.Millisecond
	g.plat = p
	settings := p.Settings(policy.GCP{MachineType: "e2-small", Image: "projects/debian-cloud/global/images/family/debian-12",
		Subnetwork: "regions/" + gcpTestRegion + "/subnetworks/default"})
	if _, err := p.CreateCluster(ctx, policy.Cluster{Name: h.name, Platform: policy.PlatformGCP, ManagerCount: managers, HeartbeatPeriod: "1s", GCP: &settings}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.DeleteCluster(context.Background(), h.name) })
	for _, r := range h.records(policy.ManagerPoolName) {
		g.leaderHost = r.DockerHost
	}
	return g
}

// newGCloud makes the cluster with a worker pool "web" of workers VMs
// and managers VMs in the managers' group (booted as manager guests, with
// a healing policy, when more than one), and plays their startup scripts.
func newGCloud(t testing.TB, h *harness, workers, managers int64) *gcloud {
	t.Helper()
	ctx := context.Background()
	g := newGCloudCluster(t, h, managers)
	p, name := g.plat, h.name
	g.pool = policy.Pool{Cluster: name, Name: "web", Role: policy.RoleWorker, MinSize: 1, MaxSize: 4, DesiredSize: workers,
		Labels: map[string]string{"tier": "web"}, WaitForCapacityTimeout: "0s"}
	if _, err := p.CreatePool(ctx, g.pool, 0); err != nil {
		t.Fatal(err)
	}
	hp := policy.DefaultHealing(g.pool.ID())
	hp.UnhealthyAfter, hp.MinNodeAge = "2s", "0s"
	if err := p.PutHealingPolicy(ctx, hp); err != nil {
		t.Fatal(err)
	}
	if managers > 1 {
		g.mgrs = &policy.Pool{Cluster: name, Name: policy.ManagerPoolName, Role: policy.RoleManager}
		mh := policy.DefaultHealing(g.mgrs.ID())
		mh.UnhealthyAfter, mh.MinNodeAge = "2s", "0s"
		if err := p.PutHealingPolicy(ctx, mh); err != nil {
			t.Fatal(err)
		}
	}
	cctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); g.startupScripts(cctx) }()
	t.Cleanup(func() { cancel(); <-done })
	g.waitWorkers(int(workers), 2*time.Minute)
	if g.mgrs != nil {
		g.waitManagers(int(managers), 2*time.Minute)
	}
	return g
}

// groupOf is the managed instance group of pool.
func (g *gcloud) groupOf(pool policy.Pool) string { return pool.Cluster + "-" + pool.Name }

// running lists the RUNNING VMs of pool's group by id, and the group's
// target size.
func (g *gcloud) running(pool policy.Pool) (map[string]bool, int) {
	ids := map[string]bool{}
	for _, in := range g.gce.Instances(g.groupOf(pool)) {
		if in.Status == "RUNNING" {
			ids[strconv.FormatUint(in.ID, 10)] = true
		}
	}
	target := -1
	if res := g.gce.GroupResource(gcpTestRegion, g.groupOf(pool)); res != nil {
		if n, err := strconv.Atoi(fmt.Sprint(res["targetSize"])); err == nil {
			target = n
		}
	}
	return ids, target
}

// startupScripts keeps one guest node per RUNNING VM until ctx ends.
func (g *gcloud) startupScripts(ctx context.Context) {
	pools := []policy.Pool{g.pool}
	if g.mgrs != nil {
		pools = append(pools, *g.mgrs)
	}
	for ctx.Err() == nil {
		all := map[string]bool{}
		for _, pool := range pools {
			ids, _ := g.running(pool)
			for id := range ids {
				all[id] = true
				g.mu.Lock()
				_, has := g.guests[id]
				g.mu.Unlock()
				if !has {
					started := time.Now()
					gs, err := g.h.p.StartGuest(ctx, g.h.name, pool, id)
					if err != nil {
						g.t.Logf("startup script of VM %s failed: %v", id, err)
						continue
					}
					g.t.Logf("startup script: VM %s booted as %s node %s", id, pool.Role, gs.ID)
					g.mu.Lock()
					g.guests[id] = gs.ID
					g.boots[id] = time.Since(started)
					g.mu.Unlock()
				}
			}
		}
		g.mu.Lock()
		for id, gs := range g.guests {
			if !all[id] {
				_ = g.h.p.RemoveGuest(context.Background(), g.h.name, gs)
				delete(g.guests, id)
				g.t.Logf("startup script: VM %s gone, node %s gone", id, gs)
			}
		}
		g.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitWorkers waits until the pool has n RUNNING VMs, each a Ready node,
// and no other worker node.
func (g *gcloud) waitWorkers(n int, timeout time.Duration) {
	g.t.Helper()
	g.waitNodes(g.pool, n, timeout, func(nd swarm.Node) (bool, bool) { return nd.Role == policy.RoleWorker, nd.State == "ready" })
}

// waitManagers waits until every RUNNING VM of the managers' group is a
// Ready, reachable manager and no other guest manager is listed.
func (g *gcloud) waitManagers(n int, timeout time.Duration) {
	g.t.Helper()
	g.waitNodes(*g.mgrs, n, timeout, func(nd swarm.Node) (bool, bool) {
		// The harness's own manager stands for no VM: not counted.
		if _, err := strconv.ParseUint(nd.EngineLabels[policy.LabelInstance], 10, 64); nd.Role != policy.RoleManager || err != nil {
			return false, false
		}
		return true, nd.State == "ready" && nd.Reachability == "reachable"
	})
}

func (g *gcloud) waitNodes(pool policy.Pool, n int, timeout time.Duration, judge func(swarm.Node) (counts, up bool)) {
	g.t.Helper()
	g.h.waitInstanceNodes(pool.Name, n, timeout, func() (map[string]bool, error) {
		ids, _ := g.running(pool)
		return ids, nil
	}, judge)
}

// anyVM is the id of one RUNNING VM of pool.
func (g *gcloud) anyVM(pool policy.Pool) string {
	g.t.Helper()
	ids, _ := g.running(pool)
	all := make([]string, 0, len(ids))
	for id := range ids {
		all = append(all, id)
	}
	if len(all) == 0 {
		g.t.Fatal("no VM running in " + g.groupOf(pool))
	}
	sort.Strings(all)
	return all[0]
}

// guestOf is the local guest of VM id.
func (g *gcloud) guestOf(id string) string {
	g.t.Helper()
	var gs string
	g.h.waitFor("the startup script to record the guest of "+id, 30*time.Second, func() (bool, string) {
		g.mu.Lock()
		defer g.mu.Unlock()
		gs = g.guests[id]
		return gs != "", "not recorded"
	})
	return gs
}

// runAgent runs an agent for the cluster on the fake Compute Engine.
func (g *gcloud) runAgent() *agent.Agent {
	g.t.Helper()
	return startAgent(g.t, g.leaderHost, g.cluster())
}

// cluster is the agent's view of the cluster.
func (g *gcloud) cluster() *group.Cluster {
	g.t.Helper()
	cl, err := gcp.NewCluster(g.clients, g.st, gcpTestBucket, g.h.name)
	if err != nil {
		g.t.Fatal(err)
	}
	return cl
}

// waitJournalEmpty waits until the agent has finished every action.
func (g *gcloud) waitJournalEmpty(timeout time.Duration) {
	g.t.Helper()
	g.h.waitJournalEmpty(g.cluster(), timeout)
}

// A worker whose node dies is replaced through the managed instance
// group: recreateInstances on its VM (same name, new id), the startup
// script joins the new VM, the dead node leaves the swarm, and the group's
// target size never changes.
func TestGCPHealWorkerThroughGroup(t *testing.T) {
	g := newGCloud(t, newHarness(t, "gsky", 1, false), 2, 1)
	victim := g.anyVM(g.pool)
	g.runAgent()
	g.gce.Reset()
	killed := time.Now()
	g.h.kill(g.guestOf(victim))
	g.h.nodeDown(victim, 30*time.Second)
	down := time.Since(killed)
	g.waitWorkers(2, 90*time.Second)
	g.t.Logf("MTTR through the MIG: %s (the node was seen down after %s)", time.Since(killed).Round(10*time.Millisecond), down.Round(10*time.Millisecond))
	g.waitJournalEmpty(30 * time.Second)
	after, target := g.running(g.pool)
	if after[victim] || target != 2 {
		t.Fatalf("after healing: victim %s still running %t, target size %d (want 2)", victim, after[victim], target)
	}
	if n := g.gce.Calls("compute.regionInstanceGroupManagers.recreateInstances"); n != 1 {
		t.Errorf("%d recreateInstances calls, want 1", n)
	}
	for _, m := range []string{"resize", "deleteInstances"} {
		if n := g.gce.Calls("compute.regionInstanceGroupManagers." + m); n != 0 {
			t.Errorf("%d %s calls: healing a worker must not resize the group", n, m)
		}
	}
}

// A manager whose node dies is replaced through the managers' group with
// quorum kept: it is demoted and removed, its VM recreated, and the new VM
// joins as a manager; the group's target size never changes.
func TestGCPHealManagerThroughGroup(t *testing.T) {
	g := newGCloud(t, newHarness(t, "gcrown", 1, false), 1, 3)
	victim := g.anyVM(*g.mgrs)
	g.runAgent()
	g.gce.Reset()
	g.h.kill(g.guestOf(victim))
	g.h.nodeDown(victim, 30*time.Second)
	g.waitManagers(3, 2*time.Minute)
	g.waitJournalEmpty(time.Minute)
	after, target := g.running(*g.mgrs)
	if after[victim] || target != 3 || len(after) != 3 {
		t.Fatalf("after healing a manager: victim running %t, %d running, target %d (want false, 3, 3)", after[victim], len(after), target)
	}
	if n := g.gce.Calls("compute.regionInstanceGroupManagers.recreateInstances"); n != 1 {
		t.Errorf("%d recreateInstances calls, want 1", n)
	}
	ns, err := g.h.nodes()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range ns {
		if n.EngineLabels[policy.LabelInstance] == victim {
			t.Errorf("the dead manager's node %s is still in the swarm (%s)", n.ID, n.State)
		}
	}
}

// Pending tasks grow the group (one resize, the group creates the VM, the
// startup script joins it); when the work is gone the agent drains the
// node it chose and deletes its VM with deleteInstances, which shrinks
// the group: the group never picks a node itself.
func TestGCPScaleThroughGroup(t *testing.T) {
	g := newGCloud(t, newHarnessWith(t, "gtide", 1, false, "1s", true), 1, 1)
	sp := scalingPolicy(g.pool.ID(), func(s *policy.Scaling) { s.PendingTasks = &policy.PendingTasksCheck{} })
	if err := g.plat.PutScalingPolicy(context.Background(), sp); err != nil {
		t.Fatal(err)
	}
	g.runAgent()
	g.gce.Reset()
	cpus := mustAtoi(t, strings.TrimSpace(g.h.docker("info", "--format", "{{.NCPU}}")))
	reserve := fmt.Sprintf("%.1f", float64(cpus)-0.5)
	g.h.docker("service", "create", "--detach", "--name", "big", "--replicas", "2", "--reserve-cpu", reserve,
		"--constraint", "node.labels.tier==web", "autarky/workload:latest")
	g.waitWorkers(2, 2*time.Minute)
	g.h.waitFor("both tasks to run", 2*time.Minute, func() (bool, string) {
		n := g.h.runningTasks("big")
		return n == 2, itoa(n) + " running"
	})
	if n := g.gce.Calls("compute.regionInstanceGroupManagers.resize"); n != 1 {
		t.Errorf("%d resize calls to grow by one, want 1", n)
	}
	g.h.docker("service", "rm", "big")
	g.waitWorkers(1, 2*time.Minute)
	g.waitJournalEmpty(time.Minute)
	if _, target := g.running(g.pool); target != 1 {
		t.Fatalf("after scale-in: target size %d, want 1", target)
	}
	if n := g.gce.Calls("compute.regionInstanceGroupManagers.deleteInstances"); n != 1 {
		t.Errorf("%d deleteInstances calls to scale in by one, want 1", n)
	}
	if n := g.gce.Calls("compute.regionInstanceGroupManagers.resize"); n != 1 {
		t.Errorf("%d resize calls in all: scaling in must not resize (the group would pick the VM)", n)
	}
}

// 429 bursts, 503s and slow operations between the agent and Compute
// Engine while it heals: one replacement, no resize, and the pool
// converges once the faults end; the retries are counted in
// autarky_gcp_retries_total.
func TestGCPFaultsWhileHealing(t *testing.T) {
	g := newGCloud(t, newHarness(t, "gstorm", 1, false), 2, 1)
	victim := g.anyVM(g.pool)
	var mu sync.Mutex
	left := map[string]int{
		"compute.regionInstanceGroupManagers.list":                 8,
		"compute.regionInstanceGroupManagers.listManagedInstances": 6,
		"compute.regionInstanceGroupManagers.recreateInstances":    3,
		"compute.instances.aggregatedList":                         4,
	}
	g.gce.SetFault(func(c gce.Call) *gce.Fault {
		mu.Lock()
		defer mu.Unlock()
		if c.Method == "compute.regionOperations.get" || c.Method == "compute.regionOperations.wait" {
			return &gce.Fault{Delay: 300 * time.Millisecond}
		}
		if left[c.Method] == 0 {
			return nil
		}
		left[c.Method]--
		switch {
		case c.Method == "compute.regionInstanceGroupManagers.recreateInstances" && left[c.Method] == 0:
			// A response lost after the call acted: the retry's requestId
			// must keep it from recreating twice.
			f := gce.BackendError()
			f.AfterAction = true
			return f
		case c.Method == "compute.regionInstanceGroupManagers.recreateInstances":
			return &gce.Fault{OperationRunning: 2 * time.Second}
		case left[c.Method]%2 == 0:
			return gce.RateLimited()
		default:
			return gce.BackendError()
		}
	})
	g.runAgent()
	g.h.kill(g.guestOf(victim))
	g.h.nodeDown(victim, 30*time.Second)
	g.waitWorkers(2, 2*time.Minute)
	g.waitJournalEmpty(time.Minute)
	after, target := g.running(g.pool)
	if after[victim] || target != 2 || len(after) != 2 {
		t.Fatalf("after healing through faults: victim running %t, %d running, target %d (want false, 2, 2)", after[victim], len(after), target)
	}
	if n := g.gce.Calls("compute.regionInstanceGroupManagers.resize"); n != 0 {
		t.Errorf("%d resize calls while healing a worker, want none", n)
	}
	var retries float64
	for _, code := range []string{"429", "503", "rateLimitExceeded", "backendError"} {
		for _, op := range []string{"regionInstanceGroupManagers.list", "regionInstanceGroupManagers.listManagedInstances", "instances.aggregatedList", "regionInstanceGroupManagers.recreateInstances"} {
			retries += testutil.ToFloat64(g.metrics.Retries.WithLabelValues(op, code))
		}
	}
	if retries < 5 {
		t.Errorf("autarky_gcp_retries_total counted %v retries of 429s and 503s, want at least 5", retries)
	}
}

// Pending tasks ask for a VM the region has no quota for: the group's new
// managed instance stays CREATING with QUOTA_EXCEEDED in its last attempt
// and never gets a VM. After provision_timeout the agent gives the launch
// up (the group's target size goes back to its running VMs, so the group
// stops retrying) and backs the pool off, saying why; nothing else is
// resized or deleted, and the running VM is untouched.
func TestGCPQuotaExhaustedBacksOff(t *testing.T) {
	g := newGCloud(t, newHarnessWith(t, "gquota", 1, false, "1s", true), 1, 1)
	initial, _ := g.running(g.pool)
	group := g.groupOf(g.pool)
	g.gce.SetQuotaFault(func(grp, zone string) bool { return grp == group })
	sp := scalingPolicy(g.pool.ID(), func(s *policy.Scaling) {
		s.PendingTasks = &policy.PendingTasksCheck{}
		s.ProvisionTimeout = "10s"
	})
	if err := g.plat.PutScalingPolicy(context.Background(), sp); err != nil {
		t.Fatal(err)
	}
	a := g.runAgent()
	g.gce.Reset()
	bigTasks(t, g.h, "big", 2)
	g.h.waitFor("the launch given up and the pool backing off", 90*time.Second, func() (bool, string) {
		st := statusOf(a, g.pool.ID())
		_, target := g.running(g.pool)
		return st.Code == "backoff" && target == 1, fmt.Sprintf("target size %d; %+v", target, st)
	})
	time.Sleep(3 * time.Second) // backing off: nothing more is asked
	after, target := g.running(g.pool)
	if target != 1 || len(after) != 1 {
		t.Fatalf("after giving up: target size %d, %d running (want 1, 1)", target, len(after))
	}
	for id := range initial {
		if !after[id] {
			t.Errorf("the running VM %s was touched", id)
		}
	}
	said := false
	for _, d := range a.Status().Decisions {
		if d.Code == "backoff" && strings.Contains(d.Message, "QUOTA_EXCEEDED") {
			said = true
		}
	}
	if !said {
		t.Errorf("no backoff decision names the group's failed launch (QUOTA_EXCEEDED): %+v", a.Status().Decisions)
	}
	if n := g.gce.Calls("compute.regionInstanceGroupManagers.resize"); n != 2 {
		t.Errorf("%d resize calls, want 2 (the raise, then back to the running VMs)", n)
	}
	if n := g.gce.Calls("compute.regionInstanceGroupManagers.recreateInstances"); n != 0 {
		t.Errorf("%d recreateInstances calls: nothing was to be healed", n)
	}
	g.gce.SetQuotaFault(nil)
}
