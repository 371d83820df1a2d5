package agent_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	awsv2 "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"

	"github.com/autarky/terraform-provider-autarky/internal/agent"
	"github.com/autarky/terraform-provider-autarky/internal/decide"
	"github.com/autarky/terraform-provider-autarky/internal/platform/aws"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
	"github.com/autarky/terraform-provider-autarky/internal/testenv"
)

// bigTasks runs service name of n tasks on the pool labelled tier=web, each
// reserving all but half a CPU of a node: one task per node.
func bigTasks(t *testing.T, h *harness, name string, n int) {
	t.Helper()
	cpus := mustAtoi(t, strings.TrimSpace(h.docker("info", "--format", "{{.NCPU}}")))
	h.docker("service", "create", "--detach", "--name", name, "--replicas", strconv.Itoa(n),
		"--reserve-cpu", fmt.Sprintf("%.1f", float64(cpus)-0.5), "--constraint", "node.labels.tier==web", "autarky/workload:latest")
}

// hasDecisionKind tells whether the agent reported a decision of kind.
func hasDecisionKind(a *agent.Agent, kind string) bool {
	for _, d := range a.Status().Decisions {
		if d.Kind == kind {
			return true
		}
	}
	return false
}

// A local instance that never joins (its dockerd is frozen as soon as it
// exists: a machine that boots and never reaches the managers) holds the
// pool only for provision_timeout: then the agent terminates it, sets the
// desired size back to the real size, and backs the pool off, which the
// status and autarky_scale_backoff_seconds show; during the backoff the
// pending task asks for no new instance. Without a healing policy, before
// provision_timeout existed, the instance counted as starting forever.
func TestProvisionTimeoutLocal(t *testing.T) {
	h := newHarnessWith(t, "pv", 1, false, "1s", true)
	h.pool("web", 1, nil)
	ctx := context.Background()
	h.editPool("web", func(p *policy.Pool) { p.Labels = map[string]string{"tier": "web"} })
	original := h.instances("web")[0].ID
	h.scale(scalingPolicy("pv/web", func(s *policy.Scaling) {
		s.PendingTasks = &policy.PendingTasksCheck{}
		s.ProvisionTimeout = "8s"
	}))

	frozen, _ := h.freezeNew("web", original)

	a := h.inProcess(false)
	srv := httptest.NewServer(a.Handler())
	defer srv.Close()
	bigTasks(t, h, "big", 2) // one runs on the pool's node, one waits
	var stuck string
	h.evaluateUntil(a, "a second instance, frozen", time.Minute, func() (bool, string) {
		for id := range frozen() {
			stuck = id
		}
		return stuck != "", fmt.Sprintf("%d instances; %+v", len(h.instances("web")), h.scaling(a, "pv/web"))
	})
	launched := time.Now()

	// Until provision_timeout the instance is capacity on its way.
	h.evaluateUntil(a, "the provision timeout", time.Minute, func() (bool, string) {
		b := h.journal().ProvisionBackoff["pv/web"]
		return b.Timeouts == 1, fmt.Sprintf("backoff %+v; %+v", b, h.scaling(a, "pv/web"))
	})
	if waited := time.Since(launched); waited < 7*time.Second {
		t.Errorf("gave the instance up %s after its launch, before provision_timeout 8s", waited)
	}
	h.evaluateUntil(a, "the stuck instance terminated and the desired size back to 1", time.Minute, func() (bool, string) {
		for _, in := range h.instances("web") {
			if in.ID == stuck {
				return false, "instance " + stuck + " still listed"
			}
		}
		p, _, err := h.p.ReadPool(ctx, "pv", "web")
		if err != nil {
			return false, err.Error()
		}
		return p.DesiredSize == 1 && len(h.journal().Entries) == 0, fmt.Sprintf("desired %d, journal %+v", p.DesiredSize, h.journal().Entries)
	})
	// Backing off: the task still waits, and no instance is launched.
	for range 5 {
		a.Evaluate(ctx)
		time.Sleep(200 * time.Millisecond)
	}
	if n := len(h.instances("web")); n != 1 {
		t.Errorf("%d instances while backing off, want 1", n)
	}
	st := h.scaling(a, "pv/web")
	if st.Code != string(decide.CodeBackoff) || !strings.Contains(st.Message, "no scale-out before") {
		t.Errorf("status while backing off: %+v", st)
	}
	if !hasDecisionKind(a, "provision_timeout") {
		t.Errorf("no provision_timeout decision in %+v", a.Status().Decisions)
	}
	v, ok := metric(srv.URL, `autarky_scale_backoff_seconds{pool="pv/web"}`)
	if !ok || v < 4*60 || v > 5*60 {
		t.Errorf("autarky_scale_backoff_seconds = %v (found %t), want about 300", v, ok)
	}
	if v, _ := metric(srv.URL, `autarky_provision_timeouts_total{kind="never_registered",pool="pv/web"}`); v != 1 {
		t.Errorf("autarky_provision_timeouts_total = %v, want 1", v)
	}
}

