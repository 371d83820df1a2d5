package local

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/policy"
	"github.com/autarky/terraform-provider-autarky/internal/testenv"
)

// A service of the workload image runs on the pool's nodes, placed by the
// pool's labels, with no registry anywhere.
func TestWorkloadServiceRuns(t *testing.T) {
	testenv.RequireLocalPlatform(t)
	t.Parallel()
	bin := testenv.AgentBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	dir := testenv.StateDir(t)
	p, err := New(dir, nil, Options{WorkloadBinary: bin})
	if err != nil {
		t.Fatal(err)
	}
	st, err := p.CreateCluster(ctx, policy.Cluster{Name: "wl", Platform: "local", ManagerCount: 1, HeartbeatPeriod: "1s"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.DeleteCluster(context.Background(), "wl") })
	pool := policy.Pool{Cluster: "wl", Name: "web", Role: "worker", MaxSize: 3, DesiredSize: 2, Labels: map[string]string{"tier": "web"}, WaitForCapacityTimeout: "1m"}
	if _, err := p.CreatePool(ctx, pool, time.Minute); err != nil {
		t.Fatal(err)
	}
	testenv.Docker(t, st.DockerHost, "service", "create", "--detach", "--name", "web", "--replicas", "2",
		"--constraint", "node.labels.tier==web", "autarky/workload:latest")
	deadline := time.Now().Add(90 * time.Second)
	for {
		out := testenv.Docker(t, st.DockerHost, "service", "ps", "web", "--filter", "desired-state=running", "--format", "{{.Node}} {{.CurrentState}}")
		running := 0
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, "Running") && strings.HasPrefix(line, "wl-web-") {
				running++
			}
		}
		if running == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("service tasks not running on the pool's nodes:\n%s", out)
		}
		time.Sleep(500 * time.Millisecond)
	}

	// Destroying the cluster ends the containers too, and their cgroups.
	insts, err := p.instances("wl", "")
	if err != nil {
		t.Fatal(err)
	}
	withContainers := 0
	for _, f := range insts {
		if dirs, _ := filepath.Glob("/sys/fs/cgroup/*/" + cgroupParent(f) + "/*"); len(dirs) > 0 {
			withContainers++
		}
	}
	if withContainers != 2 {
		t.Fatalf("%d nodes run containers in their own cgroup, want 2", withContainers)
	}
	if err := p.DeletePool(ctx, "wl", "web"); err != nil {
		t.Fatal(err)
	}
	if err := p.DeleteCluster(ctx, "wl"); err != nil {
		t.Fatal(err)
	}
	for _, f := range insts {
		if left := nodeProcesses(f); len(left) > 0 {
			t.Errorf("processes of %s left: %v", f.ID, left)
		}
		if dirs, _ := filepath.Glob("/sys/fs/cgroup/*/" + cgroupParent(f)); len(dirs) > 0 {
			t.Errorf("cgroups of %s left: %v", f.ID, dirs)
		}
	}
}
