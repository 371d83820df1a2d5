package aws

import (
	"context"
	"errors"
	"testing"
	"time"

	awsv2 "github.com/aws/aws-sdk-go-v2/aws"

	"github.com/autarky/terraform-provider-autarky/internal/platform"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

// clusterFixture creates cluster c1 in moto: a launch template, the
// groups c1-managers (1 instance) and c1-web (2 instances, max 5), the
// cluster descriptor and the web pool's descriptor.
func clusterFixture(t *testing.T) (*Cluster, *fixture, *awsProxy) {
	t.Helper()
	c, proxy := testClients(t, nil)
	f := newFixture(t, c, "c1")
	f.group("c1-managers", 1, 1, 3)
	f.group("c1-web", 0, 2, 5)
	// moto lacks DescribeInstanceRefreshes and reports no scaling
	// activities: answer both as AWS does for an idle group.
	proxy.SetFault(progressAnswers(nil, nil))

	cl, err := NewCluster(c, "c1", nil) // the naming rule: c1-<pool>
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	created := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := cl.Store().PutDescriptor(ctx, policy.Cluster{Name: "c1", Platform: policy.PlatformAWS, ManagerCount: 1,
		HeartbeatPeriod: "5s", CreatedAt: created}); err != nil {
		t.Fatal(err)
	}
	if err := cl.Store().PutPool(ctx, policy.Pool{Cluster: "c1", Name: "web", Role: policy.RoleWorker, MinSize: 0, MaxSize: 5,
		DesiredSize: 2, WaitForCapacityTimeout: "5m", SizeOwner: policy.SizeOwnerAgent, CreatedAt: created}); err != nil {
		t.Fatal(err)
	}
	return cl, f, proxy
}

func TestClusterStoreDelegation(t *testing.T) {
	cl, _, _ := clusterFixture(t)
	ctx := context.Background()
	if cl.Name() != "c1" {
		t.Errorf("name %q", cl.Name())
	}
	d, err := cl.Descriptor(ctx)
	if err != nil || d.Name != "c1" || d.ManagerCount != 1 {
		t.Fatalf("descriptor %+v, %v", d, err)
	}
	pools, err := cl.Pools(ctx)
	if err != nil || len(pools) != 1 || pools[0].Name != "web" {
		t.Fatalf("pools %+v, %v", pools, err)
	}
	if h, err := cl.HealingPolicies(ctx); err != nil || len(h) != 0 {
		t.Fatalf("healing policies %+v, %v", h, err)
	}
	if s, err := cl.ScalingPolicies(ctx); err != nil || len(s) != 0 {
		t.Fatalf("scaling policies %+v, %v", s, err)
	}
	type journal struct{ N int }
	j := journal{N: 7}
	if _, err := cl.LoadJournal(ctx, &j); err != nil || j.N != 7 {
		t.Fatalf("no journal: %+v, %v", j, err)
	}
	if _, err := cl.SaveJournal(ctx, journal{N: 3}, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.LoadJournal(ctx, &j); err != nil || j.N != 3 {
		t.Fatalf("journal %+v, %v", j, err)
	}
}

func TestClusterNewRejectsSharedGroup(t *testing.T) {
	c := NewClients(testConfig("http://127.0.0.1:1"), Config{}, nil)
	if _, err := NewCluster(c, "c1", map[string]string{"a": "g", "b": "g"}); err == nil {
		t.Error("two pools sharing a group were accepted")
	}
	cl, err := NewCluster(c, "c1", map[string]string{policy.ManagerPoolName: "my-managers"})
	if err != nil {
		t.Fatal(err)
	}
	if cl.GroupOf(policy.ManagerPoolName) != "my-managers" || cl.GroupOf("web") != "c1-web" {
		t.Errorf("groups %s, %s", cl.GroupOf(policy.ManagerPoolName), cl.GroupOf("web"))
	}
}

func TestClusterInstances(t *testing.T) {
	cl, f, proxy := clusterFixture(t)
	proxy.Reset()
	insts, err := cl.Instances(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n := proxy.Calls("DescribeAutoScalingGroups"); n != 1 {
		t.Errorf("one Instances() over 2 pools made %d DescribeAutoScalingGroups calls, want 1", n)
	}
	if n := proxy.Calls("DescribeInstances"); n != 1 {
		t.Errorf("one Instances() over 3 instances made %d DescribeInstances calls, want 1", n)
	}
	want := map[string]string{} // instance id -> pool
	for _, pool := range []string{"managers", "web"} {
		for _, in := range f.describe("c1-" + pool).Instances {
			want[awsv2.ToString(in.InstanceId)] = pool
		}
	}
	if len(insts) != 3 || len(want) != 3 {
		t.Fatalf("%d instances (%d in moto): %+v", len(insts), len(want), insts)
	}
	for _, in := range insts {
		role := policy.RoleWorker
		if in.Pool == policy.ManagerPoolName {
			role = policy.RoleManager
		}
		if want[in.ID] != in.Pool || in.Role != role || in.Cluster != "c1" || !in.Running || in.CreatedAt.IsZero() {
			t.Errorf("instance %+v (in moto: pool %q)", in, want[in.ID])
		}
	}
	if insts[0].Pool != policy.ManagerPoolName {
		t.Errorf("instances not sorted by pool: %+v", insts)
	}
}

func TestClusterStartInstance(t *testing.T) {
	cl, f, _ := clusterFixture(t)
	ctx := context.Background()
	web, err := cl.Store().GetPool(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	inst, err := cl.StartInstance(ctx, web)
	if err != nil {
		t.Fatal(err)
	}
	if inst.ID != "" || inst.Pool != "web" || inst.Role != policy.RoleWorker || inst.Cluster != "c1" {
		t.Errorf("started %+v, want web's worker with no id yet", inst)
	}
	if g := f.describe("c1-web"); awsv2.ToInt32(g.DesiredCapacity) != 3 {
		t.Fatalf("web's desired capacity %d after StartInstance, want 3", awsv2.ToInt32(g.DesiredCapacity))
	}
	if g := f.describe("c1-managers"); awsv2.ToInt32(g.DesiredCapacity) != 1 {
		t.Errorf("managers' desired capacity changed to %d", awsv2.ToInt32(g.DesiredCapacity))
	}
	// The agent adopts the new instance from Instances.
	insts, err := cl.Instances(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, in := range insts {
		if in.Pool == "web" {
			n++
		}
	}
	if n != 3 {
		t.Errorf("%d web instances after StartInstance, want 3", n)
	}
}

func TestClusterStartInstanceBusy(t *testing.T) {
	cl, f, proxy := clusterFixture(t)
	ctx := context.Background()
	proxy.SetFault(progressAnswers(map[string]string{"c1-web": "InProgress"}, nil))
	web, err := cl.Store().GetPool(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	_, err = cl.StartInstance(ctx, web)
	var busy *BusyError
	if !errors.As(err, &busy) || !IsTransient(err) {
		t.Fatalf("StartInstance during an instance refresh: %v, want a BusyError", err)
	}
	if g := f.describe("c1-web"); awsv2.ToInt32(g.DesiredCapacity) != 2 {
		t.Errorf("a busy group was resized to %d", awsv2.ToInt32(g.DesiredCapacity))
	}
	if _, err := cl.StartInstance(ctx, policy.Pool{Cluster: "c1", Name: "nothere", Role: policy.RoleWorker}); !errors.Is(err, platform.ErrNotFound) {
		t.Errorf("StartInstance in a pool without a group: %v", err)
	}
}

func TestClusterTerminate(t *testing.T) {
	cl, f, proxy := clusterFixture(t)
	ctx := context.Background()
	g := f.describe("c1-web")
	victim := awsv2.ToString(g.Instances[0].InstanceId)
	if err := cl.TerminateInstance(ctx, victim); err != nil {
		t.Fatal(err)
	}
	g = f.describe("c1-web")
	if awsv2.ToInt32(g.DesiredCapacity) != 2 || len(g.Instances) != 2 || hasInstance(g.Instances, victim) {
		t.Fatalf("after TerminateInstance: desired %d, %d instances, victim still in: %t",
			awsv2.ToInt32(g.DesiredCapacity), len(g.Instances), hasInstance(g.Instances, victim))
	}
	// Already gone: not an error. moto fails differently from AWS on an
	// instance no group holds (a 500), so the proxy answers as AWS does.
	goneAnswer(proxy, victim)
	if err := cl.TerminateInstance(ctx, victim); err != nil {
		t.Errorf("terminating a gone instance: %v", err)
	}

	chosen := awsv2.ToString(g.Instances[0].InstanceId)
	if err := cl.TerminateAndShrink(ctx, chosen); err != nil {
		t.Fatal(err)
	}
	g = f.describe("c1-web")
	if awsv2.ToInt32(g.DesiredCapacity) != 1 || len(g.Instances) != 1 || hasInstance(g.Instances, chosen) {
		t.Fatalf("after TerminateAndShrink: desired %d, %d instances, chosen still in: %t",
			awsv2.ToInt32(g.DesiredCapacity), len(g.Instances), hasInstance(g.Instances, chosen))
	}
	goneAnswer(proxy, chosen)
	if err := cl.TerminateAndShrink(ctx, chosen); err != nil {
		t.Errorf("shrinking by a gone instance: %v", err)
	}
	if g := f.describe("c1-web"); awsv2.ToInt32(g.DesiredCapacity) != 1 {
		t.Errorf("a repeated TerminateAndShrink left desired %d, want 1", awsv2.ToInt32(g.DesiredCapacity))
	}
}

func TestClusterSetDesiredSize(t *testing.T) {
	cl, f, _ := clusterFixture(t)
	ctx := context.Background()
	if err := cl.SetDesiredSize(ctx, "web", 4); err != nil {
		t.Fatal(err)
	}
	if g := f.describe("c1-web"); awsv2.ToInt32(g.DesiredCapacity) != 4 || len(g.Instances) != 4 {
		t.Fatalf("web after SetDesiredSize(4): desired %d, %d instances", awsv2.ToInt32(g.DesiredCapacity), len(g.Instances))
	}
	p, err := cl.Store().GetPool(ctx, "web")
	if err != nil || p.DesiredSize != 4 || p.SizeOwner != policy.SizeOwnerAgent {
		t.Fatalf("stored web pool %+v, %v", p, err)
	}
	for _, tc := range []struct {
		pool string
		size int64
	}{{"web", 6}, {"web", -1}, {policy.ManagerPoolName, 3}, {"nothere", 1}} {
		if err := cl.SetDesiredSize(ctx, tc.pool, tc.size); err == nil {
			t.Errorf("SetDesiredSize(%s, %d) was accepted", tc.pool, tc.size)
		}
	}
	if g := f.describe("c1-web"); awsv2.ToInt32(g.DesiredCapacity) != 4 {
		t.Errorf("a refused size changed web's desired capacity to %d", awsv2.ToInt32(g.DesiredCapacity))
	}
}

// goneAnswer makes the proxy answer TerminateInstanceInAutoScalingGroup
// for id as AWS does for an instance no group holds any more.
func goneAnswer(proxy *awsProxy, id string) {
	progress := progressAnswers(nil, nil)
	proxy.SetFault(func(c call) *fault {
		if c.Action == "TerminateInstanceInAutoScalingGroup" && formValue(c.Body, "InstanceId") == id {
			return apiError(c, "ValidationError", "Instance Id not found - No managed instance found for instance ID: "+id)
		}
		return progress(c)
	})
}
