// Package agent is autarky-agent's control loop: observe the cluster, decide
// with the pure core in package decide, act through the platform, and
// explain every decision over HTTP. Only the agent beside the Swarm Raft
// leader acts; every other one observes and reports.
package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/autarky/terraform-provider-autarky/internal/metrics"
	"github.com/autarky/terraform-provider-autarky/internal/notify"
	"github.com/autarky/terraform-provider-autarky/internal/platform"
	"github.com/autarky/terraform-provider-autarky/internal/supervise"
	"github.com/autarky/terraform-provider-autarky/internal/swarm"
)

// Config is what an agent runs with.
type Config struct {
	// DockerHost is the endpoint of the manager the agent runs beside.
	DockerHost string
	// Listen is the HTTP address for /metrics, /healthz and /v1/status.
	Listen string
	// DryRun decides and reports, and changes nothing.
	DryRun bool
	// EvaluationInterval is how often the agent evaluates without an event.
	EvaluationInterval time.Duration
	// DrainTimeout bounds how long a node with tasks is drained before removal.
	DrainTimeout time.Duration
	// AlertToken is the bearer token /v1/alerts requires; it must be set
	// for alerts to be taken when Listen is beyond loopback.
	AlertToken string
	// StatusToken is the bearer token /v1/status requires. Empty means:
	// open on loopback, and beyond loopback the AlertToken (one secret
	// per cluster is what an operator hands out and rotates; a separate
	// one keeps Alertmanager's credential from reading the topology).
	StatusToken string
	Logger      hclog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Collectors are the platform's own metrics, served on /metrics too.
	Collectors []prometheus.Collector
	// CallDeadlines bound each Engine API call on its own (zero fields:
	// swarm's production defaults), so a hung engine ends a call, not the
	// evaluation's whole deadline; tests set short ones.
	CallDeadlines swarm.Deadlines
	// Notifier, when set, tells people what the agent did and what it
	// cannot do (notify.go); NotifyUntrustedAfter is how long a scaling
	// check may stay untrusted before it is told (default 5m).
	Notifier             *notify.Notifier
	NotifyUntrustedAfter time.Duration
}

// ValidateDockerHost accepts unix sockets, and refuses tcp:// without TLS:
// the agent's engine endpoint controls the whole swarm.
func ValidateDockerHost(host string) error {
	switch {
	case strings.HasPrefix(host, "unix://"):
		return nil
	case strings.HasPrefix(host, "tcp://"):
		return fmt.Errorf("docker host %q: tcp:// without TLS is refused: use the manager's unix socket", host)
	default:
		return fmt.Errorf("docker host %q: use unix:///path/to/docker.sock", host)
	}
}

