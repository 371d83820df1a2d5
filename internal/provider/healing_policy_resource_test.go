package provider

import (
	"context"
	"fmt"
	"os"
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

// healingConfig is a cluster of one manager and a pool of one worker, with a
// healing policy on each: the workers' tuned, the managers' all defaults.
func healingConfig(stateDir, cluster string, maxUnhealthyPercent int) string {
	return clusterConfig(stateDir, cluster, 1, "") + fmt.Sprintf(`
resource "autarky_node_pool" "web" {
  cluster_id   = autarky_cluster.test.id
  name         = "web"
  min_size     = 1
  max_size     = 3
  desired_size = 1
}

resource "autarky_healing_policy" "web" {
  node_pool_id          = autarky_node_pool.web.id
  unhealthy_after       = "5s"
  max_unhealthy_percent = %d
}

resource "autarky_healing_policy" "managers" {
  node_pool_id = autarky_cluster.test.manager_pool_id
}
`, maxUnhealthyPercent)
}

// checkStoredHealing reads the policy the agent would read from the store
// and compares it with want.
func checkStoredHealing(stateDir string, want policy.Healing) func(*terraform.State) error {
	return func(*terraform.State) error {
		p, err := local.New(stateDir, nil, local.Options{})
		if err != nil {
			return err
		}
		got, err := p.GetHealingPolicy(context.Background(), want.PoolID)
		if err != nil {
			return fmt.Errorf("the store holds no healing policy for %s: %w", want.PoolID, err)
		}
		if got != want {
			return fmt.Errorf("the store holds healing policy %+v, want %+v", got, want)
		}
		return nil
	}
}

// deleteStoredHealing removes a policy behind Terraform's back.
func deleteStoredHealing(t *testing.T, stateDir, poolID string) {
	t.Helper()
	p, err := local.New(stateDir, nil, local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.DeleteHealingPolicy(context.Background(), poolID); err != nil {
		t.Fatal(err)
	}
}

// Policies on a worker pool and on the managers land in the store with their
// defaults, change in place, come back when deleted behind Terraform's back,
// import identically and go with the cluster.
func TestAccHealingPolicy_lifecycle(t *testing.T) {
	stateDir := testenv.StateDir(t)
	webPolicy := func(pct int64) policy.Healing {
		h := policy.DefaultHealing("heal/web")
		h.UnhealthyAfter = "5s"
		h.MaxUnhealthyPercent = pct
		return h
	}
	managersPolicy := policy.DefaultHealing("heal/managers")
	resource.ParallelTest(t, resource.TestCase{
		PreCheck:                 func() { preCheck(t) },
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             checkNothingLeft(stateDir),
		Steps: []resource.TestStep{
			{
				Config: healingConfig(stateDir, "heal", 20),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("autarky_healing_policy.web", tfjsonpath.New("id"), knownvalue.StringExact("heal/web")),
					statecheck.ExpectKnownValue("autarky_healing_policy.web", tfjsonpath.New("node_pool_id"), knownvalue.StringExact("heal/web")),
					statecheck.ExpectKnownValue("autarky_healing_policy.web", tfjsonpath.New("unhealthy_after"), knownvalue.StringExact("5s")),
					statecheck.ExpectKnownValue("autarky_healing_policy.web", tfjsonpath.New("max_unhealthy_percent"), knownvalue.Int64Exact(20)),
					statecheck.ExpectKnownValue("autarky_healing_policy.managers", tfjsonpath.New("id"), knownvalue.StringExact("heal/managers")),
					statecheck.ExpectKnownValue("autarky_healing_policy.managers", tfjsonpath.New("unhealthy_after"), knownvalue.StringExact("5m")),
					statecheck.ExpectKnownValue("autarky_healing_policy.managers", tfjsonpath.New("join_timeout"), knownvalue.StringExact("5m")),
					statecheck.ExpectKnownValue("autarky_healing_policy.managers", tfjsonpath.New("min_node_age"), knownvalue.StringExact("10m")),
					statecheck.ExpectKnownValue("autarky_healing_policy.managers", tfjsonpath.New("max_unhealthy_percent"), knownvalue.Int64Exact(20)),
					statecheck.ExpectKnownValue("autarky_healing_policy.managers", tfjsonpath.New("max_concurrent_replacements"), knownvalue.Int64Exact(1)),
					statecheck.ExpectKnownValue("autarky_healing_policy.managers", tfjsonpath.New("enabled"), knownvalue.Bool(true)),
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					checkStoredHealing(stateDir, webPolicy(20)),
					checkStoredHealing(stateDir, managersPolicy),
				),
			},
			{
				Config: healingConfig(stateDir, "heal", 50),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction("autarky_healing_policy.web", plancheck.ResourceActionUpdate),
						plancheck.ExpectResourceAction("autarky_healing_policy.managers", plancheck.ResourceActionNoop),
						plancheck.ExpectResourceAction("autarky_node_pool.web", plancheck.ResourceActionNoop),
						plancheck.ExpectResourceAction("autarky_cluster.test", plancheck.ResourceActionNoop),
					},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("autarky_healing_policy.web", tfjsonpath.New("max_unhealthy_percent"), knownvalue.Int64Exact(50)),
				},
				Check: checkStoredHealing(stateDir, webPolicy(50)),
			},
			{
				// Deleted behind Terraform's back: the next plan creates it again.
				PreConfig:          func() { deleteStoredHealing(t, stateDir, "heal/web") },
				Config:             healingConfig(stateDir, "heal", 50),
				PlanOnly:           true,
				ExpectNonEmptyPlan: true,
			},
			{
				Config: healingConfig(stateDir, "heal", 50),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectResourceAction("autarky_healing_policy.web", plancheck.ResourceActionCreate)},
				},
				Check: checkStoredHealing(stateDir, webPolicy(50)),
			},
			{
				ResourceName:      "autarky_healing_policy.web",
				ImportState:       true,
				ImportStateId:     "heal/web",
				ImportStateVerify: true,
			},
			{
				ResourceName:      "autarky_healing_policy.managers",
				ImportState:       true,
				ImportStateId:     "heal/managers",
				ImportStateVerify: true,
			},
		},
	})
}

