package agent_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	awsv2 "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/autarky/terraform-provider-autarky/internal/agent"
	"github.com/autarky/terraform-provider-autarky/internal/platform/aws"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
	"github.com/autarky/terraform-provider-autarky/internal/swarm"
	"github.com/autarky/terraform-provider-autarky/internal/testenv"
)

// cloud is an AWS cluster in moto whose instances are real swarm nodes:
// the test plays cloud-init. For every in-service instance of the worker
// pool's Auto Scaling group in moto it starts a local dockerd guest that
// joins the swarm with autarky.instance set to the instance id, and it
// removes the guest when the instance leaves the group. The swarm's
// manager is a local manager (the managers' group in moto has no healing
// policy, so the agent leaves it alone). The agent talks to moto through
// a loopback proxy the test controls (call counts, faults); the one
// answer that is not moto's own is DescribeInstanceRefreshes, which moto
// lacks: the proxy answers "no refresh".
type cloud struct {
	t      testing.TB
	h      *harness
	proxy  *testenv.AWSProxy
	direct *autoscaling.Client // to moto, bypassing the proxy: the harness's own view
	agentC *aws.Clients        // through the proxy: the agent's
	pool   policy.Pool
	// mgrs is the managers' pool when cloud-init boots its instances too.
	mgrs *policy.Pool
	// plat is the provider's side, straight to moto: what apply does.
	plat *aws.Platform
	// agentCfg is the agent's AWS configuration: through the proxy, with
	// the managers' credentials; a test that needs other client settings
	// makes its clients from it.
	agentCfg awsv2.Config

	// leaderHost is the Docker endpoint of the harness's own manager, the
	// swarm's first and Raft leader, where the agent runs.
	leaderHost string

	mu     sync.Mutex
	guests map[string]string // instance id -> local guest id
	// boots is how long each instance's guest took from start to Ready.
	boots map[string]time.Duration
	// hold, when set, names instances whose user data never runs: they
	// stay in service without a node (provision_test.go).
	hold func(id string) bool
}

func clientConfig(endpoint string) awsv2.Config {
	return awsv2.Config{Region: testenv.MotoRegion, BaseEndpoint: awsv2.String(endpoint),
		Credentials: credentials.NewStaticCredentialsProvider("testing", "testing", "")}
}

// newCloud makes cluster name with a worker pool "web" of size workers.
func newCloud(t testing.TB, name string, workers int64) *cloud {
	t.Helper()
	return newCloudWith(t, newHarness(t, name, 1, false), workers, 1)
}

// newCloudManagers is newCloud whose managers' group has managers
// instances, booted as manager guests beside the harness's local manager,
// with a healing policy.
func newCloudManagers(t testing.TB, name string, managers int64) *cloud {
	t.Helper()
	return newCloudWith(t, newHarness(t, name, 1, false), 1, managers)
}

// newCloudWorkload is newCloud with the workload image on every node.
func newCloudWorkload(t testing.TB, name string, workers int64) *cloud {
	t.Helper()
	return newCloudWith(t, newHarnessWith(t, name, 1, false, "1s", true), workers, 1)
}

