package agent_test

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/agent"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
	"github.com/autarky/terraform-provider-autarky/internal/swarm"
)

// waitRunning polls the manager every 5 ms until service asks for want
// replicas (written) and runs them (running), and returns when it saw
// each.
func waitRunning(b *testing.B, c *swarm.Client, service string, want int) (written, running time.Time) {
	b.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		s, found, err := c.Service(context.Background(), service)
		if err == nil && found && s.Replicas >= want && written.IsZero() {
			written = time.Now()
		}
		if err == nil && found && s.Running >= want {
			return written, time.Now()
		}
		time.Sleep(5 * time.Millisecond)
	}
	b.Fatalf("service %s never ran %d tasks", service, want)
	return
}

// BenchmarkServiceAlertToReplica measures, on a local swarm, the time from
// an Alertmanager post (service=web, scale=up) reaching a running agent to
// the new replica running (ms-alert-to-running) and to the replicas written
// (ms-alert-to-written, the agent's own part), beside what the same
// step takes when written straight to the Engine API as docker-scaler does
// on its post (ms-direct-to-running: read the service, write replicas + 1,
// wait for the task): Swarm's scheduling and the container's start are the
// floor both share.
func BenchmarkServiceAlertToReplica(b *testing.B) {
	h := newHarnessWith(b, "sb", 1, false, "1s", true)
	h.service("web", 1, "autarky.replicas.max=1000", "autarky.scale.cooldown_up=0s")
	host := h.records(policy.ManagerPoolName)[0].DockerHost
	c, err := swarm.Dial(host)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	_, _ = waitRunning(b, c, "web", 1)
	// The agent runs its own loop, at a 2 s interval: the alert wakes it.
	a, err := agent.New(agentConfig(h, host, false), h.c)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = a.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	srv := httptest.NewServer(a.Handler())
	defer srv.Close()
	time.Sleep(2 * time.Second) // the first evaluations are done

	var viaAgent, toWrite, direct []time.Duration
	replicas := 1
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		postAlert(b, srv.URL, "firing", "alertname", "web_load", "service", "web", "scale", "up")
		replicas++
		written, running := waitRunning(b, c, "web", replicas)
		viaAgent, toWrite = append(viaAgent, running.Sub(start)), append(toWrite, written.Sub(start))

		start = time.Now()
		s, _, err := c.Service(context.Background(), "web")
		if err != nil {
			b.Fatal(err)
		}
		if err := c.SetReplicas(context.Background(), s, s.Replicas+1); err != nil {
			b.Fatal(err)
		}
		replicas++
		_, running = waitRunning(b, c, "web", replicas)
		direct = append(direct, running.Sub(start))
	}
	b.StopTimer()
	b.ReportMetric(float64(median(viaAgent).Milliseconds()), "ms-alert-to-running")
	b.ReportMetric(float64(median(toWrite).Milliseconds()), "ms-alert-to-written")
	b.ReportMetric(float64(median(direct).Milliseconds()), "ms-direct-to-running")
	b.Logf("alert -> new replica running: %v; alert -> replicas written: %v; the same step written directly (docker-scaler's path): %v", viaAgent, toWrite, direct)
}
