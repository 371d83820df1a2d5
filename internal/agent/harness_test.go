package agent_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/autarky/terraform-provider-autarky/internal/agent"
	"github.com/autarky/terraform-provider-autarky/internal/platform"
	"github.com/autarky/terraform-provider-autarky/internal/platform/local"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
	"github.com/autarky/terraform-provider-autarky/internal/swarm"
	"github.com/autarky/terraform-provider-autarky/internal/testenv"
)

// harness is a real local cluster for agent tests: real dockerd nodes in a
// real swarm, and either agent processes beside the managers or an agent
// driven in-process, one evaluation at a time.
type harness struct {
	t        testing.TB
	name     string
	stateDir string
	p        *local.Platform
	c        *local.Cluster
}

var agentBin string

func newHarness(t testing.TB, name string, managers int64, agentProcesses bool) *harness {
	t.Helper()
	return newHarnessEvery(t, name, managers, agentProcesses, "500ms")
}

// newHarnessEvery is newHarness with the agents' evaluation interval.
func newHarnessEvery(t testing.TB, name string, managers int64, agentProcesses bool, interval string) *harness {
	t.Helper()
	return newHarnessWith(t, name, managers, agentProcesses, interval, false)
}

// newHarnessWith can also load the workload image into every node.
func newHarnessWith(t testing.TB, name string, managers int64, agentProcesses bool, interval string, workload bool) *harness {
	t.Helper()
	bin := ""
	if workload {
		bin = ensureAgentBin(t)
	}
	return newHarnessWorkload(t, name, managers, agentProcesses, interval, bin)
}

// ensureAgentBin builds the agent once per test binary, into a file that
// outlives the test that built it.
func ensureAgentBin(t testing.TB) string {
	t.Helper()
	if agentBin == "" {
		bin := testenv.AgentBinary(t)
		dst := filepath.Join(os.TempDir(), fmt.Sprintf("autarky-agent-test-%d", os.Getpid()))
		b, err := os.ReadFile(bin)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o755); err != nil {
			t.Fatal(err)
		}
		agentBin = dst
	}
	return agentBin
}

// newHarnessWorkload loads workloadBinary ("" = none) into every node as
// the workload image.
func newHarnessWorkload(t testing.TB, name string, managers int64, agentProcesses bool, interval, workloadBinary string) *harness {
	t.Helper()
	testenv.RequireLocalPlatform(t)
	ensureAgentBin(t)
	h := &harness{t: t, name: name, stateDir: testenv.StateDir(t)}
	var err error
	opts := local.Options{WorkloadBinary: workloadBinary}
	h.p, err = local.New(h.stateDir, func(msg string, kv ...any) { t.Log(append([]any{msg}, kv...)...) }, opts)
	if err != nil {
		t.Fatal(err)
	}
	h.c = h.p.Cluster(name)
	c := policy.Cluster{Name: name, Platform: "local", ManagerCount: managers, HeartbeatPeriod: "1s"}
	if agentProcesses {
		c.Agent = &policy.Agent{Enabled: true, Binary: agentBin, EvaluationInterval: interval}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if _, err := h.p.CreateCluster(ctx, c); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			h.dumpAgentLogs()
		}
		if err := h.p.DeleteCluster(context.Background(), name); err != nil {
			t.Errorf("delete cluster: %v", err)
		}
		if left := testenv.Leftovers(h.stateDir); len(left) > 0 {
			t.Errorf("left behind: %v", left)
		}
	})
	return h
}

func (h *harness) pool(name string, size int64, heal *policy.Healing) policy.Pool {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	p := policy.Pool{Cluster: h.name, Name: name, Role: "worker", MinSize: 0, MaxSize: 20, DesiredSize: size, WaitForCapacityTimeout: "2m"}
	if _, err := h.p.CreatePool(ctx, p, 2*time.Minute); err != nil {
		h.t.Fatal(err)
	}
	if heal != nil {
		h.heal(*heal)
	}
	return p
}

func (h *harness) heal(hp policy.Healing) {
	h.t.Helper()
	if err := h.p.PutHealingPolicy(context.Background(), hp); err != nil {
		h.t.Fatal(err)
	}
}

// healing is a policy for tests: quick to judge a node failed.
func healing(poolID string, unhealthyAfter string) *policy.Healing {
	hp := policy.DefaultHealing(poolID)
	hp.UnhealthyAfter, hp.MinNodeAge = unhealthyAfter, "0s"
	return &hp
}

