// Package notify tells people what autarky-agent did and, above all, what
// it could not do, by posting to a webhook: a generic JSON body (Body) or
// Slack's incoming-webhook format.
//
// The agent hands the Notifier two things. Actions (Action) are one-off
// events: a node replaced, a pool grown or shrunk, a service scaled.
// Conditions (Observe) are states that hold for a while: a pool pinned at
// its maximum with work pending, the circuit breaker open, quorum lost.
// The agent reports the whole set of conditions it sees after every
// evaluation, and the Notifier turns that stream of states into few
// messages:
//
//   - a condition is announced once when it appears ("firing"), never again
//     while it stays (de-duplication by its Key);
//   - once it is gone for ResolveAfter, a "resolved" message follows; if it
//     comes back before that, nothing is sent at all, so a condition that
//     flaps between two evaluations does not page twice a round;
//   - every message passes a token bucket (Burst, then one per Every), so a
//     storm reaches people at a pace they can read.
//
// Sending never blocks the control loop: Action and Observe only put
// messages in a bounded queue (QueueSize) that one goroutine empties; a
// full queue drops the new message and counts it
// (autarky_notifications_dropped_total{reason="queue_full"}). Each post has
// a timeout, and a post that fails for a reason that may pass (a network
// error, 408, 429, 5xx) is retried with exponential backoff (honouring
// Retry-After) up to MaxAttempts; then it is dropped and counted.
//
// The webhook URL is a secret (see Webhook): it is never logged, never in a
// metric and never in an error this package returns or logs.
package notify

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// Kind says what a message is about.
type Kind string

const (
	// KindAction: the agent did something (a node replaced, a pool grown).
	KindAction Kind = "action"
	// KindFiring: a condition appeared.
	KindFiring Kind = "firing"
	// KindResolved: a condition announced before has cleared.
	KindResolved Kind = "resolved"
)

// Severity orders messages for people and routing.
type Severity string

const (
	SeverityInfo     Severity = "info"
	SeverityWarning  Severity = "warning"
	SeverityCritical Severity = "critical"
)

// Event is one message, the fields of the generic JSON body (Body adds
// "version" and "source").
type Event struct {
	// Kind is action, firing or resolved.
	Kind Kind `json:"kind"`
	// Name is what happened or holds: an action ("pool_scaled_out",
	// "node_replaced", ...) or a condition ("pool_at_max",
	// "circuit_breaker_open", ...). The agent's README section lists them.
	Name string `json:"name"`
	// Key identifies a condition across messages: its firing and its
	// resolved message carry the same key. For an action it is Name and
	// the pool or service.
	Key      string   `json:"key"`
	Severity Severity `json:"severity"`
	Cluster  string   `json:"cluster"`
	Pool     string   `json:"pool,omitempty"`
	Service  string   `json:"service,omitempty"`
	// Summary is one sentence for a person; Detail the agent's reasoning
	// (what the decision core said), when there is more to say.
	Summary string `json:"summary"`
	Detail  string `json:"detail,omitempty"`
	// Agent is the Swarm node id of the manager whose agent sent it.
	Agent  string `json:"agent,omitempty"`
	DryRun bool   `json:"dry_run,omitempty"`
	// Time is when it was sent (action, firing) or found cleared
	// (resolved); Since, for conditions, when the condition was first seen.
	Time  time.Time `json:"time"`
	Since time.Time `json:"since,omitzero"`
}

// Condition is one state the agent sees in an evaluation.
type Condition struct {
	// Name is the condition's kind ("pool_at_max"); Key tells two of a kind
	// apart ("pool_at_max/demo/web"): Name when empty.
	Name, Key string
	Severity  Severity
	Pool      string
	Service   string
	Summary   string
	Detail    string
}

func (c Condition) key() string {
	if c.Key != "" {
		return c.Key
	}
	return c.Name
}

