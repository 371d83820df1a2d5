package agent

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/autarky/terraform-provider-autarky/internal/notify"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

// Status is what /v1/status serves: every pool, its nodes and their health,
// and the last decisions with their reasons.
type Status struct {
	Cluster        string       `json:"cluster"`
	NodeID         string       `json:"node_id"`
	Leader         bool         `json:"leader"`
	DryRun         bool         `json:"dry_run"`
	Quorum         QuorumStatus `json:"quorum"`
	Pools          []PoolStatus `json:"pools"`
	InFlight       []string     `json:"in_flight"`
	Decisions      []Decision   `json:"decisions"`
	LastEvaluation time.Time    `json:"last_evaluation"`
	Error          string       `json:"error,omitempty"`
	// Actions are the journal's actions in flight, with the step that
	// fails and when it is tried again.
	Actions []ActionStatus `json:"actions,omitempty"`
	// LeaderAgent is what this agent knows of the agent beside the leader.
	LeaderAgent LeaderAgentStatus `json:"leader_agent"`
	// JournalProblem says why the journal cannot be read, while it cannot.
	JournalProblem string `json:"journal_problem,omitempty"`
	// JournalSetAside names the unreadable journals this agent kept for a
	// person and replaced with one rebuilt from Swarm and the platform.
	JournalSetAside []string `json:"journal_set_aside,omitempty"`
	// Health is what /healthz answers: "ok", or why the agent cannot act.
	Health string `json:"health"`
	// Alerts are the Alertmanager alerts the agent remembers: only those a
	// scaling policy names.
	Alerts []AlertStatus `json:"alerts"`
	// Services are the services under a service scaling policy (from
	// Terraform or their labels), and their last decisions.
	Services []ServiceStatus `json:"services,omitempty"`
	// Notifications are the conditions this agent announced to the
	// webhook and has not resolved yet (notify.go).
	Notifications []notify.Active `json:"notifications,omitempty"`
}

// ActionStatus is one journaled action in flight.
type ActionStatus struct {
	Key            string    `json:"key"`
	Pool           string    `json:"pool"`
	StartedAt      time.Time `json:"started_at"`
	DrainStartedAt time.Time `json:"drain_started_at,omitzero"`
	Attempts       int       `json:"attempts,omitempty"`
	NextAttempt    time.Time `json:"next_attempt,omitzero"`
	LastError      string    `json:"last_error,omitempty"`
}

// LeaderAgentStatus is the answer of the agent beside the Raft leader.
type LeaderAgentStatus struct {
	Address string `json:"address,omitempty"`
	Up      bool   `json:"up"`
	Error   string `json:"error,omitempty"`
}

// QuorumStatus is the Raft view of the managers.
type QuorumStatus struct {
	Managers  int  `json:"managers"`
	Reachable int  `json:"reachable"`
	Leader    bool `json:"leader_present"`
	Held      bool `json:"held"`
}

// PoolStatus is one pool, its nodes and why it acts or holds.
type PoolStatus struct {
	ID      string       `json:"id"`
	Role    string       `json:"role"`
	MinSize int          `json:"min_size"`
	MaxSize int          `json:"max_size"`
	Desired int          `json:"desired_size"`
	Healing bool         `json:"healing_policy"`
	Reason  string       `json:"reason"`
	Message string       `json:"message"`
	Nodes   []NodeStatus `json:"nodes"`
	// Scaling is the last scaling decision, for pools under a scaling policy.
	Scaling *ScaleStatus `json:"scaling,omitempty"`
	// Stuck says which of the pool's journaled actions has a step that
	// keeps failing, and why: the pool holds on it while others go on.
	Stuck []string `json:"stuck,omitempty"`
}

// NodeStatus is one node's health.
type NodeStatus struct {
	ID           string    `json:"id"`
	Hostname     string    `json:"hostname"`
	Instance     string    `json:"instance"`
	Role         string    `json:"role"`
	State        string    `json:"state"`
	Since        time.Time `json:"since"`
	Availability string    `json:"availability"`
	Reachability string    `json:"reachability,omitempty"`
	Leader       bool      `json:"leader,omitempty"`
	Tasks        int       `json:"running_tasks"`
}

// Decision is one thing the agent did, or one reason it held.
type Decision struct {
	Time time.Time `json:"time"`
	Pool string    `json:"pool"`
	// Service is the service of a service scaling decision; Pool is
	// empty then.
	Service string `json:"service,omitempty"`
	Kind    string `json:"kind"` // an action kind, or "hold"
	Code    string `json:"code"`
	Message string `json:"message"`
	DryRun  bool   `json:"dry_run,omitempty"`
}

const maxDecisions = 100