// newCloudWith makes the cluster with IAM enforced: moto enforces it
// (testenv.EnforceIAM) and the agent's clients sign as a user holding the
// managers' policy (aws.AgentPolicy) and nothing more, checked by moto
// (actions) and by the proxy (resources and conditions,
// testenv.IAMResourceCheck), while the harness itself (setup, cloud-init's
// view) signs as an admin user. Every agent test on AWS so shows that the
// policy names every call the agent makes.
func newCloudWith(t testing.TB, h *harness, workers, managers int64) *cloud {
	t.Helper()
	name := h.name
	doc, err := aws.AgentPolicy(aws.PolicyInput{Cluster: name, Region: testenv.MotoRegion, AccountID: "123456789012"})
	if err != nil {
		t.Fatal(err)
	}
	js, err := doc.JSON()
	if err != nil {
		t.Fatal(err)
	}
	admin, agentUser := &testenv.IAMUser{Name: "admin", Policy: testenv.AdminPolicy}, &testenv.IAMUser{Name: "managers", Policy: js}
	moto := testenv.StartMoto(t, testenv.EnforceIAM(admin, agentUser))
	setupCfg, agentCfg := clientConfig(moto), clientConfig("")
	setupCfg.Credentials, agentCfg.Credentials = admin.Credentials(), agentUser.Credentials()
	c := &cloud{t: t, h: h, proxy: testenv.NewAWSProxy(t, moto), guests: map[string]string{}, boots: map[string]time.Duration{},
		direct: autoscaling.NewFromConfig(setupCfg)}
	agentCfg.BaseEndpoint = awsv2.String(c.proxy.URL)
	c.proxy.SetFault(testenv.NoRefreshes(testenv.IAMResourceCheck(moto, admin, agentUser)))
	c.agentCfg = agentCfg
	c.agentC = aws.NewClients(agentCfg, aws.Config{Retry: aws.RetryConfig{MaxAttempts: 6, BaseDelay: 20 * time.Millisecond, MaxDelay: 200 * time.Millisecond}}, nil)
	ami, subnet, sg := testenv.MotoNetwork(t, moto, admin)
	p := aws.NewPlatform(aws.NewClients(setupCfg, aws.Config{}, nil), nil)
	p.Poll = 50 * time.Millisecond
	c.plat = p
	ctx := context.Background()
	if _, err := p.CreateCluster(ctx, policy.Cluster{Name: name, Platform: policy.PlatformAWS, ManagerCount: managers, HeartbeatPeriod: "1s",
		AWS: &policy.AWS{AMI: ami, InstanceType: "t3.micro", Subnets: []string{subnet}, SecurityGroups: []string{sg}}}); err != nil {
		t.Fatal(err)
	}
	c.pool = policy.Pool{Cluster: name, Name: "web", Role: policy.RoleWorker, MinSize: 1, MaxSize: 4, DesiredSize: workers,
		Labels: map[string]string{"tier": "web"}, WaitForCapacityTimeout: "0s"}
	if _, err := p.CreatePool(ctx, c.pool, 0); err != nil {
		t.Fatal(err)
	}
	hp := policy.DefaultHealing(c.pool.ID())
	hp.UnhealthyAfter, hp.MinNodeAge = "2s", "0s"
	if err := p.PutHealingPolicy(ctx, hp); err != nil {
		t.Fatal(err)
	}
	if managers > 1 {
		c.mgrs = &policy.Pool{Cluster: name, Name: policy.ManagerPoolName, Role: policy.RoleManager}
		mh := policy.DefaultHealing(c.mgrs.ID())
		mh.UnhealthyAfter, mh.MinNodeAge = "2s", "0s"
		if err := p.PutHealingPolicy(ctx, mh); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { _ = p.DeleteCluster(context.Background(), name) })
	for _, r := range h.records(policy.ManagerPoolName) {
		c.leaderHost = r.DockerHost // the only manager before cloud-init starts
	}
	cctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.cloudInit(cctx) }()
	t.Cleanup(func() { cancel(); <-done })
	c.waitWorkers(int(workers), 2*time.Minute)
	if c.mgrs != nil {
		c.waitManagers(int(managers), 2*time.Minute)
	}
	return c
}

// inService lists the worker group's in-service instances, from moto.
func (c *cloud) inService(ctx context.Context) (map[string]bool, int32, error) {
	return c.inServiceOf(ctx, c.pool)
}

// inServiceOf lists a pool's in-service instances and desired capacity.
func (c *cloud) inServiceOf(ctx context.Context, pool policy.Pool) (map[string]bool, int32, error) {
	out, err := c.direct.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{
		AutoScalingGroupNames: []string{aws.GroupName(pool.Cluster, pool.Name)}})
	if err != nil || len(out.AutoScalingGroups) == 0 {
		return nil, 0, err
	}
	ids := map[string]bool{}
	for _, in := range out.AutoScalingGroups[0].Instances {
		if in.LifecycleState == "InService" {
			ids[awsv2.ToString(in.InstanceId)] = true
		}
	}
	return ids, awsv2.ToInt32(out.AutoScalingGroups[0].DesiredCapacity), nil
}

