package aws

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	awsv2 "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"

	"github.com/autarky/terraform-provider-autarky/internal/platform"
)

// TestDescribeGroupsBatches describes 1, 10 and 150 groups in moto and
// counts the calls that reach the wire: ceil(groups/100) describes, and
// no progress checks while every group is steady.
func TestDescribeGroupsBatches(t *testing.T) {
	c, proxy := testClients(t, nil)
	f := newFixture(t, c, "batch")
	var names []string
	for i := range 150 {
		name := fmt.Sprintf("batch-pool-%03d", i)
		desired := int32(0)
		if i < 3 {
			desired = int32(i + 1)
		}
		f.group(name, 0, desired, 5)
		names = append(names, name)
	}
	groups := NewNodeGroups(c.AutoScaling)
	for _, n := range []int{1, 10, 150} {
		proxy.Reset()
		got, err := groups.DescribeGroups(context.Background(), names[:n])
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != n {
			t.Fatalf("%d groups: described %d", n, len(got))
		}
		want := (n + MaxGroupsPerDescribe - 1) / MaxGroupsPerDescribe
		describes := proxy.Calls("DescribeAutoScalingGroups")
		t.Logf("%3d groups: %d DescribeAutoScalingGroups, %d DescribeInstanceRefreshes, %d DescribeScalingActivities",
			n, describes, proxy.Calls("DescribeInstanceRefreshes"), proxy.Calls("DescribeScalingActivities"))
		if describes != want {
			t.Errorf("%d groups: %d DescribeAutoScalingGroups calls, want %d", n, describes, want)
		}
		if k := proxy.Calls("DescribeInstanceRefreshes") + proxy.Calls("DescribeScalingActivities"); k != 0 {
			t.Errorf("%d steady groups: %d progress checks, want none", n, k)
		}
	}

	got, err := groups.DescribeGroups(context.Background(), append(names[:3:3], "batch-missing", names[0]))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := got["batch-missing"]; ok || len(got) != 3 {
		t.Fatalf("described %d groups (a missing one: %t), want the 3 that exist", len(got), ok)
	}
	g := got["batch-pool-002"]
	if g.Desired != 3 || g.Min != 0 || g.Max != 5 || len(g.Instances) != 3 {
		t.Fatalf("batch-pool-002: %+v", g)
	}
	for _, in := range g.Instances {
		if !strings.HasPrefix(in.ID, "i-") || in.LifecycleState != "InService" || in.Health != "Healthy" || in.ProtectedFromScaleIn {
			t.Errorf("instance %+v", in)
		}
	}
	if g.Tags[TagCluster] != "batch" || g.Tags[TagPool] != "batch-pool-002" {
		t.Errorf("tags %v", g.Tags)
	}
	if !g.Settled() {
		t.Error("a steady group is not settled")
	}
}

