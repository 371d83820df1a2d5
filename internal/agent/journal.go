package agent

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/decide"
	"github.com/autarky/terraform-provider-autarky/internal/platform"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
	"github.com/autarky/terraform-provider-autarky/internal/swarm"
)

// Journal is the agent's record of actions started and not finished, kept in
// the store so that any agent that becomes leader, or this one after a
// crash, finishes them instead of repeating them.
//
// Every map of the journal is a per-pool record, by pool id: prune drops
// the records of pools that are gone without naming the fields, so a new
// map must be by pool id too (or prune must learn of it).
type Journal struct {
	Entries []Entry                   `json:"entries"`
	Backoff map[string]decide.Backoff `json:"backoff,omitempty"`
	// LastScaleUp and LastScaleDown keep the cooldowns across leaders.
	LastScaleUp   map[string]time.Time `json:"last_scale_up,omitempty"`
	LastScaleDown map[string]time.Time `json:"last_scale_down,omitempty"`
	// ProvisionBackoff is each pool's record of provision timeouts, and
	// Requested the size the agent last asked each pool's group for and has
	// not seen listed yet (provision.go); both by pool id.
	ProvisionBackoff map[string]decide.ProvisionBackoff `json:"provision_backoff,omitempty"`
	Requested        map[string]decide.ScaleRequest     `json:"requested,omitempty"`
}

