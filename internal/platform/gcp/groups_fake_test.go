package gcp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/autarky/terraform-provider-autarky/internal/platform"
	"github.com/autarky/terraform-provider-autarky/internal/platform/group"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
	"github.com/autarky/terraform-provider-autarky/internal/testenv/gce"
)

const (
	testProject = "autarky-test"
	testRegion  = "europe-west1"
)

// newFakeGroups is Groups on a fresh fake Compute Engine, with fast
// retries and metrics of its own.
func newFakeGroups(t *testing.T) (*Groups, *gce.Server, *Metrics) {
	t.Helper()
	srv := gce.Start(t, gce.Options{CreateDelay: 50 * time.Millisecond, DeleteDelay: 50 * time.Millisecond})
	g, m := connectFake(t, srv, Limits{})
	return g, srv, m
}

// connectFake is Groups on srv with fast retries (limits' other fields
// as given) and metrics of its own.
func connectFake(t *testing.T, srv *gce.Server, limits Limits) (*Groups, *Metrics) {
	t.Helper()
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	limits.BaseDelay, limits.MaxDelay, limits.PerSecond = 5*time.Millisecond, 50*time.Millisecond, 1000
	c, err := Connect(context.Background(), Config{Project: testProject, Region: testRegion, Endpoint: srv.URL, NoAuth: true, Limits: limits}, m)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	g := NewGroups(c)
	g.Script = func(c policy.Cluster, p policy.Pool) (string, error) {
		return "#!/bin/sh\necho " + c.Name + "/" + p.Name + "\n", nil
	}
	return g, m
}

func testCluster(name string) policy.Cluster {
	return policy.Cluster{Name: name, Platform: policy.PlatformGCP, ManagerCount: 1, GCP: &policy.GCP{
		Project: testProject, Region: testRegion, Zones: []string{testRegion + "-b", testRegion + "-c"}, MachineType: "e2-small",
		Image: "projects/debian-cloud/global/images/family/debian-12", Subnetwork: "regions/" + testRegion + "/subnetworks/nodes",
		ServiceAccount: "managers@autarky-test.iam.gserviceaccount.com", NetworkTags: []string{"swarm"}, Bucket: "autarky-test-store"}}
}

func testPool(cluster, name string, desired int64) policy.Pool {
	return policy.Pool{Cluster: cluster, Name: name, Role: policy.RoleWorker, MinSize: 0, MaxSize: 10, DesiredSize: desired}
}

// describeOne describes one group; nil when it does not exist.
func describeOne(t *testing.T, g *Groups, name string) *group.Group {
	t.Helper()
	out, err := g.Describe(context.Background(), []string{name}, true)
	if err != nil {
		t.Fatal(err)
	}
	return out[name]
}

// waitMembers waits until group has n running members and nothing else.
func waitMembers(t *testing.T, g *Groups, name string, n int) *group.Group {
	t.Helper()
	var last *group.Group
	err := platform.WaitFor(context.Background(), 20*time.Millisecond, func() (bool, error) {
		last = describeOne(t, g, name)
		if last == nil || len(last.Members) != n {
			return false, nil
		}
		for _, m := range last.Members {
			if !m.Running {
				return false, nil
			}
		}
		return last.Busy(group.Grow, "") == nil, nil
	})
	if err == nil {
		return last
	}
	t.Fatalf("%s never had %d running members and settled: %+v", name, n, last)
	return nil
}

func ids(grp *group.Group) map[string]bool {
	out := map[string]bool{}
	for _, m := range grp.Members {
		out[m.ID] = true
	}
	return out
}

