package policy

import (
	"fmt"
	"time"
)

// Healing policy defaults, as the provider shows them and the agent assumes
// them when a stored descriptor leaves a field empty.
const (
	// DefaultUnhealthyAfter is what an operator runs in production: a node
	// must be Down for 5 minutes before it is replaced. Swarm reschedules a
	// Down node's tasks within seconds by itself, so waiting costs spare
	// capacity, not service; replacing sooner turns every network partition,
	// reboot or dockerd restart of more than a few heartbeats into churn (a
	// new instance, a node removed, its tasks moved twice). Five minutes is
	// Kubernetes' own wait before it evicts from a NotReady node (300 s);
	// node repair in the autoscalers waits 10 to 30 minutes. Demos and tests
	// set seconds explicitly.
	DefaultUnhealthyAfter = "5m"
	// DefaultJoinTimeout leaves a fresh instance time to boot, start dockerd
	// and join the Swarm.
	DefaultJoinTimeout = "5m"
	// DefaultMinNodeAge leaves a node 10 minutes after it joined before a
	// failure gets it replaced. A node that fails that young most likely
	// failed from how it was built (its image, its boot, its network), and
	// its replacement would fail the same way: replacing it at once would
	// loop. Ten minutes bounds that loop to one replacement per node per ten
	// minutes, like the autoscalers' delay after adding a node
	// (cluster-autoscaler's scale-down-delay-after-add is 10m). Nodes that
	// never join are join_timeout's business, not this one's.
	DefaultMinNodeAge = "10m"
	// DefaultMaxUnhealthyPercent is the share of a pool (or of the cluster)
	// that may be unhealthy at once before healing stops (safety rule 6).
	DefaultMaxUnhealthyPercent = 20
	// DefaultMaxConcurrentReplacements replaces one node at a time.
	DefaultMaxConcurrentReplacements = 1
)

// Bounds of the integer healing fields.
const (
	MinMaxUnhealthyPercent       = 1
	MaxMaxUnhealthyPercent       = 100
	MinMaxConcurrentReplacements = 1
	MaxMaxConcurrentReplacements = 10
)

// Healing is the healing policy of one node pool: when a node counts as
// failed and how fast failed nodes are replaced. It is the stored form, with
// durations as the strings the user wrote; Rules gives the parsed form.
type Healing struct {
	PoolID                    string `json:"node_pool_id"`
	UnhealthyAfter            string `json:"unhealthy_after"`
	JoinTimeout               string `json:"join_timeout"`
	MinNodeAge                string `json:"min_node_age"`
	MaxUnhealthyPercent       int64  `json:"max_unhealthy_percent"`
	MaxConcurrentReplacements int64  `json:"max_concurrent_replacements"`
	Enabled                   bool   `json:"enabled"`
}

// HealingRules is a validated Healing policy with parsed durations, the form
// the decision core works with.
type HealingRules struct {
	UnhealthyAfter            time.Duration
	JoinTimeout               time.Duration
	MinNodeAge                time.Duration
	MaxUnhealthyPercent       int
	MaxConcurrentReplacements int
	Enabled                   bool
}

// DefaultHealing returns the enabled default policy for the pool.
func DefaultHealing(poolID string) Healing {
	return Healing{
		PoolID:                    poolID,
		UnhealthyAfter:            DefaultUnhealthyAfter,
		JoinTimeout:               DefaultJoinTimeout,
		MinNodeAge:                DefaultMinNodeAge,
		MaxUnhealthyPercent:       DefaultMaxUnhealthyPercent,
		MaxConcurrentReplacements: DefaultMaxConcurrentReplacements,
		Enabled:                   true,
	}
}

// Validate checks every field of the policy. Errors start with the field's
// name, so the provider can attach them to the right attribute.
func (h Healing) Validate() error {
	_, err := h.parse()
	return err
}

// Rules validates the policy and returns its parsed form.
func (h Healing) Rules() (HealingRules, error) {
	r, err := h.parse()
	if err != nil {
		return HealingRules{}, fmt.Errorf("healing policy for %q: %w", h.PoolID, err)
	}
	return r, nil
}

// parse does the work of Validate and Rules, so the two cannot disagree.
func (h Healing) parse() (HealingRules, error) {
	if _, _, err := SplitPoolID(h.PoolID); err != nil {
		return HealingRules{}, fmt.Errorf("node_pool_id: %w", err)
	}
	unhealthyAfter, err := ParseDuration(h.UnhealthyAfter)
	if err != nil {
		return HealingRules{}, fmt.Errorf("unhealthy_after: %w", err)
	}
	joinTimeout, err := ParseDuration(h.JoinTimeout)
	if err != nil {
		return HealingRules{}, fmt.Errorf("join_timeout: %w", err)
	}
	// A zero join timeout would terminate every instance while it boots.
	if joinTimeout < time.Second {
		return HealingRules{}, fmt.Errorf("join_timeout: %q is too short: an instance needs time to boot and join; use at least 1s", h.JoinTimeout)
	}
	minNodeAge, err := ParseDuration(h.MinNodeAge)
	if err != nil {
		return HealingRules{}, fmt.Errorf("min_node_age: %w", err)
	}
	if err := checkRange(h.MaxUnhealthyPercent, MinMaxUnhealthyPercent, MaxMaxUnhealthyPercent); err != nil {
		return HealingRules{}, fmt.Errorf("max_unhealthy_percent: %w", err)
	}
	if err := checkRange(h.MaxConcurrentReplacements, MinMaxConcurrentReplacements, MaxMaxConcurrentReplacements); err != nil {
		return HealingRules{}, fmt.Errorf("max_concurrent_replacements: %w", err)
	}
	return HealingRules{
		UnhealthyAfter:            unhealthyAfter,
		JoinTimeout:               joinTimeout,
		MinNodeAge:                minNodeAge,
		MaxUnhealthyPercent:       int(h.MaxUnhealthyPercent),
		MaxConcurrentReplacements: int(h.MaxConcurrentReplacements),
		Enabled:                   h.Enabled,
	}, nil
}

// checkRange refuses n outside [lo, hi].
func checkRange(n, lo, hi int64) error {
	if n < lo || n > hi {
		return fmt.Errorf("%d is not allowed: use %d to %d", n, lo, hi)
	}
	return nil
}