// Agent is one running agent.
type Agent struct {
	cfg     Config
	cluster platform.Cluster
	// startedAt is when this agent was made: journal entries from before
	// it were started by an earlier run.
	startedAt time.Time
	// group is cluster when its pools are cloud groups, else nil.
	group   platform.GroupCluster
	docker  *swarm.Client
	log     hclog.Logger
	metrics *agentMetrics

	mu      sync.Mutex
	status  Status
	seen    map[string]seenState // node id -> state and when it was first seen
	reasons map[string]string    // "heal/<pool>", "scale/<pool>" -> last noted decision
	would   map[string]bool      // dry-run: action keys already reported
	// nextWake is when the next rule's clock runs out; zero for none.
	nextWake time.Time
	alerts   map[string]alertState
	// alertIndex holds the alert names the scaling policies use, and the
	// alerts posted since the last reading that none used (alerts.go).
	alertIndex alertIndex
	wake       chan struct{}

	// recommended holds, by pool, the sizes the scaling decisions within
	// the pool's stabilisation window recommended (decide.Remember).
	recommended recommendations

	prom         *metrics.Client
	unneeded     map[string]time.Time // node id -> since when it is unneeded
	rebalanceDue map[string]bool      // pools that grew and whose services may rebalance
	rebalanced   map[string]time.Time // service id -> last rebalance
	recheck      bool                 // keep nextWake past the next evaluation
	selfID       string               // the swarm node id of the agent's own engine
	led          bool                 // the last evaluation found this agent's manager leading

	// baseCtx outlives one evaluation: removals run in it beside the loop.
	baseCtx context.Context
	// workers are the removals running beside the loop, by journal key.
	workers map[string]worker
	// jmu serialises journal writes; jrev is the revision this agent last
	// read or wrote, and jcache that journal: a write starts from it, and
	// the store refuses it over anyone else's.
	jmu    sync.Mutex
	jrev   string
	jcache Journal
	// settleUntil: after the process was frozen, leadership checks wait
	// until then (see watchFreezes).
	settleUntil time.Time
	lastTick    time.Time // the freeze watcher's last note
	// evalDeadline bounds one evaluation (evaluationDeadline).
	evalDeadline time.Duration
	// failedEvaluations counts evaluations in a row that failed.
	failedEvaluations int
	// tokensRotatedFor is the join_token_rotation trigger this agent saw
	// done in the token store (tokens.go): it reads the store again only
	// when the descriptor names another.
	tokensRotatedFor string
	// tokensRetryAt and tokensBackoff space out retries of a failed
	// rotation.
	tokensRetryAt time.Time
	tokensBackoff time.Duration
	// notifySince: since when each delayed notification condition holds
	// (notify.go).
	notifySince map[string]time.Time
	// services is what the agent keeps of the services it scales
	// (service.go).
	services serviceMemory
	// history is every pool's and service's size over the last hour,
	// for the status page (history.go, page.go).
	history *sizeHistory
}

// wakeNow asks the loop for an evaluation at once.
func (a *Agent) wakeNow() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

type seenState struct {
	state string
	since time.Time
}

func asGroup(c platform.Cluster) platform.GroupCluster {
	if g, ok := c.(platform.GroupCluster); ok {
		return g
	}
	return nil
}

// New makes an agent for cluster, talking to the manager at cfg.DockerHost.
func New(cfg Config, cluster platform.Cluster) (*Agent, error) {
	if err := ValidateDockerHost(cfg.DockerHost); err != nil {
		return nil, err
	}
	if cfg.EvaluationInterval <= 0 {
		cfg.EvaluationInterval = 2 * time.Second
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = 2 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	docker, err := swarm.DialWith(cfg.DockerHost, cfg.CallDeadlines)
	if err != nil {
		return nil, err
	}
	a := &Agent{
		cfg:       cfg,
		cluster:   cluster,
		docker:    docker,
		log:       cfg.Logger,
		metrics:   newMetrics(),
		group:     asGroup(cluster),
		startedAt: cfg.Now(),
		seen:      map[string]seenState{},
		reasons:   map[string]string{},
		alerts:    map[string]alertState{},
		wake:      make(chan struct{}, 1),

		prom:         metrics.NewClient(5 * time.Second),
		unneeded:     map[string]time.Time{},
		rebalanceDue: map[string]bool{},
		rebalanced:   map[string]time.Time{},
		baseCtx:      context.Background(),
		evalDeadline: evaluationDeadline(),
		workers:      map[string]worker{},
		history:      newSizeHistory(),
	}
	a.services = newServiceMemory(a.metrics.registry)
	for _, c := range slices.Concat(cfg.Collectors, cfg.Notifier.Collectors()) {
		if err := a.metrics.registry.Register(c); err != nil {
			return nil, fmt.Errorf("platform metrics: %w", err)
		}
	}
	a.status = Status{Cluster: cluster.Name(), DryRun: cfg.DryRun, Decisions: []Decision{}}
	return a, nil
}

// Run serves HTTP and evaluates on every node event and every interval
// until ctx ends.
func (a *Agent) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", a.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", a.cfg.Listen, err)
	}
	srv := a.httpServer()
	go func() { _ = srv.Serve(ln) }()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if !loopbackListen(a.cfg.Listen) && a.cfg.AlertToken == "" {
		a.log.Warn("listening beyond loopback without an alert token: /v1/alerts refuses every request (401)", "listen", a.cfg.Listen)
		if a.cfg.StatusToken == "" {
			a.log.Warn("listening beyond loopback without a status token: /v1/status refuses every request (401)", "listen", a.cfg.Listen)
		}
	}
	a.log.Info("agent started", "cluster", a.cluster.Name(), "listen", ln.Addr().String(), "docker_host", a.cfg.DockerHost,
		"dry_run", a.cfg.DryRun, "evaluation_interval", a.cfg.EvaluationInterval.String())

	a.baseCtx = ctx
	go a.watchFreezes(ctx)
	events := a.docker.ClusterEvents(ctx)
	_ = supervise.Notify("READY=1")
	for {
		a.Evaluate(ctx)
		// The supervisor's watchdog (systemd's WatchdogSec, or the local
		// platform's supervisor) restarts an agent whose loop stops coming
		// round.
		_ = supervise.Notify("WATCHDOG=1")
		timer := time.NewTimer(a.untilWake())
		select {
		case <-ctx.Done():
			timer.Stop()
			a.log.Info("agent stopping")
			return nil
		case <-timer.C:
		case kind := <-events:
			timer.Stop()
			if kind == swarm.EventService {
				// The scheduler marks tasks it cannot place within moments
				// of a service change: look again shortly after this round.
				a.mu.Lock()
				a.nextWake = a.cfg.Now().Add(300 * time.Millisecond)
				a.recheck = true
				a.mu.Unlock()
			}
		case <-a.wake:
			timer.Stop()
		}
	}
}

