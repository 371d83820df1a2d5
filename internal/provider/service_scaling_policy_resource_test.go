package provider

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/autarky/terraform-provider-autarky/internal/platform"
	"github.com/autarky/terraform-provider-autarky/internal/platform/local"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
	"github.com/autarky/terraform-provider-autarky/internal/testenv"
)

func serviceScalingConfig(stateDir, body string) string {
	return clusterConfig(stateDir, "svc", 1, "") + `
resource "autarky_service_scaling_policy" "web" {
  cluster_id = autarky_cluster.test.id
` + body + `
}
`
}

// A service's policy is stored for the agent (which reads it beside the
// labels: ServiceScalingPolicies), updated in place, imported back, and
// gone after destroy; the service itself need not exist.
func TestAccServiceScalingPolicy_lifecycle(t *testing.T) {
	stateDir := testenv.StateDir(t)
	body := func(max int) string {
		return fmt.Sprintf(`
  service      = "shop_web"
  min_replicas = 2
  max_replicas = %d
  prometheus = [{
    name         = "requests"
    address      = "http://127.0.0.1:9090"
    query        = "sum(rate(http_requests_total[1m]))"
    target_value = 50
  }]
  alert = [{ name = "ShopWebSlow", step = 3 }]
`, max)
	}
	stored := func() ([]policy.ServiceScaling, error) {
		p, err := local.New(stateDir, nil, local.Options{})
		if err != nil {
			return nil, err
		}
		return p.Cluster("svc").ServiceScalingPolicies(context.Background())
	}
	resource.ParallelTest(t, resource.TestCase{
		PreCheck:                 func() { preCheck(t) },
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy: func(s *terraform.State) error {
			if err := checkNothingLeft(stateDir)(s); err != nil {
				return err
			}
			if ps, err := stored(); err != nil || len(ps) != 0 {
				return fmt.Errorf("after destroy the store holds service policies %+v (%v)", ps, err)
			}
			return nil
		},
		Steps: []resource.TestStep{
			{
				Config: serviceScalingConfig(stateDir, body(20)),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("autarky_service_scaling_policy.web", tfjsonpath.New("id"), knownvalue.StringExact("svc/shop_web")),
					statecheck.ExpectKnownValue("autarky_service_scaling_policy.web", tfjsonpath.New("max_step"), knownvalue.Int64Exact(policy.DefaultServiceMaxStep)),
					statecheck.ExpectKnownValue("autarky_service_scaling_policy.web", tfjsonpath.New("scale_up_by"), knownvalue.Int64Exact(1)),
					statecheck.ExpectKnownValue("autarky_service_scaling_policy.web", tfjsonpath.New("cooldown_down"), knownvalue.StringExact(policy.DefaultServiceCooldownDown)),
					statecheck.ExpectKnownValue("autarky_service_scaling_policy.web", tfjsonpath.New("dry_run"), knownvalue.Bool(false)),
				},
				Check: func(*terraform.State) error {
					ps, err := stored()
					if err != nil {
						return err
					}
					if len(ps) != 1 || ps[0].Service != "shop_web" || ps[0].ClusterID != "svc" || ps[0].MinReplicas != 2 || ps[0].MaxReplicas != 20 ||
						len(ps[0].Prometheus) != 1 || *ps[0].Prometheus[0].TargetValue != 50 || ps[0].Alert[0].Step != 3 || !ps[0].Enabled {
						return fmt.Errorf("stored service policies: %+v", ps)
					}
					return nil
				},
			},
			{
				Config: serviceScalingConfig(stateDir, body(30)),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectResourceAction("autarky_service_scaling_policy.web", plancheck.ResourceActionUpdate)},
				},
				Check: func(*terraform.State) error {
					if ps, err := stored(); err != nil || len(ps) != 1 || ps[0].MaxReplicas != 30 {
						return fmt.Errorf("stored after update: %+v (%v)", ps, err)
					}
					return nil
				},
			},
			{
				ResourceName:      "autarky_service_scaling_policy.web",
				ImportState:       true,
				ImportStateId:     "svc/shop_web",
				ImportStateVerify: true,
			},
			{
				// Removed behind Terraform's back: the plan creates it again.
				PreConfig: func() {
					p, err := local.New(stateDir, nil, local.Options{})
					if err == nil {
						err = p.DeleteServiceScalingPolicy(context.Background(), "svc/shop_web")
					}
					if err != nil {
						t.Fatal(err)
					}
					if _, err := p.GetServiceScalingPolicy(context.Background(), "svc/shop_web"); !errors.Is(err, platform.ErrNotFound) {
						t.Fatalf("after delete: %v, want not found", err)
					}
				},
				Config:             serviceScalingConfig(stateDir, body(30)),
				PlanOnly:           true,
				ExpectNonEmptyPlan: true,
			},
		},
	})
}

