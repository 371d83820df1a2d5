package provider

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/autarky/terraform-provider-autarky/internal/platform/local"
	"github.com/autarky/terraform-provider-autarky/internal/swarm"
	"github.com/autarky/terraform-provider-autarky/internal/testenv"
)

// The shape: agents beside the managers heal a worker killed behind
// Terraform's back, so the next plan is empty — Terraform sees no drift.
func TestAccAgent_healsWhatTerraformDeclared(t *testing.T) {
	stateDir := testenv.StateDir(t)
	bin := testenv.AgentBinary(t)
	cfg := providerBlock(stateDir) + fmt.Sprintf(`
resource "autarky_cluster" "test" {
  name             = "agent"
  manager_count    = 1
  heartbeat_period = "1s"
  agent            = { enabled = true, binary = %q, evaluation_interval = "500ms" }
}
resource "autarky_node_pool" "web" {
  cluster_id   = autarky_cluster.test.id
  name         = "web"
  max_size     = 5
  desired_size = 2
}
resource "autarky_healing_policy" "web" {
  node_pool_id    = autarky_node_pool.web.id
  unhealthy_after = "2s"
  min_node_age    = "0s"
}
resource "autarky_healing_policy" "managers" {
  node_pool_id = autarky_cluster.test.manager_pool_id
}
`, bin)
	resource.ParallelTest(t, resource.TestCase{
		PreCheck:                 func() { preCheck(t) },
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             checkNothingLeft(stateDir),
		Steps: []resource.TestStep{
			{
				Config: cfg,
				Check: resource.ComposeTestCheckFunc(
					checkSwarm("autarky_cluster.test", 1, 2, nil),
					resource.TestCheckResourceAttr("autarky_cluster.test", "agent.evaluation_interval", "500ms"),
					func(s *terraform.State) error {
						// The agent beside the manager answers and leads.
						addr := strings.Split(s.RootModule().Resources["autarky_cluster.test"].Primary.Attributes["manager_addresses.0"], ":")[0]
						return waitHTTP("http://"+addr+":9910/metrics", "autarky_leader 1", 30*time.Second)
					},
				),
			},
			{
				// The agent, not Terraform, replaces the node: wait for it
				// here, then the plan must be empty.
				PreConfig: func() {
					victim := killNode(t, stateDir, "agent", "web")
					waitHealedByAgent(t, stateDir, "agent", "web", 2, victim)
				},
				Config:   cfg,
				PlanOnly: true,
			},
			{
				Config: cfg,
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
			},
		},
	})
}

// waitHealedByAgent waits until the pool has want running instances, none of
// them the victim, and the swarm lists want Ready workers and no ghost.
func waitHealedByAgent(t *testing.T, stateDir, cluster, pool string, want int, victim string) {
	t.Helper()
	p, err := local.New(stateDir, nil, local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(90 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		time.Sleep(500 * time.Millisecond)
		_, ps, err := p.ReadPool(context.Background(), cluster, pool)
		_, cs, cerr := p.ReadCluster(context.Background(), cluster)
		if err != nil || cerr != nil {
			last = fmt.Sprint(err, cerr)
			continue
		}
		gone := true
		for _, i := range ps.Instances {
			if i.ID == victim {
				gone = false
			}
		}
		cli, err := swarm.Dial(cs.DockerHost)
		if err != nil {
			last = err.Error()
			continue
		}
		nodes, err := cli.Nodes(context.Background())
		cli.Close()
		ready, ghost := 0, false
		for _, n := range nodes {
			if n.Role == "worker" && n.State == "ready" {
				ready++
			}
			if n.Hostname == victim {
				ghost = true
			}
		}
		if err == nil && gone && !ghost && ps.CurrentSize == want && ready == want {
			return
		}
		last = fmt.Sprintf("instances %d (victim gone %v), ready workers %d, ghost %v, err %v", ps.CurrentSize, gone, ready, ghost, err)
	}
	t.Fatalf("the agent did not heal pool %s/%s: %s", cluster, pool, last)
}

// The agent, not Terraform, resizes a pool under a scaling policy (here on an
// Alertmanager alert); the next plan is empty: Terraform does not fight it.
func TestAccAgent_scalingOwnsTheSize(t *testing.T) {
	stateDir := testenv.StateDir(t)
	bin := testenv.AgentBinary(t)
	cfg := providerBlock(stateDir) + fmt.Sprintf(`
resource "autarky_cluster" "test" {
  name             = "owned"
  manager_count    = 1
  heartbeat_period = "1s"
  agent            = { enabled = true, binary = %q, evaluation_interval = "500ms" }
}
resource "autarky_node_pool" "web" {
  cluster_id   = autarky_cluster.test.id
  name         = "web"
  max_size     = 5
  desired_size = 1
}
resource "autarky_scaling_policy" "web" {
  node_pool_id = autarky_node_pool.web.id
  alert        = [{ name = "WebOverloaded", step = 2 }]
}
`, bin)
	resource.ParallelTest(t, resource.TestCase{
		PreCheck:                 func() { preCheck(t) },
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             checkNothingLeft(stateDir),
		Steps: []resource.TestStep{
			{Config: cfg, Check: checkSwarm("autarky_cluster.test", 1, 1, nil)},
			{
				PreConfig: func() {
					p, err := local.New(stateDir, nil, local.Options{})
					if err != nil {
						t.Fatal(err)
					}
					_, cs, err := p.ReadCluster(context.Background(), "owned")
					if err != nil {
						t.Fatal(err)
					}
					agentURL := "http://" + strings.Split(cs.ManagerAddresses[0], ":")[0] + ":9910"
					if err := waitHTTP(agentURL+"/metrics", "autarky_leader 1", 30*time.Second); err != nil {
						t.Fatal(err)
					}
					body := `{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"WebOverloaded"}}]}`
					resp, err := http.Post(agentURL+"/v1/alerts", "application/json", strings.NewReader(body))
					if err != nil {
						t.Fatal(err)
					}
					resp.Body.Close()
					deadline := time.Now().Add(90 * time.Second)
					for {
						_, ps, err := p.ReadPool(context.Background(), "owned", "web")
						if err == nil && ps.CurrentSize == 3 {
							break
						}
						if time.Now().After(deadline) {
							t.Fatalf("the agent did not grow the pool to 3: %+v %v", ps, err)
						}
						time.Sleep(300 * time.Millisecond)
					}
				},
				Config:   cfg,
				PlanOnly: true,
			},
		},
	})
}
