package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/decide"
	"github.com/autarky/terraform-provider-autarky/internal/platform"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
	"github.com/autarky/terraform-provider-autarky/internal/swarm"
)

// Removals (drain, demote, terminate, remove) run beside the loop, one
// worker per journal entry, so that a node that takes drain_timeout to
// drain never holds up the healing of another pool. The journal drives
// them: the loop starts a worker for every removal entry that has none and
// whose retry time has come, whether this agent journaled it a moment ago
// or a previous leader did before it crashed. The removals of one scale-in
// batch run one at a time (a termination that fails undoes the rest of
// its batch); batches run side by side, as many as the pool's disruption
// budget let the decision core journal (decide.Scale counts every entry
// in flight), so empty nodes still go while a busy one drains.

// resume starts workers for the journal's removals; the leader's loop
// calls it every evaluation.
func (a *Agent) resume(o *observation) {
	for _, e := range o.journal.Entries {
		if e.Action.Kind == decide.ReplaceNode {
			continue
		}
		if e.NextAttempt.After(o.now) {
			continue
		}
		a.mu.Lock()
		_, busy := a.workers[e.Action.Key]
		if e.Batch != "" && !busy {
			for _, w := range a.workers {
				if w.batch == e.Batch && w.pool == e.Action.PoolID {
					busy = true
				}
			}
		}
		if !busy {
			a.workers[e.Action.Key] = worker{pool: e.Action.PoolID, batch: e.Batch}
		}
		a.mu.Unlock()
		if busy {
			continue
		}
		go a.carryOut(e)
	}
}

type worker struct{ pool, batch string }

// errDrainNotStarted: the engine refused the update that starts a drain.
// The node keeps its tasks and is not removed; the step is retried.
var errDrainNotStarted = errors.New("the drain could not start")

// errTerminate wraps a failed termination.
type errTerminate struct{ err error }

func (e errTerminate) Error() string { return "terminate instance: " + e.err.Error() }
func (e errTerminate) Unwrap() error { return e.err }

// carryOut runs one removal entry to its end, or to the failure of a step.
func (a *Agent) carryOut(e Entry) {
	ctx := a.baseCtx
	act := e.Action
	defer func() {
		a.mu.Lock()
		delete(a.workers, act.Key)
		a.mu.Unlock()
		a.wakeNow()
	}()
	forced, err := a.removeSteps(ctx, &e)
	var term errTerminate
	switch {
	case err == nil:
		a.finishRemoval(ctx, e, forced)
	case fenced(err) || ctx.Err() != nil:
		a.log.Warn("stopped carrying out an action: no longer the leader; the new leader finishes it", "key", act.Key, "reason", err)
	case e.Batch != "" && errors.As(err, &term) && !platform.IsTransient(err):
		a.undoScaleIn(ctx, e, err)
	default:
		a.retryLater(ctx, e, err)
	}
}

// removeSteps drains, demotes, terminates and removes, each step only if
// still needed, so that a journaled removal is safely carried out again by
// a new leader. forced is true when drain_timeout ran out with tasks still
// running on a node that really drained for that long.
func (a *Agent) removeSteps(ctx context.Context, e *Entry) (forced bool, err error) {
	act := e.Action
	if act.Kind == decide.RemoveNode && act.NodeID != "" {
		n, found, err := a.docker.Node(ctx, act.NodeID)
		if err != nil {
			return false, err
		}
		if found {
			if act.Drain {
				if forced, err = a.drainStep(ctx, e, n); err != nil {
					return false, err
				}
			}
			// The node's real role, not its pool's: a worker promoted by
			// hand must be demoted before Swarm lets it go.
			if n.Role == policy.RoleManager {
				if err := a.demote(ctx, n); err != nil {
					return forced, err
				}
			}
		}
	}
	if act.InstanceID != "" && !e.Terminated {
		terminate := a.cluster.TerminateInstance
		if act.Shrink && a.group != nil {
			terminate = a.group.TerminateAndShrink
		}
		if err := a.guarded(ctx, "terminate instance "+act.InstanceID, func(ctx context.Context) error { return terminate(ctx, act.InstanceID) }); err != nil {
			if errors.Is(err, errDeposed) {
				return forced, err
			}
			return forced, errTerminate{err}
		}
		e.Terminated = true
		if _, err := a.updateJournal(ctx, "instance terminated", func(j *Journal) {
			if i := j.find(act.Key); i >= 0 {
				j.Entries[i].Terminated = true
			}
		}); err != nil {
			return forced, err
		}
	}
	if act.Kind == decide.RemoveNode && act.NodeID != "" {
		if err := a.guarded(ctx, "remove node "+act.NodeID, func(ctx context.Context) error { return a.docker.Remove(ctx, act.NodeID, true) }); err != nil {
			return forced, err
		}
	}
	a.log.Info("removed", "kind", act.Kind, "pool", act.PoolID, "node", act.NodeID, "instance", act.InstanceID)
	return forced, nil
}

