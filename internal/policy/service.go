package policy

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// A service scaling policy sizes one Swarm service's replicas, as a
// scaling policy sizes a node pool's nodes: from Prometheus checks (a
// target, or thresholds with a step), from Alertmanager alerts, within
// bounds, by at most max_step per decision, with separate cooldowns. It is
// declared two ways, both first class:
//
//   - a Terraform resource (autarky_service_scaling_policy), stored by the
//     provider for the agent like every other policy: ClusterID is set;
//   - labels on the service itself (ServiceScalingFromLabels), the
//     Swarm-native way a stack file declares it: ClusterID is empty, since
//     the service lives in the cluster whose agent reads it.
//
// When both exist for one service name, the Terraform policy wins whole
// (the labels are not merged into it) and the agent's status says that the
// labels are ignored: a Terraform policy is what an operator declared on
// purpose for this cluster, while labels travel with a stack file that may
// have been written for another cluster; merging field by field would make
// a service's bounds depend on two places at once.
//
// # Labels
//
// Autarky's own labels (Spec.Labels of the service, `deploy.labels` in a
// stack file; values are strings):
//
//	autarky.replicas.min          least replicas (default 1; 0 allowed)
//	autarky.replicas.max          most replicas (required unless a com.df label is set)
//	autarky.scale.max_step        most replicas one decision adds or removes (default 10)
//	autarky.scale.cooldown_up     least time between two scale-ups ("30s")
//	autarky.scale.cooldown_down   least time after any change before a scale-down ("5m")
//	autarky.scale.up_by           replicas a routed scale=up alert adds (default 1)
//	autarky.scale.down_by         replicas a routed scale=down alert removes (default 1)
//	autarky.scale.max_sample_age  oldest trusted Prometheus sample (default twice the agent's interval)
//	autarky.scale.dry_run         "true": decide and explain, never write replicas
//	autarky.scale.enabled         "false": keep the declaration, act on nothing
//	autarky.scale.controller      who sizes the service; anything but "autarky"
//	                              means another controller does, and Autarky refuses it
//	autarky.metric.<field>        one Prometheus check named "metric"
//	autarky.metric.<name>.<field> a Prometheus check named <name>
//	                              (fields: address, query, target, upper, lower, step)
//	autarky.alert.<alertname>     an Alertmanager alert, with its step as the value
//
// A check's fields are those of a node pool's prometheus check
// (target is target_value). An alert named by autarky.alert.<alertname>
// adds its step of replicas per notification while it fires; when the
// alert carries the label scale=down it removes them instead.
//
// # Docker Flow Monitor's labels
//
// Stacks written for Docker Flow Monitor's docker-scaler carry
// com.df.scaleMin, com.df.scaleMax, com.df.scaleUpBy and com.df.scaleDownBy,
// and route alerts to the scaler with the labels service=<service name> and
// scale=up|down. They are accepted as they are, so such a stack moves to
// Autarky without edits: com.df.scaleMin and com.df.scaleMax are
// autarky.replicas.min and .max, com.df.scaleUpBy and com.df.scaleDownBy are
// autarky.scale.up_by and .down_by, and with only com.df labels the missing
// bounds take docker-scaler's defaults (1 and 5). When both spellings of a
// setting are present, the autarky label wins. An alert routed to a
// service this way (service and scale labels) needs no autarky.alert label:
// every service with a policy takes routed alerts, one step per
// notification, as docker-scaler does.
//
// Keep docker-scaler (or anything else) sizing a service by labelling it
// autarky.scale.controller=<its name>; Autarky then leaves it alone and says
// why in its status.

