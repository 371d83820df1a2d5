package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/platform"
)

// errDeposed is returned instead of making a change when the agent's
// manager no longer leads the Raft group.
var errDeposed = errors.New("this agent's manager no longer leads the Raft group: it makes no change")

// fenced reports whether err means this agent must not act: it no longer
// leads, or another agent wrote the journal since it read it.
func fenced(err error) bool {
	return errors.Is(err, errDeposed) || errors.Is(err, platform.ErrConflict)
}

// callTimeout bounds one mutating call (a drain's start, a removal, a
// termination): a hung engine or endpoint ends in an error, not a stall.
const callTimeout = 2 * time.Minute

// Freeze detection: a goroutine notes the time every freezeTick; a gap
// longer than freezeGap means the whole process was stopped (SIGSTOP, a
// paused VM) or starved. Its engine was frozen likely too, and a Raft
// leader that resumes still believes it leads until its first exchange
// with the others tells it of the newer term. So after a freeze, no
// leadership check is trusted for settleAfterFreeze: several Raft
// heartbeats.
const (
	freezeTick        = 200 * time.Millisecond
	freezeGap         = 2 * time.Second
	settleAfterFreeze = 5 * time.Second
)

// watchFreezes runs until ctx ends.
func (a *Agent) watchFreezes(ctx context.Context) {
	t := time.NewTicker(freezeTick)
	defer t.Stop()
	a.mu.Lock()
	a.lastTick = time.Now()
	a.mu.Unlock()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			a.mu.Lock()
			a.noteFreezeLocked()
			a.mu.Unlock()
		}
	}
}

// noteFreezeLocked notes the time; a gap since the last note means the
// process was frozen, and starts the settling time. After a resume, any
// goroutine may run before the ticker's: mustLead calls it too. a.mu held.
func (a *Agent) noteFreezeLocked() {
	if a.lastTick.IsZero() {
		return // no watcher (an agent driven by a test, one evaluation at a time)
	}
	now := time.Now()
	if gap := now.Sub(a.lastTick); gap > freezeGap {
		a.settleUntil = now.Add(settleAfterFreeze)
		a.log.Warn("the agent was frozen or starved: leadership is checked again after the swarm settles",
			"gap", gap.Round(time.Millisecond).String(), "settle", settleAfterFreeze.String())
	}
	a.lastTick = now
}

// mustLead checks, right before a mutating call, that this agent's manager
// still leads the Raft group; what names the call for the log. It returns
// errDeposed when it does not: the caller makes no change.
func (a *Agent) mustLead(ctx context.Context, what string) error {
	a.mu.Lock()
	a.noteFreezeLocked()
	settle := time.Until(a.settleUntil)
	self := a.selfID
	a.mu.Unlock()
	if settle > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(settle):
		}
	}
	if self == "" {
		return fmt.Errorf("before %s: %w", what, errDeposed)
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	n, found, err := a.docker.Node(cctx, self)
	if err != nil {
		return fmt.Errorf("leadership check before %s: %w", what, err)
	}
	if !found || !n.Leader {
		a.metrics.fenced.WithLabelValues("leadership").Inc()
		a.log.Warn("no longer the leader: making no change", "call", what)
		return fmt.Errorf("before %s: %w", what, errDeposed)
	}
	return nil
}

// guarded makes one mutating call: leadership is checked right before it,
// and the call has a deadline of its own.
func (a *Agent) guarded(ctx context.Context, what string, call func(ctx context.Context) error) error {
	if err := a.mustLead(ctx, what); err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	a.metrics.changes.Inc()
	return call(cctx)
}

// probeLeaderAgent asks the agent beside the Raft leader whether it is
// healthy; followers export the answer as autarky_leader_agent_up, so a
// dead or hung leading agent is told, not silent.
func (a *Agent) probeLeaderAgent(ctx context.Context, o *observation) {
	var addr string
	for _, n := range o.nodes {
		if n.Leader {
			addr = n.Addr
		}
	}
	st := LeaderAgentStatus{}
	switch {
	case o.leader:
		st = LeaderAgentStatus{Address: a.cfg.Listen, Up: true}
	case addr == "":
		st.Error = "the swarm lists no leader"
	default:
		_, port, err := net.SplitHostPort(a.cfg.Listen)
		if err != nil {
			st.Error = err.Error()
			break
		}
		st.Address = net.JoinHostPort(addr, port)
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		req, _ := http.NewRequestWithContext(pctx, http.MethodGet, "http://"+st.Address+"/healthz", nil)
		resp, err := http.DefaultClient.Do(req)
		cancel()
		switch {
		case err != nil:
			st.Error = err.Error()
		case resp.StatusCode != http.StatusOK:
			st.Error = "healthz answered " + resp.Status
			resp.Body.Close()
		default:
			st.Up = true
			resp.Body.Close()
		}
	}
	up := 0.0
	if st.Up {
		up = 1
	}
	a.metrics.leaderAgentUp.Set(up)
	if !st.Up && a.changed("leader-agent", st.Error) {
		a.log.Error("the leader's agent does not answer as healthy: nobody heals or scales until it is back",
			"address", st.Address, "error", st.Error)
	} else if st.Up {
		a.changed("leader-agent", "")
	}
	a.mu.Lock()
	a.status.LeaderAgent = st
	a.mu.Unlock()
}