// drainStep starts the node's drain if it has not started, then waits until
// no task runs there or the entry's drain timeout, counted from when the
// drain really started, has passed. A drain that cannot start is an error
// (errDrainNotStarted): the node is not removed.
func (a *Agent) drainStep(ctx context.Context, e *Entry, n swarm.Node) (forced bool, err error) {
	act := e.Action
	if n.Availability != "drain" || e.DrainStartedAt.IsZero() {
		if err := a.guarded(ctx, "drain node "+act.NodeID, func(ctx context.Context) error { return a.docker.Drain(ctx, act.NodeID, act.Key) }); err != nil {
			if errors.Is(err, errDeposed) {
				return false, err
			}
			return false, fmt.Errorf("%w on node %s: %v", errDrainNotStarted, act.NodeID, err)
		}
		if e.DrainStartedAt.IsZero() {
			e.DrainStartedAt = a.cfg.Now()
			if _, err := a.updateJournal(ctx, "drain started", func(j *Journal) {
				if i := j.find(act.Key); i >= 0 {
					j.Entries[i].DrainStartedAt = e.DrainStartedAt
					j.Entries[i].Attempts, j.Entries[i].LastError = 0, ""
				}
			}); err != nil {
				return false, err
			}
		}
		a.log.Info("draining", "node", act.NodeID, "pool", act.PoolID, "drain_timeout", e.drainTimeout(a.cfg.DrainTimeout).String())
	}
	deadline := e.DrainStartedAt.Add(e.drainTimeout(a.cfg.DrainTimeout))
	for {
		qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		left, err := a.docker.TasksStillRunning(qctx, act.NodeID)
		cancel()
		if err == nil && left == 0 {
			return false, nil
		}
		if !a.cfg.Now().Before(deadline) {
			a.log.Warn("drain_timeout reached: the node is removed with tasks still running (forced)", "node", act.NodeID,
				"pool", act.PoolID, "tasks", left, "draining_since", e.DrainStartedAt)
			return true, nil
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (e Entry) drainTimeout(fallback time.Duration) time.Duration {
	if e.DrainTimeout > 0 {
		return e.DrainTimeout
	}
	return fallback
}

// finishRemoval drops a finished removal, and the unit it concludes, from
// the journal, and keeps the pool's backoff from its outcome.
func (a *Agent) finishRemoval(ctx context.Context, e Entry, forced bool) {
	act := e.Action
	now := a.cfg.Now()
	_, err := a.updateJournal(ctx, "finish "+act.Key, func(j *Journal) {
		j.remove(act.Key)
		if act.Completes == "" {
			return
		}
		j.remove(act.Completes)
		switch act.Outcome {
		case decide.OutcomeReplaced:
			delete(j.Backoff, act.PoolID)
		case decide.OutcomeJoinFailed, decide.OutcomeReplacementFailed:
			b := j.fail(act.PoolID, now)
			a.log.Warn("replacement failed; backing off", "pool", act.PoolID, "failures", b.Failures, "next_after", decide.BackoffDelay(b.Failures).String())
		}
	})
	if err != nil {
		a.log.Warn("finishing an action in the journal failed; the next evaluation carries it out again (every step is idempotent)", "key", act.Key, "error", err)
		return
	}
	if act.Outcome != "" {
		a.metrics.replacements.WithLabelValues(act.PoolID, string(act.Outcome)).Inc()
		a.notifyOutcome(act)
	}
	if e.Batch != "" {
		result := "drained"
		if forced {
			result = "forced"
			a.addDecision(now, act.PoolID, "scale_down", "forced",
				fmt.Sprintf("node %s removed after drain_timeout %s with tasks still running", act.NodeID, e.drainTimeout(a.cfg.DrainTimeout)), false)
		}
		a.metrics.scaleIns.WithLabelValues(act.PoolID, result).Inc()
	} else if forced {
		a.addDecision(now, act.PoolID, string(act.Kind), "forced",
			fmt.Sprintf("node %s removed after drain_timeout %s with tasks still running", act.NodeID, e.drainTimeout(a.cfg.DrainTimeout)), false)
	}
}

// retryLater records a failed step; the entry is tried again after a delay
// that grows with every failure, while every other pool goes on.
func (a *Agent) retryLater(ctx context.Context, e Entry, err error) {
	act := e.Action
	attempts := e.Attempts + 1
	delay := entryRetryDelay(attempts)
	next := a.cfg.Now().Add(delay)
	code := "step_failed"
	msg := fmt.Sprintf("%s: %v; attempt %d, next in %s", act.Key, err, attempts, delay)
	if errors.Is(err, errDrainNotStarted) {
		code = "drain_not_started"
		msg = fmt.Sprintf("node %s keeps its tasks and stays: %v (attempt %d, next in %s)", act.NodeID, err, attempts, delay)
	}
	a.log.Warn("an action's step failed; retrying later", "key", act.Key, "attempt", attempts, "next_in", delay.String(), "error", err)
	a.addDecision(a.cfg.Now(), act.PoolID, "hold", code, msg, false)
	if platform.IsTransient(err) {
		a.metrics.retries.WithLabelValues(act.PoolID, "transient").Inc()
	} else {
		a.metrics.retries.WithLabelValues(act.PoolID, code).Inc()
	}
	if _, jerr := a.updateJournal(ctx, "retry "+act.Key, func(j *Journal) {
		if i := j.find(act.Key); i >= 0 {
			j.Entries[i].Attempts = attempts
			j.Entries[i].NextAttempt = next
			j.Entries[i].LastError = err.Error()
		}
	}); jerr != nil {
		a.log.Warn("recording the retry failed", "key", act.Key, "error", jerr)
	}
	// carryOut's wakeNow brings an evaluation, whose scheduleWake reads
	// next from the journal.
}

// undoScaleIn ends a scale-in batch whose termination failed for good
// (reliability scenario S7): every node of the batch not terminated is
// made schedulable again, the batch leaves the journal, and the pool's
// desired size is brought to its real size.
func (a *Agent) undoScaleIn(ctx context.Context, e Entry, cause error) {
	act := e.Action
	var undone []Entry
	_, err := a.updateJournal(ctx, "undo scale-in "+e.Batch, func(j *Journal) {
		kept := j.Entries[:0]
		for _, x := range j.Entries {
			if x.Batch == e.Batch && !x.Terminated {
				undone = append(undone, x)
				continue
			}
			kept = append(kept, x)
		}
		j.Entries = kept
	})
	if err != nil {
		a.log.Warn("undoing a failed scale-in failed; retrying", "batch", e.Batch, "error", err)
		a.retryLater(ctx, e, cause)
		return
	}
	for _, x := range undone {
		id := x.Action.NodeID
		if err := a.guarded(ctx, "make node "+id+" schedulable", func(ctx context.Context) error { return a.docker.Undrain(ctx, id) }); err != nil {
			a.log.Warn("making a node schedulable again failed", "node", id, "error", err)
		}
	}
	size, serr := a.realSize(ctx, act.PoolID)
	if serr == nil {
		serr = a.guarded(ctx, "set the desired size of "+act.PoolID, func(ctx context.Context) error {
			_, pool, _ := policy.SplitPoolID(act.PoolID)
			return a.cluster.SetDesiredSize(ctx, pool, int64(size))
		})
	}
	msg := fmt.Sprintf("scale-in stopped: terminating instance %s failed (%v); %d node(s) of the batch made schedulable again", act.InstanceID, cause, len(undone))
	if serr != nil {
		msg += fmt.Sprintf("; setting the desired size to the real size failed: %v", serr)
	} else {
		msg += fmt.Sprintf("; desired size set to the real size, %d", size)
	}
	a.log.Error("scale-in undone", "pool", act.PoolID, "batch", e.Batch, "message", msg)
	a.addDecision(a.cfg.Now(), act.PoolID, "scale_down", "undone", msg, false)
	a.metrics.scaleIns.WithLabelValues(act.PoolID, "undone").Add(float64(len(undone)))
}

// realSize counts a pool's running instances on the platform.
func (a *Agent) realSize(ctx context.Context, poolID string) (int, error) {
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	insts, err := a.cluster.Instances(cctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, in := range insts {
		if in.Running && policy.PoolID(in.Cluster, in.Pool) == poolID {
			n++
		}
	}
	return n, nil
}