// Service scaling defaults.
const (
	// DefaultServiceMinReplicas is the least replicas when no bound is
	// given; docker-scaler's DEFAULT_MIN_REPLICAS too.
	DefaultServiceMinReplicas = 1
	// DFDefaultMaxReplicas is docker-scaler's DEFAULT_MAX_REPLICAS, the
	// maximum of a service that carries com.df labels but no maximum.
	DFDefaultMaxReplicas = 5
	// DefaultServiceMaxStep: replicas start in moments, so a decision may
	// move further than a node pool's (5).
	DefaultServiceMaxStep = 10
	// DefaultServiceCooldownUp and DefaultServiceCooldownDown are the node
	// pools' defaults: the same rules as nodes.
	DefaultServiceCooldownUp   = DefaultCooldownUp
	DefaultServiceCooldownDown = DefaultCooldownDown
	// DefaultScaleBy is the step of a routed alert (docker-scaler's
	// DEFAULT_SCALE_SERVICE_UP_BY and _DOWN_BY).
	DefaultScaleBy = 1
	// ControllerAutarky is the value of LabelScaleController that leaves
	// the service to Autarky (as no label does).
	ControllerAutarky = "autarky"
)

// Bounds of the integer service scaling fields.
const (
	MaxServiceReplicas = 100000
	MinScaleBy         = 1
	MaxScaleBy         = 100
)

// Service label keys.
const (
	LabelReplicasMin       = "autarky.replicas.min"
	LabelReplicasMax       = "autarky.replicas.max"
	LabelScaleMaxStep      = "autarky.scale.max_step"
	LabelScaleCooldownUp   = "autarky.scale.cooldown_up"
	LabelScaleCooldownDown = "autarky.scale.cooldown_down"
	LabelScaleUpBy         = "autarky.scale.up_by"
	LabelScaleDownBy       = "autarky.scale.down_by"
	LabelScaleMaxSampleAge = "autarky.scale.max_sample_age"
	LabelScaleDryRun       = "autarky.scale.dry_run"
	LabelScaleEnabled      = "autarky.scale.enabled"
	LabelScaleController   = "autarky.scale.controller"
	// LabelMetricPrefix starts a Prometheus check's labels, and
	// LabelAlertPrefix an alert's.
	LabelMetricPrefix = "autarky.metric."
	LabelAlertPrefix  = "autarky.alert."
	// DefaultMetricCheckName names the check of the autarky.metric.<field>
	// labels.
	DefaultMetricCheckName = "metric"

	LabelDFScaleMin    = "com.df.scaleMin"
	LabelDFScaleMax    = "com.df.scaleMax"
	LabelDFScaleUpBy   = "com.df.scaleUpBy"
	LabelDFScaleDownBy = "com.df.scaleDownBy"
)

// Sources of a service's policy, as the agent's status names them.
const (
	ServiceSourceTerraform = "terraform"
	ServiceSourceLabels    = "labels"
)

// ServiceScaling is the scaling policy of one Swarm service's replicas. It
// is the stored form, with durations as the strings the user wrote; Rules
// gives the parsed form.
type ServiceScaling struct {
	// ClusterID is the cluster of a Terraform policy; empty for a policy
	// read from the service's labels.
	ClusterID string `json:"cluster_id,omitempty"`
	// Service is the Swarm service's name (a stack's services are
	// <stack>_<service>).
	Service     string `json:"service"`
	MinReplicas int64  `json:"min_replicas"`
	MaxReplicas int64  `json:"max_replicas"`
	CooldownUp  string `json:"cooldown_up"`
	// CooldownDown is the least time after a scale-up or a scale-down
	// before a scale-down; it is also the stabilisation window.
	CooldownDown string `json:"cooldown_down"`
	MaxStep      int64  `json:"max_step"`
	// ScaleUpBy and ScaleDownBy are the steps of an alert routed to the
	// service by its labels (service=<name>, scale=up|down) that the
	// policy does not name; 0 means DefaultScaleBy.
	ScaleUpBy   int64 `json:"scale_up_by,omitempty"`
	ScaleDownBy int64 `json:"scale_down_by,omitempty"`
	// MaxSampleAge is the oldest Prometheus sample still trusted; empty
	// means twice the agent's evaluation interval.
	MaxSampleAge string            `json:"max_sample_age,omitempty"`
	Prometheus   []PrometheusCheck `json:"prometheus,omitempty"`
	Alert        []AlertCheck      `json:"alert,omitempty"`
	// DryRun decides and explains, and never writes the replicas.
	DryRun  bool `json:"dry_run,omitempty"`
	Enabled bool `json:"enabled"`
}