func TestMIGLifecycle(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	g, srv, _ := newFakeGroups(t)
	c, pool := testCluster("prod"), testPool("prod", "web", 2)
	if err := g.Put(ctx, c, pool, false); err != nil {
		t.Fatal(err)
	}
	res := srv.GroupResource(testRegion, "prod-web")
	up, _ := res["updatePolicy"].(map[string]any)
	if up["instanceRedistributionType"] != "NONE" || up["type"] != "OPPORTUNISTIC" {
		t.Errorf("update policy %v: want instanceRedistributionType NONE (PROACTIVE deletes busy VMs to rebalance zones)", up)
	}
	for _, r := range srv.Requests("compute.regionInstanceGroupManagers.insert") {
		if !strings.Contains(string(r.Body), `"instanceRedistributionType":"NONE"`) {
			t.Errorf("insert sent without redistribution NONE: %s", r.Body)
		}
	}
	grp := waitMembers(t, g, "prod-web", 2)
	if grp.Desired != 2 || grp.Min != 0 || grp.Max != 0 {
		t.Errorf("group %+v: want desired 2, min and max left to the store", grp)
	}
	for _, in := range srv.Instances("prod-web") {
		if in.Labels[LabelCluster] != "prod" || in.Labels[LabelPool] != "web" || !strings.Contains(in.Metadata["startup-script"], "prod/web") {
			t.Errorf("instance %s: labels %v, metadata %v", in.Name, in.Labels, in.Metadata)
		}
	}
	if err := g.Details(ctx, []*group.Group{grp}); err != nil {
		t.Fatal(err)
	}
	for _, m := range grp.Members {
		if m.Addr == "" || m.CreatedAt.IsZero() {
			t.Errorf("member %s without details: %+v", m.ID, m)
		}
	}

	// Grow, then shrink by a chosen member.
	if err := g.Resize(ctx, "prod-web", 3); err != nil {
		t.Fatal(err)
	}
	grp = waitMembers(t, g, "prod-web", 3)
	victim := grp.Members[0].ID
	if err := grp.Busy(group.ScaleIn, victim); err != nil {
		t.Fatalf("scale in of a running member of a settled group: %v", err)
	}
	if err := g.Remove(ctx, "prod-web", victim, true); err != nil {
		t.Fatal(err)
	}
	grp = waitMembers(t, g, "prod-web", 2)
	if ids(grp)[victim] || grp.Desired != 2 {
		t.Errorf("after scale in of %s: %+v", victim, grp)
	}
	if err := g.Remove(ctx, "prod-web", victim, true); !errors.Is(err, platform.ErrNotFound) {
		t.Errorf("removing a member already gone: %v, want platform.ErrNotFound", err)
	}

	// Heal: same name, new id, same size.
	before := ids(grp)
	healed := grp.Members[0].ID
	if err := g.Remove(ctx, "prod-web", healed, false); err != nil {
		t.Fatal(err)
	}
	var after *group.Group
	if err := platform.WaitFor(ctx, 20*time.Millisecond, func() (bool, error) {
		after = waitMembers(t, g, "prod-web", 2)
		return !ids(after)[healed], nil
	}); err != nil {
		t.Fatal(err)
	}
	if after.Desired != 2 || len(after.Members) != 2 {
		t.Errorf("after healing %s: %+v", healed, after)
	}
	kept := 0
	for id := range before {
		if ids(after)[id] {
			kept++
		}
	}
	if kept != 1 {
		t.Errorf("healing one member changed %d others (before %v, after %v)", 1-kept, before, ids(after))
	}

	// Update: a new machine type makes a new template; the old one goes.
	templates := func() []string { // distinct templates inserted, in order
		var out []string
		seen := map[string]bool{}
		for _, r := range srv.Requests("compute.instanceTemplates.insert") {
			var t struct{ Name string }
			_ = json.Unmarshal(r.Body, &t)
			if !seen[t.Name] {
				seen[t.Name] = true
				out = append(out, string(r.Body))
			}
		}
		return out
	}
	if err := g.Put(ctx, c, pool, true); err != nil {
		t.Fatal(err)
	}
	if n := len(templates()); n != 1 {
		t.Errorf("an update that changes nothing made a template: %d inserted", n)
	}
	pool.GCP = &policy.GCPPool{MachineType: "e2-medium"}
	pool.DesiredSize = 1
	if err := g.Put(ctx, c, pool, true); err != nil {
		t.Fatal(err)
	}
	if tt := templates(); len(tt) != 2 || !strings.Contains(tt[1], "e2-medium") {
		t.Errorf("templates inserted: %v", tt)
	}
	if n := srv.Calls("compute.instanceTemplates.delete"); n != 1 {
		t.Errorf("%d template deletions after an update, want 1 (the old template)", n)
	}
	res = srv.GroupResource(testRegion, "prod-web")
	if tmpl, _ := res["instanceTemplate"].(string); !strings.Contains(tmpl, "/instanceTemplates/prod-web-") {
		t.Errorf("group's template %q", tmpl)
	}
	waitMembers(t, g, "prod-web", 1)
	moved := testCluster("prod")
	moved.GCP.Zones = []string{testRegion + "-b", testRegion + "-d"}
	if err := g.Put(ctx, moved, pool, true); err == nil || !strings.HasPrefix(err.Error(), "gcp.zones:") {
		t.Errorf("moving a group to other zones: %v, want a refusal naming gcp.zones", err)
	}
	if err := g.Put(ctx, c, pool, false); !errors.Is(err, platform.ErrExists) {
		t.Errorf("creating a group that exists: %v, want platform.ErrExists", err)
	}

	// Delete: the group and its templates go; again is no error.
	if err := g.Delete(ctx, "prod", "web"); err != nil {
		t.Fatal(err)
	}
	if describeOne(t, g, "prod-web") != nil || len(srv.Instances("prod-web")) != 0 {
		t.Error("the group or its instances are left after Delete")
	}
	if n := srv.Calls("compute.instanceTemplates.delete"); n != 2 {
		t.Errorf("%d template deletions in all, want 2", n)
	}
	if err := g.Delete(ctx, "prod", "web"); err != nil {
		t.Errorf("deleting a group already gone: %v", err)
	}
	if err := g.Remove(ctx, "prod-web", "1", false); !errors.Is(err, platform.ErrNotFound) {
		t.Errorf("removing from a group that is gone: %v, want platform.ErrNotFound", err)
	}
}

