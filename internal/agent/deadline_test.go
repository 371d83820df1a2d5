package agent_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/autarky/terraform-provider-autarky/internal/agent"
	"github.com/autarky/terraform-provider-autarky/internal/platform/aws"
	"github.com/autarky/terraform-provider-autarky/internal/swarm"
	"github.com/autarky/terraform-provider-autarky/internal/testenv"
)

// hungEvaluations runs n evaluations against an endpoint that hangs, each
// followed by the evaluation interval, as the loop runs them. Every one
// must end near deadline (at least 90 % of it, at most deadline + 3 s: far
// below the evaluation's own deadline of minutes). It returns their mean
// duration and the evaluations per hour that end at a call deadline:
// 3600 s / (interval + mean duration).
func hungEvaluations(t *testing.T, a *agent.Agent, n int, interval, deadline time.Duration, during func()) (time.Duration, float64) {
	t.Helper()
	var total time.Duration
	for i := 0; i < n; i++ {
		start := time.Now()
		done := make(chan struct{})
		go func() { defer close(done); a.Evaluate(context.Background()) }()
		if i == 0 && during != nil {
			during()
		}
		select {
		case <-done:
		case <-time.After(deadline + 20*time.Second):
			t.Fatalf("an evaluation through a hung endpoint still runs after %s: the call has no deadline of its own", deadline+20*time.Second)
		}
		took := time.Since(start)
		if took < deadline*9/10 || took > deadline+3*time.Second {
			t.Fatalf("evaluation %d through a hung endpoint took %s: want about the call deadline, %s", i+1, took, deadline)
		}
		total += took
		time.Sleep(interval)
	}
	mean := total / time.Duration(n)
	return mean, 3600 / (interval + mean).Seconds()
}

// getWithin is an HTTP GET that gives up after d: an answer proves the
// handler did not wait on a lock a hung call holds.
func getWithin(url string, d time.Duration) (string, int, error) {
	c := &http.Client{Timeout: d}
	resp, err := c.Get(url)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	b := make([]byte, 4096)
	n, _ := resp.Body.Read(b)
	return string(b[:n]), resp.StatusCode, nil
}

// Item 2: a Docker endpoint that hangs ends every call at its deadline.
// The manager's engine stops answering GET /nodes: each evaluation ends at
// the read deadline with an error naming the call, /v1/status answers
// meanwhile (no lock is held across the call), and three such evaluations
// make /healthz answer 503. Then the engine hangs the node removal of the
// dead worker: the removal worker gives up at the write deadline and the
// step is retried later, while evaluations go on. Once the engine answers
// again the next evaluations heal the killed worker.
func TestHungDockerEndpointEndsAtCallDeadline(t *testing.T) {
	h := newHarness(t, "hd", 1, false)
	h.pool("web", 1, healing("hd/web", "1s"))
	victim := h.instances("web")[0].ID
	victimNode := h.nodeOf(victim)
	p := h.proxy()
	const interval = time.Second
	deadlines := swarm.Deadlines{Read: time.Second, Write: 2 * time.Second}
	a, err := agent.New(agent.Config{
		DockerHost: p.Host, Listen: "127.0.0.1:0", EvaluationInterval: interval, DrainTimeout: 3 * time.Second,
		CallDeadlines: deadlines,
		Logger:        hclog.New(&hclog.LoggerOptions{Name: "agent", Output: testWriter{t}, Level: hclog.Debug}),
	}, h.c)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Handler())
	defer srv.Close()
	a.Evaluate(context.Background())
	if body, code, err := getWithin(srv.URL+"/healthz", 2*time.Second); err != nil || code != http.StatusOK {
		t.Fatalf("/healthz before the hang: %d %s %v", code, body, err)
	}

	p.Fault(func(c testenv.DockerCall) *testenv.DockerFault {
		if c.Method == http.MethodGet && c.Path == "/nodes" {
			return &testenv.DockerFault{Hang: true}
		}
		return nil
	})
	h.kill(victim)
	mean, perHour := hungEvaluations(t, a, 4, interval, deadlines.Read, func() {
		time.Sleep(300 * time.Millisecond) // inside the hung node list
		if _, code, err := getWithin(srv.URL+"/v1/status", time.Second); err != nil || code != http.StatusOK {
			t.Errorf("/v1/status during a hung call: %d %v", code, err)
		}
	})
	t.Logf("hung GET /nodes: evaluations end after %s on average; %.0f evaluations per hour end at the call deadline (3600 s / (interval %s + %s))",
		mean.Round(time.Millisecond), perHour, interval, mean.Round(time.Millisecond))
	st := a.Status()
	if !strings.Contains(st.Error, "did not answer GET /nodes within its deadline of 1s") {
		t.Fatalf("the evaluation's error does not name the hung call: %q", st.Error)
	}
	if body, code, err := getWithin(srv.URL+"/healthz", 2*time.Second); err != nil || code != http.StatusServiceUnavailable || !strings.Contains(body, "within its deadline") {
		t.Fatalf("/healthz after evaluations ended by a hung call: %d %s %v", code, body, err)
	}

	// The node list answers again; the dead node's removal hangs.
	p.Fault(func(c testenv.DockerCall) *testenv.DockerFault {
		if c.Method == http.MethodDelete && c.Path == "/nodes/"+victimNode {
			return &testenv.DockerFault{Hang: true}
		}
		return nil
	})
	h.nodeDown(victim, 30*time.Second)
	h.evaluateUntil(a, "the hung node removal given up at its deadline and retried later", 2*time.Minute, func() (bool, string) {
		for _, e := range h.journal().Entries {
			if e.Action.NodeID == victimNode && e.Attempts >= 1 {
				return strings.Contains(e.LastError, "within its deadline of 2s"), e.LastError
			}
		}
		return false, fmt.Sprintf("%+v", h.journal().Entries)
	})
	if p.Calls(http.MethodDelete, "/nodes/"+victimNode) == 0 {
		t.Fatal("the removal never reached the engine")
	}
	// While the removal hangs, evaluations are not held up.
	start := time.Now()
	a.Evaluate(context.Background())
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("an evaluation beside a hung removal took %s", took)
	}

	p.Fault(nil)
	h.evaluateUntil(a, "the killed worker healed once the engine answers", 2*time.Minute, func() (bool, string) {
		ok, detail := h.settled("web", "worker", 1)
		return ok && len(h.journal().Entries) == 0, detail
	})
	if body, code, err := getWithin(srv.URL+"/healthz", 2*time.Second); err != nil || code != http.StatusOK {
		t.Fatalf("/healthz once healed: %d %s %v", code, body, err)
	}
}