// ServiceScalingRules is a validated ServiceScaling with parsed durations,
// the form the decision core works with.
type ServiceScalingRules struct {
	Service                  string
	MinReplicas, MaxReplicas int
	CooldownUp, CooldownDown time.Duration
	MaxStep                  int
	ScaleUpBy, ScaleDownBy   int
	// MaxSampleAge is 0 when the policy leaves it to the agent (twice its
	// evaluation interval).
	MaxSampleAge time.Duration
	Prometheus   []PrometheusRule
	Alert        []AlertRule
	DryRun       bool
	Enabled      bool
}

// DefaultServiceScaling returns the enabled default policy of a service:
// at least DefaultServiceMinReplicas, at most maxReplicas. It reacts to
// routed alerts only until a check is added.
func DefaultServiceScaling(service string, maxReplicas int64) ServiceScaling {
	return ServiceScaling{
		Service:      service,
		MinReplicas:  DefaultServiceMinReplicas,
		MaxReplicas:  maxReplicas,
		CooldownUp:   DefaultServiceCooldownUp,
		CooldownDown: DefaultServiceCooldownDown,
		MaxStep:      DefaultServiceMaxStep,
		ScaleUpBy:    DefaultScaleBy,
		ScaleDownBy:  DefaultScaleBy,
		Enabled:      true,
	}
}

// ServiceScalingID is the id of a Terraform service scaling policy:
// "<cluster>/<service>".
func ServiceScalingID(cluster, service string) string { return cluster + "/" + service }

// SplitServiceScalingID splits a service scaling policy's id, refusing one
// that is not "<cluster name>/<service name>".
func SplitServiceScalingID(id string) (cluster, service string, err error) {
	c, s, ok := strings.Cut(id, "/")
	if !ok || ValidateName(c) != nil || ValidateServiceName(s) != nil {
		return "", "", fmt.Errorf("service scaling policy id %q is not of the form <cluster name>/<service name>", id)
	}
	return c, s, nil
}

// serviceName is Swarm's rule for service names (a DNS label that may
// also hold '_', which stacks put between stack and service names).
var serviceName = regexp.MustCompile(`^[a-zA-Z0-9](?:[-_]*[a-zA-Z0-9]+)*$`)

// ValidateServiceName checks a Swarm service name as Swarm does.
func ValidateServiceName(name string) error {
	if len(name) > 63 || !serviceName.MatchString(name) {
		return fmt.Errorf("%q is not a Swarm service name: use 1 to 63 letters, digits, '-' and '_', starting and ending with a letter or digit", name)
	}
	return nil
}

// Validate checks every field of the policy. Errors start with the field's
// name, so the provider can attach them to the right attribute.
func (s ServiceScaling) Validate() error {
	_, err := s.parse()
	return err
}

// Rules validates the policy and returns its parsed form.
func (s ServiceScaling) Rules() (ServiceScalingRules, error) {
	r, err := s.parse()
	if err != nil {
		return ServiceScalingRules{}, fmt.Errorf("service scaling policy for %q: %w", s.Service, err)
	}
	return r, nil
}

