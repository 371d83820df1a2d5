package decide

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

// Service modes, as ServiceState.Mode names them (Swarm's own).
const (
	ServiceReplicated    = "replicated"
	ServiceGlobal        = "global"
	ServiceReplicatedJob = "replicated-job"
	ServiceGlobalJob     = "global-job"
)

// Codes of service decisions besides the node pools' ones.
const (
	// CodeNotReplicated: the service is global (or a job): it has no
	// replica count to size.
	CodeNotReplicated ScaleCode = "not_replicated"
	// CodeOtherController: the service's labels give its replicas to
	// another controller (policy.LabelScaleController).
	CodeOtherController ScaleCode = "other_controller"
	// CodeStarting: replicas asked for are not running yet.
	CodeStarting ScaleCode = "replicas_starting"
	// CodeNoCheck: nothing asks for a size: no check votes and no alert
	// fires.
	CodeNoCheck ScaleCode = "no_request"
)

// ServiceSnapshot is everything the agent observed for one round of
// service scaling decisions. DecideServices reads it and never modifies
// it.
type ServiceSnapshot struct {
	// Now is the decision time; tests pass a fake clock here.
	Now time.Time
	// DefaultMaxSampleAge is the age beyond which a Prometheus sample is
	// stale when a policy does not say (twice the agent's interval).
	DefaultMaxSampleAge time.Duration
	Services            []ServiceState
}

// ServiceState is one service under a service scaling policy.
type ServiceState struct {
	Name string
	// Mode is the service's mode (ServiceReplicated, ServiceGlobal, ...);
	// only replicated services are sized.
	Mode string
	// Controller is the value of the service's autarky.scale.controller
	// label ("" when unset).
	Controller string
	// Replicas is the replica count the service asks for; Running counts
	// its tasks that run. Replicas - Running are starting or pending
	// (waiting for a node with room).
	Replicas, Running int
	Rules             policy.ServiceScalingRules
	// LastScaleUp and LastScaleDown are when the agent last grew and
	// shrank the service; zero when never.
	LastScaleUp, LastScaleDown time.Time
	// Checks holds one sample per Prometheus check of the policy; a check
	// without a sample counts as having no data.
	Checks []CheckSample
	// Alerts are the notifications that name the service, by the policy's
	// alert checks or by Alertmanager's routing labels.
	Alerts []ServiceAlert
	// Recommendations are the sizes earlier decisions' Prometheus checks
	// recommended (ServiceDecision.Recommended), kept by the caller with
	// RememberService: a scale-in goes no lower than the highest of those
	// made within cooldown_down.
	Recommendations []Recommendation
}

// ServiceAlert is one alert notification for a service: Step replicas up
// or down while it fires, once per notification (Alertmanager repeats a
// firing alert every repeat_interval, and each notification may ask
// again, as docker-scaler takes one step per post).
type ServiceAlert struct {
	Name string
	// Direction is ScaleUp or ScaleDown (the alert's scale label; up when
	// it has none).
	Direction ScaleDirection
	Step      int
	// Firing is false once the alert resolved or its notification was
	// used up by an earlier decision.
	Firing     bool
	ReceivedAt time.Time
}

// ServiceDecision is what one service does, and why.
type ServiceDecision struct {
	Service string
	// From is the service's replicas; To the replicas to write. To == From
	// holds.
	From, To  int
	Direction ScaleDirection
	Code      ScaleCode
	// Message explains the decision, and every hold, in one sentence.
	Message  string
	PerCheck []CheckResult
	// Forced is true when the replicas are outside the bounds and are
	// brought back whatever the checks and cooldowns say (by at most
	// max_step).
	Forced bool
	// Recommended is the replicas the trusted Prometheus checks asked for,
	// within the bounds; -1 when none reported. The caller keeps it
	// (RememberService) for the stabilisation window.
	Recommended int
	// ConsumedAlerts names the firing alerts this decision answered,
	// scaling or refusing them for good (a bound, an untrusted metric,
	// another check asking for more); the caller marks their
	// notifications used. Alerts held by a cooldown or by replicas still
	// starting are not consumed: they act when that ends.
	ConsumedAlerts []string
	// DryRun is the policy's dry_run: the caller writes nothing.
	DryRun bool
}

// RememberService returns the recommendations to pass to the service's
// next decision: those of prev made within window before now, and d's when
// it has one.
func RememberService(prev []Recommendation, d ServiceDecision, now time.Time, window time.Duration) []Recommendation {
	out := recent(prev, now, window)
	if d.Recommended >= 0 {
		out = append(out, Recommendation{At: now, Size: d.Recommended})
	}
	return out
}