// Handler serves /metrics, /healthz, /v1/alerts, /v1/status and the
// status page at /. /metrics
// and /healthz are open: Prometheus scrapes the first and the other agents
// probe the second, and neither names a node, an address or a host
// (metrics carry pool names and counts). /v1/alerts, /v1/status and the
// page take a bearer token beyond loopback (authorized, statusAuthorized).
func (a *Agent) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(a.metrics.registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if h := a.health(); h != "ok" {
			http.Error(w, h, http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("/v1/alerts", a.handleAlerts)
	// The status page for people (page.go): "/" only, guarded as /v1/status.
	mux.HandleFunc("GET /{$}", a.handlePage)
	mux.HandleFunc("/v1/status", func(w http.ResponseWriter, r *http.Request) {
		if !a.statusAuthorized(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="autarky-agent"`)
			http.Error(w, "an Authorization header \"Bearer <token>\" is required: the agent's status token (--status-token-file), else its alert token; `autarky-agent status --token-file FILE` sends it", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(a.Status())
	})
	return mux
}

// unhealthyAfter failed evaluations in a row make /healthz answer 503.
const unhealthyAfter = 3

// health is what /healthz says: "ok", or why the agent cannot act.
func (a *Agent) health() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	h := "ok"
	switch {
	case a.status.JournalProblem != "":
		h = "journal unreadable: " + a.status.JournalProblem
	case a.failedEvaluations >= unhealthyAfter:
		h = fmt.Sprintf("%d evaluations in a row failed; last error: %s", a.failedEvaluations, a.status.Error)
	}
	v := 0.0
	if h == "ok" {
		v = 1
	}
	a.metrics.healthy.Set(v)
	return h
}

// PrintStatus writes a status for a person.
func PrintStatus(w io.Writer, s Status) {
	role := "follower (observes and reports)"
	if s.Leader {
		role = "leader (acts)"
	}
	if s.DryRun {
		role += ", dry-run"
	}
	fmt.Fprintf(w, "cluster %s — agent on node %s is %s\n", s.Cluster, short(s.NodeID), role)
	q := "held"
	if !s.Quorum.Held {
		q = "LOST"
	}
	fmt.Fprintf(w, "quorum %s: %d of %d managers reachable\n", q, s.Quorum.Reachable, s.Quorum.Managers)
	if s.Health != "" && s.Health != "ok" {
		fmt.Fprintf(w, "UNHEALTHY: %s\n", s.Health)
	}
	if s.Error != "" {
		fmt.Fprintf(w, "last error: %s\n", s.Error)
	}
	if !s.Leader && !s.LeaderAgent.Up {
		fmt.Fprintf(w, "THE LEADER'S AGENT IS DOWN (%s): nobody heals or scales: %s\n", s.LeaderAgent.Address, s.LeaderAgent.Error)
	}
	for _, k := range s.JournalSetAside {
		fmt.Fprintf(w, "journal set aside for a person, kept as %s\n", k)
	}
	for _, n := range s.Notifications {
		fmt.Fprintf(w, "notified %s %s since %s: %s\n", n.Severity, n.Key, n.Since.Format(time.TimeOnly), n.Summary)
	}
	for _, p := range s.Pools {
		fmt.Fprintf(w, "\npool %s (%s, size %d in [%d, %d]): %s — %s\n", p.ID, p.Role, p.Desired, p.MinSize, p.MaxSize, p.Reason, p.Message)
		for _, st := range p.Stuck {
			fmt.Fprintf(w, "  holding: %s\n", st)
		}
		if sc := p.Scaling; sc != nil {
			fmt.Fprintf(w, "  scaling %s %d -> %d (%s): %s\n", sc.Direction, sc.From, sc.To, sc.Code, sc.Message)
			for _, c := range sc.Checks {
				trust := "trusted"
				if !c.Trusted {
					trust = "UNTRUSTED"
				}
				fmt.Fprintf(w, "    check %s (%s, %s) asks for %d: %s\n", c.Name, c.Kind, trust, c.Desired, c.Reason)
			}
		}
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  NODE\tHOSTNAME\tSTATE\tSINCE\tAVAILABILITY\tMANAGER\tTASKS")
		for _, n := range p.Nodes {
			mgr := n.Reachability
			if n.Leader {
				mgr = "leader"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%d\n", short(n.ID), n.Hostname, n.State, n.Since.Format(time.TimeOnly), n.Availability, mgr, n.Tasks)
		}
		tw.Flush()
	}
	printServices(w, s.Services)
	if len(s.InFlight) > 0 {
		fmt.Fprintf(w, "\nin flight: %s\n", strings.Join(s.InFlight, ", "))
	}
	if len(s.Decisions) > 0 {
		fmt.Fprintln(w, "\nlast decisions:")
		ds := append([]Decision(nil), s.Decisions...)
		sort.SliceStable(ds, func(i, j int) bool { return ds[i].Time.After(ds[j].Time) })
		if len(ds) > 15 {
			ds = ds[:15]
		}
		for _, d := range ds {
			dry := ""
			if d.DryRun {
				dry = " (dry-run)"
			}
			who := d.Pool
			if d.Service != "" {
				who = "service " + d.Service
			}
			fmt.Fprintf(w, "  %s  %-12s %-18s %s: %s%s\n", d.Time.Format(time.TimeOnly), who, d.Kind, d.Code, d.Message, dry)
		}
	}
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// FetchStatus reads an agent's /v1/status document from its address
// ("http://host:port" or "host:port"), sending token, when not empty, in
// the Bearer scheme.
func FetchStatus(addr, token string) ([]byte, error) {
	base := addr
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	req, err := http.NewRequest(http.MethodGet, strings.TrimRight(base, "/")+"/v1/status", nil)
	if err != nil {
		return nil, fmt.Errorf("agent at %s: %w", base, err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("agent at %s: %w", base, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusUnauthorized && token == "":
		return nil, fmt.Errorf("agent at %s: %s: it wants its token: pass --token-file (on an aws manager, as root: %s)", base, resp.Status, policy.AgentTokenFile)
	case resp.StatusCode == http.StatusUnauthorized:
		return nil, fmt.Errorf("agent at %s: %s: it refused the token given", base, resp.Status)
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("agent at %s: %s", base, resp.Status)
	}
	return io.ReadAll(resp.Body)
}

// PrintRemoteStatus prints a running agent's status for a person; token
// as for FetchStatus.
func PrintRemoteStatus(w io.Writer, addr, token string) error {
	body, err := FetchStatus(addr, token)
	if err != nil {
		return err
	}
	var s Status
	if err := json.Unmarshal(body, &s); err != nil {
		return fmt.Errorf("agent at %s: %w", addr, err)
	}
	PrintStatus(w, s)
	return nil
}