// groupXML edits DescribeAutoScalingGroups answers of the query protocol.
var (
	instanceIDRe = regexp.MustCompile(`<InstanceId>(i-[0-9a-f]+)</InstanceId>`)
	lifecycleRe  = regexp.MustCompile(`<LifecycleState>[^<]*</LifecycleState>`)
	desiredRe    = regexp.MustCompile(`<DesiredCapacity>[0-9]+</DesiredCapacity>`)
)

// editInstances applies f to the <member> element of every instance the
// answer lists; f returns the element to put in its place ("" drops it).
func editInstances(body []byte, f func(id string, member []byte) []byte) []byte {
	var out bytes.Buffer
	rest := body
	for {
		m := instanceIDRe.FindSubmatchIndex(rest)
		if m == nil {
			out.Write(rest)
			return out.Bytes()
		}
		start := bytes.LastIndex(rest[:m[0]], []byte("<member>"))
		end := bytes.Index(rest[m[1]:], []byte("</member>"))
		if start < 0 || end < 0 {
			out.Write(rest)
			return out.Bytes()
		}
		end += m[1] + len("</member>")
		out.Write(rest[:start])
		out.Write(f(string(rest[m[2]:m[3]]), rest[start:end]))
		rest = rest[end:]
	}
}

// listedIDs are the instance ids a DescribeAutoScalingGroups answer lists
// for group, and its desired capacity.
func listedIDs(body []byte, group string) (map[string]bool, string) {
	i := bytes.Index(body, []byte("<AutoScalingGroupName>"+group+"</AutoScalingGroupName>"))
	if i < 0 {
		return nil, ""
	}
	ids := map[string]bool{}
	end := bytes.Index(body[i+1:], []byte("<AutoScalingGroupName>"))
	part := body[i:]
	if end >= 0 {
		part = body[i : i+1+end]
	}
	for _, m := range instanceIDRe.FindAllSubmatch(part, -1) {
		ids[string(m[1])] = true
	}
	return ids, string(desiredRe.Find(part))
}

