package local

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/platform"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
	"github.com/autarky/terraform-provider-autarky/internal/swarm"
	"github.com/autarky/terraform-provider-autarky/internal/testenv"
)

func TestClusterLifecycle(t *testing.T) {
	testenv.RequireLocalPlatform(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir := testenv.StateDir(t)
	p, err := New(dir, func(msg string, kv ...any) { t.Log(append([]any{msg}, kv...)...) }, Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := policy.Cluster{Name: "life", Platform: "local", ManagerCount: 3, HeartbeatPeriod: "1s", Labels: map[string]string{"env": "test"}}
	st, err := p.CreateCluster(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.DeleteCluster(context.Background(), "life") })
	if st.LiveManagers != 3 || len(st.ManagerAddresses) != 3 {
		t.Fatalf("status after create: %+v", st)
	}
	if _, err := p.CreateCluster(ctx, c); !errors.Is(err, ErrClusterExists) {
		t.Fatalf("second cluster of the same name: got %v, want ErrClusterExists", err)
	}

	pool := policy.Pool{Cluster: "life", Name: "web", Role: "worker", MinSize: 0, MaxSize: 5, DesiredSize: 2, Labels: map[string]string{"tier": "web"}, WaitForCapacityTimeout: "2m"}
	ps, err := p.CreatePool(ctx, pool, 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if ps.CurrentSize != 2 || len(ps.NodeIDs) != 2 {
		t.Fatalf("pool status: %+v", ps)
	}
	cli, err := swarm.Dial(st.DockerHost)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	nodes, err := cli.Nodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	workers := 0
	for _, n := range nodes {
		if n.State != "ready" {
			t.Errorf("node %s is %s", n.Hostname, n.State)
		}
		if n.Role == "worker" {
			workers++
			if n.Labels["tier"] != "web" || n.Labels[policy.LabelPool] != "web" || n.EngineLabels[policy.LabelInstance] != n.Hostname {
				t.Errorf("worker %s labels %v engine labels %v", n.Hostname, n.Labels, n.EngineLabels)
			}
		}
	}
	if len(nodes) != 5 || workers != 2 {
		t.Fatalf("want 3 managers and 2 workers, got %+v", nodes)
	}

	if err := p.DeletePool(ctx, "life", "web"); err != nil {
		t.Fatal(err)
	}
	if err := p.DeleteCluster(ctx, "life"); err != nil {
		t.Fatal(err)
	}
	if left := testenv.Leftovers(dir); len(left) > 0 {
		t.Fatalf("left behind: %v", left)
	}
	if entries, _ := os.ReadDir(filepath.Join(dir, "nodes")); len(entries) > 0 {
		t.Fatalf("node directories left: %v", entries)
	}
	if _, _, err := p.ReadCluster(ctx, "life"); !errors.Is(err, platform.ErrNotFound) {
		t.Fatalf("read after delete: %v", err)
	}
}