// Bad policies are refused at plan time, naming the attribute and what is
// allowed, and nothing is created.
func TestAccHealingPolicy_badInput(t *testing.T) {
	stateDir := testenv.StateDir(t)
	healing := func(attrs string) string {
		return providerBlock(stateDir) + "resource \"autarky_healing_policy\" \"bad\" {\n" + attrs + "\n}\n"
	}
	onPool := func(attr string) string { return healing(`node_pool_id = "c/web"` + "\n" + attr) }
	cases := []struct{ config, want string }{
		{onPool(`unhealthy_after = "soon"`), `unhealthy_after: "soon" is not a duration`},
		{onPool(`min_node_age = "-1m"`), `min_node_age: "-1m" is negative`},
		{onPool(`join_timeout = "0s"`), `join_timeout: "0s" is too short: use at least 1s`},
		{onPool(`max_unhealthy_percent = 0`), `max_unhealthy_percent value must be between 1 and 100, got: 0`},
		{onPool(`max_unhealthy_percent = 101`), `max_unhealthy_percent value must be between 1 and 100, got: 101`},
		{onPool(`max_concurrent_replacements = 0`), `max_concurrent_replacements value must be between 1 and 10, got: 0`},
		{healing(`node_pool_id = "no-slash"`), `node_pool_id: node pool id "no-slash" is not of the form <cluster\s+name>/<pool\s+name>`},
	}
	var steps []resource.TestStep
	for _, c := range cases {
		steps = append(steps, resource.TestStep{Config: c.config, PlanOnly: true, ExpectError: regexp.MustCompile(c.want)})
	}
	resource.ParallelTest(t, resource.TestCase{
		PreCheck:                 func() { preCheck(t) },
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             checkNothingLeft(stateDir),
		Steps:                    steps,
	})
	if entries, _ := os.ReadDir(stateDir); len(entries) > 0 {
		t.Fatalf("bad input created %v in the state dir", entries)
	}
}

// A policy for a pool that does not exist fails at apply, saying which pool
// is missing, whether its cluster exists or not, and leaves nothing behind.
func TestAccHealingPolicy_missingPool(t *testing.T) {
	stateDir := testenv.StateDir(t)
	resource.ParallelTest(t, resource.TestCase{
		PreCheck:                 func() { preCheck(t) },
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             checkNothingLeft(stateDir),
		Steps: []resource.TestStep{
			{
				Config: providerBlock(stateDir) + `
resource "autarky_healing_policy" "ghost" {
  node_pool_id = "ghost/web"
}
`,
				ExpectError: regexp.MustCompile(`(?s)creating healing policy ghost/web.*cluster ghost: not found`),
			},
			{
				Config: clusterConfig(stateDir, "orphan", 1, "") + `
resource "autarky_healing_policy" "ghost" {
  node_pool_id = "${autarky_cluster.test.id}/web"
}
`,
				ExpectError: regexp.MustCompile(`(?s)creating healing policy orphan/web.*node pool orphan/web: not found`),
			},
		},
	})
}
