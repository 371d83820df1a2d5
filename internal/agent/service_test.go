package agent_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/autarky/terraform-provider-autarky/internal/agent"
	"github.com/autarky/terraform-provider-autarky/internal/decide"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
	"github.com/autarky/terraform-provider-autarky/internal/testenv"
)

// service creates a replicated service of the workload image with labels
// (name=value, as `docker service create --label` takes them).
func (h *harness) service(name string, replicas int, labels ...string) {
	h.t.Helper()
	args := []string{"service", "create", "--detach", "--name", name, "--replicas", strconv.Itoa(replicas), "--stop-grace-period", "1s"}
	for _, l := range labels {
		args = append(args, "--label", l)
	}
	h.docker(append(args, "autarky/workload:latest")...)
}

// replicas is the replica count a service asks for, as `docker service
// inspect` shows it.
func (h *harness) replicas(name string) int {
	h.t.Helper()
	out := strings.TrimSpace(h.docker("service", "inspect", name, "--format", "{{.Spec.Mode.Replicated.Replicas}}"))
	n, err := strconv.Atoi(out)
	if err != nil {
		h.t.Fatalf("replicas of %s: %q: %v", name, out, err)
	}
	return n
}

// postAlert posts one Alertmanager webhook body with an alert of labels
// (alternating name, value) to the agent's handler.
func postAlert(t testing.TB, url, status string, labels ...string) {
	t.Helper()
	ls := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		ls[labels[i]] = labels[i+1]
	}
	body, _ := json.Marshal(map[string]any{"version": "4", "status": status, "receiver": "autarky",
		"groupLabels": map[string]string{"service": ls["service"], "scale": ls["scale"]},
		"alerts":      []map[string]any{{"status": status, "labels": ls, "startsAt": "2026-01-01T00:00:00Z"}}})
	resp, err := http.Post(url+"/v1/alerts", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /v1/alerts: %d", resp.StatusCode)
	}
}

func serviceStatus(a *agent.Agent, name string) agent.ServiceStatus {
	for _, s := range a.Status().Services {
		if s.Name == name {
			return s
		}
	}
	return agent.ServiceStatus{}
}