// Entry is one action in flight.
type Entry struct {
	Action    decide.Action `json:"action"`
	StartedAt time.Time     `json:"started_at"`
	// By is the node id of the agent that started it.
	By string `json:"by"`
	// Batch groups the scale-in removals of one decision: when one of them
	// fails for good, the rest of the batch is undone.
	Batch string `json:"batch,omitempty"`
	// DrainTimeout bounds the drain of the node, counted from
	// DrainStartedAt: the moment an engine accepted the drain, kept so that
	// a new leader does not start the clock again.
	DrainTimeout   time.Duration `json:"drain_timeout,omitempty"`
	DrainStartedAt time.Time     `json:"drain_started_at,omitzero"`
	// Terminated is set once the instance is gone: the node can no longer
	// be made schedulable again.
	Terminated bool `json:"terminated,omitempty"`
	// Attempts counts the failed attempts at the entry's current step;
	// NextAttempt is when it is tried again and LastError why it failed.
	Attempts    int       `json:"attempts,omitempty"`
	NextAttempt time.Time `json:"next_attempt,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
}

// rebuiltBy marks entries the agent made up from Swarm and the platform
// after the journal was set aside.
const rebuiltBy = "rebuilt"

func (j *Journal) find(key string) int {
	for i, e := range j.Entries {
		if e.Action.Key == key {
			return i
		}
	}
	return -1
}

func (j *Journal) remove(key string) {
	if i := j.find(key); i >= 0 {
		j.Entries = append(j.Entries[:i], j.Entries[i+1:]...)
	}
}

// clone is a copy of j that shares nothing with it.
func (j Journal) clone() Journal {
	j.Entries = slices.Clone(j.Entries)
	j.Backoff = maps.Clone(j.Backoff)
	j.LastScaleUp = maps.Clone(j.LastScaleUp)
	j.LastScaleDown = maps.Clone(j.LastScaleDown)
	j.ProvisionBackoff = maps.Clone(j.ProvisionBackoff)
	j.Requested = maps.Clone(j.Requested)
	return j
}

// prune drops the records that no longer matter, so that the journal holds
// what is in flight and at most one record of each kind per live pool,
// however long the cluster runs and however many pools come and go:
//
//   - every per-pool record (each map of the journal) of a pool that no
//     longer exists and has no entry in flight: nothing reads it (Heal,
//     scaling and the status look records up by the pools they see), and a
//     pool made again under the same name starts afresh, as a new pool;
//     while an entry of the pool is in flight its records stay, since
//     finishing the entry may still update them;
//   - a record that is its type's zero value (a backoff of no failures, a
//     zero time): a map read of a missing key gives the same zero value,
//     so it reads exactly as no record.
//
// Age alone never makes a live pool's record moot, so none is dropped for
// it: a backoff's count of failures sets the next failure's delay,
// LastScaleUp marks the nodes of the last scale-out for the runaway guard
// with no time bound, and a cooldown may be raised after the fact.
// Entries are not pruned here: an action leaves the journal when it
// finishes (or is undone or dropped), and one of a pool that is gone still
// names an instance to finish with. It returns what it dropped, as
// "field[pool]", sorted.
func (j *Journal) prune(pools map[string]policy.Pool) []string {
	inFlight := map[string]bool{}
	for _, e := range j.Entries {
		inFlight[e.Action.PoolID] = true
	}
	var dropped []string
	v := reflect.ValueOf(j).Elem()
	for i := range v.NumField() {
		m, field := v.Field(i), v.Type().Field(i)
		if m.Kind() != reflect.Map || m.Type().Key().Kind() != reflect.String {
			continue
		}
		name, _, _ := strings.Cut(field.Tag.Get("json"), ",")
		for _, k := range m.MapKeys() {
			pool := k.String()
			_, live := pools[pool]
			switch {
			case m.MapIndex(k).IsZero():
				dropped = append(dropped, name+"["+pool+"] (empty)")
			case !live && !inFlight[pool]:
				dropped = append(dropped, name+"["+pool+"] (pool gone)")
			default:
				continue
			}
			m.SetMapIndex(k, reflect.Value{}) // the map stays, empty maps are omitted
		}
	}
	sort.Strings(dropped)
	return dropped
}

func (j *Journal) fail(pool string, now time.Time) decide.Backoff {
	if j.Backoff == nil {
		j.Backoff = map[string]decide.Backoff{}
	}
	b := j.Backoff[pool]
	b.Failures++
	b.LastFailure = now
	j.Backoff[pool] = b
	return b
}

// Entry retries: a step that fails is tried again after entryRetryBase,
// doubling up to entryRetryCap, while every other pool goes on.
const (
	entryRetryBase = 2 * time.Second
	entryRetryCap  = 5 * time.Minute
)

func entryRetryDelay(attempts int) time.Duration {
	d := entryRetryBase
	for i := 1; i < attempts && d < entryRetryCap; i++ {
		d *= 2
	}
	return min(d, entryRetryCap)
}

// readJournal reads the journal into o. A journal that cannot be decoded
// is set aside for a person by the leader (kept under a new name, named in
// the log and in /v1/status) and rebuilt from Swarm and the platform; a
// follower reports it and waits for the leader to do so.
func (a *Agent) readJournal(ctx context.Context, o *observation) error {
	a.jmu.Lock()
	defer a.jmu.Unlock()
	var j Journal
	rev, err := a.cluster.LoadJournal(ctx, &j)
	if errors.Is(err, platform.ErrJournalCorrupt) {
		if !o.leader || a.cfg.DryRun {
			a.setJournalProblem("the journal cannot be read and the leader has not set it aside yet: " + err.Error())
			return fmt.Errorf("journal: %w", err)
		}
		var kept string
		serr := a.guarded(ctx, "set the unreadable journal aside", func(ctx context.Context) error {
			var err error
			kept, err = a.cluster.SetAsideJournal(ctx)
			return err
		})
		if serr != nil {
			a.setJournalProblem(fmt.Sprintf("the journal cannot be read (%v), and setting it aside failed: %v", err, serr))
			return fmt.Errorf("journal: %w", err)
		}
		a.log.Error("JOURNAL SET ASIDE: the journal could not be read; it is kept for a person and the agent rebuilt what it must from Swarm and the platform",
			"kept_as", kept, "error", err.Error(), "what_to_do", "read the kept journal to see what was in flight; delete it when done")
		a.mu.Lock()
		a.status.JournalSetAside = append(a.status.JournalSetAside, kept)
		a.mu.Unlock()
		j = a.rebuildJournal(ctx, o)
		a.jrev = "" // no journal is left in the store
		if err := a.saveJournalLocked(ctx, "the rebuilt journal", j); err != nil {
			return err
		}
		rev = a.jrev
		a.addDecision(o.now, "", "journal", "set_aside", "the journal could not be read: kept as "+kept+"; rebuilt from Swarm and the platform", false)
	} else if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	a.setJournalProblem("")
	a.jrev, a.jcache = rev, j.clone()
	if o.leader && !a.cfg.DryRun {
		// Housekeeping: a failure leaves the journal as it was read, and
		// the evaluation goes on (a conflict shows on the next write).
		p := j.clone()
		if dropped := p.prune(o.pools); len(dropped) > 0 {
			if err := a.saveJournalLocked(ctx, "prune records that no longer matter", p); err != nil {
				a.log.Warn("journal: dropping records that no longer matter failed", "records", dropped, "error", err)
			} else {
				a.log.Info("journal: dropped records that no longer matter", "records", dropped)
				j = p
			}
		}
	}
	o.journal = j
	return nil
}

func (a *Agent) setJournalProblem(p string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.status.JournalProblem = p
}

// updateJournal changes the journal with f and saves it, starting from the
// journal as this agent last read or wrote it. The write is fenced twice:
// leadership is checked right before it, and the store refuses it
// (platform.ErrConflict) when anyone else wrote the journal since — a
// deposed leader that resumes after a freeze finds a newer leader's
// journal and makes no change.
func (a *Agent) updateJournal(ctx context.Context, what string, f func(j *Journal)) (Journal, error) {
	a.jmu.Lock()
	defer a.jmu.Unlock()
	j := a.jcache.clone()
	f(&j)
	return j, a.saveJournalLocked(ctx, what, j)
}

// saveJournalLocked writes j over revision a.jrev, right after a leadership
// check, and remembers what it wrote. a.jmu held.
func (a *Agent) saveJournalLocked(ctx context.Context, what string, j Journal) error {
	if err := a.mustLead(ctx, "journal write: "+what); err != nil {
		return err
	}
	rev, err := a.cluster.SaveJournal(ctx, &j, a.jrev)
	if err != nil {
		if errors.Is(err, platform.ErrConflict) {
			a.metrics.fenced.WithLabelValues("journal").Inc()
		}
		return fmt.Errorf("journal write (%s): %w", what, err)
	}
	a.jrev, a.jcache = rev, j.clone()
	return nil
}

// rebuildJournal makes, from Swarm and the platform, the journal a lost one
// must be replaced with, so that no action is ever repeated:
//
//   - the cooldowns of every pool start now: no scaling on a guess;
//   - a failed node of a pool under healing gets a replacement entry as if
//     started when Swarm last changed the node; adoption then takes a
//     pool instance launched since as its replacement (the one the lost
//     journal had started), or drops the entry when there is none, and
//     Heal starts one as usual;
//   - a node Autarky drained (the autarky.drain label) is made schedulable
//     again: whatever drained it is forgotten, so its removal is decided
//     afresh.
func (a *Agent) rebuildJournal(ctx context.Context, o *observation) Journal {
	j := Journal{LastScaleUp: map[string]time.Time{}, LastScaleDown: map[string]time.Time{}}
	for id := range o.pools {
		j.LastScaleUp[id] = o.now
		j.LastScaleDown[id] = o.now
	}
	for _, n := range o.nodes {
		poolID := nodePool(n, o.cluster.Name)
		if _, ok := o.pools[poolID]; !ok {
			continue
		}
		if _, drained := n.Labels[swarm.LabelDrain]; drained && n.State == "ready" {
			if err := a.guarded(ctx, "undrain "+n.ID, func(ctx context.Context) error { return a.docker.Undrain(ctx, n.ID) }); err != nil {
				a.log.Warn("rebuild: making a drained node schedulable again failed", "node", n.ID, "error", err)
			} else {
				a.log.Info("rebuild: node drained by a forgotten action is schedulable again", "node", n.ID)
			}
		}
		if h, ok := o.healing[poolID]; !ok || !h.Enabled || n.State == "ready" || n.Leader {
			continue
		}
		inst := n.EngineLabels[policy.LabelInstance]
		role := o.pools[poolID].Role
		act := decide.Action{Kind: decide.ReplaceNode, Key: decide.ActionKey(decide.ReplaceNode, poolID, n.ID, inst),
			PoolID: poolID, Role: role, NodeID: n.ID, InstanceID: inst,
			Reason: "rebuilt after the journal was set aside: node " + n.ID + " is " + n.State}
		j.Entries = append(j.Entries, Entry{Action: act, StartedAt: n.UpdatedAt, By: rebuiltBy})
	}
	return j
}
