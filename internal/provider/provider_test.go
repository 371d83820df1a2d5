package provider

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/autarky/terraform-provider-autarky/internal/swarm"
	"github.com/autarky/terraform-provider-autarky/internal/testenv"
)

var protoV6ProviderFactories = map[string]func() (tfprotov6.ProviderServer, error){
	"autarky": providerserver.NewProtocol6WithError(New("test")()),
}

// TerraformCache is where `make tools` puts the Terraform CLI the tests run.
const terraformCache = ".cache/autarky/terraform-1.5.7/terraform"

func TestMain(m *testing.M) {
	// Acceptance tests always run: they are how this provider is tested.
	if os.Getenv("TF_ACC") == "" {
		os.Setenv("TF_ACC", "1")
	}
	if os.Getenv("TF_ACC_TERRAFORM_PATH") == "" {
		if home, err := os.UserHomeDir(); err == nil {
			os.Setenv("TF_ACC_TERRAFORM_PATH", filepath.Join(home, terraformCache))
		}
	}
	os.Exit(m.Run())
}

// preCheck fails the test, naming the setup command, when a part is missing.
func preCheck(t *testing.T) {
	t.Helper()
	testenv.RequireLocalPlatform(t)
	preCheckTerraform(t)
}

// preCheckTerraform fails the test, naming the setup command, when the
// Terraform CLI is missing.
func preCheckTerraform(t *testing.T) {
	t.Helper()
	tf := os.Getenv("TF_ACC_TERRAFORM_PATH")
	if _, err := os.Stat(tf); err != nil {
		t.Fatalf("the Terraform CLI is not at TF_ACC_TERRAFORM_PATH=%s: run `%s`", tf, testenv.Setup)
	}
}

// providerBlock configures the provider for a test's own state dir.
func providerBlock(stateDir string) string {
	return fmt.Sprintf("provider \"autarky\" {\n  local {\n    state_dir = %q\n  }\n}\n", stateDir)
}

// checkNothingLeft is a CheckDestroy: no node directory, process or mount
// remains under the state dir, and no cluster record.
func checkNothingLeft(stateDir string) func(*terraform.State) error {
	return func(*terraform.State) error {
		if left := testenv.Leftovers(stateDir); len(left) > 0 {
			return fmt.Errorf("left behind after destroy:\n%s", strings.Join(left, "\n"))
		}
		for _, sub := range []string{"nodes", "clusters"} {
			entries, _ := os.ReadDir(filepath.Join(stateDir, sub))
			if len(entries) > 0 {
				var names []string
				for _, e := range entries {
					names = append(names, e.Name())
				}
				return fmt.Errorf("%s/%s still holds %v after destroy", stateDir, sub, names)
			}
		}
		return nil
	}
}

// swarmNodes lists the swarm's nodes through the cluster's docker_host.
func swarmNodes(s *terraform.State, cluster string) ([]swarm.Node, error) {
	rs, ok := s.RootModule().Resources[cluster]
	if !ok {
		return nil, fmt.Errorf("%s not in state", cluster)
	}
	cli, err := swarm.Dial(rs.Primary.Attributes["docker_host"])
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return cli.Nodes(ctx)
}

// checkSwarm waits briefly for the swarm to match want, a count of Ready
// nodes per role, and runs extra checks on each node.
func checkSwarm(cluster string, managers, workers int, each func(swarm.Node) error) func(*terraform.State) error {
	return func(s *terraform.State) error {
		var last error
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(300 * time.Millisecond) {
			nodes, err := swarmNodes(s, cluster)
			if err != nil {
				last = err
				continue
			}
			m, w := 0, 0
			last = nil
			for _, n := range nodes {
				if n.State != "ready" {
					last = fmt.Errorf("node %s is %s", n.Hostname, n.State)
					break
				}
				if n.Role == "manager" {
					m++
				} else {
					w++
				}
				if each != nil {
					if err := each(n); err != nil {
						last = err
						break
					}
				}
			}
			if last == nil && (m != managers || w != workers) {
				last = fmt.Errorf("swarm has %d managers and %d workers, want %d and %d", m, w, managers, workers)
			}
			if last == nil {
				return nil
			}
		}
		return last
	}
}

// killNode kills -9 the dockerd of one running instance of a pool, as a
// machine failure would, and returns its instance id.
func killNode(t *testing.T, stateDir, cluster, pool string) string {
	t.Helper()
	for _, inst := range testenv.Records(stateDir, cluster, pool) {
		if inst.PID > 0 {
			if err := syscall.Kill(inst.PID, syscall.SIGKILL); err != nil {
				continue
			}
			t.Logf("killed %s (pid %d)", inst.ID, inst.PID)
			return inst.ID
		}
	}
	t.Fatalf("no running instance of %s/%s to kill", cluster, pool)
	return ""
}

// waitHTTP polls url until its body contains want.
func waitHTTP(url, want string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(b), want) {
				return nil
			}
			last = fmt.Sprintf("%d bytes without %q", len(b), want)
		} else {
			last = err.Error()
		}
		time.Sleep(300 * time.Millisecond)
	}
	return fmt.Errorf("%s: %s", url, last)
}
