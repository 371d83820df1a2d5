package agentconfig_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/platform"
	"github.com/autarky/terraform-provider-autarky/internal/platform/local"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
	"github.com/autarky/terraform-provider-autarky/internal/swarm"
	"github.com/autarky/terraform-provider-autarky/internal/testenv"
)

const guide = "templates/guides/adopting.md.tmpl"

// TestAdoptHandBuiltSwarm follows the adopting guide on this machine, its
// commands as the guide writes them: a swarm built by hand (dockerd
// engines the test starts, `docker swarm init` and `docker swarm join`,
// no provider, no Terraform), an agent started with the guide's
// configuration file naming the pool and its healing policy, a worker's
// engine killed: the agent starts a replacement of its own in the pool
// and removes the dead node. The guide's error example is what
// check-config says of the same file with min_size = 5.
func TestAdoptHandBuiltSwarm(t *testing.T) {
	h := newHandmade(t)
	dir, sub, bin, mgr := h.dir, h.sub, h.bin, h.mgr
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	config := sub(testenv.DocBlock(t, guide, "adopt-local-config"))
	if err := os.WriteFile(filepath.Join(dir, "agent.hcl"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	checked := h.bash("adopt-local-check")
	for _, want := range []string{`adopts cluster "handmade" on platform local`, `node_pool "workers": role worker, min_size 2, max_size 4, desired_size 2`,
		"unhealthy_after 5s", "--evaluation-interval=1s\t(" + filepath.Join(dir, "agent.hcl") + ":"} {
		if !strings.Contains(checked, want) {
			t.Errorf("check-config lacks %q:\n%s", want, checked)
		}
	}
	// What exists: the two labelled engines, found through the manager
	// (at the address the swarm saw them connect from).
	if exists := regexp.MustCompile(`(?m)^what exists now:\n  node_pool "workers": 2 instance\(s\): w1 \([0-9.]+, running\), w2 \([0-9.]+, running\); the agent starts from size 2$`); !exists.MatchString(checked) {
		t.Errorf("check-config does not say what exists of pool workers:\n%s", checked)
	}
	if _, err := os.Stat(filepath.Join(dir, "state", "clusters", "handmade", "adopted.json")); err == nil {
		t.Error("check-config recorded the adoption: it only looks")
	}
	bad := strings.Replace(config, "min_size     = 2", "min_size     = 5", 1)
	if err := os.WriteFile(filepath.Join(dir, "bad.hcl"), []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "check-config", "--config", filepath.Join(dir, "bad.hcl")).CombinedOutput()
	want := strings.ReplaceAll(sub(testenv.DocBlock(t, guide, "adopt-local-error")), "agent.hcl", "bad.hcl")
	if err == nil || string(out) != want {
		t.Errorf("check-config of a min_size above max_size: %v\n%s\nthe guide says:\n%s", err, out, want)
	}

	h.startAgent()
	start := time.Now()
	h.bash("adopt-local-kill")

	var replacement string
	if err := mgr.WaitNodes(ctx, "a replacement in pool workers, and the dead w1 removed", func(ns []swarm.Node) bool {
		replacement = ""
		for _, n := range ns {
			inst := n.EngineLabels["autarky.instance"]
			if inst == "w1" {
				return false
			}
			if n.EngineLabels["autarky.pool"] == "workers" && inst != "w2" && n.State == "ready" {
				replacement = inst
			}
		}
		return replacement != ""
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("w1 killed; replacement %s ready and w1 removed after %s", replacement, time.Since(start).Round(100*time.Millisecond))
	// The replacement is the local platform's own engine, in the state dir.
	p, err := local.New(filepath.Join(dir, "state"), nil, local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.ReadCluster(ctx, "handmade"); err == nil {
		t.Error("adoption wrote a cluster descriptor into the state dir: the file owns the configuration")
	}
	if _, err := os.Stat(filepath.Join(dir, "state", "nodes")); err != nil {
		t.Errorf("the replacement is not in the state dir: %v", err)
	}
	// Terraform's view: a cluster of the adopted name is refused.
	c := policy.Cluster{Name: "handmade", Platform: policy.PlatformLocal, ManagerCount: 1, HeartbeatPeriod: "1s"}
	if _, err := p.CreateCluster(ctx, c); !errors.Is(err, platform.ErrExists) || !strings.Contains(err.Error(), "adopted by an agent's configuration file") {
		t.Errorf("creating a cluster under the adopted name: %v", err)
	}
}

func ready(ns []swarm.Node) int {
	n := 0
	for _, x := range ns {
		if x.State == "ready" {
			n++
		}
	}
	return n
}
