package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// secret is the credential part of every test webhook URL.
const secret = "T0SECRET/B0SECRET/XXXXsecretXXXX"

// receiver is a local webhook: it records every body it accepts, and
// answers what status says (200 when nil).
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	bodies [][]byte
	status func(n int) int // n: this request's number, from 1
	calls  atomic.Int32
}

func newReceiver(t *testing.T, status func(n int) int) *receiver {
	r := &receiver{status: status}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		n := int(r.calls.Add(1))
		b, _ := io.ReadAll(req.Body)
		code := http.StatusOK
		if r.status != nil {
			code = r.status(n)
		}
		if code == http.StatusOK {
			r.mu.Lock()
			r.bodies = append(r.bodies, b)
			r.mu.Unlock()
		}
		w.WriteHeader(code)
		// A careless relay echoes what it was asked: the scrubbing must
		// hold against that too.
		fmt.Fprintf(w, "you posted to %s", req.URL.Path)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) webhook(t *testing.T) *Webhook {
	w, err := ParseWebhook("test", r.URL+"/services/"+secret+"?token=querysecret")
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func (r *receiver) events(t *testing.T) []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var es []Event
	for _, b := range r.bodies {
		var e jsonBody
		if err := json.Unmarshal(b, &e); err != nil {
			t.Fatalf("body %s: %v", b, err)
		}
		es = append(es, e.Event)
	}
	return es
}

func (r *receiver) waitFor(t *testing.T, n int) []Event {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		es := r.events(t)
		if len(es) >= n {
			return es
		}
		if time.Now().After(deadline) {
			t.Fatalf("receiver got %d messages, want %d: %+v", len(es), n, es)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// fakeClock is the clock conditions are judged by.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newNotifier(t *testing.T, cfg Config) *Notifier {
	t.Helper()
	if cfg.Cluster == "" {
		cfg.Cluster = "demo"
	}
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		n.Close(ctx)
	})
	return n
}

var atMax = Condition{Name: "pool_at_max", Key: "pool_at_max/demo/web", Severity: SeverityWarning, Pool: "demo/web",
	Summary: "pool demo/web is at max_size 3 with work pending"}

// A condition that keeps holding is announced once; once it has been gone
// for ResolveAfter, one resolved message follows with the same key and
// since; one that comes back before that sends nothing at all.
func TestDedupeAndResolve(t *testing.T) {
	rcv := newReceiver(t, nil)
	clock := &fakeClock{t: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)}
	n := newNotifier(t, Config{Webhook: rcv.webhook(t), ResolveAfter: 30 * time.Second, Now: clock.now, Agent: "node1"})
	start := clock.now()
	for i := 0; i < 10; i++ {
		n.Observe("leader", []Condition{atMax})
		clock.add(2 * time.Second)
	}
	es := rcv.waitFor(t, 1)
	// Flap: gone for less than ResolveAfter, then back.
	n.Observe("leader", nil)
	clock.add(20 * time.Second)
	n.Observe("leader", nil)
	n.Observe("leader", []Condition{atMax})
	clock.add(20 * time.Second)
	n.Observe("leader", nil) // cleared from here
	clock.add(29 * time.Second)
	n.Observe("leader", nil)
	time.Sleep(200 * time.Millisecond)
	if es = rcv.events(t); len(es) != 1 {
		t.Fatalf("%d messages before the condition was gone for resolve_after, want 1 (the firing): %+v", len(es), es)
	}
	if e := es[0]; e.Kind != KindFiring || e.Name != "pool_at_max" || e.Key != atMax.Key || e.Pool != "demo/web" ||
		e.Cluster != "demo" || e.Agent != "node1" || !e.Since.Equal(start) || e.Severity != SeverityWarning {
		t.Fatalf("firing message %+v", e)
	}
	clock.add(time.Second)
	n.Observe("leader", nil)
	es = rcv.waitFor(t, 2)
	if e := es[1]; e.Kind != KindResolved || e.Key != atMax.Key || !e.Since.Equal(start) || e.Severity != SeverityInfo {
		t.Fatalf("resolved message %+v, want resolved of %s since %s", e, atMax.Key, start)
	}
	if a := n.Active(); len(a) != 0 {
		t.Fatalf("active after resolution: %+v", a)
	}
	// Once resolved, the same condition fires again.
	n.Observe("leader", []Condition{atMax})
	if es = rcv.waitFor(t, 3); es[2].Kind != KindFiring {
		t.Fatalf("third message %+v, want a new firing", es[2])
	}
	if got := testutil.ToFloat64(n.sent.WithLabelValues("firing")); got != 2 {
		t.Fatalf("sent firing = %v, want 2", got)
	}
}