// An Auto Scaling group that never brings a new instance InService (every
// describe shows it Pending, and no user data runs on it) holds the pool
// only for provision_timeout: then the agent terminates the instance with
// decrement, so the desired capacity is the real size again, and backs the
// pool off; the pending task asks for nothing more while it does.
func TestProvisionTimeoutAWS(t *testing.T) {
	c := newCloudWorkload(t, "stall", 1)
	initial, _, err := c.inService(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	c.hold = func(id string) bool { return !initial[id] }
	c.mu.Unlock()
	decrements := c.recordTerminations()
	c.proxy.SetRewrite(func(call testenv.AWSCall, body []byte) []byte {
		if call.Action != "DescribeAutoScalingGroups" {
			return body
		}
		return editInstances(body, func(id string, member []byte) []byte {
			if initial[id] {
				return member
			}
			return lifecycleRe.ReplaceAll(member, []byte("<LifecycleState>Pending</LifecycleState>"))
		})
	})
	a, srv := c.growOnPendingTasks(t, "15s")
	var stuck string
	c.h.waitFor("the group to launch an instance that stays Pending", time.Minute, func() (bool, string) {
		ids, desired, err := c.inService(context.Background())
		if err != nil {
			return false, err.Error()
		}
		for id := range ids {
			if !initial[id] {
				stuck = id
			}
		}
		return stuck != "" && desired == 2, fmt.Sprintf("desired %d, %d in service", desired, len(ids))
	})
	cl, err := aws.NewCluster(c.agentC, c.h.name, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.h.waitFor("the provision timeout: terminated with decrement, desired back to 1", 90*time.Second, func() (bool, string) {
		var j agent.Journal
		if _, err := cl.LoadJournal(context.Background(), &j); err != nil {
			return false, err.Error()
		}
		ids, desired, err := c.inService(context.Background())
		if err != nil {
			return false, err.Error()
		}
		b := j.ProvisionBackoff[c.pool.ID()]
		return b.Timeouts == 1 && !ids[stuck] && desired == 1 && len(j.Entries) == 0,
			fmt.Sprintf("backoff %+v, stuck in service %t, desired %d, journal %d entries; %+v", b, ids[stuck], desired, len(j.Entries), statusOf(a, c.pool.ID()))
	})
	if d := decrements(); len(d) != 1 || d[0] != "true" {
		t.Errorf("terminations with ShouldDecrementDesiredCapacity %v, want [true]", d)
	}
	// Backing off: the task still waits and the group is not grown again.
	time.Sleep(5 * time.Second)
	if n := c.proxy.Calls("SetDesiredCapacity"); n != 1 {
		t.Errorf("%d SetDesiredCapacity calls, want the one scale-out only", n)
	}
	if _, desired, _ := c.inService(context.Background()); desired != 1 {
		t.Errorf("desired capacity %d while backing off, want 1", desired)
	}
	if st := statusOf(a, c.pool.ID()); st.Code != string(decide.CodeBackoff) {
		t.Errorf("status while backing off: %+v", st)
	}
	if v, ok := metric(srv.URL, `autarky_scale_backoff_seconds{pool="`+c.pool.ID()+`"}`); !ok || v < 4*60 {
		t.Errorf("autarky_scale_backoff_seconds = %v (found %t), want about 300", v, ok)
	}
}

func statusOf(a *agent.Agent, pool string) agent.ScaleStatus {
	for _, p := range a.Status().Pools {
		if p.ID == pool && p.Scaling != nil {
			return *p.Scaling
		}
	}
	return agent.ScaleStatus{}
}

// Reliability scenario A3: for 60 s after every SetDesiredCapacity, the
// group is described with its old desired capacity and without the
// instances launched since (an eventually consistent read). The agent asks
// once for the size the pending tasks need and never again: the total it
// requested equals the intended size, though the tasks wait the whole
// minute and cooldown_up is 1 s.
func TestStaleDescribeNoExtraIncrements(t *testing.T) {
	const stale = 60 * time.Second
	c := newCloudWorkload(t, "haze", 1)
	group := aws.GroupName(c.pool.Cluster, c.pool.Name)
	var mu sync.Mutex
	var (
		requests   []string // DesiredCapacity of every SetDesiredCapacity
		staleUntil time.Time
		frozenIDs  map[string]bool // the instances a stale describe shows
		frozenCap  string          // and its desired capacity element
		rewritten  int
	)
	c.proxy.SetFault(testenv.NoRefreshes(func(call testenv.AWSCall) *testenv.AWSFault {
		if call.Action == "SetDesiredCapacity" && testenv.AWSFormValue(call.Body, "AutoScalingGroupName") == group {
			mu.Lock()
			requests = append(requests, testenv.AWSFormValue(call.Body, "DesiredCapacity"))
			staleUntil = time.Now().Add(stale)
			mu.Unlock()
		}
		return nil
	}))
	c.proxy.SetRewrite(func(call testenv.AWSCall, body []byte) []byte {
		if call.Action != "DescribeAutoScalingGroups" {
			return body
		}
		mu.Lock()
		defer mu.Unlock()
		ids, desired := listedIDs(body, group)
		if ids == nil {
			return body
		}
		if time.Now().After(staleUntil) || frozenIDs == nil {
			frozenIDs, frozenCap = ids, desired
			return body
		}
		rewritten++
		body = editInstances(body, func(id string, member []byte) []byte {
			if ids[id] && !frozenIDs[id] {
				return nil
			}
			return member
		})
		i := bytes.Index(body, []byte("<AutoScalingGroupName>"+group+"</AutoScalingGroupName>"))
		j := desiredRe.FindIndex(body[i:])
		return append(append(append([]byte{}, body[:i+j[0]]...), frozenCap...), body[i+j[1]:]...)
	})
	sp := scalingPolicy(c.pool.ID(), func(s *policy.Scaling) { s.PendingTasks = &policy.PendingTasksCheck{} })
	if err := c.plat.PutScalingPolicy(context.Background(), sp); err != nil {
		t.Fatal(err)
	}
	a := c.runAgent()
	bigTasks(t, c.h, "big", 3) // one fits the pool's node: two more are intended
	started := time.Now()
	c.h.waitFor("three tasks running on three nodes", 3*time.Minute, func() (bool, string) {
		n := c.h.runningTasks("big")
		return n == 3, fmt.Sprintf("%d running; %+v", n, statusOf(a, c.pool.ID()))
	})
	c.waitWorkers(3, time.Minute)
	// Past the stale minute, a few more evaluations on the fresh view.
	mu.Lock()
	until := staleUntil
	mu.Unlock()
	time.Sleep(time.Until(until) + 5*time.Second)
	mu.Lock()
	defer mu.Unlock()
	t.Logf("stale describes answered: %d; SetDesiredCapacity %v; settled after %s", rewritten, requests, time.Since(started).Round(time.Second))
	if rewritten == 0 {
		t.Fatal("no describe was answered stale: the test proves nothing")
	}
	if len(requests) != 1 || requests[0] != "3" {
		t.Fatalf("SetDesiredCapacity requests %v, want exactly one, to 3 (1 + the 2 intended)", requests)
	}
	if _, desired, _ := c.inService(context.Background()); desired != 3 {
		t.Errorf("desired capacity %d, want 3", desired)
	}
}

// A raise of the group's desired capacity that no instance answers (the
// group is never described with the new instance: a capacity shortage,
// InsufficientInstanceCapacity) counts as capacity on its way only for
// provision_timeout: then the agent gives the launch up, sets the group's
// desired capacity back to the instances it lists, and backs the pool off.
// (Moto does launch the instance; the proxy hides it from the agent for
// good, and what moto does with the lowered capacity is not asserted.)
func TestProvisionNeverListedAWS(t *testing.T) {
	c := newCloudWorkload(t, "short", 1)
	initial, _, err := c.inService(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	c.hold = func(id string) bool { return !initial[id] }
	c.mu.Unlock()
	group := aws.GroupName(c.pool.Cluster, c.pool.Name)
	var mu sync.Mutex
	var sizes []string
	c.proxy.SetFault(testenv.NoRefreshes(func(call testenv.AWSCall) *testenv.AWSFault {
		if call.Action == "SetDesiredCapacity" && testenv.AWSFormValue(call.Body, "AutoScalingGroupName") == group {
			mu.Lock()
			sizes = append(sizes, testenv.AWSFormValue(call.Body, "DesiredCapacity"))
			mu.Unlock()
		}
		return nil
	}))
	// The agent never sees a new instance: the launch never happened.
	c.proxy.SetRewrite(func(call testenv.AWSCall, body []byte) []byte {
		if call.Action != "DescribeAutoScalingGroups" {
			return body
		}
		return editInstances(body, func(id string, member []byte) []byte {
			if initial[id] {
				return member
			}
			return nil
		})
	})
	// When the agent lowers the capacity again, moto picks an instance to
	// terminate, and it may pick the listed one, whose node then dies and
	// is healed (a legitimate raise this test does not count): protected
	// from scale-in, the listed instance stays.
	var listed []string
	for id := range initial {
		listed = append(listed, id)
	}
	if _, err := c.direct.SetInstanceProtection(context.Background(), &autoscaling.SetInstanceProtectionInput{
		AutoScalingGroupName: awsv2.String(group), InstanceIds: listed, ProtectedFromScaleIn: awsv2.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	a, srv := c.growOnPendingTasks(t, "10s")
	cl, err := aws.NewCluster(c.agentC, c.h.name, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.h.waitFor("the launch given up and the pool backing off", 90*time.Second, func() (bool, string) {
		var j agent.Journal
		if _, err := cl.LoadJournal(context.Background(), &j); err != nil {
			return false, err.Error()
		}
		mu.Lock()
		defer mu.Unlock()
		b := j.ProvisionBackoff[c.pool.ID()]
		_, req := j.Requested[c.pool.ID()]
		return b.Timeouts == 1 && len(sizes) == 2 && !req, fmt.Sprintf("backoff %+v, SetDesiredCapacity %v, request kept %t; %+v", b, sizes, req, statusOf(a, c.pool.ID()))
	})
	time.Sleep(3 * time.Second) // backing off: nothing more is asked
	mu.Lock()
	defer mu.Unlock()
	if len(sizes) != 2 || sizes[0] != "2" || sizes[1] != "1" {
		t.Errorf("SetDesiredCapacity %v, want [2 1]: the raise, then back to the listed size", sizes)
	}
	if v, _ := metric(srv.URL, `autarky_provision_timeouts_total{kind="never_listed",pool="`+c.pool.ID()+`"}`); v != 1 {
		t.Errorf("autarky_provision_timeouts_total never_listed = %v, want 1", v)
	}
	if st := statusOf(a, c.pool.ID()); st.Code != string(decide.CodeBackoff) {
		t.Errorf("status while backing off: %+v", st)
	}
}

// growOnPendingTasks puts a pending_tasks policy with provisionTimeout on
// the cloud's pool, runs its agent (and a server of its handler, closed
// when the test ends), and starts two tasks too big to share a node: one
// waits for a new instance.
func (c *cloud) growOnPendingTasks(t *testing.T, provisionTimeout string) (*agent.Agent, *httptest.Server) {
	t.Helper()
	sp := scalingPolicy(c.pool.ID(), func(s *policy.Scaling) {
		s.PendingTasks = &policy.PendingTasksCheck{}
		s.ProvisionTimeout = provisionTimeout
	})
	if err := c.plat.PutScalingPolicy(context.Background(), sp); err != nil {
		t.Fatal(err)
	}
	a := c.runAgent()
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	bigTasks(t, c.h, "big", 2)
	return a, srv
}
