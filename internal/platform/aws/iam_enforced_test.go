package aws

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	awsv2 "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/autarky/terraform-provider-autarky/internal/policy"
	"github.com/autarky/terraform-provider-autarky/internal/swarm"
	"github.com/autarky/terraform-provider-autarky/internal/testenv"
)

// enforcedIAM is an IAM-enforcing moto with three users: admin (the
// test's setup), managers (AgentPolicy of cluster "prod") and workers
// (WorkerPolicy of "prod"), and a proxy in front that checks resources
// and conditions (testenv.IAMResourceCheck; moto checks the signature and
// the actions, see testenv.EnforceIAM).
type enforcedIAM struct {
	moto                     string
	proxy                    *testenv.AWSProxy
	admin, managers, workers *testenv.IAMUser
}

func newEnforcedIAM(t *testing.T, cluster string) *enforcedIAM {
	t.Helper()
	in := PolicyInput{Cluster: cluster, Region: testenv.MotoRegion, AccountID: "123456789012"}
	mgr, err := AgentPolicy(in)
	if err != nil {
		t.Fatal(err)
	}
	wrk, err := WorkerPolicy(in)
	if err != nil {
		t.Fatal(err)
	}
	e := &enforcedIAM{admin: &testenv.IAMUser{Name: "admin", Policy: testenv.AdminPolicy}}
	for _, u := range []struct {
		user **testenv.IAMUser
		name string
		doc  PolicyDocument
	}{{&e.managers, "managers", mgr}, {&e.workers, "workers", wrk}} {
		js, err := u.doc.JSON()
		if err != nil {
			t.Fatal(err)
		}
		*u.user = &testenv.IAMUser{Name: u.name, Policy: js}
	}
	e.moto = testenv.StartMoto(t, testenv.EnforceIAM(e.admin, e.managers, e.workers))
	e.proxy = testenv.NewAWSProxy(t, e.moto)
	e.proxy.SetFault(testenv.IAMResourceCheck(e.moto, e.admin, e.managers, e.workers))
	return e
}

// clients are AWS clients of user through the proxy.
func (e *enforcedIAM) clients(u *testenv.IAMUser) *Clients {
	return NewClients(awsv2.Config{Region: testenv.MotoRegion, Credentials: u.Credentials(), BaseEndpoint: awsv2.String(e.proxy.URL)},
		Config{Retry: RetryConfig{MaxAttempts: 1}}, nil)
}

// denied reports whether err is AWS's access denied, and by whom: moto
// itself, or the proxy's resource check. moto 5.2 answers a refused SSM
// call with its XML error document and HTTP 403, which the JSON protocol's
// client cannot decode: a bare 403 is moto's refusal.
func denied(err error) (ok bool, byMoto bool) {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() == http.StatusForbidden {
		var api smithy.APIError
		if !errors.As(err, &api) {
			return true, true
		}
	}
	var api smithy.APIError
	if !errors.As(err, &api) {
		return false, false
	}
	switch api.ErrorCode() {
	case "AccessDenied", "AccessDeniedException", "UnauthorizedOperation":
		return true, !strings.Contains(api.ErrorMessage(), testenv.IAMDeniedMarker)
	}
	return false, false
}

