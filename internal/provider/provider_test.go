package provider

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/autarky/terraform-provider-autarky/internal/swarm"
	"github.com/autarky/terraform-provider-autarky/internal/testenv"
)

var protoV6ProviderFactories = map[string]func() (tfprotov6.ProviderServer, error){
	"autarky": providerserver.NewProtocol6WithError(New("test")()),
}

// TerraformCache is where `make tools` puts the Terraform CLI the tests run.
const terraformCache = ".cache/autarky/terraform-1.5.7/terraform"

// tofuAccCache is where `make tools` puts OpenTofu 1.6.2, the CLI the
// suite runs on when AUTARKY_ACC_CLI=tofu (AUTARKY_TOFU_ACC_PATH overrides).
const tofuAccCache = ".cache/autarky/tofu-1.6.2/tofu"

// accCLIEnv picks the CLI the acceptance suite runs on: terraform (the
// default: TF_ACC_TERRAFORM_PATH, else Terraform 1.5.7 from `make tools`)
// or tofu (OpenTofu 1.6.2). Both are the oldest CLIs the provider
// supports, and `make test` runs the suite once on each; one switch, read
// here, sets every variable the test framework needs, so no test names a
// CLI unless it pins one on purpose (pinOpenTofu).
const accCLIEnv = "AUTARKY_ACC_CLI"

// accCLI is the CLI TestMain picked: its product name, as its `version`
// prints it, and the registry host the provider is served under.
var accCLI = struct{ product, host string }{"Terraform", "registry.terraform.io"}

func TestMain(m *testing.M) {
	// Acceptance tests always run: they are how this provider is tested.
	if os.Getenv("TF_ACC") == "" {
		os.Setenv("TF_ACC", "1")
	}
	home, _ := os.UserHomeDir()
	switch cli := os.Getenv(accCLIEnv); cli {
	case "", "terraform":
		if os.Getenv("TF_ACC_TERRAFORM_PATH") == "" {
			os.Setenv("TF_ACC_TERRAFORM_PATH", filepath.Join(home, terraformCache))
		}
	case "tofu":
		p := os.Getenv("AUTARKY_TOFU_ACC_PATH")
		if p == "" {
			p = filepath.Join(home, tofuAccCache)
		}
		rc, err := os.CreateTemp("", "aktofurc")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		rc.Close()
		accCLI.product, accCLI.host = "OpenTofu", "registry.opentofu.org"
		useOpenTofu(func(k, v string) { os.Setenv(k, v) }, p, rc.Name())
		code := m.Run()
		os.Remove(rc.Name())
		os.Exit(code)
	default:
		fmt.Fprintf(os.Stderr, "%s=%q: want terraform (Terraform 1.5.7, the default) or tofu (OpenTofu 1.6.2)\n", accCLIEnv, cli)
		os.Exit(2)
	}
	os.Exit(m.Run())
}

// useOpenTofu points the test framework at the OpenTofu CLI at path, with
// the (empty) CLI configuration at rc: without one OpenTofu warns on
// standard output and the framework cannot read its version. The provider
// is served in-process under OpenTofu's registry name, in the namespace
// the framework's own configuration names.
func useOpenTofu(setenv func(key, value string), path, rc string) {
	setenv("TF_ACC_TERRAFORM_PATH", path)
	setenv("TF_CLI_CONFIG_FILE", rc)
	setenv("TF_ACC_PROVIDER_HOST", "registry.opentofu.org")
	setenv("TF_ACC_PROVIDER_NAMESPACE", "hashicorp")
}

// preCheck fails the test, naming the setup command, when a part is missing.
func preCheck(t *testing.T) {
	t.Helper()
	testenv.RequireLocalPlatform(t)
	preCheckTerraform(t)
}

// preCheckTerraform fails the test, naming the setup command, when the
// CLI the suite runs on (Terraform or OpenTofu) is missing.
func preCheckTerraform(t *testing.T) {
	t.Helper()
	tf := os.Getenv("TF_ACC_TERRAFORM_PATH")
	if _, err := os.Stat(tf); err != nil {
		t.Fatalf("the %s CLI is not at TF_ACC_TERRAFORM_PATH=%s: run `%s`", accCLI.product, tf, testenv.Setup)
	}
}

// The suite runs on the CLI AUTARKY_ACC_CLI names, all the way: the
// binary the framework runs is that product, and the provider is served
// and recorded in the state under that CLI's registry, so an OpenTofu pass
// that silently ran Terraform (or mixed the two) fails here.
func TestAccCLI_selected(t *testing.T) {
	preCheckTerraform(t)
	tf := os.Getenv("TF_ACC_TERRAFORM_PATH")
	out, err := exec.Command(tf, "version").Output()
	if err != nil {
		t.Fatalf("%s version: %v", tf, err)
	}
	first, _, _ := strings.Cut(string(out), "\n")
	if !strings.HasPrefix(first, accCLI.product+" v") {
		t.Fatalf("%s=%q wants %s, but %s version says %q", accCLIEnv, os.Getenv(accCLIEnv), accCLI.product, tf, first)
	}
	t.Logf("running on %s", first)
	wantProvider := accCLI.host + "/hashicorp/autarky"
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config: providerBlock(t.TempDir()) + `data "autarky_aws_agent_policy" "cli" {
  cluster_name = "cli"
}
`,
			Check: func(s *terraform.State) error {
				rs := s.RootModule().Resources["data.autarky_aws_agent_policy.cli"]
				if rs == nil {
					return fmt.Errorf("data.autarky_aws_agent_policy.cli is not in the state")
				}
				if rs.Provider != wantProvider {
					return fmt.Errorf("the state records the provider as %s, want %s", rs.Provider, wantProvider)
				}
				return nil
			},
		}},
	})
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