// instanceRecord is an instance record of the state dir.
type instanceRecord = testenv.Record

// records reads the platform's instance records, as an operator would.
func (h *harness) records(pool string) []instanceRecord {
	return testenv.Records(h.stateDir, h.name, pool)
}

func (h *harness) instances(pool string) []platform.Instance {
	all, err := h.c.Instances(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	var out []platform.Instance
	for _, i := range all {
		if pool == "" || i.Pool == pool {
			out = append(out, i)
		}
	}
	return out
}

// kill kill -9s an instance's dockerd, as a machine failure would.
func (h *harness) kill(id string) {
	h.t.Helper()
	for _, r := range h.records("") {
		if r.ID == id {
			if err := syscall.Kill(r.PID, syscall.SIGKILL); err != nil {
				h.t.Fatalf("kill %s: %v", id, err)
			}
			h.t.Logf("killed %s (pid %d)", id, r.PID)
			return
		}
	}
	h.t.Fatalf("no instance %s", id)
}

// nodes lists the swarm's nodes through any manager that answers.
func (h *harness) nodes() (ns []swarm.Node, err error) {
	err = h.onManager(func(ctx context.Context, cli *swarm.Client) (err error) {
		ns, err = cli.Nodes(ctx)
		return err
	})
	return ns, err
}

// tokens reads the swarm's join tokens through any manager that answers.
func (h *harness) tokens() (t swarm.Tokens, err error) {
	err = h.onManager(func(ctx context.Context, cli *swarm.Client) (err error) {
		t, err = cli.JoinTokens(ctx)
		return err
	})
	return t, err
}

// onManager runs f against the first manager that answers it.
func (h *harness) onManager(f func(context.Context, *swarm.Client) error) error {
	var last error
	for _, r := range h.records(policy.ManagerPoolName) {
		cli, err := swarm.Dial(r.DockerHost)
		if err != nil {
			continue
		}
		// As long as the agent's own read deadline: a manager busy with a
		// membership change on two loaded cores can take more than a few
		// seconds, and a slow answer is not a missing leader.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = f(ctx, cli)
		cancel()
		cli.Close()
		if err == nil {
			return nil
		}
		last = err
	}
	return fmt.Errorf("no manager answers: %v", last)
}

func (h *harness) waitFor(what string, timeout time.Duration, cond func() (bool, string)) {
	h.t.Helper()
	testenv.WaitFor(h.t, what, timeout, cond)
}

// settled is true when the pool has want Ready nodes and the swarm lists no
// other node of the pool (no ghost).
func (h *harness) settled(pool, role string, want int) (bool, string) {
	ns, err := h.nodes()
	if err != nil {
		return false, err.Error()
	}
	ready, other := 0, []string{}
	for _, n := range ns {
		if n.EngineLabels[policy.LabelPool] != pool {
			continue
		}
		if n.State == "ready" && n.Role == role && (role != "manager" || n.Reachability == "reachable") {
			ready++
		} else {
			other = append(other, n.Hostname+":"+n.State+"/"+n.Role+"/"+n.Reachability)
		}
	}
	return ready == want && len(other) == 0, fmt.Sprintf("%d ready %s nodes in %s, others %v", ready, role, pool, other)
}

// agentURL is the HTTP address of the agent beside a manager record.
func agentURL(r instanceRecord) string {
	return fmt.Sprintf("http://%s:%d", r.Addr, policy.AgentPort)
}

func get(url string) (string, error) {
	client := &http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var sb strings.Builder
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		sb.WriteString(sc.Text())
		sb.WriteByte('\n')
	}
	return sb.String(), nil
}

// metric reads one sample's value from an agent's /metrics.
func metric(url, series string) (float64, bool) {
	body, err := get(url + "/metrics")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, series+" ") {
			var v float64
			fmt.Sscanf(strings.TrimPrefix(line, series+" "), "%g", &v)
			return v, true
		}
	}
	return 0, false
}

// leaders counts the agents that report autarky_leader 1, and returns one
// leader's URL.
func (h *harness) leaders() (int, string) {
	n, url := 0, ""
	for _, r := range h.records(policy.ManagerPoolName) {
		if v, ok := metric(agentURL(r), "autarky_leader"); ok && v == 1 {
			n++
			url = agentURL(r)
		}
	}
	return n, url
}

