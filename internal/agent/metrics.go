package agent

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"
)

// metrics are the agent's Prometheus metrics. Labels are pools, states,
// results and reasons: bounded sets, never node ids.
type agentMetrics struct {
	registry     *prometheus.Registry
	leader       prometheus.Gauge
	quorum       prometheus.Gauge
	nodes        *prometheus.GaugeVec
	replacements *prometheus.CounterVec
	decisions    *prometheus.CounterVec
	breaker      *prometheus.GaugeVec
	evaluation   prometheus.Histogram

	checkStale     *prometheus.GaugeVec
	scaleDecisions *prometheus.CounterVec
	scaleActions   *prometheus.CounterVec
	scaleIns       *prometheus.CounterVec
	poolSize       *prometheus.GaugeVec
	// scaleBackoff and provisionTimeouts: provision.go.
	scaleBackoff      *prometheus.GaugeVec
	provisionTimeouts *prometheus.CounterVec

	fenced        *prometheus.CounterVec
	leaderAgentUp prometheus.Gauge
	retries       *prometheus.CounterVec
	healthy       prometheus.Gauge
	changes       prometheus.Counter
}

func newMetrics() *agentMetrics {
	m := &agentMetrics{
		registry: prometheus.NewRegistry(),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "autarky_leader", Help: "1 when this agent's manager is the Swarm Raft leader and the agent acts, else 0.",
		}),
		quorum: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "autarky_quorum", Help: "1 when the managers hold Raft quorum under a leader, 0 when quorum is lost.",
		}),
		nodes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "autarky_nodes", Help: "Swarm nodes by pool and state.",
		}, []string{"pool", "state"}),
		replacements: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "autarky_replacements_total", Help: "Node replacements by pool and result (started, replaced, join_failed, replacement_failed, error).",
		}, []string{"pool", "result"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "autarky_decisions_total", Help: "Evaluations by pool and the reason the pool acted or held.",
		}, []string{"pool", "reason"}),
		breaker: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "autarky_circuit_breaker_open", Help: "1 while healing of the pool is stopped because too much of it is unhealthy at once.",
		}, []string{"pool"}),
		evaluation: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "autarky_evaluation_duration_seconds", Help: "Time one observe, decide and act round takes.",
			Buckets: []float64{0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120},
		}),
	}
	m.checkStale = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "autarky_check_stale", Help: "1 while a scaling check's data cannot be trusted (missing, empty, NaN, stale or unreachable): the pool holds, never shrinks.",
	}, []string{"pool", "check"})
	m.scaleDecisions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "autarky_scaling_decisions_total", Help: "Scaling evaluations by pool, direction (up, down, hold) and reason code.",
	}, []string{"pool", "direction", "code"})
	m.scaleActions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "autarky_scaled_nodes_total", Help: "Nodes added (up) or removed (down) by scaling.",
	}, []string{"pool", "direction"})
	m.scaleIns = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "autarky_scale_in_removals_total", Help: "Nodes removed by scale-in, by whether their drain finished (drained) or drain_timeout forced it (forced).",
	}, []string{"pool", "result"})
	m.poolSize = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "autarky_pool_instances", Help: "Running instances of a pool under a scaling policy.",
	}, []string{"pool"})
	m.fenced = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "autarky_fenced_total", Help: "Changes this agent did not make because it no longer leads (leadership) or another agent wrote the journal since it read it (journal).",
	}, []string{"fence"})
	m.leaderAgentUp = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "autarky_leader_agent_up", Help: "1 when the agent beside the Raft leader (this one, on the leader) answers /healthz with 200; 0 when it is dead, hung or unhealthy, and nobody acts.",
	})
	m.retries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "autarky_action_retries_total", Help: "Failed steps of journaled actions, retried with backoff, by pool and why (drain_not_started, step_failed, transient).",
	}, []string{"pool", "reason"})
	m.healthy = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "autarky_agent_healthy", Help: "1 while /healthz answers 200: evaluations succeed and the journal can be read.",
	})
	m.changes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "autarky_changes_total", Help: "Mutating calls this agent made (drains, removals, terminations, launches, size and label changes), each right after a leadership check.",
	})
	m.registry.MustRegister(m.fenced, m.leaderAgentUp, m.retries, m.healthy, m.changes)
	m.scaleBackoff = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "autarky_scale_backoff_seconds", Help: "Seconds left of the pool's provision backoff, during which it does not scale out because instances it asked for did not become Ready nodes within provision_timeout; 0 when not backing off.",
	}, []string{"pool"})
	m.provisionTimeouts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "autarky_provision_timeouts_total", Help: "Instances a pool asked for that did not become Ready nodes within provision_timeout: terminated (never_registered), or asked of a group and never listed (never_listed).",
	}, []string{"pool", "kind"})
	m.registry.MustRegister(m.checkStale, m.scaleDecisions, m.scaleActions, m.scaleIns, m.poolSize, m.scaleBackoff, m.provisionTimeouts)
	m.registry.MustRegister(m.leader, m.quorum, m.nodes, m.replacements, m.decisions, m.breaker, m.evaluation,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// forgetPools and forgetScaling delete the series of pools and checks the
// last evaluation no longer names. A gauge keeps its last value until it
// is deleted, so a breaker open or a check stale when its pool or policy
// was deleted would go on saying so, and alert (examples/alerts), until
// the agent restarts. Gone series are deleted one by one, never Reset and
// set again, so a scrape never misses a live one.
func (m *agentMetrics) forgetPools(pools []PoolStatus) {
	live := map[string]bool{}
	for _, p := range pools {
		live[p.ID] = true
	}
	keepOnly(m.breaker, func(l prometheus.Labels) bool { return live[l["pool"]] })
}

func (m *agentMetrics) forgetScaling(statuses map[string]ScaleStatus) {
	keepOnly(m.poolSize, func(l prometheus.Labels) bool { _, ok := statuses[l["pool"]]; return ok })
	keepOnly(m.checkStale, func(l prometheus.Labels) bool {
		for _, c := range statuses[l["pool"]].Checks {
			if c.Name == l["check"] {
				return true
			}
		}
		return false
	})
}

// keepOnly deletes vec's series whose labels keep refuses.
func keepOnly(vec *prometheus.GaugeVec, keep func(prometheus.Labels) bool) {
	ch := make(chan prometheus.Metric)
	go func() { vec.Collect(ch); close(ch) }()
	var gone []prometheus.Labels
	for m := range ch {
		var pb dto.Metric
		if m.Write(&pb) != nil {
			continue
		}
		l := prometheus.Labels{}
		for _, lp := range pb.GetLabel() {
			l[lp.GetName()] = lp.GetValue()
		}
		if !keep(l) {
			gone = append(gone, l)
		}
	}
	// After Collect: Delete takes the lock Collect holds.
	for _, l := range gone {
		vec.Delete(l)
	}
}
