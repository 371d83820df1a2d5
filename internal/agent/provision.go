package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/decide"
	"github.com/autarky/terraform-provider-autarky/internal/notify"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

// Provisioning: what the agent does with the decision core's judgement of
// the instances a pool asked for (decide/provision.go has the rules and
// why). The core names the instances that never registered within
// provision_timeout (ScalePool.TimedOut) and the part of a group request
// that was never listed (Abandoned), and gives the pool's backoff record;
// the leader carries that out before the pool's scaling decision acts:
//
//   - each timed-out instance gets a journaled terminate_instance action,
//     written in one journal write with the backoff, and run beside the
//     loop like any removal (retried with backoff when the platform
//     refuses, finished by the next leader after a crash). The entry
//     names the instance, so no later evaluation judges it again: one
//     instance is one timeout. On a group it shrinks the desired capacity
//     with the termination, so the group does not launch the same failure
//     again, unless that would take the pool below min_size, which the
//     group must keep anyway;
//   - an abandoned request lowers the group's desired capacity to the
//     instances it lists (desiredTrimmer), which terminates none of them,
//     before the journal forgets the request;
//   - the pool's desired size is set to its real size, within its bounds;
//   - the request record leaves the journal once the platform lists the
//     instances asked for, or once they are abandoned.
//
// The backoff then holds every scale-out of the pool (code "backoff", in
// /v1/status and the log) and is exported as autarky_scale_backoff_seconds.

// desiredTrimmer is a group platform that can give up launches it was
// asked for: it lowers a pool's group's desired capacity to the instances
// the group lists, never below the group's minimum, so no instance is
// terminated by it, and says from what to what, and why the group says it
// is busy (the failed launch, such as a quota error), for the operator.
// The cloud platforms' Cluster (group.Cluster) is one.
type desiredTrimmer interface {
	TrimDesired(ctx context.Context, pool string) (from, to int, why string, err error)
}

// provisionKeyPrefix starts the journal key of a timed-out instance's
// termination: provision_timeout/<pool>/instance:<id>.
const provisionKeyPrefix = "provision_timeout/"

// settleProvisioning carries out the provisioning judgement of pool sp on
// the leader; see above. It does nothing for a pool whose request is
// pending and whose instances are all in time.
func (a *Agent) settleProvisioning(ctx context.Context, o *observation, sp decide.ScalePool) error {
	_, hasRequest := o.journal.Requested[sp.ID]
	gaveUp := len(sp.TimedOut) > 0 || sp.Abandoned > 0
	if !gaveUp && !(hasRequest && sp.Unlisted == 0) {
		return nil
	}
	pool, ok := o.pools[sp.ID]
	if !ok {
		return nil
	}
	var acts []decide.Action
	remaining := sp.Current + len(sp.TimedOut)
	for _, id := range sp.TimedOut {
		shrink := a.group != nil && remaining-1 >= int(pool.MinSize)
		if shrink {
			remaining--
		}
		acts = append(acts, decide.Action{Kind: decide.TerminateInstance, Key: provisionKeyPrefix + sp.ID + "/instance:" + id,
			PoolID: sp.ID, Role: policy.RoleWorker, InstanceID: id, Shrink: shrink,
			Reason: fmt.Sprintf("instance %s did not become a Ready node within provision_timeout %s: terminate it", id, sp.Rules.ProvisionTimeout)})
	}
	// A launch never listed is given up before the journal forgets the
	// request: trimming is idempotent, so a failure here leaves the request
	// to be given up again at the next evaluation.
	trimmed := ""
	if t, ok := a.cluster.(desiredTrimmer); ok && sp.Abandoned > 0 {
		var from, to int
		var why string
		if err := a.guarded(ctx, "give up the launches of "+sp.ID, func(ctx context.Context) error {
			var err error
			from, to, why, err = t.TrimDesired(ctx, pool.Name)
			return err
		}); err != nil {
			return err
		}
		trimmed = fmt.Sprintf(", group desired capacity %d -> %d", from, to)
		if why != "" {
			trimmed += " (" + why + ")"
		}
	}
	j, err := a.updateJournal(ctx, "provisioning of "+sp.ID, func(j *Journal) {
		for _, act := range acts {
			if j.find(act.Key) < 0 {
				j.Entries = append(j.Entries, Entry{Action: act, StartedAt: o.now, By: o.selfID})
			}
		}
		if gaveUp {
			if j.ProvisionBackoff == nil {
				j.ProvisionBackoff = map[string]decide.ProvisionBackoff{}
			}
			j.ProvisionBackoff[sp.ID] = sp.ProvisionBackoff
		}
		if sp.Unlisted == 0 {
			delete(j.Requested, sp.ID)
		}
	})
	if err != nil {
		return err
	}
	o.journal = j
	if !gaveUp {
		return nil
	}
	msg := fmt.Sprintf("provision_timeout %s passed", sp.Rules.ProvisionTimeout)
	if n := len(sp.TimedOut); n > 0 {
		a.metrics.provisionTimeouts.WithLabelValues(sp.ID, "never_registered").Add(float64(n))
		msg += fmt.Sprintf(": %d instance(s) never registered as Swarm nodes (%v), terminating", n, sp.TimedOut)
	}
	if sp.Abandoned > 0 {
		a.metrics.provisionTimeouts.WithLabelValues(sp.ID, "never_listed").Add(float64(sp.Abandoned))
		msg += fmt.Sprintf(": %d instance(s) asked of the group were never listed%s", sp.Abandoned, trimmed)
	}
	size := min(max(sp.Current, int(pool.MinSize)), int(pool.MaxSize))
	if err := a.guarded(ctx, "set the desired size of "+sp.ID, func(ctx context.Context) error {
		return a.cluster.SetDesiredSize(ctx, pool.Name, int64(size))
	}); err != nil {
		return err
	}
	until := sp.ProvisionBackoff.Until(o.now)
	msg += fmt.Sprintf("; desired size set to the real size %d; no scale-out for %s (%d timeout(s) in a row)",
		size, until.Sub(o.now).Round(time.Second), sp.ProvisionBackoff.Timeouts)
	a.log.Warn("provision timeout: backing off", "pool", sp.ID, "message", msg)
	a.addDecision(o.now, sp.ID, "provision_timeout", string(decide.CodeBackoff), msg, false)
	a.notifyAction(notify.Event{Name: "provision_timeout", Severity: notify.SeverityWarning, Pool: sp.ID,
		Summary: fmt.Sprintf("instances of pool %s failed to launch or join within provision_timeout %s", sp.ID, sp.Rules.ProvisionTimeout), Detail: msg})
	a.resume(o)
	return nil
}