// Services declared by labels — Docker Flow Monitor's as they are, and
// Autarky's own — grow and shrink on alerts routed by their service and
// scale labels, one step per notification, within their bounds and
// cooldowns; global services, services under another controller and bad
// labels are refused with the reason; every decision shows in /v1/status,
// `autarky-agent status` and the metrics.
func TestServiceScalingByLabelsAndAlerts(t *testing.T) {
	h := newHarnessWith(t, "sv", 1, false, "1s", true)
	h.service("dfweb", 1, "com.df.scaleMin=1", "com.df.scaleMax=4", "com.df.scaleUpBy=2", "com.df.scaleDownBy=1")
	h.service("api", 4, "autarky.replicas.min=1", "autarky.replicas.max=5", "autarky.scale.down_by=2",
		"autarky.scale.cooldown_up=0s", "autarky.scale.cooldown_down=0s")
	h.docker("service", "create", "--detach", "--name", "glob", "--mode", "global", "--label", "autarky.replicas.max=3", "autarky/workload:latest")
	h.service("other", 1, "com.df.scaleMax=5", "autarky.scale.controller=docker-scaler")
	h.service("bad", 1, "autarky.replicas.min=1")
	h.service("plain", 1)
	h.service("dry", 1, "com.df.scaleMax=4", "autarky.scale.dry_run=true")
	h.waitFor("services running", time.Minute, func() (bool, string) {
		return h.runningTasks("dfweb") == 1 && h.runningTasks("api") == 4, ""
	})
	a := h.inProcess(false)
	srv := httptest.NewServer(a.Handler())
	defer srv.Close()
	a.Evaluate(context.Background())
	for name, code := range map[string]decide.ScaleCode{"dfweb": decide.CodeNoCheck, "api": decide.CodeNoCheck,
		"glob": decide.CodeNotReplicated, "other": decide.CodeOtherController, "bad": decide.CodeInvalid} {
		if st := serviceStatus(a, name); st.Code != string(code) || st.Direction != "hold" {
			t.Errorf("service %s: %+v, want a hold with code %s", name, st, code)
		}
	}
	if st := serviceStatus(a, "bad"); !strings.Contains(st.Message, "label autarky.replicas.max: missing") {
		t.Errorf("bad labels not named: %s", st.Message)
	}
	if st := serviceStatus(a, "plain"); st.Name != "" {
		t.Errorf("a service without scaling labels is under a policy: %+v", st)
	}

	// docker-scaler's routing: service and scale labels; scaleUpBy 2.
	postAlert(t, srv.URL, "firing", "alertname", "dfweb_overloaded", "service", "dfweb", "scale", "up")
	postAlert(t, srv.URL, "firing", "alertname", "api_idle", "service", "api", "scale", "down")
	postAlert(t, srv.URL, "firing", "alertname", "dry_overloaded", "service", "dry", "scale", "up")
	a.Evaluate(context.Background())
	if st := serviceStatus(a, "dry"); st.Direction != "up" || st.To != 2 || !st.DryRun || !strings.HasPrefix(st.Message, "dry run, nothing written: ") || h.replicas("dry") != 1 {
		t.Fatalf("autarky.scale.dry_run: %+v with %d replicas; want a decision to grow to 2, explained, and nothing written", st, h.replicas("dry"))
	}
	if got := h.replicas("dfweb"); got != 3 {
		t.Fatalf("dfweb has %d replicas after a scale=up alert, want 1 + com.df.scaleUpBy 2 (%+v)", got, serviceStatus(a, "dfweb"))
	}
	if got := h.replicas("api"); got != 2 {
		t.Fatalf("api has %d replicas after a scale=down alert, want 4 - autarky.scale.down_by 2 (%+v)", got, serviceStatus(a, "api"))
	}
	h.waitFor("the replicas running", time.Minute, func() (bool, string) {
		return h.runningTasks("dfweb") == 3 && h.runningTasks("api") == 2, ""
	})
	// One step per notification: evaluating again changes nothing.
	a.Evaluate(context.Background())
	if d, p := h.replicas("dfweb"), h.replicas("api"); d != 3 || p != 2 {
		t.Fatalf("a notification acted twice: dfweb %d, api %d", d, p)
	}
	// A repeat within cooldown_up (30s by default) waits.
	postAlert(t, srv.URL, "firing", "alertname", "dfweb_overloaded", "service", "dfweb", "scale", "up")
	a.Evaluate(context.Background())
	if st := serviceStatus(a, "dfweb"); st.Code != string(decide.CodeCooldownUp) || h.replicas("dfweb") != 3 {
		t.Fatalf("a repeat within cooldown_up: %+v", st)
	}
	// Down to min_replicas, then held there, and the notification answered.
	postAlert(t, srv.URL, "firing", "alertname", "api_idle", "service", "api", "scale", "down")
	a.Evaluate(context.Background())
	if got := h.replicas("api"); got != 1 {
		t.Fatalf("api has %d replicas, want min_replicas 1", got)
	}
	h.waitFor("api at 1", time.Minute, func() (bool, string) { return h.runningTasks("api") == 1, "" })
	postAlert(t, srv.URL, "firing", "alertname", "api_idle", "service", "api", "scale", "down")
	a.Evaluate(context.Background())
	if st := serviceStatus(a, "api"); st.Code != string(decide.CodeMinSize) || h.replicas("api") != 1 {
		t.Fatalf("a scale=down alert at min_replicas: %+v", st)
	}
	// A resolved alert asks for nothing.
	postAlert(t, srv.URL, "resolved", "alertname", "dfweb_overloaded", "service", "dfweb", "scale", "up")
	a.Evaluate(context.Background())
	if st := serviceStatus(a, "dfweb"); st.Code != string(decide.CodeNoCheck) {
		t.Fatalf("after the alert resolved: %+v", st)
	}
	if mode := h.docker("service", "inspect", "glob", "--format", "{{if .Spec.Mode.Global}}global{{end}}"); strings.TrimSpace(mode) != "global" {
		t.Fatalf("the global service changed mode: %q", mode)
	}
	if got := h.replicas("other"); got != 1 {
		t.Fatalf("the service under another controller was scaled: %d", got)
	}

	// Explained everywhere.
	if v, ok := metric(srv.URL, `autarky_service_replicas{service="dfweb"}`); !ok || v != 3 {
		t.Errorf("autarky_service_replicas{service=\"dfweb\"} = %v (%v), want 3", v, ok)
	}
	if v, ok := metric(srv.URL, `autarky_service_scaled_replicas_total{direction="down",service="api"}`); !ok || v != 3 {
		t.Errorf("autarky_service_scaled_replicas_total down api = %v (%v), want 3", v, ok)
	}
	var out bytes.Buffer
	if err := agent.PrintRemoteStatus(&out, srv.URL, ""); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"service dfweb (labels, 3 replicas", "service glob (labels", "not_replicated", "other_controller",
		"service api", "service_scale_down", "replicas written: 2 -> 1"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("autarky-agent status lacks %q:\n%s", want, out.String())
		}
	}
}

