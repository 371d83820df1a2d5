package provider

import (
	"context"
	"fmt"
	"regexp"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/autarky/terraform-provider-autarky/internal/platform/local"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
	"github.com/autarky/terraform-provider-autarky/internal/testenv"
)

func scalingConfig(stateDir, policyBody string) string {
	return clusterConfig(stateDir, "scale", 1, "") + `
resource "autarky_node_pool" "web" {
  cluster_id   = autarky_cluster.test.id
  name         = "web"
  min_size     = 0
  max_size     = 10
  desired_size = 1
}
resource "autarky_scaling_policy" "web" {
  node_pool_id = autarky_node_pool.web.id
` + policyBody + `
}
`
}

// The shape is stored for the agent, updated in place, imported
// back; while it exists the agent owns the pool's size, so a resize by the
// agent leaves the plan empty.
func TestAccScalingPolicy_lifecycle(t *testing.T) {
	stateDir := testenv.StateDir(t)
	body := func(maxSize int) string {
		return fmt.Sprintf(`
  max_size      = %d
  cooldown_up   = "30s"
  cooldown_down = "5m"
  pending_tasks = {}
  prometheus = [{
    name         = "cpu"
    address      = "http://127.0.0.1:9090"
    query        = "avg(rate(app_busy_seconds_total[1m]))"
    target_value = 0.6
  }]
  alert = [{ name = "WebOverloaded", step = 2 }]
`, maxSize)
	}
	store := func() *local.Platform {
		p, err := local.New(stateDir, nil, local.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	resource.ParallelTest(t, resource.TestCase{
		PreCheck:                 func() { preCheck(t) },
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             checkNothingLeft(stateDir),
		Steps: []resource.TestStep{
			{
				Config: scalingConfig(stateDir, body(8)),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("autarky_scaling_policy.web", tfjsonpath.New("id"), knownvalue.StringExact("scale/web")),
					statecheck.ExpectKnownValue("autarky_scaling_policy.web", tfjsonpath.New("node_selector"), knownvalue.StringExact("empty_first")),
					statecheck.ExpectKnownValue("autarky_scaling_policy.web", tfjsonpath.New("max_step"), knownvalue.Int64Exact(5)),
					statecheck.ExpectKnownValue("autarky_scaling_policy.web", tfjsonpath.New("provision_timeout"), knownvalue.StringExact("15m")),
					statecheck.ExpectKnownValue("autarky_scaling_policy.web", tfjsonpath.New("max_disrupted_percent"), knownvalue.Int64Exact(10)),
				},
				Check: func(*terraform.State) error {
					s, err := store().GetScalingPolicy(context.Background(), "scale/web")
					if err != nil {
						return err
					}
					if s.PendingTasks == nil || len(s.Prometheus) != 1 || *s.Prometheus[0].TargetValue != 0.6 || s.Alert[0].Step != 2 || *s.MaxSize != 8 {
						return fmt.Errorf("stored policy: %+v", s)
					}
					pool, _, err := store().ReadPool(context.Background(), "scale", "web")
					if err != nil || pool.SizeOwner != policy.SizeOwnerAgent {
						return fmt.Errorf("pool size owner %q (%v), want agent", pool.SizeOwner, err)
					}
					return nil
				},
			},
			{
				// The agent resizes the pool (here: records a size of 3 and
				// starts the nodes, as it does); Terraform sees no change.
				PreConfig: func() {
					c := store().Cluster("scale")
					if err := c.SetDesiredSize(context.Background(), "web", 3); err != nil {
						t.Fatal(err)
					}
					for i := 0; i < 2; i++ {
						if _, err := c.StartInstance(context.Background(), policy.Pool{Cluster: "scale", Name: "web", Role: "worker"}); err != nil {
							t.Fatal(err)
						}
					}
				},
				Config:   scalingConfig(stateDir, body(8)),
				PlanOnly: true,
			},
			{
				Config: scalingConfig(stateDir, body(9)),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction("autarky_scaling_policy.web", plancheck.ResourceActionUpdate),
						plancheck.ExpectResourceAction("autarky_node_pool.web", plancheck.ResourceActionNoop),
					},
				},
			},
			{
				ResourceName:      "autarky_scaling_policy.web",
				ImportState:       true,
				ImportStateId:     "scale/web",
				ImportStateVerify: true,
			},
		},
	})
}