// parse does the work of Validate and Rules, so the two cannot disagree.
// The checks are validated by the node pools' rules (parseChecks).
func (s ServiceScaling) parse() (ServiceScalingRules, error) {
	var r ServiceScalingRules
	if s.ClusterID != "" {
		if err := ValidateName(s.ClusterID); err != nil {
			return r, fmt.Errorf("cluster_id: %w", err)
		}
	}
	if err := ValidateServiceName(s.Service); err != nil {
		return r, fmt.Errorf("service: %w", err)
	}
	if s.MinReplicas < 0 || s.MinReplicas > MaxServiceReplicas {
		return r, fmt.Errorf("min_replicas is %d: use 0 to %d", s.MinReplicas, MaxServiceReplicas)
	}
	if s.MaxReplicas < 1 || s.MaxReplicas > MaxServiceReplicas {
		return r, fmt.Errorf("max_replicas is %d: use 1 to %d", s.MaxReplicas, MaxServiceReplicas)
	}
	if s.MinReplicas > s.MaxReplicas {
		return r, fmt.Errorf("min_replicas (%d) is greater than max_replicas (%d): min_replicas must be at most max_replicas", s.MinReplicas, s.MaxReplicas)
	}
	var err error
	if r.CooldownUp, err = ParseDuration(s.CooldownUp); err != nil {
		return r, fmt.Errorf("cooldown_up: %w", err)
	}
	if r.CooldownDown, err = ParseDuration(s.CooldownDown); err != nil {
		return r, fmt.Errorf("cooldown_down: %w", err)
	}
	if err := checkRange(s.MaxStep, MinMaxStep, MaxMaxStep); err != nil {
		return r, fmt.Errorf("max_step: %w", err)
	}
	if r.ScaleUpBy, err = scaleBy(s.ScaleUpBy); err != nil {
		return r, fmt.Errorf("scale_up_by: %w", err)
	}
	if r.ScaleDownBy, err = scaleBy(s.ScaleDownBy); err != nil {
		return r, fmt.Errorf("scale_down_by: %w", err)
	}
	if s.MaxSampleAge != "" {
		if r.MaxSampleAge, err = ParseDuration(s.MaxSampleAge); err != nil {
			return r, fmt.Errorf("max_sample_age: %w", err)
		}
		// Zero would call every sample stale, and the service would
		// never shrink.
		if r.MaxSampleAge < time.Second {
			return r, fmt.Errorf("max_sample_age: %q is too short: use at least 1s, or leave it empty for twice the agent's evaluation interval", s.MaxSampleAge)
		}
	}
	if r.Prometheus, r.Alert, err = parseChecks(s.Prometheus, s.Alert); err != nil {
		return r, err
	}
	r.Service = s.Service
	r.MinReplicas, r.MaxReplicas = int(s.MinReplicas), int(s.MaxReplicas)
	r.MaxStep = int(s.MaxStep)
	r.DryRun, r.Enabled = s.DryRun, s.Enabled
	return r, nil
}

// scaleBy resolves a routed alert's step: 0 is DefaultScaleBy.
func scaleBy(n int64) (int, error) {
	if n == 0 {
		return DefaultScaleBy, nil
	}
	if err := checkRange(n, MinScaleBy, MaxScaleBy); err != nil {
		return 0, err
	}
	return int(n), nil
}

// HasScalingLabels reports whether a service's labels ask for scaling:
// any autarky.replicas.*, autarky.scale.*, autarky.metric.* or
// autarky.alert.* label, or any of docker-scaler's four. The controller
// label alone asks for nothing: it says who else scales the service.
func HasScalingLabels(labels map[string]string) bool {
	for k := range labels {
		if k != LabelScaleController && isScalingLabel(k) {
			return true
		}
	}
	return false
}

func isScalingLabel(k string) bool {
	switch k {
	case LabelDFScaleMin, LabelDFScaleMax, LabelDFScaleUpBy, LabelDFScaleDownBy:
		return true
	}
	for _, p := range []string{"autarky.replicas.", "autarky.scale.", LabelMetricPrefix, LabelAlertPrefix} {
		if strings.HasPrefix(k, p) {
			return true
		}
	}
	return false
}

// ControllerOf is the controller a service's labels name: "" or
// ControllerAutarky leave it to Autarky; any other value names the
// controller that owns the service's replicas.
func ControllerOf(labels map[string]string) string {
	return strings.TrimSpace(labels[LabelScaleController])
}

// metricFields maps a check's label field to its policy field.
var metricFields = map[string]string{
	"address": "address", "query": "query", "target": "target_value",
	"upper": "upper", "lower": "lower", "step": "step",
}

