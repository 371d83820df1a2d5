package group_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	awsv2 "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"

	"github.com/autarky/terraform-provider-autarky/internal/platform"
	"github.com/autarky/terraform-provider-autarky/internal/platform/aws"
	"github.com/autarky/terraform-provider-autarky/internal/platform/gcp"
	"github.com/autarky/terraform-provider-autarky/internal/platform/group"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
	"github.com/autarky/terraform-provider-autarky/internal/testenv"
	"github.com/autarky/terraform-provider-autarky/internal/testenv/gce"
)

// cloud is one cloud platform under the shared contract, with what the
// test needs to look at it from outside the platform.
type cloud struct {
	plat interface {
		platform.Backend
		Cluster(name string) (*group.Cluster, error)
	}
	// descriptor is a cluster of that platform.
	descriptor func(name string) policy.Cluster
	// target is a group's desired size in the cloud, -1 when it does not
	// exist.
	target func(t *testing.T, group string) int
	// left lists what the cloud's store still holds of cluster.
	left func(t *testing.T, cluster string) []string
	// breakPut makes the cloud refuse the next changes to group until the
	// function it returns mends it.
	breakPut func(t *testing.T, group string) (mend func())
}

func awsCloud(t *testing.T) cloud {
	moto := testenv.StartMoto(t)
	// Moto lacks DescribeInstanceRefreshes, which the agent's busy check
	// asks: the proxy answers "no refresh" for it.
	proxy := testenv.NewAWSProxy(t, moto)
	proxy.SetFault(testenv.NoRefreshes(nil))
	cfg := awsv2.Config{Region: testenv.MotoRegion, BaseEndpoint: awsv2.String(proxy.URL),
		Credentials: credentials.NewStaticCredentialsProvider("testing", "testing", "")}
	clients := aws.NewClients(cfg, aws.Config{}, nil)
	p := aws.NewPlatform(clients, nil)
	p.Poll = 50 * time.Millisecond
	ami, subnet, sg := testenv.MotoNetwork(t, moto)
	return cloud{
		plat: p,
		descriptor: func(name string) policy.Cluster {
			return policy.Cluster{Name: name, Platform: policy.PlatformAWS, ManagerCount: 1, HeartbeatPeriod: "5s",
				AWS: &policy.AWS{AMI: ami, InstanceType: "t3.micro", Subnets: []string{subnet}, SecurityGroups: []string{sg}}}
		},
		target: func(t *testing.T, name string) int {
			out, err := clients.AutoScaling.DescribeAutoScalingGroups(context.Background(), &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{name}})
			if err != nil {
				t.Fatal(err)
			}
			if len(out.AutoScalingGroups) == 0 {
				return -1
			}
			return int(awsv2.ToInt32(out.AutoScalingGroups[0].DesiredCapacity))
		},
		left: func(t *testing.T, cluster string) []string {
			out, err := clients.SSM.GetParametersByPath(context.Background(), &ssm.GetParametersByPathInput{Path: awsv2.String(aws.ClusterPath(cluster)), Recursive: awsv2.Bool(true)})
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, p := range out.Parameters {
				names = append(names, awsv2.ToString(p.Name))
			}
			return names
		},
		breakPut: func(t *testing.T, group string) func() {
			proxy.SetFault(testenv.NoRefreshes(func(call testenv.AWSCall) *testenv.AWSFault {
				if call.Action == "UpdateAutoScalingGroup" {
					return testenv.AWSAPIError(call, "ValidationError", "injected")
				}
				return nil
			}))
			return func() { proxy.SetFault(testenv.NoRefreshes(nil)) }
		},
	}
}