// Evaluate runs one observe -> decide -> act round.
func (a *Agent) Evaluate(ctx context.Context) {
	start := time.Now()
	defer func() { a.metrics.evaluation.Observe(time.Since(start).Seconds()) }()
	ectx, cancel := context.WithTimeout(ctx, a.evalDeadline)
	defer cancel()
	err := a.evaluate(ectx)
	a.mu.Lock()
	if err != nil && !platform.IsTransient(err) {
		a.failedEvaluations++
	} else {
		a.failedEvaluations = 0
	}
	a.mu.Unlock()
	if err != nil && !errors.Is(err, context.Canceled) {
		if platform.IsTransient(err) {
			// Throttled, or the platform is busy: nothing is wrong, the
			// next evaluation observes again.
			a.log.Warn("evaluation skipped: the platform said not now", "error", err)
		} else {
			a.log.Error("evaluation failed", "error", err)
		}
		a.mu.Lock()
		a.status.Error = err.Error()
		a.mu.Unlock()
	}
	a.health()
	a.notifyConditions(err)
}

// evaluationDeadline bounds one evaluation: half the supervisor's watchdog
// when one watches ($WATCHDOG_USEC, set by systemd and by autarky-agent
// supervise), so a hung call ends the evaluation and the next one tells
// the watchdog the loop is alive; else 10 minutes. Removals, which can
// take drain_timeout, run beside the loop and are not bounded by it.
func evaluationDeadline() time.Duration {
	if us, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64); err == nil && us > 0 {
		return time.Duration(us) * time.Microsecond / 2
	}
	return 10 * time.Minute
}

// Status returns a copy of the agent's current status.
func (a *Agent) Status() Status {
	h := a.health()
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.status
	s.Health = h
	s.Actions = append([]ActionStatus(nil), a.status.Actions...)
	s.JournalSetAside = append([]string(nil), a.status.JournalSetAside...)
	s.Decisions = append([]Decision(nil), a.status.Decisions...)
	s.Alerts = a.alertStatuses()
	s.Services = a.serviceStatuses()
	s.Notifications = a.cfg.Notifier.Active()
	return s
}