// TestResizeAndTerminate changes moto's state through the group API.
func TestResizeAndTerminate(t *testing.T) {
	c, _ := testClients(t, nil)
	f := newFixture(t, c, "resize")
	f.group("resize-workers", 1, 2, 5)
	groups := NewNodeGroups(c.AutoScaling)
	ctx := context.Background()

	if err := groups.SetDesiredCapacity(ctx, "resize-workers", 4); err != nil {
		t.Fatal(err)
	}
	g := f.describe("resize-workers")
	if awsv2.ToInt32(g.DesiredCapacity) != 4 || len(g.Instances) != 4 {
		t.Fatalf("after SetDesiredCapacity(4): desired %d, %d instances", awsv2.ToInt32(g.DesiredCapacity), len(g.Instances))
	}
	// Absolute: the same call again changes nothing.
	if err := groups.SetDesiredCapacity(ctx, "resize-workers", 4); err != nil {
		t.Fatal(err)
	}
	if g := f.describe("resize-workers"); len(g.Instances) != 4 {
		t.Fatalf("a repeated SetDesiredCapacity(4) left %d instances", len(g.Instances))
	}

	// Replace: no decrement, Auto Scaling launches a replacement.
	victim := awsv2.ToString(g.Instances[0].InstanceId)
	if err := groups.TerminateInstance(ctx, victim, false); err != nil {
		t.Fatal(err)
	}
	g = f.describe("resize-workers")
	if awsv2.ToInt32(g.DesiredCapacity) != 4 || len(g.Instances) != 4 || hasInstance(g.Instances, victim) {
		t.Fatalf("after replace: desired %d, %d instances, victim still in: %t", awsv2.ToInt32(g.DesiredCapacity), len(g.Instances), hasInstance(g.Instances, victim))
	}
	if s := f.ec2State(victim); s != "terminated" {
		t.Errorf("replaced instance is %q in EC2, want terminated", s)
	}

	// Scale in: decrement, the group shrinks by the chosen instance.
	chosen := awsv2.ToString(g.Instances[1].InstanceId)
	if err := groups.TerminateInstance(ctx, chosen, true); err != nil {
		t.Fatal(err)
	}
	g = f.describe("resize-workers")
	if awsv2.ToInt32(g.DesiredCapacity) != 3 || len(g.Instances) != 3 || hasInstance(g.Instances, chosen) {
		t.Fatalf("after scale in: desired %d, %d instances, chosen still in: %t", awsv2.ToInt32(g.DesiredCapacity), len(g.Instances), hasInstance(g.Instances, chosen))
	}
	if s := f.ec2State(chosen); s != "terminated" {
		t.Errorf("scaled-in instance is %q in EC2, want terminated", s)
	}
}

func hasInstance(list []astypes.Instance, id string) bool {
	for _, in := range list {
		if awsv2.ToString(in.InstanceId) == id {
			return true
		}
	}
	return false
}

// TestProgressAndBusy: moto keeps suspended processes and scale-in
// protection, which the agent must respect. moto does not implement
// DescribeInstanceRefreshes and reports no scaling activities, so the
// proxy answers those two calls the way AWS does, for the one group the
// test says is busy.
func TestProgressAndBusy(t *testing.T) {
	c, proxy := testClients(t, nil)
	f := newFixture(t, c, "busy")
	for _, name := range []string{"busy-free", "busy-refresh", "busy-activity", "busy-suspended"} {
		f.group(name, 0, 2, 5)
	}
	ctx := context.Background()
	if _, err := c.AutoScaling.SuspendProcesses(ctx, &autoscaling.SuspendProcessesInput{
		AutoScalingGroupName: awsv2.String("busy-suspended"), ScalingProcesses: []string{ProcessLaunch},
	}); err != nil {
		t.Fatal(err)
	}
	free := f.describe("busy-free")
	protected := awsv2.ToString(free.Instances[0].InstanceId)
	if _, err := c.AutoScaling.SetInstanceProtection(ctx, &autoscaling.SetInstanceProtectionInput{
		AutoScalingGroupName: awsv2.String("busy-free"), InstanceIds: []string{protected}, ProtectedFromScaleIn: awsv2.Bool(true),
	}); err != nil {
		t.Fatal(err)
	}
	proxy.SetFault(progressAnswers(map[string]string{"busy-refresh": "InProgress"}, map[string]string{"busy-activity": "WaitingForInstanceWarmup"}))

	groups := NewNodeGroups(c.AutoScaling)
	got, err := groups.DescribeGroups(ctx, []string{"busy-free", "busy-refresh", "busy-activity", "busy-suspended"})
	if err != nil {
		t.Fatal(err)
	}
	// Unchecked groups are busy: the agent must not act blind.
	if err := got["busy-free"].Busy(Grow, ""); err == nil || !IsTransient(err) {
		t.Fatalf("an unchecked group is not busy: %v", err)
	}
	proxy.Reset()
	for _, g := range got {
		if err := groups.CheckProgress(ctx, g); err != nil {
			t.Fatal(err)
		}
		if err := groups.CheckProgress(ctx, g); err != nil { // checked once only
			t.Fatal(err)
		}
	}
	if r, a := proxy.Calls("DescribeInstanceRefreshes"), proxy.Calls("DescribeScalingActivities"); r != 4 || a != 4 {
		t.Errorf("checking 4 groups took %d DescribeInstanceRefreshes and %d DescribeScalingActivities, want 4 and 4", r, a)
	}

	second := awsv2.ToString(free.Instances[1].InstanceId)
	for _, tc := range []struct {
		group    string
		action   Action
		instance string
		busy     string // part of the reason, "" when free
	}{
		{"busy-free", Grow, "", ""},
		{"busy-free", Shrink, "", ""},
		{"busy-free", ScaleIn, second, ""},
		{"busy-free", Replace, second, ""},
		{"busy-free", ScaleIn, protected, "protected from scale-in"},
		{"busy-free", Replace, protected, "protected from scale-in"},
		{"busy-refresh", Grow, "", "instance refresh"},
		{"busy-activity", Shrink, "", "scaling activity"},
		{"busy-suspended", Grow, "", "Launch process is suspended"},
		{"busy-suspended", Shrink, "", ""},
	} {
		err := got[tc.group].Busy(tc.action, tc.instance)
		switch {
		case tc.busy == "" && err != nil:
			t.Errorf("%s %s %s: busy: %v", tc.action, tc.group, tc.instance, err)
		case tc.busy != "" && (err == nil || !strings.Contains(err.Error(), tc.busy) || !IsTransient(err)):
			t.Errorf("%s %s %s: %v, want busy with %q", tc.action, tc.group, tc.instance, err, tc.busy)
		}
	}
	if err := got["busy-free"].Busy(ScaleIn, "i-nothere"); !errors.Is(err, platform.ErrNotFound) {
		t.Errorf("an instance not in the group: %v", err)
	}
}