// Bad policies are refused at plan time, naming the field.
func TestAccScalingPolicy_badInput(t *testing.T) {
	stateDir := testenv.StateDir(t)
	cases := []struct{ body, want string }{
		{`node_selector = "random"` + "\n  pending_tasks = {}", `value must be one of`},
		{`min_size = 5` + "\n  max_size = 2\n  pending_tasks = {}", `min_size \(5\) is greater than max_size \(2\)`},
		{`max_step = -1` + "\n  pending_tasks = {}", `max_step value must be between 1 and 100`},
		{`max_disrupted_percent = 0` + "\n  pending_tasks = {}", `max_disrupted_percent value must be between 1 and 100`},
		{`cooldown_up = "soon"` + "\n  pending_tasks = {}", `cooldown_up: "soon" is not a duration`},
		{`provision_timeout = "1s"` + "\n  pending_tasks = {}", `provision_timeout: "1s" is too short: use at least 5s`},
		{``, `needs at least one check`},
		{`prometheus = [{ name = "cpu", address = "http://127.0.0.1:9090", query = "up" }]`, `target_value`},
		{`alert = [{ name = "X", step = 0 }]`, `step`},
		// Prometheus's own parser refuses the query, naming the check.
		{`prometheus = [{ name = "cpu", address = "http://127.0.0.1:9090", query = "avg(rate(x[1m]", target_value = 0.5 }]`,
			`prometheus\[0\]\.query:\s+check\s+"cpu":\s+"avg\(rate\(x\[1m\]"\s+is\s+not\s+valid\s+PromQL:\s+1:15:\s+parse\s+error:\s+unclosed\s+left\s+parenthesis`},
		// Also while another value of the policy is known only at apply
		// (the address, from the cluster's id).
		{`prometheus = [{ name = "cpu", address = "http://prometheus-${autarky_cluster.test.id}:9090", query = "avg(rate(x[1m]", target_value = 0.5 }]`,
			`prometheus\[0\]\.query:\s+check\s+"cpu":\s+"avg\(rate\(x\[1m\]"\s+is\s+not\s+valid\s+PromQL`},
	}
	var steps []resource.TestStep
	for _, c := range cases {
		steps = append(steps, resource.TestStep{Config: scalingConfig(stateDir, c.body), PlanOnly: true, ExpectError: regexp.MustCompile(c.want)})
	}
	steps = append(steps, resource.TestStep{
		Config: clusterConfig(stateDir, "scale", 1, "") + `
resource "autarky_scaling_policy" "managers" {
  node_pool_id  = "scale/managers"
  pending_tasks = {}
}`,
		PlanOnly:    true,
		ExpectError: regexp.MustCompile(`managers\s+are\s+never\s+autoscaled`),
	})
	// The managers' pool by reference, with the cluster created in the same
	// run: its id follows from the cluster's name, so plan refuses it and
	// nothing is created.
	steps = append(steps, resource.TestStep{
		Config: clusterConfig(stateDir, "scale", 1, "") + `
resource "autarky_scaling_policy" "managers" {
  node_pool_id  = autarky_cluster.test.manager_pool_id
  pending_tasks = {}
}`,
		PlanOnly:    true,
		ExpectError: regexp.MustCompile(`"scale/managers"\s+is\s+a\s+cluster's\s+manager\s+pool:\s+managers\s+are\s+never\s+autoscaled`),
	})
	resource.ParallelTest(t, resource.TestCase{
		PreCheck:                 func() { preCheck(t) },
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             checkNothingLeft(stateDir),
		Steps:                    steps,
	})
}
