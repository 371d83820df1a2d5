package agent

import (
	"fmt"
	"strings"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/decide"
	"github.com/autarky/terraform-provider-autarky/internal/notify"
)

// Notifications: the agent tells people, through Config.Notifier, what it
// did and, above all, what it cannot do. This file turns each evaluation's
// status into the set of conditions that hold (notifyConditions) and the
// agent's actions into events (notifyAction); package notify de-duplicates,
// rate-limits, resolves and sends without ever holding the loop up.
//
// Who reports what. Every agent decides, so every agent sees the same pool
// conditions; only the one on the leader reports them (scope "leader"),
// and one that stops leading forgets its conditions without resolving
// them: the new leader announces what still holds. Quorum lost is reported
// by every agent that sees it (scope "cluster"): there is no leader then to
// do it. A missing leader's agent is reported by the followers, once it has
// failed their probes for leaderAgentDownAfter. Actions only happen on the
// leader. An evaluation that failed says nothing new: its status is stale.

// Condition names, as the messages carry them (README, "Notifications").
const (
	condQuorumLost          = "quorum_lost"
	condLeaderAgentDown     = "leader_agent_down"
	condCircuitBreaker      = "circuit_breaker_open"
	condReplacementsFailing = "replacements_failing"
	condPoolAtMax           = "pool_at_max"
	condLaunchBackoff       = "launch_backoff"
	condUnschedulable       = "tasks_unschedulable"
	condCheckUntrusted      = "check_untrusted"
	condActionStuck         = "action_stuck"
	condServiceAtMax        = "service_at_max"
	condServiceRefused      = "service_refused"
	condServiceWriteFailing = "service_scale_failing"
)

// DefaultNotifyUntrustedAfter is how long a scaling check may stay
// untrusted before people are told (--notify-stale-after): a scrape or two
// missed is normal, minutes of a pool that cannot shrink or grow on its
// metrics are not.
const DefaultNotifyUntrustedAfter = 5 * time.Minute

// leaderAgentDownAfter is how long followers wait before reporting the
// leader's agent down: its supervisor restarts a dead or hung agent within
// its watchdog (30 s at the least), which needs no person.
func (a *Agent) leaderAgentDownAfter() time.Duration {
	return max(30*time.Second, 3*a.cfg.EvaluationInterval)
}

// notifyConditions reports the conditions of the evaluation that just
// ended (err: its error).
func (a *Agent) notifyConditions(err error) {
	n := a.cfg.Notifier
	if n == nil || err != nil {
		return
	}
	s := a.Status()
	if s.LastEvaluation.IsZero() {
		return
	}
	n.SetAgent(s.NodeID)
	after := a.cfg.NotifyUntrustedAfter
	if after <= 0 {
		after = DefaultNotifyUntrustedAfter
	}
	w := conditionsOf(s, a.cfg.Now(), a.notifySince, after, a.leaderAgentDownAfter())
	a.notifySince = w.since
	n.Observe("cluster", w.cluster)
	if s.Leader {
		n.Observe("leader", w.pools)
	} else {
		n.Forget("leader")
	}
}

// conditions are what one status says to tell people.
type conditions struct {
	// cluster: reported by whoever sees them; pools: by the leader (the
	// services' too).
	cluster, pools []notify.Condition
	// since: since when each delayed condition holds, for the next round.
	since map[string]time.Time
}

