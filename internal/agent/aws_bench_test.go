package agent_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/autarky/terraform-provider-autarky/internal/agent"
	"github.com/autarky/terraform-provider-autarky/internal/platform/aws"
	"github.com/autarky/terraform-provider-autarky/internal/platform/group"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
	"github.com/autarky/terraform-provider-autarky/internal/testenv"
)

// BenchmarkAWSWorkerMTTR: the ASG path of BenchmarkWorkerMTTR. An agent
// on AWS (moto, through the proxy) heals pool "web" of 2 workers whose
// nodes cloud-init (the test) boots as local guests; heartbeat 1s,
// unhealthy_after 2s; each op kills one worker's dockerd. Measured: kill
// to the replacement instance's node Ready, beside the floor (Swarm's Down
// detection + unhealthy_after + the replacement guest's boot).
func BenchmarkAWSWorkerMTTR(b *testing.B) {
	const unhealthyAfter = 2 * time.Second
	c := newCloud(b, "bwa", 2)
	c.runAgent()
	var runs []mttr
	for i := 0; i < b.N; i++ {
		before, _, err := c.inService(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		victim := c.anyWorker()
		start := time.Now()
		c.h.kill(c.guestOf(victim))
		var m mttr
		c.h.waitFor("the replacement to be ready", 2*time.Minute, func() (bool, string) {
			ns, err := c.h.nodes()
			if err != nil {
				return false, err.Error()
			}
			now := time.Now()
			for _, n := range ns {
				id := n.EngineLabels[policy.LabelInstance]
				if id == victim && n.State != "ready" && m.detect == 0 {
					m.detect = now.Sub(start)
				}
				if id != "" && !before[id] && n.Role == policy.RoleWorker && n.State == "ready" {
					m.total = now.Sub(start)
					c.mu.Lock()
					m.boot = c.boots[id]
					c.mu.Unlock()
					return true, ""
				}
			}
			return false, "waiting"
		})
		runs = append(runs, m)
		c.waitWorkers(2, time.Minute)
		c.waitJournalEmpty(time.Minute)
	}
	report(b, runs, unhealthyAfter)
}

// BenchmarkAWSCallsPerEvaluation counts, at the proxy, the AWS calls of
// one agent evaluation for a cluster of p pools with n instances each (no
// policy acts, so this is the steady-state read cost). Groups are
// described in batches of 100, so Auto Scaling describes stay at
// ceil(groups/100) whatever the number of instances.
func BenchmarkAWSCallsPerEvaluation(b *testing.B) {
	const maxSSMReadsPerEvaluation = 2
	for _, size := range []struct{ pools, perPool int }{{1, 1}, {10, 1}, {10, 3}, {100, 1}} {
		b.Run(fmt.Sprintf("pools=%d/instances=%d", size.pools, size.perPool), func(b *testing.B) {
			h := newHarness(b, fmt.Sprintf("ce%d-%d", size.pools, size.perPool), 1, false)
			moto := testenv.StartMoto(b)
			proxy := testenv.NewAWSProxy(b, moto)
			proxy.SetFault(testenv.NoRefreshes(nil))
			ami, subnet, sg := testenv.MotoNetwork(b, moto)
			p := aws.NewPlatform(aws.NewClients(clientConfig(moto), aws.Config{}, nil), nil)
			p.Poll = 50 * time.Millisecond
			ctx := context.Background()
			if _, err := p.CreateCluster(ctx, policy.Cluster{Name: h.name, Platform: policy.PlatformAWS, ManagerCount: 1, HeartbeatPeriod: "1s",
				AWS: &policy.AWS{AMI: ami, InstanceType: "t3.micro", Subnets: []string{subnet}, SecurityGroups: []string{sg}}}); err != nil {
				b.Fatal(err)
			}
			for i := 0; i < size.pools; i++ {
				n := int64(size.perPool)
				if _, err := p.CreatePool(ctx, policy.Pool{Cluster: h.name, Name: fmt.Sprintf("p%d", i), Role: policy.RoleWorker,
					MinSize: 0, MaxSize: 5, DesiredSize: n, WaitForCapacityTimeout: "0s"}, 0); err != nil {
					b.Fatal(err)
				}
			}
			cl, err := aws.NewCluster(aws.NewClients(clientConfig(proxy.URL), aws.Config{}, nil), h.name, nil)
			if err != nil {
				b.Fatal(err)
			}
			var host string
			for _, r := range h.records(policy.ManagerPoolName) {
				host = r.DockerHost
			}
			a, err := agent.New(agent.Config{DockerHost: host, Listen: "127.0.0.1:0", Logger: hclog.NewNullLogger()}, cl)
			if err != nil {
				b.Fatal(err)
			}
			a.Evaluate(ctx)
			proxy.Reset()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				// Evaluations come GenerationRecheck apart at least (the
				// default interval is 2s), so each reads the store's
				// generation: the steady state, not a burst.
				b.StopTimer()
				time.Sleep(group.GenerationRecheck)
				b.StartTimer()
				a.Evaluate(ctx)
			}
			b.StopTimer()
			counts := proxy.CallCounts()
			total := 0
			for _, n := range counts {
				total += n
			}
			per := func(n int) float64 { return float64(n) / float64(b.N) }
			b.ReportMetric(per(counts["DescribeAutoScalingGroups"]), "asg-describes/eval")
			b.ReportMetric(per(counts["DescribeInstances"]), "ec2-describes/eval")
			b.ReportMetric(per(counts["GetParametersByPath"]+counts["GetParameter"]+counts["GetParameters"]), "ssm-reads/eval")
			b.ReportMetric(per(total), "aws-calls/eval")
			// The configuration (descriptor, pools, policies) is read
			// again only when the store's generation moves: one SSM read
			// per evaluation for it, and one for the journal, whatever
			// the number of pools.
			if reads := counts["GetParametersByPath"] + counts["GetParameter"] + counts["GetParameters"]; reads > maxSSMReadsPerEvaluation*b.N {
				b.Errorf("%d SSM reads in %d evaluations of %d pools: want at most %d per evaluation, the same at any number of pools (%v)", reads, b.N, size.pools, maxSSMReadsPerEvaluation, counts)
			}
			if want := (size.pools + 1 + 99) / 100; counts["DescribeAutoScalingGroups"] > want*b.N {
				b.Errorf("%d DescribeAutoScalingGroups in %d evaluations of %d groups: want at most %d per evaluation", counts["DescribeAutoScalingGroups"], b.N, size.pools+1, want)
			}
		})
	}
}
