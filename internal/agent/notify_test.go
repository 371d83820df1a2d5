package agent_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/autarky/terraform-provider-autarky/internal/agent"
	"github.com/autarky/terraform-provider-autarky/internal/notify"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

// webhookSecret is the credential part of the test receiver's URL.
const webhookSecret = "T0SECRET/B0SECRET/XXXXsecretXXXX"

// hookReceiver is a local webhook receiver that records every body.
type hookReceiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	bodies []map[string]any
}

func newHookReceiver(t *testing.T) *hookReceiver {
	r := &hookReceiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Errorf("webhook body %s: %v", b, err)
		}
		r.mu.Lock()
		r.bodies = append(r.bodies, m)
		r.mu.Unlock()
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *hookReceiver) url() string { return r.srv.URL + "/services/" + webhookSecret }

// got lists the messages received as "kind name" (the pool after a space).
func (r *hookReceiver) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, m := range r.bodies {
		out = append(out, fmt.Sprintf("%v %v %v", m["kind"], m["name"], m["pool"]))
	}
	return out
}

func (r *hookReceiver) count(msg string) int {
	n := 0
	for _, g := range r.got() {
		if g == msg {
			n++
		}
	}
	return n
}

// A real condition on a real swarm reaches the receiver once, then its
// resolved message: a pool under a pending_tasks policy capped at one node
// gets two tasks that need a node each. The leader grows the pool to its
// maximum (an action), the second task stays pending (pool_at_max, once,
// however many evaluations see it); scaling the service down to one task
// clears it (resolved). Neither the agent's log nor its metrics hold the
// webhook's secret.
func TestNotifyPoolAtMax(t *testing.T) {
	h := newHarnessWith(t, "nt", 1, false, "1s", true)
	h.pool("web", 0, nil)
	ctx := context.Background()
	h.editPool("web", func(p *policy.Pool) { p.Labels = map[string]string{"tier": "web"} })
	one := int64(1)
	h.scale(scalingPolicy("nt/web", func(s *policy.Scaling) {
		s.PendingTasks = &policy.PendingTasksCheck{}
		s.MaxSize = &one
	}))

	rcv := newHookReceiver(t)
	a, logs := h.notifying(rcv)
	a.Evaluate(ctx)

	cpus := mustAtoi(t, strings.TrimSpace(h.docker("info", "--format", "{{.NCPU}}")))
	reserve := fmt.Sprintf("%.1f", float64(cpus)-0.5)
	h.docker("service", "create", "--detach", "--name", "big", "--replicas", "2", "--reserve-cpu", reserve,
		"--constraint", "node.labels.tier==web", "autarky/workload:latest")
	h.evaluateUntil(a, "pool_at_max at the receiver", 2*time.Minute, func() (bool, string) {
		return rcv.count("firing pool_at_max nt/web") == 1, fmt.Sprintf("received %q; scaling %+v", rcv.got(), h.scaling(a, "nt/web"))
	})
	if c := rcv.count("action pool_scaled_out nt/web"); c != 1 {
		t.Fatalf("%d pool_scaled_out messages, want 1: %q", c, rcv.got())
	}
	// The condition holds over many evaluations: still one message.
	h.evaluateUntil(a, "one task running on the pool's one node", 2*time.Minute, func() (bool, string) {
		n := h.runningTasks("big")
		return n == 1, fmt.Sprintf("%d running", n)
	})
	for i := 0; i < 5; i++ {
		a.Evaluate(ctx)
	}
	if c := rcv.count("firing pool_at_max nt/web"); c != 1 {
		t.Fatalf("%d pool_at_max messages while it held, want 1: %q", c, rcv.got())
	}
	if st := a.Status(); len(st.Notifications) != 1 || st.Notifications[0].Key != "pool_at_max/nt/web" {
		t.Fatalf("/v1/status notifications %+v, want pool_at_max/nt/web", st.Notifications)
	}

	h.docker("service", "scale", "--detach", "big=1")
	h.evaluateUntil(a, "pool_at_max resolved at the receiver", time.Minute, func() (bool, string) {
		return rcv.count("resolved pool_at_max nt/web") == 1, fmt.Sprintf("received %q; scaling %+v", rcv.got(), h.scaling(a, "nt/web"))
	})
	rcv.mu.Lock()
	var firing, resolved map[string]any
	for _, m := range rcv.bodies {
		if m["name"] == "pool_at_max" && m["kind"] == "firing" {
			firing = m
		}
		if m["name"] == "pool_at_max" && m["kind"] == "resolved" {
			resolved = m
		}
		t.Logf("received %v", m)
	}
	rcv.mu.Unlock()
	if firing["key"] != resolved["key"] || firing["since"] != resolved["since"] || firing["cluster"] != "nt" || firing["agent"] == "" ||
		!strings.Contains(fmt.Sprint(firing["detail"]), "max_size") {
		t.Fatalf("firing %v and resolved %v: want the same key and since, the cluster, the agent and the decision's reasoning", firing, resolved)
	}

	rec := httptest.NewRecorder()
	a.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	metrics := rec.Body.String()
	for _, want := range []string{`autarky_notifications_sent_total{kind="firing"} 1`, `autarky_notifications_sent_total{kind="resolved"} 1`,
		`autarky_notifications_dropped_total{reason="queue_full"} 0`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	out := logs.String()
	for _, leak := range []string{"SECRET", "secretXXXX"} {
		if strings.Contains(out, leak) || strings.Contains(metrics, leak) {
			t.Fatalf("the webhook's secret %q is in the agent's log or metrics", leak)
		}
	}
}

// notifying is an in-process agent that notifies rcv (Slack-free: the
// generic body), with the log it writes, all levels.
func (h *harness) notifying(rcv *hookReceiver) (*agent.Agent, *lockedBuffer) {
	h.t.Helper()
	hook, err := notify.ParseWebhook("test", rcv.url())
	if err != nil {
		h.t.Fatal(err)
	}
	logs := &lockedBuffer{b: &bytes.Buffer{}, mu: &sync.Mutex{}, t: h.t}
	logger := hclog.New(&hclog.LoggerOptions{Name: "agent", Output: logs, Level: hclog.Trace})
	n, err := notify.New(notify.Config{Webhook: hook, Cluster: h.name, Logger: logger.Named("notify")})
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { n.Close(context.Background()) })
	return h.inProcessWith(func(c *agent.Config) { c.Notifier, c.Logger = n, logger }), logs
}