// cloudInit keeps one guest node per in-service instance until ctx ends.
func (c *cloud) cloudInit(ctx context.Context) {
	pools := []policy.Pool{c.pool}
	if c.mgrs != nil {
		pools = append(pools, *c.mgrs)
	}
	for ctx.Err() == nil {
		all := map[string]bool{}
		ok := true
		for _, pool := range pools {
			ids, _, err := c.inServiceOf(ctx, pool)
			if err != nil {
				ok = false
				break
			}
			for id := range ids {
				all[id] = true
				c.mu.Lock()
				_, has := c.guests[id]
				held := c.hold != nil && c.hold(id)
				c.mu.Unlock()
				if !has && !held {
					c.boot(ctx, pool, id)
				}
			}
		}
		if ok {
			c.mu.Lock()
			for id, g := range c.guests {
				if !all[id] {
					_ = c.h.p.RemoveGuest(context.Background(), c.h.name, g)
					delete(c.guests, id)
					c.t.Logf("cloud-init: instance %s terminated, node %s gone", id, g)
				}
			}
			c.mu.Unlock()
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// boot plays one instance's user data: a guest node that joins the swarm.
func (c *cloud) boot(ctx context.Context, pool policy.Pool, id string) {
	started := time.Now()
	g, err := c.h.p.StartGuest(ctx, c.h.name, pool, id)
	if err != nil {
		c.t.Logf("cloud-init of %s failed: %v", id, err)
		return
	}
	c.t.Logf("cloud-init: instance %s booted as %s node %s", id, pool.Role, g.ID)
	c.mu.Lock()
	c.guests[id] = g.ID
	c.boots[id] = time.Since(started)
	c.mu.Unlock()
}

// waitManagers waits until every in-service instance of the managers'
// group is a Ready, reachable manager and no other guest manager is listed.
func (c *cloud) waitManagers(n int, timeout time.Duration) {
	c.t.Helper()
	c.waitNodes(*c.mgrs, n, timeout, func(nd swarm.Node) (bool, bool) {
		// The harness's own manager stands for no instance: not counted.
		if nd.Role != policy.RoleManager || !strings.HasPrefix(nd.EngineLabels[policy.LabelInstance], "i-") {
			return false, false
		}
		return true, nd.State == "ready" && nd.Reachability == "reachable"
	})
}

// waitWorkers waits until the pool has n Ready nodes, each the node of an
// in-service instance, and no other node of the pool is listed.
func (c *cloud) waitWorkers(n int, timeout time.Duration) {
	c.t.Helper()
	c.waitNodes(c.pool, n, timeout, func(nd swarm.Node) (bool, bool) {
		return nd.Role == policy.RoleWorker, nd.State == "ready"
	})
}

// waitNodes waits until pool has n instances in service, each with a node
// that is up, and no other node counts for the pool.
func (c *cloud) waitNodes(pool policy.Pool, n int, timeout time.Duration, judge func(swarm.Node) (counts, up bool)) {
	c.t.Helper()
	c.h.waitInstanceNodes(pool.Name, n, timeout, func() (map[string]bool, error) {
		ids, _, err := c.inServiceOf(context.Background(), pool)
		return ids, err
	}, judge)
}

// waitJournalEmpty waits until the agent has finished every action.
func (c *cloud) waitJournalEmpty(timeout time.Duration) {
	c.t.Helper()
	cl, err := aws.NewCluster(c.agentC, c.h.name, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	c.h.waitJournalEmpty(cl, timeout)
}

// anyWorker is the id of one in-service worker instance.
func (c *cloud) anyWorker() string {
	c.t.Helper()
	ids, _, err := c.inService(context.Background())
	if err != nil {
		c.t.Fatal(err)
	}
	for id := range ids {
		return id
	}
	c.t.Fatal("no worker instance in service")
	return ""
}

// guestOf is the local guest id of instance id. Its node can be Ready a
// moment before cloud-init records the guest, so it waits for that.
func (c *cloud) guestOf(id string) string {
	c.t.Helper()
	var g string
	c.h.waitFor("cloud-init to record the guest of "+id, 30*time.Second, func() (bool, string) {
		c.mu.Lock()
		defer c.mu.Unlock()
		g = c.guests[id]
		return g != "", "not recorded"
	})
	return g
}

// runAgent runs an agent for the cluster on AWS, through the proxy.
func (c *cloud) runAgent() *agent.Agent {
	c.t.Helper()
	cl, err := aws.NewCluster(c.agentC, c.h.name, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	return startAgent(c.t, c.leaderHost, cl)
}

func itoa(n int) string { return strconv.Itoa(n) }

// recordTerminations makes the proxy note the ShouldDecrementDesiredCapacity
// of every TerminateInstanceInAutoScalingGroup; the function returned
// lists them so far.
func (c *cloud) recordTerminations() func() []string {
	var mu sync.Mutex
	var decrements []string
	c.proxy.SetFault(testenv.NoRefreshes(func(call testenv.AWSCall) *testenv.AWSFault {
		if call.Action == "TerminateInstanceInAutoScalingGroup" {
			mu.Lock()
			decrements = append(decrements, testenv.AWSFormValue(call.Body, "ShouldDecrementDesiredCapacity"))
			mu.Unlock()
		}
		return nil
	}))
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), decrements...)
	}
}

// A worker whose node dies is replaced through the Auto Scaling group:
// its instance is terminated without shrinking, the group launches the
// replacement, cloud-init joins it, the dead node leaves the swarm, and
// the group never changes size.
func TestAWSHealWorkerThroughGroup(t *testing.T) {
	c := newCloud(t, "sky", 2)
	victim := c.anyWorker()
	c.runAgent()
	c.proxy.Reset()
	c.h.kill(c.guestOf(victim))
	c.h.nodeDown(victim, 30*time.Second)
	c.waitWorkers(2, 90*time.Second)
	c.waitJournalEmpty(30 * time.Second)
	after, desired, err := c.inService(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if after[victim] || desired != 2 {
		t.Fatalf("after healing: victim %s still in service %t, desired capacity %d (want 2)", victim, after[victim], desired)
	}
	if n := c.proxy.Calls("TerminateInstanceInAutoScalingGroup"); n != 1 {
		t.Errorf("%d TerminateInstanceInAutoScalingGroup calls, want 1", n)
	}
	if n := c.proxy.Calls("SetDesiredCapacity"); n != 0 {
		t.Errorf("%d SetDesiredCapacity calls: healing a worker must not resize the group", n)
	}
}

// faults answers the first n calls of action with fault, then forwards.
type faults struct {
	mu   sync.Mutex
	left map[string]int
	make map[string]func(testenv.AWSCall) *testenv.AWSFault
}

func (f *faults) add(action string, n int, fault func(testenv.AWSCall) *testenv.AWSFault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.left == nil {
		f.left, f.make = map[string]int{}, map[string]func(testenv.AWSCall) *testenv.AWSFault{}
	}
	f.left[action], f.make[action] = n, fault
}

func (f *faults) answer(c testenv.AWSCall) *testenv.AWSFault {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.left[c.Action] == 0 {
		return nil
	}
	f.left[c.Action]--
	return f.make[c.Action](c)
}

func apiErr(code string) func(testenv.AWSCall) *testenv.AWSFault {
	return func(c testenv.AWSCall) *testenv.AWSFault { return testenv.AWSAPIError(c, code, code+" (injected)") }
}

// Throttling bursts, a scaling activity in progress, 5xx and slow answers
// between the agent and AWS while it heals: no crash, one termination, no
// resize, and the pool converges once the faults end; the retries are
// counted in autarky_aws_retries_total.
func TestAWSFaultsWhileHealing(t *testing.T) {
	c := newCloud(t, "storm", 2)
	victim := c.anyWorker()
	m, err := aws.NewMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	c.agentC = aws.NewClients(c.agentCfg, aws.Config{Retry: aws.RetryConfig{MaxAttempts: 4, BaseDelay: 20 * time.Millisecond, MaxDelay: 200 * time.Millisecond}}, m)
	var f faults
	f.add("DescribeAutoScalingGroups", 12, apiErr("Throttling"))
	f.add("TerminateInstanceInAutoScalingGroup", 5, apiErr("ScalingActivityInProgress"))
	f.add("DescribeInstances", 6, func(testenv.AWSCall) *testenv.AWSFault {
		return &testenv.AWSFault{Status: 503, ContentType: "text/xml", Body: "<Response><Errors><Error><Code>Unavailable</Code><Message>injected</Message></Error></Errors></Response>"}
	})
	f.add("GetParametersByPath", 4, func(testenv.AWSCall) *testenv.AWSFault { return &testenv.AWSFault{Delay: 1500 * time.Millisecond} })
	c.proxy.SetFault(testenv.NoRefreshes(f.answer))
	c.runAgent()
	c.h.kill(c.guestOf(victim))
	c.h.nodeDown(victim, 30*time.Second)
	c.waitWorkers(2, 2*time.Minute)
	c.waitJournalEmpty(time.Minute)
	after, desired, err := c.inService(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if after[victim] || desired != 2 || len(after) != 2 {
		t.Fatalf("after healing through faults: victim in service %t, %d in service, desired %d (want false, 2, 2)", after[victim], len(after), desired)
	}
	if n := c.proxy.Calls("SetDesiredCapacity"); n != 0 {
		t.Errorf("%d SetDesiredCapacity calls while healing a worker, want none", n)
	}
	retries := testutil.ToFloat64(m.Retries.WithLabelValues("DescribeAutoScalingGroups", "Throttling")) +
		testutil.ToFloat64(m.Retries.WithLabelValues("TerminateInstanceInAutoScalingGroup", "ScalingActivityInProgress"))
	if retries < 5 {
		t.Errorf("autarky_aws_retries_total counted %v throttling and scaling-activity retries, want at least 5", retries)
	}
}

// Pending tasks grow the group (one SetDesiredCapacity, the group
// launches, cloud-init joins); when the work is gone the agent drains the
// node it chose and terminates it with decrement, so the group never
// picks a node itself.
func TestAWSScaleThroughGroup(t *testing.T) {
	c := newCloudWorkload(t, "tide", 1)
	sp := scalingPolicy(c.pool.ID(), func(s *policy.Scaling) { s.PendingTasks = &policy.PendingTasksCheck{} })
	if err := c.plat.PutScalingPolicy(context.Background(), sp); err != nil {
		t.Fatal(err)
	}
	decrements := c.recordTerminations()
	a := c.runAgent()
	cpus := mustAtoi(t, strings.TrimSpace(c.h.docker("info", "--format", "{{.NCPU}}")))
	reserve := fmt.Sprintf("%.1f", float64(cpus)-0.5)
	c.h.docker("service", "create", "--detach", "--name", "big", "--replicas", "2", "--reserve-cpu", reserve,
		"--constraint", "node.labels.tier==web", "autarky/workload:latest")
	c.waitWorkers(2, 2*time.Minute)
	c.h.waitFor("both tasks to run", 2*time.Minute, func() (bool, string) {
		n := c.h.runningTasks("big")
		return n == 2, itoa(n) + " running"
	})
	if n := c.proxy.Calls("SetDesiredCapacity"); n != 1 {
		t.Errorf("%d SetDesiredCapacity calls to grow by one, want 1", n)
	}
	// Instances protected from scale-in are not drained nor terminated.
	ids, _, err := c.inService(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	protect := func(on bool) {
		var list []string
		for id := range ids {
			list = append(list, id)
		}
		if _, err := c.direct.SetInstanceProtection(context.Background(), &autoscaling.SetInstanceProtectionInput{
			AutoScalingGroupName: awsv2.String(aws.GroupName(c.pool.Cluster, c.pool.Name)), InstanceIds: list,
			ProtectedFromScaleIn: awsv2.Bool(on)}); err != nil {
			t.Fatal(err)
		}
	}
	protect(true)
	c.h.docker("service", "rm", "big")
	c.h.waitFor("scale-in to hold on protected instances", time.Minute, func() (bool, string) {
		for _, d := range a.Status().Decisions {
			if d.Code == "platform_busy" && strings.Contains(d.Message, "protected from scale-in") {
				return true, ""
			}
		}
		return false, "no hold yet"
	})
	early := decrements()
	if now, _, _ := c.inService(context.Background()); len(now) != 2 || len(early) != 0 {
		t.Fatalf("protected instances: %d in service, terminations %v (want 2 and none)", len(now), early)
	}
	protect(false)
	c.waitWorkers(1, 2*time.Minute)
	c.waitJournalEmpty(time.Minute)
	_, desired, err := c.inService(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if d := decrements(); desired != 1 || len(d) != 1 || d[0] != "true" {
		t.Fatalf("after scale-in: desired %d, terminations with ShouldDecrementDesiredCapacity %v (want 1 and [true])", desired, d)
	}
}

// A manager whose node dies is replaced through the managers' group with
// quorum kept: the leader does not reach the dead member, so it leaves
// first (demoted, removed, its instance terminated without decrement) and
// the group launches the replacement, which joins as a manager; the group
// never changes size.
func TestAWSHealManagerThroughGroup(t *testing.T) {
	c := newCloudManagers(t, "crown", 3)
	ids, _, err := c.inServiceOf(context.Background(), *c.mgrs)
	if err != nil {
		t.Fatal(err)
	}
	var victim string
	for id := range ids {
		victim = id
		break
	}
	decrements := c.recordTerminations()
	c.runAgent()
	c.proxy.Reset()
	c.h.kill(c.guestOf(victim))
	c.h.nodeDown(victim, 30*time.Second)
	c.h.waitFor("the dead manager's instance terminated", 2*time.Minute, func() (bool, string) {
		now, _, err := c.inServiceOf(context.Background(), *c.mgrs)
		return err == nil && !now[victim], "still in service"
	})
	c.waitManagers(3, 2*time.Minute)
	c.waitJournalEmpty(time.Minute)
	after, desired, err := c.inServiceOf(context.Background(), *c.mgrs)
	if err != nil {
		t.Fatal(err)
	}
	if after[victim] || desired != 3 || len(after) != 3 {
		t.Fatalf("after healing a manager: victim in service %t, %d in service, desired %d (want false, 3, 3)", after[victim], len(after), desired)
	}
	if n := c.proxy.Calls("SetDesiredCapacity"); n != 0 {
		t.Errorf("%d SetDesiredCapacity calls, want none (the group refills itself)", n)
	}
	if d := decrements(); len(d) != 1 || d[0] != "false" {
		t.Errorf("terminations with ShouldDecrementDesiredCapacity %v, want one without decrement (the dead manager)", d)
	}
	ns, err := c.h.nodes()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range ns {
		if n.EngineLabels[policy.LabelInstance] == victim {
			t.Errorf("the dead manager's node %s is still in the swarm (%s)", n.ID, n.State)
		}
	}
}

// Item 6, reliability scenario S7: a scale-in of three nodes whose second
// termination fails for good. The nodes not terminated are made
// schedulable again, the batch leaves the journal, and the pool's desired
// size, in the store and in the group, equals its real size.
func TestAWSScaleInUndoneWhenATerminationFails(t *testing.T) {
	c := newCloudWorkload(t, "halt", 4)
	sp := scalingPolicy(c.pool.ID(), func(s *policy.Scaling) {
		s.Alert = []policy.AlertCheck{{Name: "never"}}
		s.ScaleInAfter = "1s"
		s.DrainTimeout = "5s"
		// One scale-in decision in this test: it comes once the
		// stabilisation window (cooldown_down) has passed since the first
		// evaluations, which recommend the nodes not yet unneeded, and no
		// second one comes before the assertions below. Every node may be
		// disrupted at once, so the decision is one batch of three.
		s.CooldownDown = "45s"
		s.MaxDisruptedPercent = 100
	})
	if err := c.plat.PutScalingPolicy(context.Background(), sp); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	terminations := 0
	c.proxy.SetFault(testenv.NoRefreshes(func(call testenv.AWSCall) *testenv.AWSFault {
		if call.Action != "TerminateInstanceInAutoScalingGroup" {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		terminations++
		if terminations == 2 {
			return &testenv.AWSFault{Status: 400, ContentType: "text/xml",
				Body: `<ErrorResponse><Error><Type>Sender</Type><Code>ValidationError</Code><Message>injected: the instance cannot be terminated</Message></Error><RequestId>1</RequestId></ErrorResponse>`}
		}
		return nil
	}))
	a := c.runAgent()
	c.h.waitFor("the scale-in to be undone", 2*time.Minute, func() (bool, string) {
		return hasDecision(a.Status(), "undone"), fmt.Sprintf("%d terminations", terminations)
	})
	c.waitJournalEmpty(30 * time.Second)
	ids, desired, err := c.inService(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 3 || desired != 3 {
		t.Fatalf("after one termination and one failure: %d in service, group desired %d; want 3 and 3", len(ids), desired)
	}
	cl, err := aws.NewCluster(c.agentC, c.h.name, nil)
	if err != nil {
		t.Fatal(err)
	}
	pools, err := cl.Pools(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, pl := range pools {
		if pl.Name == "web" && pl.DesiredSize != 3 {
			t.Fatalf("the store's desired size is %d, want the real size 3", pl.DesiredSize)
		}
	}
	ns, err := c.h.nodes()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range ns {
		if n.EngineLabels[policy.LabelPool] == "web" && ids[n.EngineLabels[policy.LabelInstance]] && n.Availability != "active" {
			t.Fatalf("node %s of a running instance is %s, want active again", n.ID, n.Availability)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if terminations != 2 {
		t.Fatalf("%d terminations tried, want 2: the rest of the batch must stop", terminations)
	}
}