// conditionsOf reads the conditions in s, an evaluation's status, at now.
// prev holds, from the last round, since when the conditions that are
// told only after a while (check_untrusted after untrustedAfter,
// leader_agent_down after leaderAgentAfter) have held.
func conditionsOf(s Status, now time.Time, prev map[string]time.Time, untrustedAfter, leaderAgentAfter time.Duration) conditions {
	held := map[string]time.Time{} // conditions with a delay: since when they hold
	heldFor := func(key string, after time.Duration) bool {
		since, ok := prev[key]
		if !ok {
			since = now
		}
		held[key] = since
		return now.Sub(since) >= after
	}

	var cluster []notify.Condition
	if !s.Quorum.Held {
		cluster = append(cluster, notify.Condition{Name: condQuorumLost, Severity: notify.SeverityCritical,
			Summary: fmt.Sprintf("the managers have lost Raft quorum (%d of %d reachable): nothing is healed or scaled; bring a majority of managers back (Autarky never forces a new cluster)", s.Quorum.Reachable, s.Quorum.Managers),
			Detail:  s.Error})
	} else if !s.Leader && !s.LeaderAgent.Up && heldFor(condLeaderAgentDown, leaderAgentAfter) {
		cluster = append(cluster, notify.Condition{Name: condLeaderAgentDown, Severity: notify.SeverityCritical,
			Summary: "the agent beside the Raft leader does not answer as healthy: nobody heals or scales until it is back",
			Detail:  strings.TrimSpace(s.LeaderAgent.Address + " " + s.LeaderAgent.Error)})
	}

	var pools []notify.Condition
	// untrusted adds the checks untrusted for untrustedAfter of the pool
	// or service of owner (its Pool or Service set), keyed under key.
	untrusted := func(checks []decide.CheckResult, owner notify.Condition, key, what string) {
		for _, c := range checks {
			k := condCheckUntrusted + "/" + key + "/" + c.Name
			if c.Trusted || !heldFor(k, untrustedAfter) {
				continue
			}
			cond := owner
			cond.Name, cond.Key, cond.Severity, cond.Detail = condCheckUntrusted, k, notify.SeverityWarning, c.Reason
			cond.Summary = fmt.Sprintf("check %s of %s has been untrusted for %s: it holds on it, never shrinks", c.Name, what, now.Sub(held[k]).Round(time.Second))
			pools = append(pools, cond)
		}
	}
	for _, p := range s.Pools {
		pc := func(name string, sev notify.Severity, summary, detail string) {
			pools = append(pools, notify.Condition{Name: name, Key: name + "/" + p.ID, Severity: sev, Pool: p.ID, Summary: summary, Detail: detail})
		}
		switch decide.ReasonCode(p.Reason) {
		case decide.ReasonCircuitBreaker:
			pc(condCircuitBreaker, notify.SeverityCritical, fmt.Sprintf("healing of pool %s stopped: too much of it, or of the cluster, is unhealthy at once (a partition or a broken monitor looks like this)", p.ID), p.Message)
		case decide.ReasonBackoff:
			pc(condReplacementsFailing, notify.SeverityWarning, fmt.Sprintf("replacements in pool %s failed to launch or join: healing backs off", p.ID), p.Message)
		}
		if len(p.Stuck) > 0 {
			pc(condActionStuck, notify.SeverityWarning, fmt.Sprintf("an action in pool %s keeps failing and is retried with backoff", p.ID), strings.Join(p.Stuck, "; "))
		}
		sc := p.Scaling
		if sc == nil {
			continue
		}
		switch decide.ScaleCode(sc.Code) {
		case decide.CodeMaxSize:
			if sc.Direction == string(decide.ScaleHold) {
				pc(condPoolAtMax, notify.SeverityWarning, fmt.Sprintf("pool %s is at its max_size (%d) and its checks ask for more: the work waits", p.ID, sc.From), sc.Message)
			}
		case decide.CodeBackoff:
			pc(condLaunchBackoff, notify.SeverityWarning, fmt.Sprintf("instances of pool %s did not become nodes within provision_timeout: it does not grow until its backoff ends", p.ID), sc.Message)
		case decide.CodeUnschedulable:
			pc(condUnschedulable, notify.SeverityWarning, fmt.Sprintf("tasks pending for pool %s are not taken by its new nodes (constraints or labels they do not match): it asks for no more", p.ID), sc.Message)
		}
		untrusted(sc.Checks, notify.Condition{Pool: p.ID}, p.ID, "pool "+p.ID)
	}
	for _, sv := range s.Services {
		sc := func(name string, summary, detail string) {
			pools = append(pools, notify.Condition{Name: name, Key: name + "/" + sv.Name, Severity: notify.SeverityWarning, Service: sv.Name, Summary: summary, Detail: detail})
		}
		switch decide.ScaleCode(sv.Code) {
		case decide.CodeMaxSize:
			if sv.Direction == string(decide.ScaleHold) {
				sc(condServiceAtMax, fmt.Sprintf("service %s is at its max_replicas (%d) and its checks ask for more", sv.Name, sv.MaxReplicas), sv.Message)
			}
		case decide.CodeNotReplicated, decide.CodeOtherController:
			sc(condServiceRefused, fmt.Sprintf("service %s has a scaling policy that cannot apply to it: it is not scaled", sv.Name), sv.Message)
		}
		if sv.Error != "" {
			sc(condServiceWriteFailing, fmt.Sprintf("writing the replicas of service %s fails", sv.Name), sv.Error)
		}
		untrusted(sv.Checks, notify.Condition{Service: sv.Name}, "service/"+sv.Name, "service "+sv.Name)
	}
	return conditions{cluster: cluster, pools: pools, since: held}
}

// notifyAction tells people what the agent did (or failed to do): e names
// the action ("pool_scaled_out"), its pool or service, and says it in
// Summary. Only the leader acts, so only the leader calls it. Nil-safe.
func (a *Agent) notifyAction(e notify.Event) {
	if a.cfg.Notifier == nil {
		return
	}
	a.cfg.Notifier.Action(e)
}

// notifyOutcome tells how a replacement ended.
func (a *Agent) notifyOutcome(act decide.Action) {
	switch act.Outcome {
	case decide.OutcomeReplaced:
		a.notifyAction(notify.Event{Name: "node_replaced", Pool: act.PoolID, Summary: fmt.Sprintf("node %s of pool %s was replaced by a Ready node and removed", act.NodeID, act.PoolID), Detail: act.Reason})
	case decide.OutcomeJoinFailed, decide.OutcomeReplacementFailed:
		a.notifyAction(notify.Event{Name: "replacement_failed", Severity: notify.SeverityWarning, Pool: act.PoolID,
			Summary: fmt.Sprintf("a replacement in pool %s failed (%s) and was removed: healing backs off", act.PoolID, act.Outcome), Detail: act.Reason})
	}
}

// notifyServiceScaled tells that the replicas of service were written, as
// decision d asked (service.go calls it once the write is accepted).
func (a *Agent) notifyServiceScaled(service string, d decide.ServiceDecision) {
	a.notifyAction(notify.Event{Name: "service_scaled", Service: service,
		Summary: fmt.Sprintf("service %s scaled %s from %d to %d replicas (%s)", service, d.Direction, d.From, d.To, d.Code), Detail: d.Message})
}