// lockedBuffer keeps the log for the test to search and shows it in the
// test's output too.
type lockedBuffer struct {
	b  *bytes.Buffer
	mu *sync.Mutex
	t  testing.TB
}

func (w *lockedBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

func (w *lockedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	w.b.Write(p)
	w.mu.Unlock()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// The agent processes of a real three-manager cluster read the webhook
// from $AUTARKY_NOTIFY_WEBHOOK_URL: when a worker dies, the leader's agent,
// and only it, tells the receiver it starts a replacement and then that
// the node was replaced. The URL's secret is in no agent's log and no
// process's arguments.
func TestNotifyHealedWorker(t *testing.T) {
	rcv := newHookReceiver(t)
	t.Setenv("AUTARKY_NOTIFY_WEBHOOK_URL", rcv.url())
	h := newHarness(t, "nh", 3, true)
	h.pool("web", 3, healing("nh/web", "2s"))
	h.waitFor("exactly one leading agent", 30*time.Second, func() (bool, string) {
		n, _ := h.leaders()
		return n == 1, fmt.Sprintf("%d leaders", n)
	})
	victim := h.instances("web")[0].ID
	h.kill(victim)
	h.waitFor("node_replaced at the receiver", 2*time.Minute, func() (bool, string) {
		return rcv.count("action node_replaced nh/web") == 1, fmt.Sprintf("received %q", rcv.got())
	})
	time.Sleep(3 * time.Second) // nothing more comes
	if s, r := rcv.count("action replacement_started nh/web"), rcv.count("action node_replaced nh/web"); s != 1 || r != 1 {
		t.Fatalf("%d replacement_started and %d node_replaced messages, want one each (the leader's): %q", s, r, rcv.got())
	}
	rcv.mu.Lock()
	for _, m := range rcv.bodies {
		t.Logf("received %v", m)
		if m["cluster"] != "nh" || m["agent"] == "" {
			t.Errorf("message %v: want cluster nh and the sending agent's node", m)
		}
	}
	rcv.mu.Unlock()
	for _, r := range h.records(policy.ManagerPoolName) {
		dir := filepath.Join(h.stateDir, "nodes", r.Addr)
		log, err := os.ReadFile(filepath.Join(dir, "agent.log"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(log), "notifications on") || !strings.Contains(string(log), "[redacted]") {
			t.Errorf("agent.log of %s does not say notifications are on, to a redacted webhook", r.ID)
		}
		pids := []string{fmt.Sprint(r.AgentPID)}
		if b, err := os.ReadFile(filepath.Join(dir, "agent.pid")); err == nil {
			pids = append(pids, strings.TrimSpace(string(b)))
		}
		for _, pid := range pids {
			cmdline, err := os.ReadFile("/proc/" + pid + "/cmdline")
			if err != nil {
				t.Fatalf("agent process %s of %s: %v", pid, r.ID, err)
			}
			if strings.Contains(string(cmdline), "SECRET") {
				t.Errorf("process %s's arguments hold the webhook's secret", pid)
			}
		}
		if strings.Contains(string(log), "SECRET") {
			t.Errorf("agent.log of %s holds the webhook's secret", r.ID)
		}
	}
}

// A service's replicas written on an alert reach the receiver as
// service_scaled; an alert asking for more at max_replicas as
// service_at_max, resolved once no check asks for more.
func TestNotifyServiceAtMax(t *testing.T) {
	h := newHarnessWith(t, "ns", 1, false, "1s", true)
	h.service("web", 1, "autarky.replicas.min=1", "autarky.replicas.max=2", "autarky.scale.cooldown_up=0s")
	h.waitFor("web running", time.Minute, func() (bool, string) { return h.runningTasks("web") == 1, "" })
	rcv := newHookReceiver(t)
	a, logs := h.notifying(rcv)
	srv := httptest.NewServer(a.Handler())
	defer srv.Close()
	ctx := context.Background()
	a.Evaluate(ctx)
	postAlert(t, srv.URL, "firing", "alertname", "web_overloaded", "service", "web", "scale", "up")
	h.evaluateUntil(a, "service_scaled at the receiver", time.Minute, func() (bool, string) {
		return rcv.count("action service_scaled <nil>") == 1 && h.replicas("web") == 2, fmt.Sprintf("received %q; %+v", rcv.got(), serviceStatus(a, "web"))
	})
	postAlert(t, srv.URL, "firing", "alertname", "web_overloaded", "service", "web", "scale", "up")
	h.evaluateUntil(a, "service_at_max at the receiver", time.Minute, func() (bool, string) {
		return rcv.count("firing service_at_max <nil>") == 1, fmt.Sprintf("received %q; %+v", rcv.got(), serviceStatus(a, "web"))
	})
	h.evaluateUntil(a, "service_at_max resolved", time.Minute, func() (bool, string) {
		return rcv.count("resolved service_at_max <nil>") == 1, fmt.Sprintf("received %q; %+v", rcv.got(), serviceStatus(a, "web"))
	})
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	for _, m := range rcv.bodies {
		t.Logf("received %v", m)
		if m["service"] != "web" {
			t.Errorf("message %v does not name the service", m)
		}
	}
	if strings.Contains(logs.String(), "SECRET") {
		t.Fatal("the agent's log holds the webhook's secret")
	}
}