// progressAnswers answers DescribeInstanceRefreshes (always: moto lacks
// it) and DescribeScalingActivities (for the named groups) as AWS does.
func progressAnswers(refreshes, activities map[string]string) func(call) *fault {
	return func(c call) *fault {
		group := formValue(c.Body, "AutoScalingGroupName")
		switch c.Action {
		case "DescribeInstanceRefreshes":
			members := ""
			if s, ok := refreshes[group]; ok {
				members = fmt.Sprintf(`<member><InstanceRefreshId>0f1a2b3c-refresh</InstanceRefreshId><AutoScalingGroupName>%s</AutoScalingGroupName><Status>%s</Status><StatusReason>Waiting for instances to warm up before continuing.</StatusReason><PercentageComplete>50</PercentageComplete><InstancesToUpdate>1</InstancesToUpdate><StartTime>2025-01-01T00:00:00Z</StartTime></member>`, group, s)
			}
			return &fault{Status: 200, ContentType: "text/xml", Body: `<DescribeInstanceRefreshesResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/"><DescribeInstanceRefreshesResult><InstanceRefreshes>` +
				members + `</InstanceRefreshes></DescribeInstanceRefreshesResult><ResponseMetadata><RequestId>req-refresh</RequestId></ResponseMetadata></DescribeInstanceRefreshesResponse>`}
		case "DescribeScalingActivities":
			s, ok := activities[group]
			if !ok {
				return nil // moto answers: no activities
			}
			return &fault{Status: 200, ContentType: "text/xml", Body: fmt.Sprintf(`<DescribeScalingActivitiesResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/"><DescribeScalingActivitiesResult><Activities>`+
				`<member><ActivityId>5e6f-activity</ActivityId><AutoScalingGroupName>%s</AutoScalingGroupName><Description>Launching a new EC2 instance: i-0123456789abcdef0</Description><Cause>At 2025-01-01T00:00:00Z a user request update of AutoScalingGroup constraints changed the desired capacity.</Cause><StartTime>2025-01-01T00:00:00Z</StartTime><StatusCode>%s</StatusCode><Progress>30</Progress></member>`+
				`<member><ActivityId>4d5e-activity</ActivityId><AutoScalingGroupName>%s</AutoScalingGroupName><Description>Launching a new EC2 instance: i-0fedcba9876543210</Description><Cause>earlier</Cause><StartTime>2024-12-31T00:00:00Z</StartTime><StatusCode>Successful</StatusCode><Progress>100</Progress></member>`+
				`</Activities></DescribeScalingActivitiesResult><ResponseMetadata><RequestId>req-activities</RequestId></ResponseMetadata></DescribeScalingActivitiesResponse>`, group, s, group)}
		}
		return nil
	}
}