func gcpCloud(t *testing.T) cloud {
	ctx := context.Background()
	const project, region, bucket = "autarky-test", "europe-west1", "autarky-contract"
	srv := gce.Start(t, gce.Options{CreateDelay: 50 * time.Millisecond, DeleteDelay: 50 * time.Millisecond})
	st, err := storage.NewClient(ctx, option.WithEndpoint(testenv.StartGCS(t)+"/storage/v1/"), option.WithoutAuthentication())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if err := st.Bucket(bucket).Create(ctx, project, nil); err != nil {
		t.Fatal(err)
	}
	clients, err := gcp.Connect(ctx, gcp.Config{Project: project, Region: region, Endpoint: srv.URL, NoAuth: true,
		Limits: gcp.Limits{BaseDelay: 5 * time.Millisecond, MaxDelay: 50 * time.Millisecond, PerSecond: 1000}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = clients.Close() })
	p, err := gcp.NewPlatform(clients, st, bucket, gcp.Boot{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.Poll = 50 * time.Millisecond
	return cloud{
		plat: p,
		descriptor: func(name string) policy.Cluster {
			g := p.Settings(policy.GCP{MachineType: "e2-small", Image: "projects/debian-cloud/global/images/family/debian-12",
				Subnetwork: "regions/" + region + "/subnetworks/default"})
			return policy.Cluster{Name: name, Platform: policy.PlatformGCP, ManagerCount: 1, HeartbeatPeriod: "5s", GCP: &g}
		},
		target: func(t *testing.T, name string) int {
			res := srv.GroupResource(region, name)
			if res == nil {
				return -1
			}
			n, err := strconv.Atoi(fmt.Sprint(res["targetSize"]))
			if err != nil {
				t.Fatalf("targetSize %v: %v", res["targetSize"], err)
			}
			return n
		},
		left: func(t *testing.T, cluster string) []string {
			var names []string
			it := st.Bucket(bucket).Objects(ctx, &storage.Query{Prefix: gcp.ClusterRoot(cluster)})
			for {
				o, err := it.Next()
				if errors.Is(err, iterator.Done) {
					return names
				}
				if err != nil {
					t.Fatal(err)
				}
				names = append(names, o.Name)
			}
		},
		breakPut: func(t *testing.T, group string) func() {
			// Autarky refuses a group someone attached an autoscaler to.
			if err := srv.SetAutoscaler(project, region, group, "projects/"+project+"/regions/"+region+"/autoscalers/theirs"); err != nil {
				t.Fatal(err)
			}
			return func() {
				if err := srv.SetAutoscaler(project, region, group, ""); err != nil {
					t.Fatal(err)
				}
			}
		},
	}
}

// scaling is a valid scaling policy on pending tasks.
func scaling(poolID string) policy.Scaling {
	s := policy.DefaultScaling(poolID)
	s.PendingTasks = &policy.PendingTasksCheck{}
	return s
}

// TestContract holds both clouds to the one contract of the shared layer,
// through the platforms as the provider and the agent use them: sizes stay
// in the pool's bounds, the manager pool's size is manager_count, a
// scaling policy hands the size to the agent and deleting it gives it
// back, a policy needs its pool, growing resizes the cloud's group, and
// destroying leaves nothing in the cloud or the store.
func TestContract(t *testing.T) {
	for name, open := range map[string]func(*testing.T) cloud{"aws": awsCloud, "gcp": gcpCloud} {
		t.Run(name, func(t *testing.T) {
			c := open(t)
			ctx := context.Background()
			desc := c.descriptor("deal")
			if _, err := c.plat.CreateCluster(ctx, desc); err != nil {
				t.Fatal(err)
			}
			if _, err := c.plat.CreateCluster(ctx, desc); !errors.Is(err, platform.ErrExists) {
				t.Errorf("creating the cluster again: %v, want ErrExists", err)
			}
			pool := policy.Pool{Cluster: "deal", Name: "web", Role: policy.RoleWorker, MinSize: 1, MaxSize: 3, DesiredSize: 1, WaitForCapacityTimeout: "0s"}
			if _, err := c.plat.CreatePool(ctx, pool, 0); err != nil {
				t.Fatal(err)
			}
			if n := c.target(t, "deal-web"); n != 1 {
				t.Fatalf("the pool's group has desired size %d, want 1", n)
			}
			cl, err := c.plat.Cluster("deal")
			if err != nil {
				t.Fatal(err)
			}
			if err := cl.SetDesiredSize(ctx, "web", 4); err == nil || !strings.Contains(err.Error(), "outside [1, 3]") {
				t.Errorf("a size above max_size: %v", err)
			}
			if err := cl.SetDesiredSize(ctx, policy.ManagerPoolName, 3); err == nil || !strings.Contains(err.Error(), "manager_count") {
				t.Errorf("resizing the managers: %v", err)
			}
			if ps, err := cl.Pools(ctx); err != nil || len(ps) != 1 || ps[0].DesiredSize != 1 {
				t.Fatalf("the agent reads pools %+v (%v), want web at 1", ps, err)
			}
			// A group still launching is busy (transient): the agent waits.
			deadline := time.Now().Add(time.Minute)
			for err = cl.SetDesiredSize(ctx, "web", 2); platform.IsTransient(err) && time.Now().Before(deadline); err = cl.SetDesiredSize(ctx, "web", 2) {
				time.Sleep(100 * time.Millisecond)
			}
			if err != nil {
				t.Fatal(err)
			}
			if n := c.target(t, "deal-web"); n != 2 {
				t.Errorf("after growing to 2 the group has desired size %d", n)
			}
			got, _, err := c.plat.ReadPool(ctx, "deal", "web")
			if err != nil || got.DesiredSize != 2 || got.MinSize != 1 || got.MaxSize != 3 {
				t.Errorf("ReadPool: %+v, %v (want desired 2 in [1, 3])", got, err)
			}
			// The agent's reads are cached by the store's generation: its
			// own resize shows at once, a write of the provider's within
			// GenerationRecheck.
			if ps, err := cl.Pools(ctx); err != nil || len(ps) != 1 || ps[0].DesiredSize != 2 {
				t.Errorf("after its own resize to 2 the agent reads pools %+v (%v)", ps, err)
			}
			if err := c.plat.PutHealingPolicy(ctx, policy.DefaultHealing("deal/web")); err != nil {
				t.Fatal(err)
			}
			for seen := time.Now().Add(2 * group.GenerationRecheck); ; time.Sleep(50 * time.Millisecond) {
				if hs, err := cl.HealingPolicies(ctx); err == nil && len(hs) == 1 {
					break
				} else if time.Now().After(seen) {
					t.Fatalf("%s after the provider wrote a healing policy the agent reads %+v (%v)", 2*group.GenerationRecheck, hs, err)
				}
			}
			if err := cl.SetDesiredSize(ctx, "web", 1); err != nil {
				t.Fatal(err)
			}
			if n := c.target(t, "deal-web"); n != 2 {
				t.Errorf("lowering the size resized the group to %d: the agent removes the members it drained, the group never picks one", n)
			}
			if err := c.plat.PutScalingPolicy(ctx, scaling("deal/managers")); err == nil || !strings.Contains(err.Error(), "never autoscaled") {
				t.Errorf("a scaling policy for the managers: %v", err)
			}
			if err := c.plat.PutHealingPolicy(ctx, policy.DefaultHealing("deal/db")); !errors.Is(err, platform.ErrNotFound) {
				t.Errorf("a healing policy for a pool that does not exist: %v, want ErrNotFound", err)
			}
			if err := c.plat.PutScalingPolicy(ctx, scaling("deal/web")); err != nil {
				t.Fatal(err)
			}
			if p, _, err := c.plat.ReadPool(ctx, "deal", "web"); err != nil || p.SizeOwner != policy.SizeOwnerAgent {
				t.Errorf("with a scaling policy the size's owner is %q (%v), want the agent", p.SizeOwner, err)
			}
			if err := c.plat.DeleteScalingPolicy(ctx, "deal/web"); err != nil {
				t.Fatal(err)
			}
			if p, _, err := c.plat.ReadPool(ctx, "deal", "web"); err != nil || p.SizeOwner != policy.SizeOwnerTerraform {
				t.Errorf("without it the size's owner is %q (%v), want Terraform", p.SizeOwner, err)
			}
			// A service's replica policy is stored for the agent; a policy
			// for a cluster that does not exist is ErrNotFound.
			svc := policy.DefaultServiceScaling("shop_web", 5)
			svc.ClusterID = "deal"
			if err := c.plat.PutServiceScalingPolicy(ctx, svc); err != nil {
				t.Fatal(err)
			}
			if ps, err := cl.ServiceScalingPolicies(ctx); err != nil || len(ps) != 1 || ps[0].Service != "shop_web" || ps[0].MaxReplicas != 5 {
				t.Errorf("the agent reads service policies %+v (%v), want shop_web's", ps, err)
			}
			if got, err := c.plat.GetServiceScalingPolicy(ctx, "deal/shop_web"); err != nil || got.MaxReplicas != 5 {
				t.Errorf("GetServiceScalingPolicy: %+v, %v", got, err)
			}
			elsewhere := svc
			elsewhere.ClusterID = "nowhere"
			if err := c.plat.PutServiceScalingPolicy(ctx, elsewhere); !errors.Is(err, platform.ErrNotFound) {
				t.Errorf("a service policy for a cluster that does not exist: %v, want ErrNotFound", err)
			}
			if err := c.plat.DeleteServiceScalingPolicy(ctx, "deal/shop_web"); err != nil {
				t.Fatal(err)
			}
			if _, err := c.plat.GetServiceScalingPolicy(ctx, "deal/shop_web"); !errors.Is(err, platform.ErrNotFound) {
				t.Errorf("the deleted service policy reads %v, want ErrNotFound", err)
			}
			if err := c.plat.PutServiceScalingPolicy(ctx, svc); err != nil { // left for the cluster's destroy
				t.Fatal(err)
			}
			// An update the cloud refuses leaves the pool's settings as
			// they were, so the next plan shows the change again.
			mend := c.breakPut(t, "deal-web")
			changed := pool
			changed.MaxSize, changed.Labels = 5, map[string]string{"tier": "changed"}
			if _, _, err := c.plat.UpdatePool(ctx, changed, 0); err == nil {
				t.Fatal("an update the cloud refused succeeded")
			}
			if p, _, err := c.plat.ReadPool(ctx, "deal", "web"); err != nil || p.Labels["tier"] == "changed" || p.MaxSize != 3 {
				t.Errorf("after a refused update the pool reads %+v (%v): the refused settings, want the ones the group still has", p, err)
			}
			mend()
			if err := c.plat.DeletePool(ctx, "deal", "web"); err != nil {
				t.Fatal(err)
			}
			if n := c.target(t, "deal-web"); n != -1 {
				t.Errorf("the deleted pool's group is still there (desired %d)", n)
			}
			if _, _, err := c.plat.ReadPool(ctx, "deal", "web"); !errors.Is(err, platform.ErrNotFound) {
				t.Errorf("reading the deleted pool: %v, want ErrNotFound", err)
			}
			if err := c.plat.DeleteCluster(ctx, "deal"); err != nil {
				t.Fatal(err)
			}
			if n := c.target(t, "deal-managers"); n != -1 {
				t.Errorf("the managers' group is still there (desired %d)", n)
			}
			if left := c.left(t, "deal"); len(left) != 0 {
				t.Errorf("destroy left %v in the store", left)
			}
			if ok, err := c.plat.HasCluster(ctx, "deal"); ok || err != nil {
				t.Errorf("HasCluster after destroy: %t, %v", ok, err)
			}
		})
	}
}
