package provider

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"

	awsv2 "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/autarky/terraform-provider-autarky/internal/testenv"
)

// awsEnv is one test's moto and the network a user brings.
type awsEnv struct {
	endpoint, ami, subnet, sg, stateDir string
}

// newAWSEnv starts moto and points the standard credential chain at test
// credentials; the tests using it are not parallel (they set the
// environment the provider reads, as a user's shell would).
func newAWSEnv(t *testing.T) awsEnv {
	t.Helper()
	preCheckTerraform(t)
	e := awsEnv{endpoint: testenv.StartMoto(t), stateDir: testenv.StateDir(t)}
	e.ami, e.subnet, e.sg = testenv.MotoNetwork(t, e.endpoint)
	t.Setenv("AWS_ACCESS_KEY_ID", "testing")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "testing")
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_PROFILE", "")
	return e
}

func (e awsEnv) provider() string {
	return fmt.Sprintf(`
provider "autarky" {
  local {
    state_dir = %q
  }
  aws {
    region    = %q
    endpoints = { ec2 = %[3]q, autoscaling = %[3]q, ssm = %[3]q }
  }
}
`, e.stateDir, testenv.MotoRegion, e.endpoint)
}

func (e awsEnv) cluster(name string, managers int, extra string) string {
	return fmt.Sprintf(`
resource "autarky_cluster" "test" {
  name          = %q
  platform      = "aws"
  manager_count = %d
  labels        = { env = "test" }
  aws {
    ami             = %q
    instance_type   = "t3.micro"
    subnets         = [%q]
    security_groups = [%q]
    tags            = { team = "infra" }
  }
  %s
}
`, name, managers, e.ami, e.subnet, e.sg, extra)
}

func (e awsEnv) clients() (*autoscaling.Client, *ec2.Client, *ssm.Client) {
	cfg := awsv2.Config{Region: testenv.MotoRegion, BaseEndpoint: awsv2.String(e.endpoint),
		Credentials: credentials.NewStaticCredentialsProvider("testing", "testing", "")}
	return autoscaling.NewFromConfig(cfg), ec2.NewFromConfig(cfg), ssm.NewFromConfig(cfg)
}

// group describes one Auto Scaling group in moto; nil when it is gone.
func (e awsEnv) group(name string) (min, max, desired int32, tags map[string]string, err error) {
	as, _, _ := e.clients()
	out, err := as.DescribeAutoScalingGroups(context.Background(), &autoscaling.DescribeAutoScalingGroupsInput{AutoScalingGroupNames: []string{name}})
	if err != nil {
		return 0, 0, 0, nil, err
	}
	if len(out.AutoScalingGroups) != 1 {
		return 0, 0, 0, nil, fmt.Errorf("Auto Scaling group %s does not exist", name)
	}
	g := out.AutoScalingGroups[0]
	tags = map[string]string{}
	for _, t := range g.Tags {
		tags[awsv2.ToString(t.Key)] = awsv2.ToString(t.Value)
	}
	return awsv2.ToInt32(g.MinSize), awsv2.ToInt32(g.MaxSize), awsv2.ToInt32(g.DesiredCapacity), tags, nil
}

func (e awsEnv) checkGroup(name string, min, max, desired int32, tags map[string]string) resource.TestCheckFunc {
	return func(*terraform.State) error {
		gmin, gmax, gdes, gtags, err := e.group(name)
		if err != nil {
			return err
		}
		if gmin != min || gmax != max || gdes != desired {
			return fmt.Errorf("group %s: min/max/desired %d/%d/%d, want %d/%d/%d", name, gmin, gmax, gdes, min, max, desired)
		}
		for k, v := range tags {
			if gtags[k] != v {
				return fmt.Errorf("group %s: tag %s=%q, want %q (tags %v)", name, k, gtags[k], v, gtags)
			}
		}
		return nil
	}
}

// checkTemplateVersions checks how many versions a launch template has.
func (e awsEnv) checkTemplateVersions(name string, want int) resource.TestCheckFunc {
	return func(*terraform.State) error {
		_, ec, _ := e.clients()
		out, err := ec.DescribeLaunchTemplateVersions(context.Background(), &ec2.DescribeLaunchTemplateVersionsInput{LaunchTemplateName: awsv2.String(name)})
		if err != nil {
			return err
		}
		if len(out.LaunchTemplateVersions) != want {
			return fmt.Errorf("launch template %s has %d versions, want %d", name, len(out.LaunchTemplateVersions), want)
		}
		return nil
	}
}

