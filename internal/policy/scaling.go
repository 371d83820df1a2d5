package policy

import (
	"fmt"
	"math"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Scaling policy defaults, as the provider shows them and the agent assumes
// them.
const (
	// DefaultScalingEvaluationInterval is how often the pool is evaluated.
	DefaultScalingEvaluationInterval = "10s"
	// DefaultCooldownUp is the least time between two scale-ups.
	DefaultCooldownUp = "30s"
	// DefaultCooldownDown is the least time between a scale-down and the
	// scale-up or scale-down before it.
	DefaultCooldownDown = "5m"
	// DefaultScaleInAfter is how long a node must be unneeded before it may
	// be removed.
	DefaultScaleInAfter = "2m"
	// DefaultMaxStep is the most nodes one decision adds or removes.
	DefaultMaxStep = 5
	// DefaultDrainTimeout bounds how long a node being removed drains.
	DefaultDrainTimeout = "5m"
	// DefaultNodeSelector removes empty nodes first.
	DefaultNodeSelector = NodeSelectorEmptyFirst
	// DefaultCheckStep is the step of a threshold or alert check.
	DefaultCheckStep = 1
	// DefaultProvisionTimeout is how long an instance the pool asked for
	// may take to become a Ready Swarm node before it is given up: 15
	// minutes, cluster-autoscaler's max-node-provision-time and
	// Karpenter's registration timeout, long enough for a cold boot that
	// installs Docker, short enough that a capacity shortage does not
	// hold the pool for hours.
	DefaultProvisionTimeout = "15m"
	// MinProvisionTimeout is the shortest provision_timeout allowed: an
	// instance needs a few seconds to boot and join even on the local
	// platform, and a shorter timeout would terminate every new instance.
	MinProvisionTimeout = 5 * time.Second
	// DefaultMaxDisruptedPercent is the share of a pool's nodes that may be
	// disrupted (drained or removed) at once, healing and scale-in
	// together: Karpenter's default NodePool budget of 10 %. At least one
	// node always may, so any pool can shrink and heal.
	DefaultMaxDisruptedPercent = 10
)

// Bounds of the integer scaling fields.
const (
	MinMaxStep = 1
	MaxMaxStep = 100
	// max_disrupted_percent
	MinMaxDisruptedPercent = 1
	MaxMaxDisruptedPercent = 100
	MinCheckStep           = 1
	MaxCheckStep           = 100
)

// Node selectors: which nodes a scale-in removes first.
const (
	// NodeSelectorEmptyFirst: fewest running tasks first, then the newest.
	NodeSelectorEmptyFirst = "empty_first"
	// NodeSelectorLeastBusy: the smallest reserved share of CPU or memory.
	NodeSelectorLeastBusy = "least_busy"
	// NodeSelectorOldest: the oldest node first.
	NodeSelectorOldest = "oldest"
	// NodeSelectorNewest: the newest node first.
	NodeSelectorNewest = "newest"
)

// NodeSelectors lists every allowed node_selector, the default first.
var NodeSelectors = []string{NodeSelectorEmptyFirst, NodeSelectorLeastBusy, NodeSelectorOldest, NodeSelectorNewest}

// Scaling is the scaling policy of one node pool: which checks size it, how
// fast it may change and which nodes go first when it shrinks. It is the
// stored form, with durations as the strings the user wrote; Rules gives
// the parsed form.
type Scaling struct {
	PoolID string `json:"node_pool_id"`
	// MinSize and MaxSize narrow the pool's own bounds; nil means the
	// pool's.
	MinSize            *int64 `json:"min_size,omitempty"`
	MaxSize            *int64 `json:"max_size,omitempty"`
	EvaluationInterval string `json:"evaluation_interval"`
	CooldownUp         string `json:"cooldown_up"`
	CooldownDown       string `json:"cooldown_down"`
	// ScaleInAfter is how long a node must be unneeded before it may go.
	ScaleInAfter string `json:"scale_in_after"`
	MaxStep      int64  `json:"max_step"`
	DrainTimeout string `json:"drain_timeout"`
	NodeSelector string `json:"node_selector"`
	// MaxSampleAge is the oldest Prometheus sample still trusted; empty
	// means twice the evaluation interval.
	MaxSampleAge string `json:"max_sample_age"`
	// ProvisionTimeout is how long an instance the pool asked for may take
	// to become a Ready node; empty (a policy stored before it existed)
	// means DefaultProvisionTimeout.
	ProvisionTimeout string `json:"provision_timeout,omitempty"`
	// MaxDisruptedPercent is the disruption budget; 0 (a policy stored
	// before it existed) means DefaultMaxDisruptedPercent.
	MaxDisruptedPercent int64 `json:"max_disrupted_percent,omitempty"`
	// PendingTasks, when set, grows the pool for tasks Swarm cannot place.
	PendingTasks *PendingTasksCheck `json:"pending_tasks,omitempty"`
	Prometheus   []PrometheusCheck  `json:"prometheus,omitempty"`
	Alert        []AlertCheck       `json:"alert,omitempty"`
	Enabled      bool               `json:"enabled"`
}

// PendingTasksCheck grows the pool when tasks are pending because no node
// has room for them. It has no settings yet.
type PendingTasksCheck struct{}

// PrometheusCheck sizes the pool from a Prometheus query, either by target
// tracking (TargetValue: the size that brings the value to the target) or by
// thresholds (above Upper add Step nodes, below Lower remove Step nodes).
type PrometheusCheck struct {
	Name        string   `json:"name"`
	Address     string   `json:"address"`
	Query       string   `json:"query"`
	TargetValue *float64 `json:"target_value,omitempty"`
	Upper       *float64 `json:"upper,omitempty"`
	Lower       *float64 `json:"lower,omitempty"`
	// Step is for thresholds only; 0 means DefaultCheckStep.
	Step int64 `json:"step,omitempty"`
}

// AlertCheck adds Step nodes while the Alertmanager alert named Name fires.
type AlertCheck struct {
	Name string `json:"name"`
	// Step is 0 for DefaultCheckStep.
	Step int64 `json:"step,omitempty"`
}

// ScalingRules is a validated Scaling policy with parsed durations, the form
// the decision core works with.
type ScalingRules struct {
	// MinSize and MaxSize are the policy's bounds; nil means the pool's.
	// Bounds combines them with the pool's.
	MinSize, MaxSize   *int
	EvaluationInterval time.Duration
	CooldownUp         time.Duration
	CooldownDown       time.Duration
	ScaleInAfter       time.Duration
	MaxStep            int
	DrainTimeout       time.Duration
	NodeSelector       string
	// MaxSampleAge is resolved: twice EvaluationInterval (at least 1s)
	// when the policy leaves it empty.
	MaxSampleAge time.Duration
	// ProvisionTimeout is resolved: DefaultProvisionTimeout when the
	// policy leaves it empty. An instance that has not become a Ready
	// node this long after its launch (or a raise of the desired size
	// that no instance answered) is given up: it no longer counts as
	// capacity, is terminated, and the pool backs off.
	ProvisionTimeout time.Duration
	// MaxDisruptedPercent is resolved: DefaultMaxDisruptedPercent when the
	// policy leaves it unset. At most max(1, ⌊pool size × it / 100⌋)
	// nodes of the pool are disrupted at once (decide.DisruptionBudget).
	MaxDisruptedPercent int
	PendingTasks        bool
	Prometheus          []PrometheusRule
	Alert               []AlertRule
	Enabled             bool
}

// PrometheusRule is a validated PrometheusCheck. Either TargetValue is set,
// or at least one of Upper and Lower; Step is 1 to 100.
type PrometheusRule struct {
	Name, Address, Query string
	TargetValue          *float64
	Upper, Lower         *float64
	Step                 int
}

// AlertRule is a validated AlertCheck; Step is 1 to 100.
type AlertRule struct {
	Name string
	Step int
}

// Bounds returns the pool's effective bounds: the policy's bounds within the
// pool's [poolMin, poolMax]. A policy bound outside the pool's is moved to
// the nearest pool bound, so the result is always a range within the
// pool's when poolMin <= poolMax.
func (r ScalingRules) Bounds(poolMin, poolMax int) (lo, hi int) {
	lo, hi = poolMin, poolMax
	if r.MinSize != nil {
		lo = min(max(*r.MinSize, poolMin), poolMax)
	}
	if r.MaxSize != nil {
		hi = max(min(*r.MaxSize, poolMax), lo)
	}
	return lo, hi
}

// DefaultScaling returns the enabled default policy for the pool. It has no
// check yet, so it does not validate until one is added.
func DefaultScaling(poolID string) Scaling {
	return Scaling{
		PoolID:              poolID,
		EvaluationInterval:  DefaultScalingEvaluationInterval,
		CooldownUp:          DefaultCooldownUp,
		CooldownDown:        DefaultCooldownDown,
		ScaleInAfter:        DefaultScaleInAfter,
		MaxStep:             DefaultMaxStep,
		DrainTimeout:        DefaultDrainTimeout,
		NodeSelector:        DefaultNodeSelector,
		ProvisionTimeout:    DefaultProvisionTimeout,
		MaxDisruptedPercent: DefaultMaxDisruptedPercent,
		Enabled:             true,
	}
}

// Validate checks every field of the policy. Errors start with the field's
// name, so the provider can attach them to the right attribute.
func (s Scaling) Validate() error {
	_, err := s.parse()
	return err
}

// ErrManagersNotAutoscaled is the error of a scaling policy for a
// cluster's manager pool: managers are never autoscaled, since a quorum
// must not move with load.
func ErrManagersNotAutoscaled(poolID string) error {
	return fmt.Errorf("node_pool_id: %q is a cluster's manager pool: managers are never autoscaled; use a worker pool's id", poolID)
}

// Rules validates the policy and returns its parsed form.
func (s Scaling) Rules() (ScalingRules, error) {
	r, err := s.parse()
	if err != nil {
		return ScalingRules{}, fmt.Errorf("scaling policy for %q: %w", s.PoolID, err)
	}
	return r, nil
}

// checkName is a DNS label that may also hold '_', as metric names do.
var checkName = regexp.MustCompile(`^[a-z0-9]([-_a-z0-9]{0,61}[a-z0-9])?$`)

// parse does the work of Validate and Rules, so the two cannot disagree.
func (s Scaling) parse() (ScalingRules, error) {
	var r ScalingRules
	if _, pool, err := SplitPoolID(s.PoolID); err != nil {
		return r, fmt.Errorf("node_pool_id: %w", err)
	} else if pool == ManagerPoolName {
		return r, ErrManagersNotAutoscaled(s.PoolID)
	}
	if s.MinSize != nil && *s.MinSize < 0 {
		return r, fmt.Errorf("min_size is %d: it must be 0 or more", *s.MinSize)
	}
	if s.MaxSize != nil && *s.MaxSize < 1 {
		return r, fmt.Errorf("max_size is %d: it must be 1 or more", *s.MaxSize)
	}
	if s.MinSize != nil && s.MaxSize != nil {
		if err := ValidateSizes(*s.MinSize, *s.MaxSize, nil); err != nil {
			return r, err
		}
	}
	var err error
	if r.EvaluationInterval, err = ParseEvaluationInterval(s.EvaluationInterval); err != nil {
		return r, fmt.Errorf("evaluation_interval: %w", err)
	}
	if r.CooldownUp, err = ParseDuration(s.CooldownUp); err != nil {
		return r, fmt.Errorf("cooldown_up: %w", err)
	}
	if r.CooldownDown, err = ParseDuration(s.CooldownDown); err != nil {
		return r, fmt.Errorf("cooldown_down: %w", err)
	}
	if r.ScaleInAfter, err = ParseDuration(s.ScaleInAfter); err != nil {
		return r, fmt.Errorf("scale_in_after: %w", err)
	}
	if err := checkRange(s.MaxStep, MinMaxStep, MaxMaxStep); err != nil {
		return r, fmt.Errorf("max_step: %w", err)
	}
	if r.DrainTimeout, err = ParseDuration(s.DrainTimeout); err != nil {
		return r, fmt.Errorf("drain_timeout: %w", err)
	}
	// Without a drain deadline a node would go with its tasks still on it.
	if r.DrainTimeout < time.Second {
		return r, fmt.Errorf("drain_timeout: %q is too short: tasks need time to move; use at least 1s", s.DrainTimeout)
	}
	if !slices.Contains(NodeSelectors, s.NodeSelector) {
		return r, fmt.Errorf("node_selector: %q is not allowed: use one of %s", s.NodeSelector, quotedList(NodeSelectors))
	}
	// Twice the interval, and never below the 1s an explicit value needs:
	// with a 100ms interval 200ms would call every scraped sample stale,
	// and the pool would never shrink.
	r.MaxSampleAge = max(2*r.EvaluationInterval, time.Second)
	if s.MaxSampleAge != "" {
		if r.MaxSampleAge, err = ParseDuration(s.MaxSampleAge); err != nil {
			return r, fmt.Errorf("max_sample_age: %w", err)
		}
		// Zero would call every sample stale, and the pool would never
		// shrink.
		if r.MaxSampleAge < time.Second {
			return r, fmt.Errorf("max_sample_age: %q is too short: use at least 1s, or leave it empty for twice evaluation_interval", s.MaxSampleAge)
		}
	}
	provision := s.ProvisionTimeout
	if provision == "" {
		provision = DefaultProvisionTimeout
	}
	if r.ProvisionTimeout, err = ParseDuration(provision); err != nil {
		return r, fmt.Errorf("provision_timeout: %w", err)
	}
	if r.ProvisionTimeout < MinProvisionTimeout {
		return r, fmt.Errorf("provision_timeout: %q is too short: a new instance needs time to boot and join the swarm, and would be terminated before it could; use at least %s (the default is %s)",
			s.ProvisionTimeout, MinProvisionTimeout, DefaultProvisionTimeout)
	}
	r.MaxDisruptedPercent = DefaultMaxDisruptedPercent
	if s.MaxDisruptedPercent != 0 {
		if err := checkRange(s.MaxDisruptedPercent, MinMaxDisruptedPercent, MaxMaxDisruptedPercent); err != nil {
			return r, fmt.Errorf("max_disrupted_percent: %w", err)
		}
		r.MaxDisruptedPercent = int(s.MaxDisruptedPercent)
	}
	if s.PendingTasks == nil && len(s.Prometheus) == 0 && len(s.Alert) == 0 {
		return r, fmt.Errorf("a scaling policy needs at least one check: pending_tasks, prometheus or alert")
	}
	r.PendingTasks = s.PendingTasks != nil
	if r.Prometheus, r.Alert, err = parseChecks(s.Prometheus, s.Alert); err != nil {
		return r, err
	}
	if s.MinSize != nil {
		n := int(*s.MinSize)
		r.MinSize = &n
	}
	if s.MaxSize != nil {
		n := int(*s.MaxSize)
		r.MaxSize = &n
	}
	r.MaxStep = int(s.MaxStep)
	r.NodeSelector = s.NodeSelector
	r.Enabled = s.Enabled
	return r, nil
}

// parseChecks validates the Prometheus and alert checks of a policy, a
// node pool's or a service's, so a check reads the same wherever it is
// declared. Errors start with the check's field ("prometheus[1].query: ").
func parseChecks(prom []PrometheusCheck, alerts []AlertCheck) ([]PrometheusRule, []AlertRule, error) {
	var pr []PrometheusRule
	var ar []AlertRule
	names := make(map[string]int, len(prom))
	for i, c := range prom {
		r, err := c.parse()
		if err != nil {
			return nil, nil, fmt.Errorf("prometheus[%d]%w", i, err)
		}
		if j, dup := names[c.Name]; dup {
			return nil, nil, fmt.Errorf("prometheus[%d].name: %q is used by prometheus[%d]: names must be unique", i, c.Name, j)
		}
		names[c.Name] = i
		pr = append(pr, r)
	}
	seen := make(map[string]int, len(alerts))
	for i, c := range alerts {
		if strings.TrimSpace(c.Name) == "" {
			return nil, nil, fmt.Errorf("alert[%d].name: must not be empty: use the alertname of an Alertmanager alert", i)
		}
		if !utf8.ValidString(c.Name) {
			// Alertmanager's alert names are UTF-8; JSON would change this one.
			return nil, nil, fmt.Errorf("alert[%d].name: is not valid UTF-8 text", i)
		}
		if c.Name != strings.TrimSpace(c.Name) {
			return nil, nil, fmt.Errorf("alert[%d].name: %q has leading or trailing spaces: use the alertname exactly", i, c.Name)
		}
		if j, dup := seen[c.Name]; dup {
			return nil, nil, fmt.Errorf("alert[%d].name: %q is used by alert[%d]: names must be unique", i, c.Name, j)
		}
		seen[c.Name] = i
		step, err := checkStep(c.Step)
		if err != nil {
			return nil, nil, fmt.Errorf("alert[%d].step: %w", i, err)
		}
		ar = append(ar, AlertRule{Name: c.Name, Step: step})
	}
	return pr, ar, nil
}

// parse validates one Prometheus check. Its errors start with ".field: " or
// ": ", for the caller to put the check's position in front.
func (c PrometheusCheck) parse() (PrometheusRule, error) {
	if !checkName.MatchString(c.Name) {
		return PrometheusRule{}, fmt.Errorf(".name: %q is not a check name: use 1 to 63 lower-case letters, digits, '-' and '_', starting and ending with a letter or digit", c.Name)
	}
	if err := validateAddress(c.Address); err != nil {
		return PrometheusRule{}, fmt.Errorf(".address: %w", err)
	}
	if strings.TrimSpace(c.Query) == "" {
		return PrometheusRule{}, fmt.Errorf(".query: must not be empty: use a PromQL expression that returns one series")
	}
	if !utf8.ValidString(c.Query) {
		// The store keeps policies as JSON, which would change it.
		return PrometheusRule{}, fmt.Errorf(".query: is not valid UTF-8 text")
	}
	// Parsed here, so a query Prometheus cannot run is refused at plan
	// time, naming the check, instead of at the agent's first evaluation.
	if err := c.ValidateQuery(); err != nil {
		return PrometheusRule{}, err
	}
	thresholds := c.Upper != nil || c.Lower != nil
	switch {
	case c.TargetValue != nil && thresholds:
		return PrometheusRule{}, fmt.Errorf(": set either target_value or upper and/or lower, not both")
	case c.TargetValue == nil && !thresholds:
		return PrometheusRule{}, fmt.Errorf(": set target_value, or upper and/or lower")
	}
	r := PrometheusRule{Name: c.Name, Address: c.Address, Query: c.Query}
	if c.TargetValue != nil {
		v := *c.TargetValue
		if !isFinite(v) || v <= 0 {
			return PrometheusRule{}, fmt.Errorf(".target_value: must be greater than 0 (got %v)", v)
		}
		if c.Step != 0 {
			return PrometheusRule{}, fmt.Errorf(".step: only applies to upper and lower: leave it unset with target_value")
		}
		r.TargetValue = floatPtr(v)
		return r, nil
	}
	if c.Upper != nil && !isFinite(*c.Upper) {
		return PrometheusRule{}, fmt.Errorf(".upper: must be a finite number (got %v)", *c.Upper)
	}
	if c.Lower != nil && !isFinite(*c.Lower) {
		return PrometheusRule{}, fmt.Errorf(".lower: must be a finite number (got %v)", *c.Lower)
	}
	if c.Upper != nil && c.Lower != nil && *c.Lower >= *c.Upper {
		return PrometheusRule{}, fmt.Errorf(".lower: %v must be less than upper (%v)", *c.Lower, *c.Upper)
	}
	step, err := checkStep(c.Step)
	if err != nil {
		return PrometheusRule{}, fmt.Errorf(".step: %w", err)
	}
	if c.Upper != nil {
		r.Upper = floatPtr(*c.Upper)
	}
	if c.Lower != nil {
		r.Lower = floatPtr(*c.Lower)
	}
	r.Step = step
	return r, nil
}

// validateAddress accepts http(s) URLs with a host. Credentials in the URL
// are refused: the address shows in logs and plan output (safety rule 8),
// and an address that may hold them is not repeated in the error either.
func validateAddress(address string) error {
	if !utf8.ValidString(address) {
		return fmt.Errorf("is not valid UTF-8 text: use a URL such as \"http://prometheus:9090\"")
	}
	u, err := url.Parse(address)
	if err == nil && u.User != nil {
		return fmt.Errorf("must not hold credentials: they would show in logs; use a URL such as \"http://prometheus:9090\"")
	}
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		shown := fmt.Sprintf("%q", address)
		if strings.Contains(address, "@") {
			shown = "the address"
		}
		return fmt.Errorf("%s is not an http(s) URL: use a URL such as \"http://prometheus:9090\"", shown)
	}
	return nil
}

// checkStep resolves a check's step: 0 is the default, else 1 to 100.
func checkStep(n int64) (int, error) {
	if n == 0 {
		return DefaultCheckStep, nil
	}
	if err := checkRange(n, MinCheckStep, MaxCheckStep); err != nil {
		return 0, err
	}
	return int(n), nil
}

func isFinite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

func floatPtr(v float64) *float64 { return &v }

// quotedList renders ["a", "b"] as `"a", "b"`.
func quotedList(list []string) string {
	q := make([]string, len(list))
	for i, s := range list {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}