// Config configures a Notifier. Zero fields take the defaults in New.
type Config struct {
	Webhook *Webhook
	Format  Format
	// Cluster, Agent and DryRun are stamped on every message.
	Cluster string
	Agent   string
	DryRun  bool
	Logger  hclog.Logger
	// ResolveAfter is how long a condition must stay cleared before its
	// resolved message is sent (zero: at the first evaluation that no
	// longer sees it; the agent's flag defaults to 1m).
	ResolveAfter time.Duration
	// Burst and Every are the token bucket: Burst messages at once, then
	// one per Every (defaults 10 and 6s).
	Burst int
	Every time.Duration
	// QueueSize bounds the messages waiting to be sent (default 100).
	QueueSize int
	// Timeout bounds one post (default 10s); MaxAttempts the posts of one
	// message (default 5), spaced by RetryBackoff doubling to 1 minute
	// (default 1s), with jitter.
	Timeout      time.Duration
	MaxAttempts  int
	RetryBackoff time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Notifier de-duplicates, rate-limits and sends; see the package doc.
type Notifier struct {
	cfg     Config
	client  *http.Client
	limiter *rate.Limiter
	queue   chan Event
	log     hclog.Logger

	mu     sync.Mutex
	active map[string]*active // by condition key
	closed bool

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	sent    *prometheus.CounterVec
	dropped *prometheus.CounterVec
	retries prometheus.Counter
	queued  prometheus.GaugeFunc
}

type active struct {
	cond    Condition
	scope   string
	since   time.Time
	cleared time.Time // zero while it holds
}

// Active is one condition the Notifier announced and has not resolved,
// for the agent's status.
type Active struct {
	Key      string    `json:"key"`
	Name     string    `json:"name"`
	Severity Severity  `json:"severity"`
	Summary  string    `json:"summary"`
	Since    time.Time `json:"since"`
	// ClearedAt is when it was last seen gone; its resolved message goes
	// once it has stayed gone for resolve_after.
	ClearedAt time.Time `json:"cleared_at,omitzero"`
}

// New makes a Notifier and starts its sender; Close stops it.
func New(cfg Config) (*Notifier, error) {
	if cfg.Webhook == nil {
		return nil, fmt.Errorf("notify: no webhook")
	}
	if cfg.Format == "" {
		cfg.Format = FormatJSON
	}
	if _, err := ParseFormat("format", string(cfg.Format)); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.Burst <= 0 {
		cfg.Burst = 10
	}
	if cfg.Every <= 0 {
		cfg.Every = 6 * time.Second
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 100
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 5
	}
	if cfg.RetryBackoff <= 0 {
		cfg.RetryBackoff = time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	n := &Notifier{
		cfg: cfg,
		// A redirect is refused, not followed: it would post the body
		// somewhere the operator did not name (and a 301/302 turns the
		// POST into a GET that delivers nothing).
		client: &http.Client{Timeout: cfg.Timeout, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}},
		limiter: rate.NewLimiter(rate.Every(cfg.Every), cfg.Burst),
		queue:   make(chan Event, cfg.QueueSize),
		log:     cfg.Logger,
		active:  map[string]*active{},
		done:    make(chan struct{}),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "autarky_notifications_sent_total", Help: "Notifications the webhook accepted, by kind (action, firing, resolved).",
		}, []string{"kind"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "autarky_notifications_dropped_total", Help: "Notifications never delivered, by reason: queue_full (the sender was behind), failed (every attempt failed), rejected (the webhook answered a 3xx or 4xx that retrying cannot fix), shutdown (still queued when the agent stopped).",
		}, []string{"reason"}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "autarky_notification_retries_total", Help: "Posts to the webhook retried after a network error, 408, 429 or 5xx.",
		}),
	}
	for _, k := range []Kind{KindAction, KindFiring, KindResolved} {
		n.sent.WithLabelValues(string(k))
	}
	for _, r := range []string{"queue_full", "failed", "rejected", "shutdown"} {
		n.dropped.WithLabelValues(r)
	}
	n.queued = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "autarky_notifications_queued", Help: "Notifications waiting to be sent.",
	}, func() float64 { return float64(len(n.queue)) })
	n.ctx, n.cancel = context.WithCancel(context.Background())
	go n.run()
	return n, nil
}

// Collectors are the Notifier's metrics; nil for a nil Notifier.
func (n *Notifier) Collectors() []prometheus.Collector {
	if n == nil {
		return nil
	}
	return []prometheus.Collector{n.sent, n.dropped, n.retries, n.queued}
}

// Webhook is where the Notifier posts (print it: it is redacted).
func (n *Notifier) Webhook() *Webhook { return n.cfg.Webhook }

