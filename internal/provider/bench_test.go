package provider

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/autarky/terraform-provider-autarky/internal/testenv"
)

// cli runs the real CLI the suite runs on (Terraform, or OpenTofu with
// AUTARKY_ACC_CLI=tofu) against the real provider binary, the way a
// user does (dev_overrides instead of a registry).
type cli struct {
	tb       testing.TB
	dir, tf  string
	stateDir string
	env      []string
}

func newCLI(tb testing.TB) *cli {
	tb.Helper()
	testenv.RequireLocalPlatform(tb)
	tf := os.Getenv("TF_ACC_TERRAFORM_PATH")
	if _, err := os.Stat(tf); err != nil {
		tb.Fatalf("the %s CLI is not at TF_ACC_TERRAFORM_PATH=%s: run `%s`", accCLI.product, tf, testenv.Setup)
	}
	bin := tb.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(bin, "terraform-provider-autarky"), "github.com/autarky/terraform-provider-autarky")
	if out, err := build.CombinedOutput(); err != nil {
		tb.Fatalf("go build provider: %v\n%s", err, out)
	}
	dir := tb.TempDir()
	rc := filepath.Join(dir, "terraformrc")
	if err := os.WriteFile(rc, []byte(fmt.Sprintf("provider_installation {\n  dev_overrides {\n    \"autarky/autarky\" = %q\n  }\n  direct {}\n}\n", bin)), 0o600); err != nil {
		tb.Fatal(err)
	}
	return &cli{tb: tb, dir: dir, tf: tf, stateDir: testenv.StateDir(tb), env: append(os.Environ(), "TF_CLI_CONFIG_FILE="+rc, "TF_IN_AUTOMATION=1")}
}

func (c *cli) apply(workers int) {
	c.tb.Helper()
	cfg := fmt.Sprintf(`terraform {
  required_providers {
    autarky = { source = "autarky/autarky" }
  }
}
provider "autarky" {
  local { state_dir = %q }
}
resource "autarky_cluster" "bench" {
  name          = "bench"
  manager_count = 3
}
resource "autarky_node_pool" "web" {
  cluster_id   = autarky_cluster.bench.id
  name         = "web"
  max_size     = 10
  desired_size = %d
}
`, c.stateDir, workers)
	if err := os.WriteFile(filepath.Join(c.dir, "main.tf"), []byte(cfg), 0o600); err != nil {
		c.tb.Fatal(err)
	}
	c.run("apply", "-auto-approve", "-input=false")
}

func (c *cli) run(args ...string) {
	c.tb.Helper()
	cmd := exec.Command(c.tf, args...)
	cmd.Dir, cmd.Env = c.dir, c.env
	if out, err := cmd.CombinedOutput(); err != nil {
		c.tb.Fatalf("terraform %v: %v\n%s", args, err, out)
	}
}

// BenchmarkApplyCluster: `terraform apply` of 3 managers and 2 workers, to
// every node Ready in Swarm (wait_for_capacity_timeout's default).
func BenchmarkApplyCluster(b *testing.B) {
	c := newCLI(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c.apply(2)
		b.StopTimer()
		c.run("destroy", "-auto-approve", "-input=false")
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/apply")
}

// BenchmarkAddWorker: `terraform apply` that grows a pool by one worker, to Ready.
func BenchmarkAddWorker(b *testing.B) {
	c := newCLI(b)
	c.apply(2)
	defer c.run("destroy", "-auto-approve", "-input=false")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c.apply(3)
		b.StopTimer()
		c.apply(2)
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/add")
}