// ServiceScalingFromLabels reads a service's scaling policy from its
// labels (see the package's label table above). ok is false when the
// labels ask for no scaling. A label that does not parse, or a policy
// that does not validate, is an error naming the label and what is
// allowed. The autarky.scale.controller label is not read here: who owns
// the service is the agent's question (ControllerOf).
func ServiceScalingFromLabels(service string, labels map[string]string) (s ServiceScaling, ok bool, err error) {
	if !HasScalingLabels(labels) {
		return s, false, nil
	}
	// fieldLabel names, for a policy field, the label it came from, so a
	// refusal by Validate names what the user wrote.
	fieldLabel := map[string]string{}
	pick := func(field string, keys ...string) (string, string, bool) {
		for _, k := range keys {
			if v, ok := labels[k]; ok {
				fieldLabel[field] = k
				return k, strings.TrimSpace(v), true
			}
		}
		return "", "", false
	}
	integer := func(field string, dst *int64, keys ...string) error {
		k, v, ok := pick(field, keys...)
		if !ok {
			return nil
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return fmt.Errorf("label %s: %q is not a whole number", k, v)
		}
		*dst = n
		return nil
	}
	duration := func(field string, dst *string, key string) {
		if _, v, ok := pick(field, key); ok {
			*dst = v
		}
	}
	boolean := func(field string, dst *bool, key string) error {
		k, v, ok := pick(field, key)
		if !ok {
			return nil
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("label %s: %q is not allowed: use \"true\" or \"false\"", k, v)
		}
		*dst = b
		return nil
	}

	df := false
	for _, k := range []string{LabelDFScaleMin, LabelDFScaleMax, LabelDFScaleUpBy, LabelDFScaleDownBy} {
		if _, ok := labels[k]; ok {
			df = true
		}
	}
	s = DefaultServiceScaling(service, 0)
	if df {
		s.MaxReplicas = DFDefaultMaxReplicas
	}
	if err := integer("min_replicas", &s.MinReplicas, LabelReplicasMin, LabelDFScaleMin); err != nil {
		return s, true, err
	}
	if err := integer("max_replicas", &s.MaxReplicas, LabelReplicasMax, LabelDFScaleMax); err != nil {
		return s, true, err
	}
	if _, ok := fieldLabel["max_replicas"]; !ok && !df {
		return s, true, fmt.Errorf("label %s: missing: a service scaled by autarky labels needs its most replicas (or docker-scaler's %s)", LabelReplicasMax, LabelDFScaleMax)
	}
	if err := integer("max_step", &s.MaxStep, LabelScaleMaxStep); err != nil {
		return s, true, err
	}
	if err := integer("scale_up_by", &s.ScaleUpBy, LabelScaleUpBy, LabelDFScaleUpBy); err != nil {
		return s, true, err
	}
	if err := integer("scale_down_by", &s.ScaleDownBy, LabelScaleDownBy, LabelDFScaleDownBy); err != nil {
		return s, true, err
	}
	// A routed alert's step larger than the default max_step would be cut
	// short; docker-scaler had no max_step, so the step is the floor.
	if _, set := fieldLabel["max_step"]; !set {
		s.MaxStep = min(max(s.MaxStep, s.ScaleUpBy, s.ScaleDownBy), MaxMaxStep)
	}
	duration("cooldown_up", &s.CooldownUp, LabelScaleCooldownUp)
	duration("cooldown_down", &s.CooldownDown, LabelScaleCooldownDown)
	duration("max_sample_age", &s.MaxSampleAge, LabelScaleMaxSampleAge)
	if err := boolean("dry_run", &s.DryRun, LabelScaleDryRun); err != nil {
		return s, true, err
	}
	if err := boolean("enabled", &s.Enabled, LabelScaleEnabled); err != nil {
		return s, true, err
	}
	for k := range labels {
		if strings.HasPrefix(k, "autarky.replicas.") && k != LabelReplicasMin && k != LabelReplicasMax ||
			strings.HasPrefix(k, "autarky.scale.") && !knownScaleLabel(k) {
			return s, true, fmt.Errorf("label %s: is not an autarky label: use %s", k, quotedList(knownSettingLabels()))
		}
	}

	// Checks, in the order of their names, so a policy reads the same
	// whatever order the labels came in.
	checks := map[string]*PrometheusCheck{}
	checkPrefix := map[string]string{}
	var alertNames []string
	alertSteps := map[string]string{}
	for k, v := range labels {
		switch {
		case strings.HasPrefix(k, LabelAlertPrefix):
			name := strings.TrimPrefix(k, LabelAlertPrefix)
			alertNames = append(alertNames, name)
			alertSteps[name] = strings.TrimSpace(v)
		case strings.HasPrefix(k, LabelMetricPrefix):
			rest := strings.TrimPrefix(k, LabelMetricPrefix)
			name, field := DefaultMetricCheckName, rest
			if i := strings.LastIndex(rest, "."); i >= 0 {
				name, field = rest[:i], rest[i+1:]
			}
			if _, known := metricFields[field]; !known {
				return s, true, fmt.Errorf("label %s: %q is not a check field: use autarky.metric[.<name>].<field> with a field of %s", k, field, quotedList(sortedKeys(metricFields)))
			}
			c := checks[name]
			if c == nil {
				c = &PrometheusCheck{Name: name}
				checks[name] = c
				checkPrefix[name] = strings.TrimSuffix(k, field)
			}
			if err := setMetricField(c, k, field, strings.TrimSpace(v)); err != nil {
				return s, true, err
			}
		}
	}
	names := sortedKeys(checks)
	for i, name := range names {
		s.Prometheus = append(s.Prometheus, *checks[name])
		fieldLabel[fmt.Sprintf("prometheus[%d]", i)] = checkPrefix[name] + "*"
		for field, pf := range metricFields {
			fieldLabel[fmt.Sprintf("prometheus[%d].%s", i, pf)] = checkPrefix[name] + field
		}
		fieldLabel[fmt.Sprintf("prometheus[%d].name", i)] = checkPrefix[name] + "*"
	}
	sort.Strings(alertNames)
	for i, name := range alertNames {
		k := LabelAlertPrefix + name
		step, err := strconv.ParseInt(alertSteps[name], 10, 64)
		if err != nil {
			return s, true, fmt.Errorf("label %s: %q is not a whole number: use the replicas the alert adds, 1 to %d", k, alertSteps[name], MaxCheckStep)
		}
		if step == 0 {
			return s, true, fmt.Errorf("label %s: 0 is not allowed: use the replicas the alert adds, 1 to %d", k, MaxCheckStep)
		}
		s.Alert = append(s.Alert, AlertCheck{Name: name, Step: step})
		fieldLabel[fmt.Sprintf("alert[%d].name", i)] = k
		fieldLabel[fmt.Sprintf("alert[%d].step", i)] = k
	}
	if err := s.Validate(); err != nil {
		return s, true, labelError(err, fieldLabel)
	}
	return s, true, nil
}