// Bad policies are refused at plan time naming the field; a policy for a
// cluster that does not exist fails at apply naming cluster_id, and leaves
// nothing.
func TestAccServiceScalingPolicy_badInput(t *testing.T) {
	stateDir := testenv.StateDir(t)
	cases := []struct{ body, want string }{
		{`service = "shop web"` + "\n  max_replicas = 3", `service:? .*"shop web" is not a Swarm service name`},
		{`service = "web"`, `The argument "max_replicas" is required`},
		{`service = "web"` + "\n  min_replicas = 5\n  max_replicas = 2", `min_replicas \(5\) is greater than max_replicas \(2\)`},
		{`service = "web"` + "\n  max_replicas = 0", `max_replicas value must be between 1 and 100000`},
		{`service = "web"` + "\n  max_replicas = 3\n  max_step = 0", `max_step value must be between 1 and 100`},
		{`service = "web"` + "\n  max_replicas = 3\n  scale_down_by = 0", `scale_down_by value must be between 1 and 100`},
		{`service = "web"` + "\n  max_replicas = 3\n  cooldown_up = \"soon\"", `cooldown_up: "soon" is not a duration`},
		{`service = "web"` + "\n  max_replicas = 3\n  prometheus = [{ name = \"rps\", address = \"http://127.0.0.1:9090\", query = \"up\" }]", `target_value`},
		{`service = "web"` + "\n  max_replicas = 3\n  prometheus = [{ name = \"rps\", address = \"http://127.0.0.1:9090\", query = \"sum(rate(x[1m]\", target_value = 5 }]",
			`prometheus\[0\]\.query:\s+check\s+"rps":\s+"sum\(rate\(x\[1m\]"\s+is\s+not\s+valid\s+PromQL`},
	}
	var steps []resource.TestStep
	for _, c := range cases {
		steps = append(steps, resource.TestStep{Config: serviceScalingConfig(stateDir, c.body), PlanOnly: true, ExpectError: regexp.MustCompile(c.want)})
	}
	steps = append(steps, resource.TestStep{
		Config: providerBlock(stateDir) + `
resource "autarky_service_scaling_policy" "web" {
  cluster_id   = "nowhere"
  service      = "web"
  max_replicas = 3
}`,
		ExpectError: regexp.MustCompile(`cluster_id\s+must\s+name\s+an\s+existing\s+cluster`),
	})
	resource.ParallelTest(t, resource.TestCase{
		PreCheck:                 func() { preCheck(t) },
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             checkNothingLeft(stateDir),
		Steps:                    steps,
	})
}

// An import id that is not "<cluster>/<service>" is refused, naming the
// form.
func TestServiceScalingPolicyImportID(t *testing.T) {
	for _, id := range []string{"svc", "svc/", "/web", "svc/shop web", "Svc_x/web"} {
		if _, _, err := policy.SplitServiceScalingID(id); err == nil {
			t.Errorf("SplitServiceScalingID(%q) accepted", id)
		}
	}
	if c, s, err := policy.SplitServiceScalingID("svc/shop_web"); err != nil || c != "svc" || s != "shop_web" {
		t.Errorf("SplitServiceScalingID(svc/shop_web) = %q, %q, %v", c, s, err)
	}
}
