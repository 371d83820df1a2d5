package provider

import (
	"fmt"
	"os"
	"regexp"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/autarky/terraform-provider-autarky/internal/policy"
	"github.com/autarky/terraform-provider-autarky/internal/swarm"
	"github.com/autarky/terraform-provider-autarky/internal/testenv"
)

func poolConfig(stateDir, cluster string, managers, desired int, labels string) string {
	return clusterConfig(stateDir, cluster, managers, "") + fmt.Sprintf(`
resource "autarky_node_pool" "web" {
  cluster_id   = autarky_cluster.test.id
  name         = "web"
  min_size     = 1
  max_size     = 10
  desired_size = %d
  labels       = %s
}
`, desired, labels)
}

func workerLabels(want map[string]string) func(swarm.Node) error {
	return func(n swarm.Node) error {
		if n.Role != "worker" {
			return nil
		}
		for k, v := range want {
			if n.Labels[k] != v {
				return fmt.Errorf("worker %s has labels %v, want %s=%s", n.Hostname, n.Labels, k, v)
			}
		}
		if n.Labels[policy.LabelPool] != "web" || n.EngineLabels[policy.LabelPool] != "web" {
			return fmt.Errorf("worker %s lacks %s=web: %v / %v", n.Hostname, policy.LabelPool, n.Labels, n.EngineLabels)
		}
		return nil
	}
}

// The shape: 3 managers and a pool of 2 labelled workers, resized and
// relabelled in place, imported back, destroyed without a trace.
func TestAccNodePool_lifecycle(t *testing.T) {
	stateDir := testenv.StateDir(t)
	resource.ParallelTest(t, resource.TestCase{
		PreCheck:                 func() { preCheck(t) },
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             checkNothingLeft(stateDir),
		Steps: []resource.TestStep{
			{
				Config: poolConfig(stateDir, "pools", 3, 2, `{ tier = "web" }`),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("autarky_node_pool.web", tfjsonpath.New("id"), knownvalue.StringExact("pools/web")),
					statecheck.ExpectKnownValue("autarky_node_pool.web", tfjsonpath.New("current_size"), knownvalue.Int64Exact(2)),
					statecheck.ExpectKnownValue("autarky_node_pool.web", tfjsonpath.New("node_ids"), knownvalue.ListSizeExact(2)),
					statecheck.ExpectKnownValue("autarky_node_pool.web", tfjsonpath.New("role"), knownvalue.StringExact("worker")),
				},
				Check: checkSwarm("autarky_cluster.test", 3, 2, workerLabels(map[string]string{"tier": "web"})),
			},
			{
				Config: poolConfig(stateDir, "pools", 3, 3, `{ tier = "front", zone = "a" }`),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction("autarky_node_pool.web", plancheck.ResourceActionUpdate),
						plancheck.ExpectResourceAction("autarky_cluster.test", plancheck.ResourceActionNoop),
					},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("autarky_node_pool.web", tfjsonpath.New("current_size"), knownvalue.Int64Exact(3)),
				},
				Check: checkSwarm("autarky_cluster.test", 3, 3, workerLabels(map[string]string{"tier": "front", "zone": "a"})),
			},
			{
				Config: poolConfig(stateDir, "pools", 3, 1, `{ tier = "front", zone = "a" }`),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectResourceAction("autarky_node_pool.web", plancheck.ResourceActionUpdate)},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("autarky_node_pool.web", tfjsonpath.New("current_size"), knownvalue.Int64Exact(1)),
				},
				// The removed nodes left the swarm: no ghost in `docker node ls`.
				Check: checkSwarm("autarky_cluster.test", 3, 1, nil),
			},
			{
				ResourceName:            "autarky_node_pool.web",
				ImportState:             true,
				ImportStateId:           "pools/web",
				ImportStateVerify:       true,
				ImportStateVerifyIgnore: []string{"timeouts"},
			},
		},
	})
}