// checkNothingLeftInAWS is a CheckDestroy: no group, launch template,
// running instance or parameter of the cluster is left in moto.
func (e awsEnv) checkNothingLeftInAWS(cluster string) resource.TestCheckFunc {
	return func(*terraform.State) error {
		ctx := context.Background()
		as, ec, sm := e.clients()
		var left []string
		groups, err := as.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{})
		if err != nil {
			return err
		}
		for _, g := range groups.AutoScalingGroups {
			left = append(left, "group "+awsv2.ToString(g.AutoScalingGroupName))
		}
		lts, err := ec.DescribeLaunchTemplates(ctx, &ec2.DescribeLaunchTemplatesInput{})
		if err != nil {
			return err
		}
		for _, lt := range lts.LaunchTemplates {
			left = append(left, "launch template "+awsv2.ToString(lt.LaunchTemplateName))
		}
		insts, err := ec.DescribeInstances(ctx, &ec2.DescribeInstancesInput{})
		if err != nil {
			return err
		}
		for _, r := range insts.Reservations {
			for _, in := range r.Instances {
				if in.State.Name != "terminated" {
					left = append(left, fmt.Sprintf("instance %s (%s)", awsv2.ToString(in.InstanceId), in.State.Name))
				}
			}
		}
		params, err := sm.GetParametersByPath(ctx, &ssm.GetParametersByPathInput{Path: awsv2.String("/autarky"), Recursive: awsv2.Bool(true)})
		if err != nil {
			return err
		}
		for _, p := range params.Parameters {
			left = append(left, "parameter "+awsv2.ToString(p.Name))
		}
		if len(left) > 0 {
			return fmt.Errorf("left in AWS after destroy:\n%s", strings.Join(left, "\n"))
		}
		return nil
	}
}

// A cluster and a pool on AWS: created as launch templates, groups and
// parameters; changed in place; imported; drift seen; all gone after destroy.
func TestAccAWS_lifecycle(t *testing.T) {
	e := newAWSEnv(t)
	pool := func(desired int, labels string) string {
		return fmt.Sprintf(`
resource "autarky_node_pool" "web" {
  cluster_id   = autarky_cluster.test.id
  name         = "web"
  min_size     = 1
  max_size     = 5
  desired_size = %d
  labels       = %s
  aws {
    instance_type = "t3.small"
    tags          = { tier = "web" }
  }
}

resource "autarky_healing_policy" "web" {
  node_pool_id    = autarky_node_pool.web.id
  unhealthy_after = "30s"
}
`, desired, labels)
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             e.checkNothingLeftInAWS("sky"),
		Steps: []resource.TestStep{
			{
				Config: e.provider() + e.cluster("sky", 1, "") + pool(2, `{ tier = "web" }`),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("autarky_cluster.test", tfjsonpath.New("manager_addresses"), knownvalue.ListSizeExact(1)),
					statecheck.ExpectKnownValue("autarky_node_pool.web", tfjsonpath.New("current_size"), knownvalue.Int64Exact(2)),
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					e.checkGroup("sky-managers", 1, 2, 1, map[string]string{"autarky:cluster": "sky", "autarky:pool": "managers", "team": "infra"}),
					e.checkGroup("sky-web", 1, 6, 2, map[string]string{"autarky:pool": "web", "team": "infra", "tier": "web"}),
				),
			},
			{
				Config: e.provider() + e.cluster("sky", 3, "") + pool(3, `{ tier = "web" }`),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction("autarky_cluster.test", plancheck.ResourceActionUpdate),
					plancheck.ExpectResourceAction("autarky_node_pool.web", plancheck.ResourceActionUpdate),
				}},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("autarky_cluster.test", tfjsonpath.New("manager_addresses"), knownvalue.ListSizeExact(3)),
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					e.checkGroup("sky-managers", 3, 4, 3, nil),
					e.checkGroup("sky-web", 1, 6, 3, nil),
					e.checkTemplateVersions("sky-web", 1),
				),
			},
			{ResourceName: "autarky_cluster.test", ImportState: true, ImportStateVerify: true, ImportStateVerifyIgnore: []string{"timeouts"}},
			{ResourceName: "autarky_node_pool.web", ImportState: true, ImportStateVerify: true, ImportStateVerifyIgnore: []string{"timeouts"}},
			{ResourceName: "autarky_healing_policy.web", ImportState: true, ImportStateVerify: true},
			{
				// Someone resizes the pool's group by hand: the plan shows it.
				PreConfig: func() {
					as, _, _ := e.clients()
					if _, err := as.SetDesiredCapacity(context.Background(), &autoscaling.SetDesiredCapacityInput{
						AutoScalingGroupName: awsv2.String("sky-web"), DesiredCapacity: awsv2.Int32(1)}); err != nil {
						t.Fatal(err)
					}
				},
				Config:             e.provider() + e.cluster("sky", 3, "") + pool(3, `{ tier = "web" }`),
				PlanOnly:           true,
				ExpectNonEmptyPlan: true,
			},
			{
				Config: e.provider() + e.cluster("sky", 3, "") + pool(3, `{ tier = "web" }`),
				Check:  e.checkGroup("sky-web", 1, 6, 3, nil),
			},
			{
				// New labels are a new launch template version; running
				// instances are left alone. (Nothing launches after this
				// step: moto 5.2 fails to launch from a launch template
				// version added after the first when it holds user data.)
				Config: e.provider() + e.cluster("sky", 3, "") + pool(3, `{ tier = "front" }`),
				Check: resource.ComposeAggregateTestCheckFunc(
					e.checkGroup("sky-web", 1, 6, 3, nil),
					e.checkTemplateVersions("sky-web", 2),
				),
			},
			{
				// Lowering manager_count is refused on aws, and nothing changes.
				Config:      e.provider() + e.cluster("sky", 1, "") + pool(3, `{ tier = "front" }`),
				ExpectError: regexp.MustCompile(`manager_count: lowering it from 3 to 1 is not supported on aws`),
			},
		},
	})
}

