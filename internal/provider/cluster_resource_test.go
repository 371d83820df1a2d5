package provider

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/autarky/terraform-provider-autarky/internal/swarm"
	"github.com/autarky/terraform-provider-autarky/internal/testenv"
)

func clusterConfig(stateDir, name string, managers int, labels string) string {
	return providerBlock(stateDir) + fmt.Sprintf(`
resource "autarky_cluster" "test" {
  name             = %q
  platform         = "local"
  manager_count    = %d
  heartbeat_period = "1s"
  %s
}
`, name, managers, labels)
}

// A cluster grows from one manager to three in place, keeps quorum-capable
// settings, imports back identically and leaves nothing behind.
func TestAccCluster_lifecycle(t *testing.T) {
	stateDir := testenv.StateDir(t)
	resource.ParallelTest(t, resource.TestCase{
		PreCheck:                 func() { preCheck(t) },
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             checkNothingLeft(stateDir),
		Steps: []resource.TestStep{
			{
				Config: clusterConfig(stateDir, "life", 1, `labels = { env = "test" }`),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("autarky_cluster.test", tfjsonpath.New("id"), knownvalue.StringExact("life")),
					statecheck.ExpectKnownValue("autarky_cluster.test", tfjsonpath.New("manager_pool_id"), knownvalue.StringExact("life/managers")),
					statecheck.ExpectKnownValue("autarky_cluster.test", tfjsonpath.New("manager_addresses"), knownvalue.ListSizeExact(1)),
					statecheck.ExpectKnownValue("autarky_cluster.test", tfjsonpath.New("docker_host"), knownvalue.StringRegexp(regexp.MustCompile(`^unix:///.*/docker\.sock$`))),
				},
				Check: checkSwarm("autarky_cluster.test", 1, 0, nil),
			},
			{
				Config: clusterConfig(stateDir, "life", 3, `labels = { env = "prod" }`),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectResourceAction("autarky_cluster.test", plancheck.ResourceActionUpdate)},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("autarky_cluster.test", tfjsonpath.New("manager_addresses"), knownvalue.ListSizeExact(3)),
					statecheck.ExpectKnownValue("autarky_cluster.test", tfjsonpath.New("labels"), knownvalue.MapExact(map[string]knownvalue.Check{"env": knownvalue.StringExact("prod")})),
				},
				Check: checkSwarm("autarky_cluster.test", 3, 0, func(n swarm.Node) error {
					if n.Reachability != "reachable" {
						return fmt.Errorf("manager %s is %s", n.Hostname, n.Reachability)
					}
					return nil
				}),
			},
			{
				ResourceName:            "autarky_cluster.test",
				ImportState:             true,
				ImportStateId:           "life",
				ImportStateVerify:       true,
				ImportStateVerifyIgnore: []string{"timeouts"},
			},
			{
				Config: clusterConfig(stateDir, "life", 1, ""),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectResourceAction("autarky_cluster.test", plancheck.ResourceActionUpdate)},
				},
				Check: checkSwarm("autarky_cluster.test", 1, 0, nil),
			},
		},
	})
}

// Two clusters of one name in one state dir are refused, not merged.
func TestAccCluster_duplicateName(t *testing.T) {
	stateDir := testenv.StateDir(t)
	resource.ParallelTest(t, resource.TestCase{
		PreCheck:                 func() { preCheck(t) },
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             checkNothingLeft(stateDir),
		Steps: []resource.TestStep{
			{
				Config: providerBlock(stateDir) + `
resource "autarky_cluster" "a" {
  name          = "twin"
  manager_count = 1
}
resource "autarky_cluster" "b" {
  name          = "twin"
  manager_count = 1
  depends_on    = [autarky_cluster.a]
}
`,
				// The whole message, with the way out: the import commands of
				// both CLIs, since the provider cannot tell which one runs it.
				// The CLI wraps long messages: any space may be a line break.
				ExpectError: regexp.MustCompile(strings.ReplaceAll(regexp.QuoteMeta(`a cluster named "twin" already runs in state dir `+stateDir+
					": choose another name, or import it with `terraform import <address> twin` (OpenTofu: `tofu import`)"), " ", `\s+`)),
			},
		},
	})
}

// A cluster whose managers are all gone is removed from state with a
// warning, so the next plan creates it anew.
func TestAccCluster_lost(t *testing.T) {
	stateDir := testenv.StateDir(t)
	cfg := clusterConfig(stateDir, "lost", 1, "")
	resource.ParallelTest(t, resource.TestCase{
		PreCheck:                 func() { preCheck(t) },
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             checkNothingLeft(stateDir),
		Steps: []resource.TestStep{
			{Config: cfg},
			{
				PreConfig: func() { killNode(t, stateDir, "lost", "managers") },
				Config:    cfg,
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectResourceAction("autarky_cluster.test", plancheck.ResourceActionCreate)},
				},
				Check: checkSwarm("autarky_cluster.test", 1, 0, nil),
			},
		},
	})
}

// An agent binary that does not exist fails the apply, naming agent.binary,
// and the half-made cluster is removed: nothing is left.
func TestAccCluster_agentBinaryMissing(t *testing.T) {
	stateDir := testenv.StateDir(t)
	resource.ParallelTest(t, resource.TestCase{
		PreCheck:                 func() { preCheck(t) },
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             checkNothingLeft(stateDir),
		Steps: []resource.TestStep{
			{
				Config:      clusterConfig(stateDir, "noagent", 1, `agent = { enabled = true, binary = "/nonexistent/autarky-agent" }`),
				ExpectError: regexp.MustCompile(`agent.binary "/nonexistent/autarky-agent"`),
			},
		},
	})
	if left := testenv.Leftovers(stateDir); len(left) > 0 {
		t.Fatalf("left behind: %v", left)
	}
}