// Forget drops a scope's conditions silently (leadership moved: the new
// leader reports them), and leaves other scopes alone.
func TestForget(t *testing.T) {
	rcv := newReceiver(t, nil)
	n := newNotifier(t, Config{Webhook: rcv.webhook(t)})
	quorum := Condition{Name: "quorum_lost", Severity: SeverityCritical, Summary: "quorum lost"}
	n.Observe("leader", []Condition{atMax})
	n.Observe("cluster", []Condition{quorum})
	rcv.waitFor(t, 2)
	n.Forget("leader")
	n.Observe("leader", nil)
	n.Observe("cluster", []Condition{quorum})
	time.Sleep(200 * time.Millisecond)
	if es := rcv.events(t); len(es) != 2 {
		t.Fatalf("messages after forgetting: %+v", es)
	}
	if a := n.Active(); len(a) != 1 || a[0].Key != "quorum_lost" {
		t.Fatalf("active %+v, want quorum_lost only", a)
	}
}

// The token bucket lets Burst messages through at once, then one per
// Every; the rest wait in the queue, and beyond it are dropped and counted.
func TestRateLimitAndQueue(t *testing.T) {
	rcv := newReceiver(t, nil)
	n := newNotifier(t, Config{Webhook: rcv.webhook(t), Burst: 2, Every: time.Hour, QueueSize: 3})
	act := func(i int) {
		n.Action(Event{Name: "pool_scaled_out", Pool: fmt.Sprintf("demo/p%d", i), Summary: "grew"})
	}
	act(0)
	act(1)
	rcv.waitFor(t, 2)
	act(2)
	waitMetric(t, n.queued, 0) // the sender holds it, waiting for a token
	for i := 3; i < 8; i++ {
		act(i)
	}
	time.Sleep(300 * time.Millisecond)
	if got := len(rcv.events(t)); got != 2 {
		t.Fatalf("%d messages through a bucket of 2 with an hour per token, want 2", got)
	}
	// 2 sent, 1 held by the sender waiting for a token, 3 queued: 2 dropped.
	if got := testutil.ToFloat64(n.dropped.WithLabelValues("queue_full")); got != 2 {
		t.Fatalf("dropped queue_full = %v, want 2", got)
	}
	if got := testutil.ToFloat64(n.queued); got != 3 {
		t.Fatalf("queued = %v, want 3", got)
	}
}

// Enqueueing never waits, even on a webhook that hangs.
func TestNeverBlocks(t *testing.T) {
	hang := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-hang }))
	defer srv.Close()
	defer close(hang)
	w, err := ParseWebhook("test", srv.URL+"/hook/"+secret)
	if err != nil {
		t.Fatal(err)
	}
	n := newNotifier(t, Config{Webhook: w, Timeout: time.Minute, QueueSize: 10})
	start := time.Now()
	for i := 0; i < 1000; i++ {
		n.Action(Event{Name: "node_replaced", Summary: "replaced"})
		n.Observe("leader", []Condition{{Name: fmt.Sprintf("c%d", i)}})
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Fatalf("2000 notifications took %s to hand over to a hung webhook", d)
	}
	if got := testutil.ToFloat64(n.dropped.WithLabelValues("queue_full")); got < 1900 {
		t.Fatalf("dropped queue_full = %v, want nearly all of 2000", got)
	}
}

