package aws

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	awsv2 "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/autarky/terraform-provider-autarky/internal/platform"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
	"github.com/autarky/terraform-provider-autarky/internal/swarm"
	"github.com/autarky/terraform-provider-autarky/internal/testenv"
)

// provisionEnv is moto behind the test's proxy, the network a user brings,
// and a Platform that polls quickly.
func provisionEnv(t *testing.T) (c *Clients, proxy *awsProxy, p *Platform, ami, subnet, sg string) {
	t.Helper()
	c, proxy = testClients(t, nil)
	ami, subnet, sg = testenv.MotoNetwork(t, proxy.URL)
	p = NewPlatform(c, nil)
	p.Poll = 50 * time.Millisecond
	return c, proxy, p, ami, subnet, sg
}

func testCluster(name, ami, subnet, sg string) policy.Cluster {
	return policy.Cluster{Name: name, Platform: policy.PlatformAWS, ManagerCount: 1, HeartbeatPeriod: "5s",
		AWS: &policy.AWS{AMI: ami, InstanceType: "t3.micro", Subnets: []string{subnet}, SecurityGroups: []string{sg},
			Tags: map[string]string{"team": "infra"}}}
}

// What the provider creates on AWS, it reads back, changes in place and
// deletes without leaving a group, a launch template or a parameter.
func TestProvisionLifecycle(t *testing.T) {
	c, _, p, ami, subnet, sg := provisionEnv(t)
	ctx := context.Background()

	cl := testCluster("prod", ami, subnet, sg)
	st, err := p.CreateCluster(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if st.LiveManagers != 1 || len(st.ManagerAddresses) != 1 || !strings.HasSuffix(st.ManagerAddresses[0], ":2377") {
		t.Fatalf("status after create: %+v", st)
	}
	if _, err := p.CreateCluster(ctx, cl); !errors.Is(err, platform.ErrExists) {
		t.Fatalf("second create: got %v, want ErrExists", err)
	}
	mg := describeGroup(t, c, "prod-managers")
	if awsv2.ToInt32(mg.MaxSize) != 2 || awsv2.ToInt32(mg.DesiredCapacity) != 1 {
		t.Fatalf("managers group: max %d desired %d, want 2 and 1", awsv2.ToInt32(mg.MaxSize), awsv2.ToInt32(mg.DesiredCapacity))
	}
	tags := map[string]string{}
	for _, tg := range mg.Tags {
		tags[awsv2.ToString(tg.Key)] = awsv2.ToString(tg.Value)
		if !awsv2.ToBool(tg.PropagateAtLaunch) {
			t.Errorf("tag %s does not propagate to instances", awsv2.ToString(tg.Key))
		}
	}
	if tags[TagCluster] != "prod" || tags[TagPool] != "managers" || tags["team"] != "infra" {
		t.Fatalf("managers group tags: %v", tags)
	}
	ud := userDataOf(t, c, "prod-managers")
	if !strings.Contains(ud, "swarm init") || !strings.Contains(ud, "--dispatcher-heartbeat 5s") || strings.Contains(ud, "SWMTKN") {
		t.Fatalf("managers' user data does not init the swarm, or holds a token:\n%s", ud)
	}

	// Grow the managers; lowering is refused and changes nothing.
	cl.ManagerCount = 3
	if st, err = p.UpdateCluster(ctx, cl); err != nil || st.LiveManagers != 3 {
		t.Fatalf("update to 3 managers: %v %+v", err, st)
	}
	cl.ManagerCount = 1
	if _, err := p.UpdateCluster(ctx, cl); err == nil || !strings.Contains(err.Error(), "manager_count") {
		t.Fatalf("lowering manager_count: got %v, want a manager_count error", err)
	}
	if got, _, _ := p.ReadCluster(ctx, "prod"); got.ManagerCount != 3 {
		t.Fatalf("manager_count after the refused change: %d", got.ManagerCount)
	}

	pool := policy.Pool{Cluster: "prod", Name: "web", Role: policy.RoleWorker, MinSize: 1, MaxSize: 4, DesiredSize: 2,
		Labels: map[string]string{"tier": "web"}, WaitForCapacityTimeout: "1m", AWS: &policy.AWSPool{InstanceType: "t3.small"}}
	ps, err := p.CreatePool(ctx, pool, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if ps.CurrentSize != 2 {
		t.Fatalf("pool size after create: %d", ps.CurrentSize)
	}
	if ud := userDataOf(t, c, "prod-web"); !strings.Contains(ud, `tier=web`) || strings.Contains(ud, "swarm init") {
		t.Fatalf("worker user data:\n%s", ud)
	}
	// Drift: someone resizes the group by hand.
	if _, err := c.AutoScaling.SetDesiredCapacity(ctx, &autoscaling.SetDesiredCapacityInput{AutoScalingGroupName: awsv2.String("prod-web"), DesiredCapacity: awsv2.Int32(3)}); err != nil {
		t.Fatal(err)
	}
	got, _, err := p.ReadPool(ctx, "prod", "web")
	if err != nil || got.DesiredSize != 3 || got.MaxSize != 4 || got.MinSize != 1 {
		t.Fatalf("read after drift: %+v %v", got, err)
	}
	pool.DesiredSize, pool.MaxSize = 1, 3
	if _, ps, err = p.UpdatePool(ctx, pool, time.Minute); err != nil {
		t.Fatal(err)
	}
	if g := describeGroup(t, c, "prod-web"); awsv2.ToInt32(g.DesiredCapacity) != 1 || awsv2.ToInt32(g.MaxSize) != 4 {
		t.Fatalf("group after update: desired %d max %d", awsv2.ToInt32(g.DesiredCapacity), awsv2.ToInt32(g.MaxSize))
	}

	if err := p.DeleteCluster(ctx, "prod"); err != nil {
		t.Fatal(err)
	}
	assertNothingLeft(t, c, "prod")
}

// A cluster whose creation fails half-way leaves nothing behind.
func TestProvisionFailureLeavesNothing(t *testing.T) {
	c, proxy, p, ami, subnet, sg := provisionEnv(t)
	ctx := context.Background()
	proxy.SetFault(func(cl call) *fault {
		if cl.Action == "CreateAutoScalingGroup" {
			return apiError(cl, "ValidationError", "The subnet ID 'subnet-x' does not exist")
		}
		return nil
	})
	_, err := p.CreateCluster(ctx, testCluster("broken", ami, subnet, sg))
	if err == nil || !strings.Contains(err.Error(), "create Auto Scaling group broken-managers") {
		t.Fatalf("got %v, want the group creation error", err)
	}
	proxy.SetFault(nil)
	assertNothingLeft(t, c, "broken")
}

func describeGroup(t *testing.T, c *Clients, name string) astypes.AutoScalingGroup {
	t.Helper()
	out, err := c.AutoScaling.DescribeAutoScalingGroups(context.Background(), &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{name}})
	if err != nil || len(out.AutoScalingGroups) != 1 {
		t.Fatalf("describe %s: %v", name, err)
	}
	return out.AutoScalingGroups[0]
}

func userDataOf(t *testing.T, c *Clients, template string) string {
	t.Helper()
	out, err := c.EC2.DescribeLaunchTemplateVersions(context.Background(), &ec2.DescribeLaunchTemplateVersionsInput{
		LaunchTemplateName: awsv2.String(template), Versions: []string{"$Latest"}})
	if err != nil || len(out.LaunchTemplateVersions) == 0 {
		t.Fatalf("launch template %s: %v", template, err)
	}
	return decodeUserData(t, awsv2.ToString(out.LaunchTemplateVersions[0].LaunchTemplateData.UserData))
}

// assertNothingLeft checks moto for anything of cluster: groups, launch
// templates, running instances and parameters.
func assertNothingLeft(t *testing.T, c *Clients, cluster string) {
	t.Helper()
	ctx := context.Background()
	groups, err := c.AutoScaling.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{})
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range groups.AutoScalingGroups {
		if strings.HasPrefix(awsv2.ToString(g.AutoScalingGroupName), cluster+"-") {
			t.Errorf("group %s is left", awsv2.ToString(g.AutoScalingGroupName))
		}
	}
	lts, err := c.EC2.DescribeLaunchTemplates(ctx, &ec2.DescribeLaunchTemplatesInput{})
	if err != nil {
		t.Fatal(err)
	}
	for _, lt := range lts.LaunchTemplates {
		if strings.HasPrefix(awsv2.ToString(lt.LaunchTemplateName), cluster+"-") {
			t.Errorf("launch template %s is left", awsv2.ToString(lt.LaunchTemplateName))
		}
	}
	insts, err := c.EC2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range insts.Reservations {
		for _, in := range r.Instances {
			for _, tg := range in.Tags {
				if awsv2.ToString(tg.Key) == TagCluster && awsv2.ToString(tg.Value) == cluster && in.State.Name != "terminated" {
					t.Errorf("instance %s is %s", awsv2.ToString(in.InstanceId), in.State.Name)
				}
			}
		}
	}
	params, err := c.SSM.GetParametersByPath(ctx, &ssm.GetParametersByPathInput{Path: awsv2.String(ClusterPath(cluster)), Recursive: awsv2.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range params.Parameters {
		t.Errorf("parameter %s is left", awsv2.ToString(p.Name))
	}
}

func decodeUserData(t *testing.T, b64 string) string {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatalf("user data is not base64: %v", err)
	}
	return string(b)
}

// A cluster whose managers' group was deleted by hand is lost: reading it
// says so, and creating it again works over its parameters, without the
// old swarm's tokens and init lock.
func TestProvisionLostClusterIsCreatedAnew(t *testing.T) {
	c, _, p, ami, subnet, sg := provisionEnv(t)
	ctx := context.Background()
	cl := testCluster("phoenix", ami, subnet, sg)
	if _, err := p.CreateCluster(ctx, cl); err != nil {
		t.Fatal(err)
	}
	s, _ := NewStore(c.SSM, "phoenix")
	if err := s.PutTokens(ctx, swarm.Tokens{Worker: "SWMTKN-old-worker", Manager: "SWMTKN-old-manager"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AutoScaling.DeleteAutoScalingGroup(ctx, &autoscaling.DeleteAutoScalingGroupInput{
		AutoScalingGroupName: awsv2.String("phoenix-managers"), ForceDelete: awsv2.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	if _, st, err := p.ReadCluster(ctx, "phoenix"); err != nil || !st.Lost {
		t.Fatalf("read after the managers' group is gone: lost %t, %v", st.Lost, err)
	}
	st, err := p.CreateCluster(ctx, cl)
	if err != nil {
		t.Fatalf("creating a lost cluster anew: %v", err)
	}
	if st.Lost || st.LiveManagers != 1 {
		t.Fatalf("after creating anew: lost %t, %d live managers", st.Lost, st.LiveManagers)
	}
	if _, err := s.GetTokens(ctx); !errors.Is(err, platform.ErrNotFound) {
		t.Fatalf("after creating anew the old swarm's tokens are still in SSM (or cannot be read): %v", err)
	}
	if err := p.DeleteCluster(ctx, "phoenix"); err != nil {
		t.Fatal(err)
	}
	assertNothingLeft(t, c, "phoenix")
}

// profileOf is the instance profile (name or ARN, as given) of a launch
// template's latest version, and that version's number.
func profileOf(t *testing.T, c *Clients, template string) (string, int64) {
	t.Helper()
	out, err := c.EC2.DescribeLaunchTemplateVersions(context.Background(), &ec2.DescribeLaunchTemplateVersionsInput{
		LaunchTemplateName: awsv2.String(template), Versions: []string{"$Latest"}})
	if err != nil || len(out.LaunchTemplateVersions) == 0 {
		t.Fatalf("launch template %s: %v", template, err)
	}
	v := out.LaunchTemplateVersions[0]
	ip := v.LaunchTemplateData.IamInstanceProfile
	if ip == nil {
		return "", awsv2.ToInt64(v.VersionNumber)
	}
	return awsv2.ToString(ip.Name) + awsv2.ToString(ip.Arn), awsv2.ToInt64(v.VersionNumber)
}

// Each pool's launch template names its own instance profile; the
// managers' names the cluster's, and so does a pool without its own (the
// fallback the provider warns about). Changing a pool's profile adds a
// launch template version with the new one; reading the pool back (what
// import does) returns it.
func TestProvisionPerPoolInstanceProfile(t *testing.T) {
	c, _, p, ami, subnet, sg := provisionEnv(t)
	ctx := context.Background()
	cl := testCluster("prod", ami, subnet, sg)
	cl.AWS.InstanceProfile = "autarky-prod-managers"
	if _, err := p.CreateCluster(ctx, cl); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.DeleteCluster(context.Background(), "prod") })
	web := policy.Pool{Cluster: "prod", Name: "web", Role: policy.RoleWorker, MinSize: 0, MaxSize: 2, DesiredSize: 0,
		WaitForCapacityTimeout: "0s", AWS: &policy.AWSPool{InstanceProfile: "autarky-prod-workers"}}
	bare := policy.Pool{Cluster: "prod", Name: "bare", Role: policy.RoleWorker, MinSize: 0, MaxSize: 2, DesiredSize: 0, WaitForCapacityTimeout: "0s"}
	for _, pool := range []policy.Pool{web, bare} {
		if _, err := p.CreatePool(ctx, pool, 0); err != nil {
			t.Fatal(err)
		}
	}
	for template, want := range map[string]string{"prod-managers": "autarky-prod-managers", "prod-web": "autarky-prod-workers", "prod-bare": "autarky-prod-managers"} {
		if got, _ := profileOf(t, c, template); got != want {
			t.Errorf("launch template %s: instance profile %q, want %q", template, got, want)
		}
	}

	_, before := profileOf(t, c, "prod-web")
	arn := "arn:aws:iam::123456789012:instance-profile/autarky/prod-web"
	web.AWS.InstanceProfile = arn
	if _, _, err := p.UpdatePool(ctx, web, 0); err != nil {
		t.Fatal(err)
	}
	got, after := profileOf(t, c, "prod-web")
	if got != arn || after != before+1 {
		t.Fatalf("after changing the pool's profile: latest version %d (was %d) names %q, want a new version naming %q", after, before, got, arn)
	}
	if mgr, _ := profileOf(t, c, "prod-managers"); mgr != "autarky-prod-managers" {
		t.Errorf("changing a pool's profile changed the managers' to %q", mgr)
	}
	read, _, err := p.ReadPool(ctx, "prod", "web")
	if err != nil || read.AWS == nil || read.AWS.InstanceProfile != arn {
		t.Fatalf("read back: %+v %v, want instance profile %s", read.AWS, err, arn)
	}

	web.AWS.InstanceProfile = "not a profile"
	if _, _, err := p.UpdatePool(ctx, web, 0); err == nil || !strings.Contains(err.Error(), "aws.instance_profile") {
		t.Fatalf("an invalid profile: got %v, want an error naming aws.instance_profile", err)
	}
}