// TestBusyRules covers the rules moto cannot put a group into: states
// between launches, deletion, a failed check.
func TestBusyRules(t *testing.T) {
	base := func() *Group {
		return &Group{Name: "g", Desired: 2, Min: 0, Max: 4, ProgressChecked: true, Instances: []GroupInstance{
			{ID: "i-1", LifecycleState: "InService", Health: "Healthy"},
			{ID: "i-2", LifecycleState: "InService", Health: "Healthy"},
		}}
	}
	if g := base(); !g.Settled() || g.Busy(Grow, "") != nil {
		t.Fatal("a steady, checked group is not free")
	}
	g := base()
	g.Instances[1].LifecycleState = "Terminating:Wait"
	if g.Settled() {
		t.Error("a group with a terminating instance is settled")
	}
	if err := g.Busy(Replace, "i-2"); err == nil || !strings.Contains(err.Error(), "Terminating:Wait") {
		t.Errorf("terminating an instance already leaving: %v", err)
	}
	g = base()
	g.Instances = g.Instances[:1]
	if g.Settled() {
		t.Error("a group short of its desired capacity is settled")
	}
	g = base()
	g.Status = "Delete in progress"
	if err := g.Busy(Grow, ""); err == nil || !strings.Contains(err.Error(), "Delete in progress") {
		t.Errorf("a group being deleted: %v", err)
	}
	g = base()
	g.Suspended = []string{ProcessTerminate}
	if g.Busy(Grow, "") != nil || g.Busy(ScaleIn, "i-1") == nil || g.Busy(Replace, "i-1") == nil || g.Busy(Shrink, "") == nil {
		t.Error("a suspended Terminate process must stop every action that terminates, and only those")
	}
	g = base()
	g.ProgressChecked, g.ProgressErr = false, errors.New("AccessDenied")
	if err := g.Busy(Grow, ""); err == nil || !strings.Contains(err.Error(), "AccessDenied") {
		t.Errorf("a failed check: %v", err)
	}
	var be *BusyError
	if err := base().Busy(Grow, ""); errors.As(err, &be) {
		t.Error("free group reported busy")
	}
}

// TestTerminateGoneInstance: AWS's answer for an instance that is not in
// any group (moto fails differently, so the proxy answers as AWS does).
func TestTerminateGoneInstance(t *testing.T) {
	c, proxy := testClients(t, nil)
	proxy.SetFault(func(cl call) *fault {
		if cl.Action == "TerminateInstanceInAutoScalingGroup" {
			return apiError(cl, "ValidationError", "Instance Id not found - No managed instance found for instance ID: i-0123456789abcdef0")
		}
		return nil
	})
	err := NewNodeGroups(c.AutoScaling).TerminateInstance(context.Background(), "i-0123456789abcdef0", true)
	if !errors.Is(err, platform.ErrNotFound) {
		t.Fatalf("terminating a gone instance: %v", err)
	}
	if n := proxy.Calls("TerminateInstanceInAutoScalingGroup"); n != 1 {
		t.Errorf("a ValidationError was retried: %d calls", n)
	}
}