func TestMIGAutoscalerRefused(t *testing.T) {
	ctx := context.Background()
	g, srv, _ := newFakeGroups(t)
	c, pool := testCluster("prod"), testPool("prod", "web", 1)
	if err := g.Put(ctx, c, pool, false); err != nil {
		t.Fatal(err)
	}
	waitMembers(t, g, "prod-web", 1)
	if err := srv.SetAutoscaler(testProject, testRegion, "prod-web", "https://www.googleapis.com/compute/v1/projects/"+testProject+"/regions/"+testRegion+"/autoscalers/prod-web-autoscaler"); err != nil {
		t.Fatal(err)
	}
	err := g.Put(ctx, c, pool, true)
	if err == nil || !strings.Contains(err.Error(), "has autoscaler prod-web-autoscaler attached") || !strings.Contains(err.Error(), "node pool prod/web") {
		t.Errorf("update of a group with an autoscaler: %v, want a refusal naming the pool and the autoscaler", err)
	}
	if err := describeOne(t, g, "prod-web").Busy(group.Grow, ""); err == nil || !strings.Contains(err.Error(), "autoscaler") {
		t.Errorf("Busy of a group with an autoscaler: %v", err)
	}
}

func TestMIGRetriesEndInOneResize(t *testing.T) {
	ctx := context.Background()
	g, srv, m := newFakeGroups(t)
	if err := g.Put(ctx, testCluster("prod"), testPool("prod", "web", 1), false); err != nil {
		t.Fatal(err)
	}
	waitMembers(t, g, "prod-web", 1)
	// Three 429s, a 503 and a 503 after the resize acted (its answer lost):
	// the retries reuse the requestId, so the fake resizes once.
	n := 0
	srv.SetFault(func(c gce.Call) *gce.Fault {
		if c.Method != "compute.regionInstanceGroupManagers.resize" {
			return nil
		}
		n++
		switch {
		case n <= 3:
			return gce.RateLimited()
		case n == 4:
			return gce.BackendError()
		case n == 5:
			f := gce.BackendError()
			f.AfterAction = true
			return f
		}
		return nil
	})
	if err := g.Resize(ctx, "prod-web", 2); err != nil {
		t.Fatal(err)
	}
	reqs := srv.Requests("compute.regionInstanceGroupManagers.resize")
	if len(reqs) != 6 {
		t.Fatalf("%d resize calls, want 6", len(reqs))
	}
	for _, r := range reqs {
		if r.Query.Get("requestId") != reqs[0].Query.Get("requestId") || r.Query.Get("requestId") == "" {
			t.Errorf("retry with requestId %q, first was %q", r.Query.Get("requestId"), reqs[0].Query.Get("requestId"))
		}
	}
	if got := testutil.ToFloat64(m.Retries.WithLabelValues("regionInstanceGroupManagers.resize", "429")); got != 3 {
		t.Errorf("autarky_gcp_retries_total{code=429} = %g, want 3", got)
	}
	if got := testutil.ToFloat64(m.Retries.WithLabelValues("regionInstanceGroupManagers.resize", "503")); got != 2 {
		t.Errorf("autarky_gcp_retries_total{code=503} = %g, want 2", got)
	}
	waitMembers(t, g, "prod-web", 2)

	// Throttling that outlasts the attempts is transient, never a failure.
	srv.SetFault(func(c gce.Call) *gce.Fault {
		if c.Method == "compute.regionInstanceGroupManagers.resize" {
			return gce.RateLimited()
		}
		return nil
	})
	err := g.Resize(ctx, "prod-web", 3)
	if err == nil || !platform.IsTransient(err) {
		t.Errorf("resize throttled throughout: %v, want a transient error", err)
	}
	if got := srv.Calls("compute.regionInstanceGroupManagers.resize"); got != 6+DefaultLimits.Attempts {
		t.Errorf("%d resize calls in all, want %d", got, 6+DefaultLimits.Attempts)
	}
}