// Action announces something the agent did. Nil-safe.
func (n *Notifier) Action(e Event) {
	if n == nil {
		return
	}
	e.Kind = KindAction
	if e.Severity == "" {
		e.Severity = SeverityInfo
	}
	if e.Key == "" {
		e.Key = e.Name
		if e.Pool != "" {
			e.Key += "/" + e.Pool
		}
		if e.Service != "" {
			e.Key += "/" + e.Service
		}
	}
	n.enqueue(e)
}

// Observe reports every condition of scope that holds now: a new one
// fires, one that stays is not repeated, and one of scope missing from
// conds resolves once it has been missing for ResolveAfter. Scopes let
// parts of the agent report independently (the leader's pool conditions,
// the cluster's own). Nil-safe.
func (n *Notifier) Observe(scope string, conds []Condition) {
	if n == nil {
		return
	}
	now := n.cfg.Now()
	var out []Event
	n.mu.Lock()
	seen := map[string]bool{}
	for _, c := range conds {
		k := c.key()
		seen[k] = true
		if a, ok := n.active[k]; ok {
			a.cond, a.cleared = c, time.Time{}
			continue
		}
		n.active[k] = &active{cond: c, scope: scope, since: now}
		out = append(out, n.event(KindFiring, c, now, now))
	}
	for _, k := range n.sortedKeys() {
		a := n.active[k]
		if a.scope != scope || seen[k] {
			continue
		}
		if a.cleared.IsZero() {
			a.cleared = now
		}
		if now.Sub(a.cleared) >= n.cfg.ResolveAfter {
			out = append(out, n.event(KindResolved, a.cond, a.since, now))
			delete(n.active, k)
		}
	}
	n.mu.Unlock()
	for _, e := range out {
		n.enqueue(e)
	}
}