// With IAM enforced, the workers' policy lets a worker find the managers
// and read the worker join token and nothing else: reading the manager
// token, writing any parameter, resizing a group or terminating an
// instance is refused. The managers' policy lets the agent do its work on
// its own cluster only. Which part refuses is asserted too: moto refuses
// actions a policy does not name; the resources (the manager token, the
// other cluster's group and parameters) and the aws:ResourceTag condition
// are checked by the proxy's stand-in (testenv.IAMResourceCheck), since
// moto checks neither.
func TestIAMEnforcedWorkerAndManagerPolicies(t *testing.T) {
	e := newEnforcedIAM(t, "prod")
	ctx := context.Background()
	ami, subnet, sg := testenv.MotoNetwork(t, e.moto, e.admin)
	admin := NewPlatform(e.clients(e.admin), nil)
	admin.Poll = 50 * time.Millisecond
	for _, name := range []string{"prod", "other"} {
		if _, err := admin.CreateCluster(ctx, testCluster(name, ami, subnet, sg)); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = admin.DeleteCluster(context.Background(), name) })
		if _, err := admin.CreatePool(ctx, policy.Pool{Cluster: name, Name: "web", Role: policy.RoleWorker, MinSize: 0, MaxSize: 3, DesiredSize: 1,
			WaitForCapacityTimeout: "1m"}, time.Minute); err != nil {
			t.Fatal(err)
		}
		s, err := NewStore(e.clients(e.admin).SSM, name)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.PutTokens(ctx, swarm.Tokens{Worker: "SWMTKN-1-worker-" + name, Manager: "SWMTKN-1-manager-" + name}); err != nil {
			t.Fatal(err)
		}
	}
	instanceOf := func(group string) string {
		out, err := e.clients(e.admin).AutoScaling.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{group}})
		if err != nil || len(out.AutoScalingGroups) != 1 || len(out.AutoScalingGroups[0].Instances) == 0 {
			t.Fatalf("no instance in %s: %v", group, err)
		}
		return awsv2.ToString(out.AutoScalingGroups[0].Instances[0].InstanceId)
	}

	type call struct {
		name string
		do   func(c *Clients) error
	}
	get := func(name string) call {
		return call{"GetParameter " + name, func(c *Clients) error {
			_, err := c.SSM.GetParameter(ctx, &ssm.GetParameterInput{Name: awsv2.String(name), WithDecryption: awsv2.Bool(true)})
			return err
		}}
	}
	put := func(name string) call {
		return call{"PutParameter " + name, func(c *Clients) error {
			_, err := c.SSM.PutParameter(ctx, &ssm.PutParameterInput{Name: awsv2.String(name), Value: awsv2.String("x"), Type: ssmtypes.ParameterTypeString, Overwrite: awsv2.Bool(true)})
			return err
		}}
	}
	del := func(name string) call {
		return call{"DeleteParameter " + name, func(c *Clients) error {
			_, err := c.SSM.DeleteParameter(ctx, &ssm.DeleteParameterInput{Name: awsv2.String(name)})
			return err
		}}
	}
	resize := func(group string) call {
		return call{"SetDesiredCapacity " + group, func(c *Clients) error {
			_, err := c.AutoScaling.SetDesiredCapacity(ctx, &autoscaling.SetDesiredCapacityInput{AutoScalingGroupName: awsv2.String(group), DesiredCapacity: awsv2.Int32(1)})
			return err
		}}
	}
	terminate := func(group string) call {
		return call{"TerminateInstanceInAutoScalingGroup in " + group, func(c *Clients) error {
			_, err := c.AutoScaling.TerminateInstanceInAutoScalingGroup(ctx, &autoscaling.TerminateInstanceInAutoScalingGroupInput{
				InstanceId: awsv2.String(instanceOf(group)), ShouldDecrementDesiredCapacity: awsv2.Bool(false)})
			return err
		}}
	}
	describe := call{"DescribeInstances", func(c *Clients) error {
		_, err := c.EC2.DescribeInstances(ctx, &ec2.DescribeInstancesInput{})
		return err
	}}
	const (
		allowed = iota
		deniedByMoto
		deniedByResource
	)
	for _, tc := range []struct {
		user  *testenv.IAMUser
		calls map[int][]call
	}{
		{e.workers, map[int][]call{
			allowed:      {get(TokenParameter("prod", policy.RoleWorker)), describe},
			deniedByMoto: {put(TokenParameter("prod", policy.RoleWorker)), put(JournalParameter("prod")), put("/elsewhere"), del(JournalParameter("prod")), resize("prod-web"), terminate("prod-web")},
			deniedByResource: {get(TokenParameter("prod", policy.RoleManager)), get(ClusterPath("prod") + "/descriptor"),
				get(TokenParameter("other", policy.RoleWorker))},
		}},
		{e.managers, map[int][]call{
			allowed: {get(TokenParameter("prod", policy.RoleManager)), put(JournalParameter("prod")), del(JournalParameter("prod")), describe,
				resize("prod-web"), terminate("prod-web")},
			deniedByResource: {get(TokenParameter("other", policy.RoleManager)), put(ClusterPath("prod") + "/descriptor"), put("/elsewhere"),
				put(TokenParameter("other", policy.RoleManager)), del(TokenParameter("prod", policy.RoleManager)), resize("other-web"), terminate("other-web")},
		}},
	} {
		c := e.clients(tc.user)
		for want, calls := range tc.calls {
			for _, cl := range calls {
				err := cl.do(c)
				no, byMoto := denied(err)
				switch {
				case want == allowed && err != nil:
					t.Errorf("%s: %s: %v, want it allowed", tc.user.Name, cl.name, err)
				case want != allowed && !no:
					t.Errorf("%s: %s: %v, want access denied", tc.user.Name, cl.name, err)
				case want == deniedByMoto && !byMoto:
					t.Errorf("%s: %s was refused by the proxy's resource check, want moto itself to refuse the action: %v", tc.user.Name, cl.name, err)
				case want == deniedByResource && byMoto:
					t.Errorf("%s: %s was refused by moto, want only the resource check to refuse it (the action is the policy's): %v", tc.user.Name, cl.name, err)
				}
			}
		}
	}
}