// A Prometheus check on a service's labels sizes it by target tracking;
// a check that cannot be trusted (the exporter hangs, its samples go
// stale) holds the service and never shrinks it; once trusted again, it
// shrinks.
func TestServiceScalingPrometheusAndStaleHold(t *testing.T) {
	h := newHarnessWith(t, "sp", 1, false, "1s", true)
	g := testenv.NewGauge(t, 2.0)
	prom := testenv.StartPrometheus(t, g.Addr)
	h.service("web", 1, "autarky.replicas.max=4", "autarky.metric.address="+prom.Addr, "autarky.metric.query=app_load",
		"autarky.metric.target=1", "autarky.scale.cooldown_up=0s", "autarky.scale.cooldown_down=0s", "autarky.scale.max_sample_age=3s")
	a := h.inProcess(false)
	h.evaluateUntil(a, "web grows to max_replicas 4", 2*time.Minute, func() (bool, string) {
		if h.replicas("web") != 4 {
			return false, fmt.Sprintf("%+v", serviceStatus(a, "web"))
		}
		return h.runningTasks("web") == 4, "not all running"
	})
	// The exporter hangs: its samples go stale; the value it would give
	// now says one replica, but nothing shrinks.
	g.Freeze(true)
	g.Set(0.1)
	deadline := time.Now().Add(8 * time.Second)
	for time.Now().Before(deadline) {
		a.Evaluate(context.Background())
		time.Sleep(500 * time.Millisecond)
	}
	st := serviceStatus(a, "web")
	if got := h.replicas("web"); got != 4 || st.Code != string(decide.CodeStaleMetric) && st.Code != string(decide.CodeNoData) {
		t.Fatalf("with a hung exporter: %d replicas, %+v; want a hold at 4", got, st)
	}
	if v, ok := metric(agentURLOf(t, a), `autarky_service_check_stale{check="metric",service="web"}`); !ok || v != 1 {
		t.Errorf("autarky_service_check_stale = %v (%v), want 1", v, ok)
	}
	g.Freeze(false)
	h.evaluateUntil(a, "web shrinks to 1", time.Minute, func() (bool, string) {
		return h.replicas("web") == 1, fmt.Sprintf("%+v", serviceStatus(a, "web"))
	})
}

// agentURLOf serves an in-process agent's handler until the test ends.
func agentURLOf(t *testing.T, a *agent.Agent) string {
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	return srv.URL
}

// A Terraform policy wins over the service's labels, and says so; a dry
// run decides and writes nothing; and a `docker service update` made
// between the agent's read and its write is not overwritten: Swarm
// refuses the write at the old version, the agent reads the service again,
// decides again and writes on top of the change.
func TestServiceScalingTerraformWinsDryRunAndConflict(t *testing.T) {
	h := newHarnessWith(t, "sc", 1, false, "1s", true)
	h.service("web", 1, "autarky.replicas.max=8", "autarky.scale.up_by=3")
	manager := h.records(policy.ManagerPoolName)[0].DockerHost
	// What autarky_service_scaling_policy stores, in the platform's store.
	tf := policy.DefaultServiceScaling("web", 2)
	tf.ClusterID, tf.ScaleUpBy = "sc", 3
	if err := h.p.PutServiceScalingPolicy(context.Background(), tf); err != nil {
		t.Fatal(err)
	}
	newAgent := func(host string, dry bool) (*agent.Agent, string) {
		a, err := agent.New(agentConfig(h, host, dry), h.c)
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(a.Handler())
		t.Cleanup(srv.Close)
		return a, srv.URL
	}

	dry, dryURL := newAgent(manager, true)
	postAlert(t, dryURL, "firing", "alertname", "Hot", "service", "web", "scale", "up")
	dry.Evaluate(context.Background())
	st := serviceStatus(dry, "web")
	if st.Source != policy.ServiceSourceTerraform || !strings.Contains(st.Note, "labels are ignored") || st.MaxReplicas != 2 {
		t.Fatalf("the Terraform policy does not win over the labels: %+v", st)
	}
	if st.Direction != "up" || st.To != 2 || !st.DryRun || h.replicas("web") != 1 {
		t.Fatalf("dry run: %+v, %d replicas; want a decision to grow to 2 and nothing written", st, h.replicas("web"))
	}

	proxy := testenv.NewDockerProxy(t, manager)
	var once sync.Once
	var changeErr error
	proxy.Fault(func(c testenv.DockerCall) *testenv.DockerFault {
		if c.Method == http.MethodPost && strings.HasPrefix(c.Path, "/services/") && strings.HasSuffix(c.Path, "/update") {
			once.Do(func() {
				// Someone else's update lands between the agent's read and its write.
				out, err := exec.Command("docker", "-H", manager, "service", "update", "--detach", "--env-add", "CHANGED=by-hand", "web").CombinedOutput()
				if err != nil {
					changeErr = fmt.Errorf("%v: %s", err, out)
				}
			})
		}
		return nil
	})
	a, url := newAgent(proxy.Host, false)
	postAlert(t, url, "firing", "alertname", "Hot", "service", "web", "scale", "up")
	a.Evaluate(context.Background())
	if changeErr != nil {
		t.Fatal(changeErr)
	}
	if got := h.replicas("web"); got != 2 {
		t.Fatalf("web has %d replicas, want the Terraform max_replicas 2 (%+v)", got, serviceStatus(a, "web"))
	}
	if env := h.docker("service", "inspect", "web", "--format", "{{.Spec.TaskTemplate.ContainerSpec.Env}}"); !strings.Contains(env, "CHANGED=by-hand") {
		t.Fatalf("the concurrent update was overwritten: env %s", env)
	}
	if n := proxy.Calls(http.MethodPost, "/services/"); n != 2 {
		t.Fatalf("%d service writes, want 2: one refused at the old version, one after reading again", n)
	}
	if v, ok := metric(url, `autarky_service_update_conflicts_total{service="web"}`); !ok || v != 1 {
		t.Errorf("autarky_service_update_conflicts_total = %v (%v), want 1", v, ok)
	}
	found := false
	for _, d := range a.Status().Decisions {
		if d.Service == "web" && strings.HasPrefix(d.Code, "reread_") && strings.Contains(d.Message, "read again and decided again") {
			found = true
		}
	}
	if !found {
		t.Fatalf("the re-read is not explained: %+v", a.Status().Decisions)
	}
}