// Item 2: an AWS endpoint that hangs ends every call at its deadline. The
// Auto Scaling endpoint stops answering DescribeAutoScalingGroups: each
// evaluation ends at the operation deadline with an error naming the
// operation, never read as "not now"; once it answers again the next
// evaluations heal the killed worker through the group.
func TestHungAWSEndpointEndsAtCallDeadline(t *testing.T) {
	c := newCloud(t, "hungaws", 2)
	deadlines := aws.Deadlines{Attempt: 500 * time.Millisecond, Operation: 2 * time.Second}
	c.agentC = aws.NewClients(c.agentCfg, aws.Config{
		Retry:     aws.RetryConfig{MaxAttempts: 6, BaseDelay: 20 * time.Millisecond, MaxDelay: 200 * time.Millisecond},
		Deadlines: deadlines,
	}, nil)
	cl, err := aws.NewCluster(c.agentC, c.h.name, nil)
	if err != nil {
		t.Fatal(err)
	}
	const interval = 500 * time.Millisecond
	a, err := agent.New(agent.Config{DockerHost: c.leaderHost, Listen: "127.0.0.1:0", EvaluationInterval: interval, DrainTimeout: 10 * time.Second,
		Logger: hclog.New(&hclog.LoggerOptions{Name: "agent", Output: testWriter{t}, Level: hclog.Info})}, cl)
	if err != nil {
		t.Fatal(err)
	}
	a.Evaluate(context.Background())
	if st := a.Status(); st.Error != "" {
		t.Fatalf("evaluation before the hang: %s", st.Error)
	}

	c.proxy.SetFault(testenv.NoRefreshes(func(call testenv.AWSCall) *testenv.AWSFault {
		if call.Action == "DescribeAutoScalingGroups" {
			return &testenv.AWSFault{Hang: true}
		}
		return nil
	}))
	victim := c.anyWorker()
	c.h.kill(c.guestOf(victim))
	mean, perHour := hungEvaluations(t, a, 4, interval, deadlines.Operation, nil)
	t.Logf("hung DescribeAutoScalingGroups: evaluations end after %s on average; %.0f evaluations per hour end at the call deadline (3600 s / (interval %s + %s))",
		mean.Round(time.Millisecond), perHour, interval, mean.Round(time.Millisecond))
	st := a.Status()
	if !strings.Contains(st.Error, "DescribeAutoScalingGroups did not finish within its deadline of 2s") {
		t.Fatalf("the evaluation's error does not name the hung operation: %q", st.Error)
	}
	if !strings.Contains(st.Health, "evaluations in a row failed") {
		t.Fatalf("healthy after evaluations ended by a hung AWS endpoint (a hung endpoint is no \"not now\"): %q", st.Health)
	}

	c.proxy.SetFault(testenv.NoRefreshes(nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = a.Run(ctx) }()
	defer func() { cancel(); <-done }()
	c.h.nodeDown(victim, 30*time.Second)
	c.waitWorkers(2, 2*time.Minute)
	c.waitJournalEmpty(time.Minute)
	if st := a.Status(); st.Health != "ok" {
		t.Fatalf("unhealthy once healed: %q", st.Health)
	}
}