// DecideServices decides, for every service, the replicas to write. It
// keeps the node pools' rules (Scale), for replicas:
//
//   - the replicas never leave [min_replicas, max_replicas] and never step
//     more than max_step; a service outside its bounds (a `docker service
//     scale` by hand) is brought back by at most max_step per decision,
//     whatever the checks and cooldowns say;
//   - every Prometheus check and firing alert proposes replicas, and the
//     one asking for the most wins, so the service shrinks only when every
//     trusted check agrees; a Prometheus sample that failed, is empty,
//     NaN, ±Inf or older than max_sample_age is untrusted: it grows
//     nothing, and while one exists the service does not shrink at all,
//     not even on a scale=down alert;
//   - no scale-up within cooldown_up of the last one, no scale-down
//     within cooldown_down of the last scale-down or scale-up, and none
//     while replicas asked for are not running yet; replicas already
//     starting count against a new request, so the same load never asks
//     twice (pending replicas are what grows a node pool);
//   - stabilisation window: a scale-in goes no lower than the highest
//     replicas the Prometheus checks recommended within cooldown_down;
//   - a global service (or a job) and a service whose labels name another
//     controller are refused, with the reason.
//
// What the checks propose: target tracking ceil(running × value /
// target); thresholds step more above upper and step fewer below lower; a
// firing alert its step more, or fewer when labelled scale=down. A check
// with nothing to say (an alert not firing, a value not above an upper
// threshold that has no lower one) does not vote.
//
// DecideServices is deterministic: the same snapshot gives the same
// decisions, in the snapshot's order.
func DecideServices(s ServiceSnapshot) []ServiceDecision {
	out := make([]ServiceDecision, 0, len(s.Services))
	seen := map[string]bool{}
	for i := range s.Services {
		st := &s.Services[i]
		if seen[st.Name] {
			out = append(out, ServiceDecision{Service: st.Name, From: st.Replicas, To: st.Replicas, Direction: ScaleHold, Code: CodeInvalid,
				Recommended: -1, Message: "another service of the snapshot has the same name; only the first is scaled"})
			continue
		}
		seen[st.Name] = true
		r := serviceScale{now: s.Now, st: st, defaultAge: s.DefaultMaxSampleAge}
		out = append(out, r.decide())
	}
	return out
}

// serviceScale is one service's decision in the making.
type serviceScale struct {
	now        time.Time
	st         *ServiceState
	defaultAge time.Duration
	d          ServiceDecision
	lo, hi     int
	step       int
	// pending are replicas asked for and not running.
	pending int
	// votes are the proposals, one per voting check or alert, in the
	// order of d.PerCheck; untrusted is the first untrusted check's index.
	votes     []vote
	untrusted int
	// untrustedCode is why that check is untrusted (stale or no data).
	untrustedCode ScaleCode
}

type vote struct {
	desired int
	code    ScaleCode
	what    string
	// alert is the name of the alert that voted, "" for a metric.
	alert string
}

func (r *serviceScale) decide() ServiceDecision {
	st := r.st
	rules := &st.Rules
	r.d = ServiceDecision{Service: st.Name, From: st.Replicas, To: st.Replicas, Direction: ScaleHold, Recommended: -1, DryRun: rules.DryRun}
	switch {
	case st.Mode != "" && st.Mode != ServiceReplicated:
		return r.hold(CodeNotReplicated, fmt.Sprintf("the service is %s: it has no replica count to size; only replicated services are scaled", st.Mode))
	case st.Controller != "" && st.Controller != policy.ControllerAutarky:
		return r.hold(CodeOtherController, fmt.Sprintf("its label %s=%s gives its replicas to another controller: Autarky leaves it alone (remove the label, or set it to %q, to let Autarky scale it)",
			policy.LabelScaleController, st.Controller, policy.ControllerAutarky))
	case !rules.Enabled:
		return r.hold(CodeDisabled, fmt.Sprintf("the policy is disabled: hold at %s", plural(st.Replicas, "replica")))
	case st.Replicas < 0 || st.Running < 0 || rules.MinReplicas < 0 || rules.MaxReplicas < rules.MinReplicas || rules.MaxStep < 1:
		return r.hold(CodeInvalid, fmt.Sprintf("replicas %d, running %d, bounds [%d, %d] and max_step %d make no sense: hold",
			st.Replicas, st.Running, rules.MinReplicas, rules.MaxReplicas, rules.MaxStep))
	}
	r.lo, r.hi, r.step = rules.MinReplicas, rules.MaxReplicas, rules.MaxStep
	r.pending = max(0, st.Replicas-st.Running)
	r.evaluate()
	from := st.Replicas
	switch {
	case from > r.hi:
		to := max(r.hi, from-r.step)
		return r.force(to, CodeMaxSize, fmt.Sprintf("the service runs %s, more than max_replicas %d: shrink to %d%s", plural(from, "replica"), r.hi, to, r.stepNote(to > r.hi)))
	case from < r.lo:
		to := min(r.lo, from+r.step)
		return r.force(to, CodeMinSize, fmt.Sprintf("the service asks for %s, fewer than min_replicas %d: grow to %d%s", plural(from, "replica"), r.lo, to, r.stepNote(to < r.lo)))
	}
	return r.byVotes()
}