// A post that fails for a reason that may pass is retried with backoff
// and delivered once; one the webhook rejects is not retried.
func TestRetries(t *testing.T) {
	rcv := newReceiver(t, func(n int) int {
		if n <= 2 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	n := newNotifier(t, Config{Webhook: rcv.webhook(t), RetryBackoff: 20 * time.Millisecond})
	n.Action(Event{Name: "node_replaced", Pool: "demo/web", Summary: "node x replaced"})
	es := rcv.waitFor(t, 1)
	if len(es) != 1 || rcv.calls.Load() != 3 {
		t.Fatalf("%d messages in %d calls, want 1 in 3", len(es), rcv.calls.Load())
	}
	if got := testutil.ToFloat64(n.retries); got != 2 {
		t.Fatalf("retries = %v, want 2", got)
	}

	bad := newReceiver(t, func(int) int { return http.StatusNotFound })
	n2 := newNotifier(t, Config{Webhook: bad.webhook(t), RetryBackoff: time.Millisecond})
	n2.Action(Event{Name: "node_replaced", Summary: "x"})
	waitMetric(t, n2.dropped.WithLabelValues("rejected"), 1)
	if c := bad.calls.Load(); c != 1 {
		t.Fatalf("a 404 was tried %d times, want 1", c)
	}

	down := newReceiver(t, func(int) int { return http.StatusBadGateway })
	n3 := newNotifier(t, Config{Webhook: down.webhook(t), RetryBackoff: time.Millisecond, MaxAttempts: 3})
	n3.Action(Event{Name: "node_replaced", Summary: "x"})
	waitMetric(t, n3.dropped.WithLabelValues("failed"), 1)
	if c := down.calls.Load(); c != 3 {
		t.Fatalf("a failing webhook was tried %d times, want MaxAttempts 3", c)
	}
}

func waitMetric(t *testing.T, c prometheus.Collector, want float64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for testutil.ToFloat64(c) != want {
		if time.Now().After(deadline) {
			t.Fatalf("metric = %v, want %v", testutil.ToFloat64(c), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestFormats(t *testing.T) {
	since := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	e := Event{Kind: KindResolved, Name: "pool_at_max", Key: "pool_at_max/demo/web", Severity: SeverityInfo, Cluster: "demo", Pool: "demo/web",
		Summary: "pool demo/web <is> no longer at max & fine", Detail: "query up{job=\"x\"} > 1", Agent: "abcdefabcdef0123",
		Time: since.Add(90 * time.Second), Since: since}
	b, err := Body(FormatJSON, e)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{"version": 1.0, "source": "autarky-agent", "kind": "resolved", "name": "pool_at_max",
		"key": "pool_at_max/demo/web", "severity": "info", "cluster": "demo", "pool": "demo/web", "agent": "abcdefabcdef0123",
		"since": "2026-11-27T12:00:00Z", "time": "2026-11-27T12:01:30Z"} {
		if m[k] != want {
			t.Errorf("json %s = %v, want %v (body %s)", k, m[k], want, b)
		}
	}
	if _, ok := m["service"]; ok {
		t.Errorf("json has an empty service: %s", b)
	}
	b, err = Body(FormatSlack, e)
	if err != nil {
		t.Fatal(err)
	}
	var s map[string]string
	if err := json.Unmarshal(b, &s); err != nil || len(s) != 1 {
		t.Fatalf("slack body %s: %v", b, err)
	}
	want := ":white_check_mark: *[demo] RESOLVED pool_at_max*: pool demo/web &lt;is&gt; no longer at max &amp; fine\n" +
		"query up{job=\"x\"} &gt; 1\n_pool demo/web · since 2026-11-27T12:00:00Z · lasted 1m30s · agent on node abcdefabcdef_"
	if s["text"] != want {
		t.Fatalf("slack text\n%s\nwant\n%s", s["text"], want)
	}
	if _, err := ParseFormat("--notify-format", "teams"); err == nil || !strings.Contains(err.Error(), "--notify-format") ||
		!strings.Contains(err.Error(), "json") || !strings.Contains(err.Error(), "slack") {
		t.Fatalf("ParseFormat(teams) = %v, want an error naming the flag and json, slack", err)
	}
}

// A Slack-format notifier posts Slack's body to the receiver.
func TestSlackDelivery(t *testing.T) {
	rcv := newReceiver(t, nil)
	n := newNotifier(t, Config{Webhook: rcv.webhook(t), Format: FormatSlack})
	n.Observe("leader", []Condition{{Name: "circuit_breaker_open", Severity: SeverityCritical, Summary: "healing of demo/web stopped"}})
	deadline := time.Now().Add(10 * time.Second)
	for {
		rcv.mu.Lock()
		got := len(rcv.bodies)
		var body []byte
		if got > 0 {
			body = rcv.bodies[0]
		}
		rcv.mu.Unlock()
		if got > 0 {
			if !bytes.HasPrefix(body, []byte(`{"text":":rotating_light: *[demo] CRITICAL circuit_breaker_open*: healing of demo/web stopped`)) {
				t.Fatalf("slack body %s", body)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no slack message")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestParseWebhook(t *testing.T) {
	for _, c := range []struct {
		raw, want string // want: "" accepted, else part of the error
	}{
		{"https://hooks.slack.com/services/" + secret, ""},
		{"http://127.0.0.1:9000/hook/" + secret, ""},
		{"http://[::1]:9000/hook/" + secret, ""},
		{"http://localhost/hook/" + secret, ""},
		{"http://hooks.example.com/hook/" + secret, "use https://"},
		{"http://10.0.0.1/hook/" + secret, "beyond loopback"},
		{"ftp://hooks.example.com/" + secret, `scheme is "ftp"`},
		{"hooks.example.com/" + secret, "no host"},
		{"", "empty"},
		{"https://hooks.example.com/" + secret + " extra", "spaces"},
		{"https://hooks.example.com/%zz" + secret, "does not parse"},
		{"https://hooks.example.com/" + secret + "#frag", "fragment"},
	} {
		w, err := ParseWebhook("--notify-webhook-file", c.raw)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s refused: %v", c.raw, err)
		case c.want != "" && err == nil:
			t.Errorf("%s accepted, want an error with %q", c.raw, c.want)
		case err != nil:
			if !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "--notify-webhook-file: ") {
				t.Errorf("%s: error %q, want one naming the setting and %q", c.raw, err, c.want)
			}
			if strings.Contains(err.Error(), "SECRET") {
				t.Errorf("error quotes the secret: %v", err)
			}
		default:
			for _, s := range []string{w.String(), w.Redacted(), fmt.Sprintf("%v %+v %#v %s", w, w, w, w)} {
				if strings.Contains(s, "SECRET") {
					t.Errorf("printing the webhook shows its secret: %s", s)
				}
			}
		}
	}
}

// The URL's secret never reaches the log, the metrics or an error, whatever
// goes wrong: a refused connection, a webhook that answers 5xx and echoes
// the path, a 4xx, a redirect.
func TestSecretNeverLeaks(t *testing.T) {
	var logs bytes.Buffer
	var lmu sync.Mutex
	logger := hclog.New(&hclog.LoggerOptions{Output: lockedWriter{&logs, &lmu}, Level: hclog.Trace, JSONFormat: true})

	// A port nobody listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()
	echo500 := newReceiver(t, func(int) int { return http.StatusInternalServerError })
	echo404 := newReceiver(t, func(int) int { return http.StatusNotFound })
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/elsewhere"+r.URL.Path, http.StatusFound)
	}))
	defer redirect.Close()
	var metrics bytes.Buffer
	for _, base := range []string{closed, echo500.URL, echo404.URL, redirect.URL} {
		w, err := ParseWebhook("test", base+"/services/"+secret+"?token=querysecret")
		if err != nil {
			t.Fatal(err)
		}
		n := newNotifier(t, Config{Webhook: w, Logger: logger, RetryBackoff: time.Millisecond, MaxAttempts: 2})
		reg := prometheus.NewRegistry()
		reg.MustRegister(n.Collectors()...)
		n.Action(Event{Name: "node_replaced", Summary: "x"})
		n.Observe("s", []Condition{atMax})
		n.Observe("s", nil)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		n.Close(ctx)
		cancel()
		lost := testutil.ToFloat64(n.dropped.WithLabelValues("failed")) + testutil.ToFloat64(n.dropped.WithLabelValues("rejected"))
		if lost != 3 {
			t.Fatalf("%s: %v of 3 messages counted as not delivered", strings.TrimPrefix(base, "http://"), lost)
		}
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			fmt.Fprintln(&metrics, mf.String())
		}
		// The errors it logs are scrubbed at the source.
		for _, e := range []error{fmt.Errorf("wrapped: %w", &urlErr{w.url()})} {
			if s := w.scrub(e); strings.Contains(s, "SECRET") || strings.Contains(s, "querysecret") {
				t.Fatalf("scrub left the secret: %s", s)
			}
		}
	}
	lmu.Lock()
	out := logs.String()
	lmu.Unlock()
	if !strings.Contains(out, "notification not delivered") || !strings.Contains(out, "notification rejected") {
		t.Fatalf("the failures were not logged:\n%s", out)
	}
	if !strings.Contains(out, "[redacted]") {
		t.Fatalf("the log does not name the webhook redacted:\n%s", out)
	}
	for _, leak := range []string{"SECRET", "querysecret", "/services/"} {
		if strings.Contains(out, leak) {
			t.Fatalf("the log holds %q:\n%s", leak, out)
		}
		if strings.Contains(metrics.String(), leak) {
			t.Fatalf("the metrics hold %q", leak)
		}
	}
}

// urlErr is an error that quotes the URL as net/http's do.
type urlErr struct{ u string }

func (e *urlErr) Error() string { return fmt.Sprintf("Post %q: connection refused", e.u) }

type lockedWriter struct {
	b  *bytes.Buffer
	mu *sync.Mutex
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}
