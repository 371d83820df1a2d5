package local

import (
	"context"
	"testing"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/policy"
	"github.com/autarky/terraform-provider-autarky/internal/swarm"
	"github.com/autarky/terraform-provider-autarky/internal/testenv"
)

// BenchmarkNodeBoot measures one worker's boot: dockerd process start to
// Ready in Swarm, through the join. It is the floor of every healing figure.
func BenchmarkNodeBoot(b *testing.B) {
	testenv.RequireLocalPlatform(b)
	ctx := context.Background()
	p, err := New(testenv.StateDir(b), nil, Options{})
	if err != nil {
		b.Fatal(err)
	}
	st, err := p.CreateCluster(ctx, policy.Cluster{Name: "boot", Platform: "local", ManagerCount: 1, HeartbeatPeriod: "1s"})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = p.DeleteCluster(context.Background(), "boot") }()
	if _, err := p.recordPool(policy.Pool{Cluster: "boot", Name: "w", Role: "worker", MaxSize: 100, WaitForCapacityTimeout: "1m"}, true); err != nil {
		b.Fatal(err)
	}
	mgr, err := swarm.Dial(st.DockerHost)
	if err != nil {
		b.Fatal(err)
	}
	defer mgr.Close()
	pool := policy.Pool{Cluster: "boot", Name: "w", Role: "worker"}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f, err := p.startAndJoin(ctx, "boot", pool)
		if err != nil {
			b.Fatal(err)
		}
		if err := p.waitReady(ctx, mgr, []instanceFile{f}, time.Minute); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := p.retireNode(ctx, mgr, f, false); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/boot")
}