// A worker whose dockerd dies behind Terraform's back is drift: the next plan
// is not empty, and applying it brings the pool back to size with no ghost.
func TestAccNodePool_drift(t *testing.T) {
	stateDir := testenv.StateDir(t)
	cfg := poolConfig(stateDir, "drift", 1, 2, "{}")
	resource.ParallelTest(t, resource.TestCase{
		PreCheck:                 func() { preCheck(t) },
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             checkNothingLeft(stateDir),
		Steps: []resource.TestStep{
			{Config: cfg, Check: checkSwarm("autarky_cluster.test", 1, 2, nil)},
			{
				PreConfig:          func() { killNode(t, stateDir, "drift", "web") },
				Config:             cfg,
				PlanOnly:           true,
				ExpectNonEmptyPlan: true,
			},
			{
				Config: cfg,
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("autarky_node_pool.web", tfjsonpath.New("current_size"), knownvalue.Int64Exact(2)),
				},
				Check: checkSwarm("autarky_cluster.test", 1, 2, nil),
			},
		},
	})
}

// Bad input is refused at plan time, naming the attribute and what is
// allowed, and nothing is created.
func TestAccBadInput(t *testing.T) {
	stateDir := testenv.StateDir(t)
	cluster := func(attrs string) string {
		return providerBlock(stateDir) + "resource \"autarky_cluster\" \"bad\" {\n" + attrs + "\n}\n"
	}
	pool := func(attrs string) string {
		return cluster(`name = "ok"`) + "resource \"autarky_node_pool\" \"bad\" {\n  cluster_id = autarky_cluster.bad.id\n" + attrs + "\n}\n"
	}
	cases := []struct{ config, want string }{
		{cluster(`name = "c"` + "\n" + `manager_count = 2`), `manager_count: 2 managers is not allowed: use 1, 3, 5 or 7`},
		{cluster(`name = "c"` + "\n" + `manager_count = 0`), `manager_count: 0 managers is not allowed`},
		{cluster(`name = "Not_A_Label"`), `name: "Not_A_Label" is not a DNS label`},
		{cluster(`name = "c"` + "\n" + `platform = "azure"`), `platform: platform "azure" is unknown`},
		{cluster(`name = "c"` + "\n" + `platform = "gcp"`), `gcp.machine_type: platform "gcp" needs it in the cluster's gcp block`},
		{cluster(`name = "c"` + "\n" + `heartbeat_period = "soon"`), `heartbeat_period: "soon" is not a duration`},
		{cluster(`name = "c"` + "\n" + `heartbeat_period = "100ms"`), `heartbeat_period: "100ms" is too short`},
		{pool(`name = "web"` + "\n" + `min_size = 5` + "\n" + `max_size = 2`), `min_size \(5\) is greater than max_size \(2\)`},
		{pool(`name = "web"` + "\n" + `max_size = 2` + "\n" + `desired_size = 3`), `desired_size \(3\) is outside \[min_size, max_size\] = \[0, 2\]`},
		{pool(`name = "web"` + "\n" + `max_size = 2` + "\n" + `wait_for_capacity_timeout = "5 minutes"`), `wait_for_capacity_timeout: "5 minutes" is not a duration`},
		{pool(`name = "web_pool"` + "\n" + `max_size = 2`), `name: "web_pool" is not a DNS label`},
		{pool(`name = "managers"` + "\n" + `max_size = 2`), `"managers" is reserved`},
		{pool(`name = "web"` + "\n" + `max_size = 2` + "\n" + `role = "manager"`), `role: "manager" is not allowed: use "worker"`},
		{pool(`name = "web"` + "\n" + `max_size = 0`), `max_size value must be at least 1`},
		{providerBlock("relative/dir") + `resource "autarky_cluster" "c" { name = "c" }`, `state_dir "relative/dir" must be an absolute path`},
		{`provider "autarky" {
  local {
    state_dir       = "` + stateDir + `"
    workload_binary = "/bin/sh"
  }
}
resource "autarky_cluster" "c" { name = "c" }`, `workload_binary "/bin/sh" is dynamically linked`},
		{cluster(`name = "c"` + "\n" + `agent = { enabled = true, evaluation_interval = "1ms" }`), `agent.evaluation_interval: "1ms" is out of range: use 100ms to 1h`},
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