func TestMIGQuotaErrorInBusy(t *testing.T) {
	ctx := context.Background()
	g, srv, _ := newFakeGroups(t)
	srv.SetQuotaFault(func(group, zone string) bool { return group == "prod-web" })
	if err := g.Put(ctx, testCluster("prod"), testPool("prod", "web", 1), false); err != nil {
		t.Fatal(err)
	}
	var be *BusyError
	if err := platform.WaitFor(ctx, 20*time.Millisecond, func() (bool, error) {
		grp := describeOne(t, g, "prod-web")
		err := grp.Busy(group.Grow, "")
		return errors.As(err, &be) && be.FailedLaunch != "", nil
	}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(be.Error(), "QUOTA_EXCEEDED") || !strings.Contains(be.FailedLaunch, "QUOTA_EXCEEDED") || !platform.IsTransient(be) {
		t.Errorf("busy error %q (failed launch %q): want QUOTA_EXCEEDED, transient", be, be.FailedLaunch)
	}
	grp := describeOne(t, g, "prod-web")
	if len(grp.Members) != 1 || grp.Members[0].Running || grp.Members[0].ID == "" {
		t.Errorf("the member whose launch fails: %+v, want one member, not running", grp.Members)
	}
	// What the agent's TrimDesired does: the group down to its running
	// members, the failing launch given up.
	if err := g.Resize(ctx, "prod-web", 0); err != nil {
		t.Fatal(err)
	}
	waitMembers(t, g, "prod-web", 0)
	srv.SetQuotaFault(nil)
	if err := g.Resize(ctx, "prod-web", 1); err != nil {
		t.Fatal(err)
	}
	waitMembers(t, g, "prod-web", 1)
}

// TestMIGCallsPerEvaluation counts the Compute calls of one evaluation's
// reads (Describe with progress, then Details) for 1, 10 and 100 pools,
// with 1 and then 3 nodes per pool: steady, and with every group in
// transition (growing, its launches failing on a quota). They grow with
// the groups in transition, never with nodes.
func TestMIGCallsPerEvaluation(t *testing.T) {
	ctx := context.Background()
	g, srv, _ := newFakeGroups(t)
	c := testCluster("prod")
	evaluate := func(names []string) (int, map[string]int) {
		srv.Reset()
		groups, err := g.Describe(ctx, names, true)
		if err != nil {
			t.Fatal(err)
		}
		var list []*group.Group
		for _, grp := range groups {
			list = append(list, grp)
		}
		if err := g.Details(ctx, list); err != nil {
			t.Fatal(err)
		}
		for _, grp := range list {
			for _, m := range grp.Members {
				if m.Addr == "" && m.Running && !strings.HasPrefix(m.ID, "prod-") {
					t.Fatalf("member %s of %s has no address", m.ID, grp.Name)
				}
			}
		}
		total := 0
		for _, n := range srv.CallCounts() {
			total += n
		}
		return total, srv.CallCounts()
	}
	for _, pools := range []int{1, 10, 100} {
		var names []string
		for i := 0; i < pools; i++ {
			names = append(names, fmt.Sprintf("prod-p%d", i))
		}
		for _, nodes := range []int{1, 3} {
			srv.SetQuotaFault(nil)
			for i := range names {
				p := testPool("prod", fmt.Sprintf("p%d", i), int64(nodes))
				if err := g.Put(ctx, c, p, describeOne(t, g, names[i]) != nil); err != nil {
					t.Fatal(err)
				}
			}
			for _, name := range names {
				waitMembers(t, g, name, nodes)
			}
			total, by := evaluate(names)
			t.Logf("%3d pools x %d nodes, steady:        %3d calls %v", pools, nodes, total, by)
			if total != 2 {
				t.Errorf("%d steady pools x %d nodes: %d calls, want 2 (one list, one aggregatedList)", pools, nodes, total)
			}
			srv.SetQuotaFault(func(string, string) bool { return true })
			for _, name := range names {
				if err := g.Resize(ctx, name, nodes+1); err != nil {
					t.Fatal(err)
				}
			}
			total, by = evaluate(names)
			t.Logf("%3d pools x %d nodes, in transition: %3d calls %v", pools, nodes, total, by)
			if want := 2 + pools; total != want {
				t.Errorf("%d pools x %d nodes in transition: %d calls, want %d (one list, one listManagedInstances per group, one aggregatedList)", pools, nodes, total, want)
			}
		}
	}
}

// TestMIGHungEndpointBounded: an endpoint that never answers costs a call
// its deadline, not the caller's whole context, and reads as transient.
func TestMIGHungEndpointBounded(t *testing.T) {
	srv := gce.Start(t, gce.Options{})
	g, m := connectFake(t, srv, Limits{Attempt: 100 * time.Millisecond, Call: 700 * time.Millisecond})
	srv.SetFault(func(gce.Call) *gce.Fault { return &gce.Fault{Delay: time.Minute} })
	start := time.Now()
	_, err := g.Describe(context.Background(), []string{"prod-web"}, true)
	if took := time.Since(start); err == nil || took > 2*time.Second || !platform.IsTransient(err) {
		t.Fatalf("describe against a hung endpoint: %v after %s, want a transient error within the 700ms call deadline", err, took)
	}
	if n := srv.Calls("compute.regionInstanceGroupManagers.list"); n < 2 {
		t.Errorf("%d attempts: a timed-out attempt is retried within the call's deadline", n)
	}
	if got := testutil.ToFloat64(m.Retries.WithLabelValues("regionInstanceGroupManagers.list", "timeout")); got < 1 {
		t.Errorf("autarky_gcp_retries_total{code=timeout} = %g", got)
	}
}

// TestMIGSlowOperationWaited: a resize whose operation stays RUNNING is
// waited for (regionOperations.get) until DONE, the resize done once.
func TestMIGSlowOperationWaited(t *testing.T) {
	ctx := context.Background()
	g, srv, _ := newFakeGroups(t)
	if err := g.Put(ctx, testCluster("prod"), testPool("prod", "web", 1), false); err != nil {
		t.Fatal(err)
	}
	waitMembers(t, g, "prod-web", 1)
	srv.SetFault(func(c gce.Call) *gce.Fault {
		if c.Method == "compute.regionInstanceGroupManagers.resize" {
			return &gce.Fault{OperationRunning: 1500 * time.Millisecond}
		}
		return nil
	})
	start := time.Now()
	if err := g.Resize(ctx, "prod-web", 2); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 1500*time.Millisecond {
		t.Errorf("Resize returned after %s, before its operation was DONE", took)
	}
	if n := srv.Calls("compute.regionOperations.get"); n < 1 {
		t.Errorf("%d operation polls", n)
	}
	if grp := waitMembers(t, g, "prod-web", 2); grp.Desired != 2 {
		t.Errorf("after a slow resize: %+v", grp)
	}
}