// evaluate fills PerCheck and the votes: the Prometheus checks first, in
// the policy's order, then the alerts.
func (r *serviceScale) evaluate() {
	st, rules := r.st, &r.st.Rules
	r.untrusted = -1
	maxAge := rules.MaxSampleAge
	if maxAge <= 0 {
		maxAge = max(r.defaultAge, time.Second)
	}
	from := st.Replicas
	running := max(0, min(from, st.Running))
	for _, pr := range rules.Prometheus {
		var c *CheckSample
		for i := range st.Checks {
			if st.Checks[i].Kind == CheckPrometheus && st.Checks[i].Name == pr.Name {
				c = &st.Checks[i]
				break
			}
		}
		res := CheckResult{Name: pr.Name, Kind: CheckPrometheus, Desired: from, Trusted: true}
		v := vote{desired: from}
		switch code, why := r.distrust(c, maxAge); {
		case code != "":
			res.Trusted, res.Reason = false, why
			r.distrusted(code)
		case c.Target != nil:
			t := *c.Target
			if !(t > 0) || !isFinite(t) {
				res.Trusted, res.Reason = false, fmt.Sprintf("target_value %v is not a positive number", t)
				r.distrusted(CodeNoData)
				break
			}
			v.code = CodeTargetTracking
			res.Desired = ceilSize(float64(running) * c.Value / t)
			if running == 0 && c.Value > 0 {
				res.Desired = max(res.Desired, r.lo, 1)
			}
			if res.Desired > from {
				res.Desired = from + max(0, res.Desired-from-r.pending)
			}
			res.Reason = fmt.Sprintf("value %s against target_value %s over %s", fmtFloat(c.Value), fmtFloat(t), plural(running, "running replica"))
		default:
			step := max(c.Step, 1)
			v.code = CodeThreshold
			switch {
			case c.Upper != nil && c.Value > *c.Upper:
				res.Desired = from + max(0, step-r.pending)
				res.Reason = fmt.Sprintf("value %s is above upper %s: %s more", fmtFloat(c.Value), fmtFloat(*c.Upper), plural(step, "replica"))
			case c.Lower != nil && c.Value < *c.Lower:
				res.Desired = from - step
				res.Reason = fmt.Sprintf("value %s is below lower %s: %s fewer", fmtFloat(c.Value), fmtFloat(*c.Lower), plural(step, "replica"))
			case c.Upper != nil && c.Lower != nil:
				res.Reason = fmt.Sprintf("value %s is within [%s, %s]", fmtFloat(c.Value), fmtFloat(*c.Lower), fmtFloat(*c.Upper))
			case c.Upper != nil:
				res.Reason = fmt.Sprintf("value %s is not above upper %s: no request", fmtFloat(c.Value), fmtFloat(*c.Upper))
				v.code = ""
			case c.Lower != nil:
				res.Reason = fmt.Sprintf("value %s is not below lower %s: no request", fmtFloat(c.Value), fmtFloat(*c.Lower))
				v.code = ""
			default:
				res.Trusted, res.Reason = false, "the check has neither target_value nor upper or lower"
				r.distrusted(CodeNoData)
			}
		}
		res.Desired = min(max(res.Desired, 0), maxDesired)
		v.desired, v.what = res.Desired, fmt.Sprintf("prometheus check %q: %s", pr.Name, res.Reason)
		if res.Trusted && v.code != "" {
			r.votes = append(r.votes, v)
			r.d.Recommended = max(r.d.Recommended, min(max(res.Desired, r.lo), r.hi))
		}
		r.d.PerCheck = append(r.d.PerCheck, res)
	}
	alerts := slices.Clone(st.Alerts)
	slices.SortStableFunc(alerts, func(a, b ServiceAlert) int { return strings.Compare(a.Name, b.Name) })
	for _, al := range alerts {
		step := max(al.Step, 1)
		res := CheckResult{Name: al.Name, Kind: CheckAlert, Desired: from, Trusted: true}
		if !al.Firing {
			res.Reason = "the alert is not firing"
			r.d.PerCheck = append(r.d.PerCheck, res)
			continue
		}
		heard := ""
		if !al.ReceivedAt.IsZero() {
			heard = fmt.Sprintf(" (heard %s ago)", r.since(al.ReceivedAt))
		}
		if al.Direction == ScaleDown {
			res.Desired = max(from-step, 0)
			res.Reason = fmt.Sprintf("the alert fires with scale=down%s: %s fewer", heard, plural(step, "replica"))
		} else {
			res.Desired = from + max(0, step-r.pending)
			res.Reason = fmt.Sprintf("the alert fires%s: %s more", heard, plural(step, "replica"))
			if r.pending > 0 {
				res.Reason += fmt.Sprintf(", %s already starting", plural(r.pending, "replica"))
			}
		}
		res.Desired = min(res.Desired, maxDesired)
		r.votes = append(r.votes, vote{desired: res.Desired, code: CodeAlert, alert: al.Name,
			what: fmt.Sprintf("alert %q: %s", al.Name, res.Reason)})
		r.d.PerCheck = append(r.d.PerCheck, res)
	}
}

