package agentconfig_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	awsv2 "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"

	"github.com/autarky/terraform-provider-autarky/internal/agentconfig"
	"github.com/autarky/terraform-provider-autarky/internal/platform"
	"github.com/autarky/terraform-provider-autarky/internal/platform/aws"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
	"github.com/autarky/terraform-provider-autarky/internal/testenv"
)

// TestAdoptAutoScalingGroups: the guide's aws file adopts two Auto
// Scaling Groups made by hand in moto (named as no Autarky rule would, and
// tagged autarky:cluster as the guide says); the agent's aws platform,
// opened as `autarky-agent run` opens it, lists their instances as the
// pools', grows a pool's group when the agent gives the pool a larger
// size, refuses a size outside the file's bounds, and writes no
// configuration into the cluster's SSM store. A cluster Terraform built
// (its descriptor in SSM) is refused.
func TestAdoptAutoScalingGroups(t *testing.T) {
	// moto lacks DescribeInstanceRefreshes: the proxy answers it as AWS
	// does for a group without a refresh.
	proxy := testenv.NewAWSProxy(t, testenv.StartMoto(t))
	proxy.SetFault(testenv.NoRefreshes(nil))
	endpoint := proxy.URL
	t.Setenv("AWS_ENDPOINT_URL", endpoint)
	t.Setenv("AWS_ACCESS_KEY_ID", "testing")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "testing")
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	f, err := agentconfig.Parse("aws.hcl", []byte(testenv.DocBlock(t, guide, "adopt-aws-config")))
	if err != nil {
		t.Fatal(err)
	}
	cluster, region := f.Flags["cluster"], f.Flags["region"]
	a, err := f.Adoption(cluster, policy.PlatformAWS)
	if err != nil {
		t.Fatal(err)
	}
	cfg := awsv2.Config{Region: region, Credentials: credentials.NewStaticCredentialsProvider("testing", "testing", ""), BaseEndpoint: awsv2.String(endpoint)}
	c := aws.NewClients(cfg, aws.Config{}, nil)
	// The groups as someone made them before Autarky: a launch template
	// and two groups, their names the file's, tagged as the guide says;
	// and the managers' group, named as Autarky names a manager pool's:
	// an adopted cluster's managers are not the agent's, and it must not
	// list them.
	tags := map[string]string{aws.TagCluster: cluster}
	testenv.MakeGroups(t, c.EC2, c.AutoScaling, region, "legacy-workers",
		testenv.HandMadeGroup{Name: a.Groups["web"], Min: 2, Desired: 2, Max: 11, Tags: tags},
		testenv.HandMadeGroup{Name: a.Groups["batch"], Min: 0, Desired: 0, Max: 6, Tags: tags},
		testenv.HandMadeGroup{Name: aws.GroupName(cluster, policy.ManagerPoolName), Min: 1, Desired: 1, Max: 1, Tags: tags})

	opened, err := platform.Open(ctx, policy.PlatformAWS, platform.AgentSettings{Cluster: cluster, Region: region, Adopt: a})
	if err != nil {
		t.Fatal(err)
	}
	cl := opened.Cluster
	if _, ok := cl.(platform.GroupCluster); !ok {
		t.Fatal("the adopted cluster is not a group cluster: the agent would start instances one by one")
	}
	count := func() int {
		t.Helper()
		insts, err := cl.Instances(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, in := range insts {
			if in.Pool == "web" && in.Running && strings.HasPrefix(in.ID, "i-") {
				n++
			}
			if in.Pool != "web" {
				t.Errorf("instance %s in pool %s: only web's group has instances the file adopts", in.ID, in.Pool)
			}
		}
		return n
	}
	if n := count(); n != 2 {
		t.Fatalf("pool web lists %d instances of its group, want 2", n)
	}
	if err := cl.SetDesiredSize(ctx, "web", 4); err != nil {
		t.Fatal(err)
	}
	out, err := c.AutoScaling.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{a.Groups["web"]}})
	if err != nil || len(out.AutoScalingGroups) != 1 || awsv2.ToInt32(out.AutoScalingGroups[0].DesiredCapacity) != 4 {
		t.Fatalf("group %s after SetDesiredSize 4: %v %+v", a.Groups["web"], err, out)
	}
	deadline := time.Now().Add(time.Minute)
	for count() != 4 && time.Now().Before(deadline) {
		time.Sleep(time.Second)
	}
	if n := count(); n != 4 {
		t.Errorf("pool web lists %d instances after the group grew to 4", n)
	}
	pools, err := cl.Pools(ctx)
	if err != nil || len(pools) != 2 || pools[0].Name != "web" || pools[0].DesiredSize != 4 || pools[0].SizeOwner != policy.SizeOwnerAgent {
		t.Errorf("pools after scaling: %v %+v", err, pools)
	}
	if err := cl.SetDesiredSize(ctx, "web", 11); err == nil || !strings.Contains(err.Error(), "outside [2, 10]") {
		t.Errorf("a size above the file's max_size: %v", err)
	}

	// A restarted agent (a new process: nothing in memory) takes each
	// pool's size from its group's desired capacity, not from the file's
	// desired_size (2 for web), clamped to the file's bounds; and one that
	// becomes the leader learns again what the previous leader changed.
	sizes := func(cl platform.Cluster) map[string]int64 {
		t.Helper()
		ps, err := cl.Pools(ctx)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]int64{}
		for _, p := range ps {
			out[p.Name] = p.DesiredSize
		}
		return out
	}
	restarted, err := platform.Open(ctx, policy.PlatformAWS, platform.AgentSettings{Cluster: cluster, Region: region, Adopt: a})
	if err != nil {
		t.Fatal(err)
	}
	if got := sizes(restarted.Cluster); got["web"] != 4 || got["batch"] != 0 {
		t.Errorf("a restarted agent's sizes: %v, want web 4 (its group's desired capacity) and batch 0", got)
	}
	if _, err := c.AutoScaling.UpdateAutoScalingGroup(ctx, &autoscaling.UpdateAutoScalingGroupInput{
		AutoScalingGroupName: awsv2.String(a.Groups["web"]), DesiredCapacity: awsv2.Int32(11)}); err != nil {
		t.Fatal(err)
	}
	if got := sizes(cl); got["web"] != 4 {
		t.Errorf("the running agent's size of web, changed by another: %v, want the 4 it keeps until it leads again", got)
	}
	cl.(platform.Relearner).Relearn()
	if got := sizes(cl); got["web"] != 10 {
		t.Errorf("after Relearn (the agent became the leader) web's size is %d, want 10: its group's 11, within the file's max_size", got["web"])
	}
	if _, err := c.AutoScaling.UpdateAutoScalingGroup(ctx, &autoscaling.UpdateAutoScalingGroupInput{
		AutoScalingGroupName: awsv2.String(a.Groups["web"]), DesiredCapacity: awsv2.Int32(4)}); err != nil {
		t.Fatal(err)
	}

	// Nothing of the file went into the store: it stays Terraform's to
	// write, and empty.
	st, err := aws.NewStore(c.SSM, cluster)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Descriptor(ctx); !errors.Is(err, platform.ErrNotFound) {
		t.Errorf("the adoption wrote a descriptor: %v", err)
	}
	if ps, err := st.Pools(ctx); err != nil || len(ps) != 0 {
		t.Errorf("the adoption wrote pools: %v %+v", err, ps)
	}

	// Terraform builds a cluster under the adopted name while the agent
	// runs: the agent stops acting (its descriptor read fails, saying
	// why) instead of sharing the store with it.
	if d, err := cl.Descriptor(ctx); err != nil || d.Name != cluster {
		t.Fatalf("the adopted descriptor: %v %+v", err, d)
	}
	if err := st.PutDescriptor(ctx, policy.Cluster{Name: cluster, Platform: policy.PlatformAWS, ManagerCount: 1, HeartbeatPeriod: "5s"}); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(30 * time.Second) // past the store's generation recheck
	for {
		_, err := cl.Descriptor(ctx)
		if err != nil && strings.Contains(err.Error(), "has since been built by Terraform") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a descriptor Terraform wrote under the adopted name: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// A cluster Terraform built, its descriptor in SSM: refused.
	built, err := aws.NewStore(c.SSM, "built")
	if err != nil {
		t.Fatal(err)
	}
	if err := built.PutDescriptor(ctx, policy.Cluster{Name: "built", Platform: policy.PlatformAWS, ManagerCount: 1, HeartbeatPeriod: "5s"}); err != nil {
		t.Fatal(err)
	}
	b, err := f.Adoption("built", policy.PlatformAWS)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := platform.Open(ctx, policy.PlatformAWS, platform.AgentSettings{Cluster: "built", Region: region, Adopt: b}); err == nil ||
		!strings.Contains(err.Error(), "SSM path /autarky/built holds a cluster of that name that Terraform built") {
		t.Errorf("adopting a cluster Terraform built: %v", err)
	}
}