// agentConfig is an in-process agent's config for the engine at host.
func agentConfig(h *harness, host string, dry bool) agent.Config {
	return agent.Config{DockerHost: host, Listen: "127.0.0.1:0", EvaluationInterval: time.Second, DryRun: dry,
		Logger: hclog.New(&hclog.LoggerOptions{Name: "agent", Output: testWriter{h.t}, Level: hclog.Debug})}
}

// Only the leader writes replicas: an agent beside a follower manager
// takes the alert, decides and explains, and writes nothing.
func TestServiceScalingOnlyLeaderActs(t *testing.T) {
	h := newHarnessWith(t, "sl", 3, false, "1s", true)
	h.service("web", 1, "com.df.scaleMax=4")
	h.waitFor("web running", time.Minute, func() (bool, string) { return h.runningTasks("web") == 1, "" })
	followerHost := h.followerHost()
	follower, err := agent.New(agentConfig(h, followerHost, false), h.c)
	if err != nil {
		t.Fatal(err)
	}
	url := agentURLOf(t, follower)
	postAlert(t, url, "firing", "alertname", "web_overloaded", "service", "web", "scale", "up")
	follower.Evaluate(context.Background())
	st := serviceStatus(follower, "web")
	if follower.Status().Leader || st.Direction != "up" || st.To != 2 {
		t.Fatalf("the follower's decision: %+v (leader %v); want it to decide to grow to 2", st, follower.Status().Leader)
	}
	// The follower answers the notification as the leader does, so that
	// it would not answer it again were it to lead.
	for i := 0; i < 2; i++ {
		follower.Evaluate(context.Background())
	}
	if st := serviceStatus(follower, "web"); st.Direction != "hold" || st.Code != string(decide.CodeNoCheck) {
		t.Fatalf("the follower still answers the notification: %+v", st)
	}
	if got := h.replicas("web"); got != 1 {
		t.Fatalf("a follower wrote replicas: %d", got)
	}
	// The leader's agent, told the same, acts.
	leader := h.inProcess(false)
	postAlert(t, agentURLOf(t, leader), "firing", "alertname", "web_overloaded", "service", "web", "scale", "up")
	leader.Evaluate(context.Background())
	if got := h.replicas("web"); got != 2 {
		t.Fatalf("the leader's agent did not act: %d replicas, %+v", got, serviceStatus(leader, "web"))
	}
}

// followerHost is the engine endpoint of a manager that does not lead.
func (h *harness) followerHost() string {
	h.t.Helper()
	ns, err := h.nodes()
	if err != nil {
		h.t.Fatal(err)
	}
	for _, r := range h.records(policy.ManagerPoolName) {
		for _, n := range ns {
			if n.EngineLabels[policy.LabelInstance] == r.ID && !n.Leader && n.Role == policy.RoleManager {
				return r.DockerHost
			}
		}
	}
	h.t.Fatal("no follower manager")
	return ""
}