// Bad AWS input is refused at plan time naming the field, and leaves
// nothing in AWS.
func TestAccAWS_badInput(t *testing.T) {
	e := newAWSEnv(t)
	local := fmt.Sprintf("provider \"autarky\" {\n  local {\n    state_dir = %q\n  }\n}\n", e.stateDir)
	for _, tc := range []struct{ config, want string }{
		{e.provider() + strings.Replace(e.cluster("bad", 1, ""), e.ami, "ami-nothex", 1), `aws.ami: "ami-nothex" is not an AMI id`},
		{e.provider() + strings.Replace(e.cluster("bad", 1, ""), "t3.micro", "large", 1), `instance_type: "large" is not an EC2 instance type`},
		{e.provider() + strings.Replace(e.cluster("bad", 1, ""), e.subnet, "subnet-zz", 1), `"subnet-zz" is not a subnet id`},
		{e.provider() + strings.Replace(e.cluster("bad", 1, ""), `team = "infra"`, `"autarky:pool" = "x"`, 1), `keys starting with "aws:" or "autarky:" are reserved`},
		{e.provider() + strings.Replace(e.cluster("bad", 1, ""), `platform      = "aws"`, `platform      = "local"`, 1), `the aws block is for platform "aws" only`},
		{e.provider() + `
resource "autarky_cluster" "test" {
  name     = "bad"
  platform = "aws"
}`, `aws.ami: platform "aws" needs it`},
		{e.provider() + e.cluster("bad", 1, `agent = { enabled = true }`), `agent.binary_url: "" is not an http\(s\) URL`},
		{local + e.cluster("bad", 1, ""), `platform "aws" needs the provider's aws block`},
		{e.provider() + e.cluster("bad", 1, `join_token_rotation = "2026-11"`), `join_token_rotation: on platform "aws" the agent on the leading manager rotates`},
		{e.provider() + e.cluster("bad", 1, `join_token_rotation = "`+strings.Repeat("x", 300)+`"`), `join_token_rotation: is 300 characters long: use at most 256`},
		{strings.Replace(e.provider(), `region    = "us-east-1"`, `region    = "moon"`, 1) + e.cluster("bad", 1, ""), `"moon" is not an AWS region name`},
		{strings.Replace(e.provider(), `ec2 = "`, `ec2 = "ftp:`, 1) + e.cluster("bad", 1, ""), `endpoints.ec2: "ftp:http://127.0.0.1:[0-9]+" is not an http\(s\) URL`},
		{e.provider() + e.cluster("bad", 1, "") + `
resource "autarky_node_pool" "web" {
  cluster_id = autarky_cluster.test.id
  name       = "web"
  max_size   = 2
  aws {
    instance_type = "huge"
  }
}`, `aws.instance_type: "huge" is not an EC2 instance type`},
	} {
		t.Run(tc.want, func(t *testing.T) {
			// Terraform wraps long messages: any space may be a line break.
			want := regexp.MustCompile(strings.ReplaceAll(tc.want, " ", `\s+`))
			resource.Test(t, resource.TestCase{
				ProtoV6ProviderFactories: protoV6ProviderFactories,
				Steps:                    []resource.TestStep{{Config: tc.config, ExpectError: want}},
			})
		})
	}
	if err := e.checkNothingLeftInAWS("bad")(nil); err != nil {
		t.Fatal(err)
	}
}

// Without credentials anywhere in the standard chain, the provider says so
// the way a user of the AWS provider expects, and creates nothing.
func TestAccAWS_noCredentials(t *testing.T) {
	e := newAWSEnv(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config:      e.provider() + e.cluster("nocreds", 1, ""),
			ExpectError: regexp.MustCompile(`no valid credential sources found for AWS`),
		}},
	})
	if err := e.checkNothingLeftInAWS("nocreds")(nil); err != nil {
		t.Fatal(err)
	}
}