// distrusted records the check being evaluated as untrusted, for code.
func (r *serviceScale) distrusted(code ScaleCode) {
	if r.untrusted < 0 {
		r.untrusted, r.untrustedCode = len(r.d.PerCheck), code
	}
}

func (r *serviceScale) distrust(c *CheckSample, maxAge time.Duration) (ScaleCode, string) {
	if c == nil {
		return CodeNoData, "the check is configured but reported no sample"
	}
	return distrustSample(c, r.now, maxAge)
}

// byVotes decides a service within its bounds from its votes.
func (r *serviceScale) byVotes() ServiceDecision {
	from, rules := r.st.Replicas, &r.st.Rules
	best, lowest := -1, -1
	for i, v := range r.votes {
		if best < 0 || v.desired > r.votes[best].desired {
			best = i
		}
		if lowest < 0 || v.desired < r.votes[lowest].desired {
			lowest = i
		}
	}
	distrust := ""
	if r.untrusted >= 0 {
		c := r.d.PerCheck[r.untrusted]
		distrust = fmt.Sprintf("prometheus check %q is not trusted: %s", c.Name, c.Reason)
	}
	if best < 0 {
		if distrust != "" {
			return r.hold(r.untrustedCode, fmt.Sprintf("%s, and nothing else asks for a size: hold at %s", distrust, plural(from, "replica")))
		}
		return r.hold(CodeNoCheck, fmt.Sprintf("no check asks for a size and no alert fires: hold at %s", plural(from, "replica")))
	}
	want, wins := r.votes[best].desired, r.votes[best].what
	switch {
	case want > from:
		ask := fmt.Sprintf("%s, so it asks for %s", wins, plural(want, "replica"))
		if from >= r.hi {
			r.consume(ScaleUp)
			r.consume(ScaleDown) // outvoted
			return r.hold(CodeMaxSize, fmt.Sprintf("%s, but the service is at max_replicas %d: hold", ask, r.hi))
		}
		if last := r.st.LastScaleUp; r.cooling(last, rules.CooldownUp) {
			return r.hold(CodeCooldownUp, fmt.Sprintf("%s, but the service grew %s ago, within cooldown_up %s: hold at %d",
				ask, r.since(last), rules.CooldownUp, from))
		}
		to := min(want, r.hi, from+r.step)
		note := r.stepNote(to < min(want, r.hi))
		if want > r.hi {
			note += fmt.Sprintf(", capped at max_replicas %d", r.hi)
		}
		r.consume(ScaleUp)
		r.consume(ScaleDown) // outvoted
		return r.act(to, ScaleUp, r.votes[best].code, fmt.Sprintf("%s: grow from %d to %d%s", ask, from, to, note))
	case want < from:
		allowed := fmt.Sprintf("every check that asks allows %s (%s)", plural(want, "replica"), wins)
		if best != lowest {
			allowed = fmt.Sprintf("every check that asks allows %s (%s; %s asks for %d)", plural(want, "replica"), wins, r.votes[lowest].what, r.votes[lowest].desired)
		}
		if from <= r.lo {
			r.consume(ScaleDown)
			return r.hold(CodeMinSize, fmt.Sprintf("%s, but the service is at min_replicas %d: hold", allowed, r.lo))
		}
		if distrust != "" {
			r.consume(ScaleDown)
			return r.hold(r.untrustedCode, fmt.Sprintf("%s, but %s: hold at %s, never shrink on it", allowed, distrust, plural(from, "replica")))
		}
		switch {
		case r.pending > 0:
			return r.hold(CodeStarting, fmt.Sprintf("%s, but %s of %d are not running yet: no scale-in until they run",
				allowed, plural(r.pending, "replica"), from))
		case r.cooling(r.st.LastScaleDown, rules.CooldownDown):
			return r.hold(CodeCooldownDown, fmt.Sprintf("%s, but the service shrank %s ago, within cooldown_down %s: hold at %d",
				allowed, r.since(r.st.LastScaleDown), rules.CooldownDown, from))
		case r.cooling(r.st.LastScaleUp, rules.CooldownDown):
			return r.hold(CodeCooldownDown, fmt.Sprintf("%s, but the service grew %s ago, within cooldown_down %s: hold at %d",
				allowed, r.since(r.st.LastScaleUp), rules.CooldownDown, from))
		}
		stable, at := 0, time.Time{}
		for _, rec := range r.st.Recommendations {
			if r.now.Sub(rec.At) < rules.CooldownDown && !rec.At.After(r.now) && rec.Size > stable {
				stable, at = rec.Size, rec.At
			}
		}
		r.consume(ScaleDown)
		if stable >= from {
			return r.hold(CodeStabilization, fmt.Sprintf("%s, but the checks recommended %s %s ago, within the stabilisation window (cooldown_down %s): hold at %d",
				allowed, plural(stable, "replica"), r.since(at), rules.CooldownDown, from))
		}
		target := max(want, r.lo, stable)
		to := max(target, from-r.step)
		code, note := r.votes[best].code, r.stepNote(to > target)
		switch {
		case to == target && target == stable && stable > max(want, r.lo):
			code = CodeStabilization
			note = fmt.Sprintf(", the highest the checks recommended within the stabilisation window (cooldown_down %s)", rules.CooldownDown)
		case to == target && want < r.lo:
			note = fmt.Sprintf(", stopping at min_replicas %d", r.lo)
		}
		return r.act(to, ScaleDown, code, fmt.Sprintf("%s: shrink from %d to %d%s", allowed, from, to, note))
	}
	// want == from: the checks that ask are satisfied; an alert asking
	// for less is outvoted, and answered.
	r.consume(ScaleDown)
	if distrust != "" {
		return r.hold(r.untrustedCode, fmt.Sprintf("the checks that ask are satisfied at %s (%s), but %s: hold", plural(from, "replica"), wins, distrust))
	}
	return r.hold(CodeWithinTarget, fmt.Sprintf("the checks are satisfied at %s (%s): hold", plural(from, "replica"), wins))
}