// Forget drops scope's conditions without resolving them: the agent stops
// being the one who reports them (it no longer leads), and whoever leads
// now reports them. Nil-safe.
func (n *Notifier) Forget(scope string) {
	if n == nil {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for k, a := range n.active {
		if a.scope == scope {
			delete(n.active, k)
		}
	}
}

// Active lists the conditions announced and not resolved. Nil-safe.
func (n *Notifier) Active() []Active {
	if n == nil {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	var as []Active
	for _, k := range n.sortedKeys() {
		a := n.active[k]
		as = append(as, Active{Key: k, Name: a.cond.Name, Severity: a.cond.Severity, Summary: a.cond.Summary, Since: a.since, ClearedAt: a.cleared})
	}
	return as
}

func (n *Notifier) sortedKeys() []string {
	ks := make([]string, 0, len(n.active))
	for k := range n.active {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func (n *Notifier) event(kind Kind, c Condition, since, now time.Time) Event {
	sev := c.Severity
	if sev == "" {
		sev = SeverityWarning
	}
	if kind == KindResolved {
		sev = SeverityInfo
	}
	return Event{Kind: kind, Name: c.Name, Key: c.key(), Severity: sev, Pool: c.Pool, Service: c.Service,
		Summary: c.Summary, Detail: c.Detail, Time: now, Since: since}
}

// enqueue stamps e and queues it without ever waiting.
func (n *Notifier) enqueue(e Event) {
	if e.Time.IsZero() {
		e.Time = n.cfg.Now()
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	e.Cluster, e.Agent, e.DryRun = n.cfg.Cluster, n.cfg.Agent, n.cfg.DryRun
	if n.closed {
		n.dropped.WithLabelValues("shutdown").Inc()
		return
	}
	select {
	case n.queue <- e:
	default:
		n.dropped.WithLabelValues("queue_full").Inc()
		n.log.Warn("notification dropped: the queue is full (the webhook is slow or failing)", "kind", e.Kind, "name", e.Name, "key", e.Key, "queue_size", n.cfg.QueueSize)
	}
}

// SetAgent sets the node id stamped on later messages (the agent learns
// its own only at its first evaluation). Nil-safe.
func (n *Notifier) SetAgent(id string) {
	if n == nil {
		return
	}
	n.mu.Lock()
	n.cfg.Agent = id
	n.mu.Unlock()
}

// Close stops taking messages, gives the queued ones until ctx ends to go
// out, then stops the sender; what is left is counted as dropped
// (shutdown). Nil-safe.
func (n *Notifier) Close(ctx context.Context) {
	if n == nil {
		return
	}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return
	}
	n.closed = true
	close(n.queue)
	n.mu.Unlock()
	select {
	case <-n.done:
	case <-ctx.Done():
		n.cancel()
		<-n.done
	}
	n.cancel()
}

// run is the sender: one message at a time, paced by the token bucket.
func (n *Notifier) run() {
	defer close(n.done)
	for e := range n.queue {
		if n.ctx.Err() != nil || n.limiter.Wait(n.ctx) != nil {
			n.dropped.WithLabelValues("shutdown").Inc()
			continue
		}
		n.deliver(e)
	}
}

// deliver posts e, retrying what may pass.
func (n *Notifier) deliver(e Event) {
	body, err := Body(n.cfg.Format, e)
	if err != nil {
		n.dropped.WithLabelValues("rejected").Inc()
		n.log.Error("notification not encoded", "name", e.Name, "error", err)
		return
	}
	backoff := n.cfg.RetryBackoff
	for attempt := 1; ; attempt++ {
		retry, wait, err := n.post(body)
		if err == nil {
			n.sent.WithLabelValues(string(e.Kind)).Inc()
			n.log.Debug("notification sent", "kind", e.Kind, "name", e.Name, "key", e.Key, "webhook", n.cfg.Webhook.Redacted())
			return
		}
		if !retry {
			n.dropped.WithLabelValues("rejected").Inc()
			n.log.Warn("notification rejected by the webhook", "kind", e.Kind, "name", e.Name, "key", e.Key, "webhook", n.cfg.Webhook.Redacted(), "error", err)
			return
		}
		if attempt >= n.cfg.MaxAttempts {
			n.dropped.WithLabelValues("failed").Inc()
			n.log.Warn("notification not delivered", "kind", e.Kind, "name", e.Name, "key", e.Key, "webhook", n.cfg.Webhook.Redacted(), "attempts", attempt, "error", err)
			return
		}
		if wait <= 0 {
			// Full jitter around the doubling backoff: agents of many
			// clusters behind one relay do not retry in step.
			wait = backoff/2 + rand.N(backoff/2+1)
			backoff = min(2*backoff, time.Minute)
		}
		n.retries.Inc()
		n.log.Debug("notification retried", "name", e.Name, "attempt", attempt, "in", wait.String(), "error", err)
		t := time.NewTimer(wait)
		select {
		case <-n.ctx.Done():
			t.Stop()
			n.dropped.WithLabelValues("shutdown").Inc()
			return
		case <-t.C:
		}
	}
}

// postError is a failed post, its text already scrubbed of the URL.
type postError string

func (e postError) Error() string { return string(e) }

// post makes one attempt. It says whether another may succeed and how
// long the webhook asked to wait (Retry-After), and returns errors whose
// text holds no part of the URL.
func (n *Notifier) post(body []byte) (retry bool, wait time.Duration, err error) {
	ctx, cancel := context.WithTimeout(n.ctx, n.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.cfg.Webhook.url(), bytes.NewReader(body))
	if err != nil {
		return false, 0, postError(n.cfg.Webhook.scrub(err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "autarky-agent")
	resp, err := n.client.Do(req)
	if err != nil {
		return true, 0, postError(n.cfg.Webhook.scrub(err))
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return false, 0, nil
	}
	// The answer's text may echo the request: scrub it too.
	msg := postError(n.cfg.Webhook.scrubText(fmt.Sprintf("the webhook answered %s: %q", resp.Status, bytes.TrimSpace(snippet))))
	switch {
	case resp.StatusCode == http.StatusTooManyRequests, resp.StatusCode == http.StatusRequestTimeout, resp.StatusCode >= 500:
		return true, retryAfter(resp.Header.Get("Retry-After")), msg
	default:
		return false, 0, msg
	}
}

// retryAfter reads a Retry-After of seconds, capped at a minute so one
// answer cannot park the sender; 0 when absent or a date.
func retryAfter(v string) time.Duration {
	s, err := strconv.Atoi(v)
	if err != nil || s <= 0 {
		return 0
	}
	return min(time.Duration(s)*time.Second, time.Minute)
}