// labelError rewrites a Validate error's leading field ("max_replicas is
// ...", "prometheus[0].query: ...") as the label it came from.
func labelError(err error, fieldLabel map[string]string) error {
	msg := err.Error()
	field := msg
	if i := strings.IndexAny(msg, ": "); i >= 0 {
		field = msg[:i]
	}
	if k, ok := fieldLabel[field]; ok {
		return fmt.Errorf("label %s: %s", k, msg)
	}
	return fmt.Errorf("labels: %s", msg)
}

func setMetricField(c *PrometheusCheck, key, field, v string) error {
	num := func() (*float64, error) {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return nil, fmt.Errorf("label %s: %q is not a number", key, v)
		}
		return &f, nil
	}
	var err error
	switch field {
	case "address":
		c.Address = v
	case "query":
		c.Query = v
	case "target":
		c.TargetValue, err = num()
	case "upper":
		c.Upper, err = num()
	case "lower":
		c.Lower, err = num()
	case "step":
		c.Step, err = strconv.ParseInt(v, 10, 64)
		if err != nil {
			err = fmt.Errorf("label %s: %q is not a whole number", key, v)
		}
	}
	return err
}

func knownScaleLabel(k string) bool {
	for _, l := range knownSettingLabels() {
		if k == l {
			return true
		}
	}
	return false
}

func knownSettingLabels() []string {
	return []string{LabelReplicasMin, LabelReplicasMax, LabelScaleMaxStep, LabelScaleCooldownUp, LabelScaleCooldownDown,
		LabelScaleUpBy, LabelScaleDownBy, LabelScaleMaxSampleAge, LabelScaleDryRun, LabelScaleEnabled, LabelScaleController}
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