// consume answers the firing alerts of one direction: their notifications
// are used up by this decision.
func (r *serviceScale) consume(dir ScaleDirection) {
	for _, al := range r.st.Alerts {
		if al.Firing && (al.Direction == dir || dir == ScaleUp && al.Direction != ScaleDown) && !slices.Contains(r.d.ConsumedAlerts, al.Name) {
			r.d.ConsumedAlerts = append(r.d.ConsumedAlerts, al.Name)
		}
	}
	slices.Sort(r.d.ConsumedAlerts)
}

func (r *serviceScale) act(to int, dir ScaleDirection, code ScaleCode, msg string) ServiceDecision {
	r.d.To, r.d.Direction, r.d.Code, r.d.Message = to, dir, code, msg
	if r.d.DryRun {
		r.d.Message = "dry run, nothing written: " + msg
	}
	return r.d
}

func (r *serviceScale) force(to int, code ScaleCode, msg string) ServiceDecision {
	r.d.Forced = true
	dir := ScaleUp
	if to < r.st.Replicas {
		dir = ScaleDown
	}
	return r.act(to, dir, code, msg)
}

func (r *serviceScale) hold(code ScaleCode, msg string) ServiceDecision {
	r.d.To, r.d.Direction, r.d.Code, r.d.Message = r.st.Replicas, ScaleHold, code, msg
	return r.d
}

func (r *serviceScale) stepNote(limited bool) string { return maxStepNote(limited, r.step) }

func (r *serviceScale) cooling(last time.Time, d time.Duration) bool {
	return coolingAt(r.now, last, d)
}

func (r *serviceScale) since(t time.Time) time.Duration { return r.now.Sub(t).Round(time.Second) }

// maxStepNote says that a change was cut to max_step, when it was.
func maxStepNote(limited bool, step int) string {
	if !limited {
		return ""
	}
	return fmt.Sprintf(", limited by max_step %d", step)
}

// coolingAt tells whether less than d has passed from last to now; a last
// time in the future counts as cooling.
func coolingAt(now, last time.Time, d time.Duration) bool {
	return !last.IsZero() && now.Sub(last) < d
}