func (h *harness) status(url string) agent.Status {
	h.t.Helper()
	body, err := get(url + "/v1/status")
	if err != nil {
		h.t.Fatal(err)
	}
	var s agent.Status
	if err := json.Unmarshal([]byte(body), &s); err != nil {
		h.t.Fatalf("status: %v\n%s", err, body)
	}
	return s
}

func (h *harness) dumpAgentLogs() {
	for _, r := range h.records(policy.ManagerPoolName) {
		for _, dir := range []string{filepath.Join(h.stateDir, "nodes", r.Addr)} {
			b, err := os.ReadFile(filepath.Join(dir, "agent.log"))
			if err == nil {
				lines := strings.Split(string(b), "\n")
				if len(lines) > 40 {
					lines = lines[len(lines)-40:]
				}
				h.t.Logf("agent.log of %s:\n%s", r.ID, strings.Join(lines, "\n"))
			}
		}
	}
}

// inProcess is an agent beside the first manager, driven by the test.
func (h *harness) inProcess(dryRun bool) *agent.Agent {
	h.t.Helper()
	return h.inProcessWith(func(c *agent.Config) { c.DryRun = dryRun })
}

// inProcessWith is inProcess with edit applied to the agent's config.
func (h *harness) inProcessWith(edit func(*agent.Config)) *agent.Agent {
	h.t.Helper()
	var host string
	for _, r := range h.records(policy.ManagerPoolName) {
		host = r.DockerHost
		break
	}
	cfg := agent.Config{
		DockerHost: host, Listen: "127.0.0.1:0", EvaluationInterval: time.Second,
		Logger: hclog.New(&hclog.LoggerOptions{Name: "agent", Output: testWriter{h.t}, Level: hclog.Debug}),
	}
	edit(&cfg)
	a, err := agent.New(cfg, h.c)
	if err != nil {
		h.t.Fatal(err)
	}
	return a
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// journal reads the agent's journal from the store.
func (h *harness) journal() agent.Journal {
	var j agent.Journal
	if _, err := h.c.LoadJournal(context.Background(), &j); err != nil {
		h.t.Fatal(err)
	}
	return j
}

// nodeDown waits until the swarm reports the node of instance id as not ready.
func (h *harness) nodeDown(id string, timeout time.Duration) {
	h.t.Helper()
	h.waitFor("node of "+id+" to be down", timeout, func() (bool, string) {
		ns, err := h.nodes()
		if err != nil {
			return false, err.Error()
		}
		for _, n := range ns {
			if n.EngineLabels[policy.LabelInstance] == id {
				return n.State != "ready", n.State
			}
		}
		return false, "not listed"
	})
}

// saveJournal writes a journal behind the agent's back, as a test's fault.
func saveJournal(c platform.Cluster, j *agent.Journal) error {
	rev, err := c.LoadJournal(context.Background(), &agent.Journal{})
	if err != nil {
		return err
	}
	_, err = c.SaveJournal(context.Background(), j, rev)
	return err
}

// freezeNew stops (SIGSTOP) every instance of pool but except as soon as its
// process exists: a machine that boots and never joins. frozen returns the
// instances frozen so far; stop ends the watch. When the test ends the
// watch stops and every instance of the pool is thawed.
func (h *harness) freezeNew(pool, except string) (frozen func() map[string]bool, stop func()) {
	var mu sync.Mutex
	ids := map[string]bool{}
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-quit:
				return
			case <-time.After(20 * time.Millisecond):
			}
			for _, r := range h.records(pool) {
				mu.Lock()
				if r.ID != except && !ids[r.ID] && r.PID > 0 && syscall.Kill(r.PID, syscall.SIGSTOP) == nil {
					ids[r.ID] = true
				}
				mu.Unlock()
			}
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { close(quit); <-done }) }
	h.t.Cleanup(func() {
		stop()
		for _, r := range h.records(pool) {
			_ = syscall.Kill(r.PID, syscall.SIGCONT)
		}
	})
	frozen = func() map[string]bool {
		mu.Lock()
		defer mu.Unlock()
		out := make(map[string]bool, len(ids))
		for id := range ids {
			out[id] = true
		}
		return out
	}
	return frozen, stop
}
