package agent

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the agent's Prometheus metrics. Labels are pools, states,
// results and reasons: bounded sets, never node ids.
type metrics struct {
	registry     *prometheus.Registry
	leader       prometheus.Gauge
	quorum       prometheus.Gauge
	nodes        *prometheus.GaugeVec
	replacements *prometheus.CounterVec
	decisions    *prometheus.CounterVec
	breaker      *prometheus.GaugeVec
	evaluation   prometheus.Histogram
}

func newMetrics() *metrics {
	m := &metrics{
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
	m.registry.MustRegister(m.leader, m.quorum, m.nodes, m.replacements, m.decisions, m.breaker, m.evaluation,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
