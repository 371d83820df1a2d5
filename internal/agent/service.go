package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/autarky/terraform-provider-autarky/internal/decide"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
	"github.com/autarky/terraform-provider-autarky/internal/swarm"
)

// Service replica scaling: each evaluation the agent reads every service
// (with the task listing it reads anyway), finds each one's policy — the
// Terraform policy from the store when there is one, else the service's
// labels (policy.ServiceScalingFromLabels) —, reads its checks, decides in
// the pure core (decide.DecideServices) and, on the leader, writes the new
// replica count through the Engine API at the version the service was read
// at. A write refused because the service changed meanwhile (a `docker
// service update` by hand, a stack deploy) is never retried blindly: the
// service is read again and the decision taken again on what it is now
// (up to serviceWriteAttempts times in one evaluation).
//
// Services are sized before the node pools act: replicas start in
// moments, and replicas that do not fit become pending tasks, which the
// node pools' pending_tasks checks grow for in the same or the next
// evaluation.
//
// What the agent remembers of a service is in memory, on every agent
// (leader or not): when it last grew and shrank, the recommendations of the
// stabilisation window, and the alerts that name it; an agent that does
// not act keeps the same memory by answering each notification as the
// leader does (shadowServices), so a new leader neither answers again what
// the old one answered nor ignores its cooldowns. An agent with no
// memory of a service (it just started, or just became leader) counts
// Swarm's last update of the service as its last scale-up for
// cooldown_down, so a new leader never shrinks a service that was just
// changed; cooldown_up starts empty, so an alert is answered at once.

// serviceWriteAttempts bounds the re-reads after ErrServiceChanged in one
// evaluation; the next evaluation starts again.
const serviceWriteAttempts = 3

// maxServiceAlerts bounds the alert notifications kept for services.
const maxServiceAlerts = 1000

// ServiceStatus is the last decision of one service under a policy, for
// /v1/status.
type ServiceStatus struct {
	Name string `json:"name"`
	// Source is where the policy comes from: "terraform" or "labels".
	Source string `json:"source,omitempty"`
	// Note says what else there is to know, such as labels a Terraform
	// policy overrides.
	Note        string `json:"note,omitempty"`
	Mode        string `json:"mode,omitempty"`
	Replicas    int    `json:"replicas"`
	Running     int    `json:"running"`
	MinReplicas int    `json:"min_replicas"`
	MaxReplicas int    `json:"max_replicas"`
	DryRun      bool   `json:"dry_run,omitempty"`
	To          int    `json:"to"`
	Direction   string `json:"direction"`
	Code        string `json:"code"`
	Message     string `json:"message"`
	// Checks are the policy's Prometheus checks and the alerts that name
	// the service, and what each asks for.
	Checks []decide.CheckResult `json:"checks,omitempty"`
	// LastScaled is when this agent last wrote the service's replicas.
	LastScaled time.Time `json:"last_scaled,omitzero"`
	// Error is why the last write failed, until one succeeds.
	Error string `json:"error,omitempty"`
}

// serviceAlertKey names one alert for one service.
type serviceAlertKey struct{ service, name string }

// serviceAlert is the last notification of an alert for a service.
type serviceAlert struct {
	direction  decide.ScaleDirection
	firing     bool
	receivedAt time.Time
	// handled: a decision answered this notification; the next one (a
	// repeat) asks again.
	handled bool
}

// serviceMemory is what the agent keeps of services between evaluations.
// a.mu guards it.
type serviceMemory struct {
	alerts map[serviceAlertKey]serviceAlert
	// named: by alert name, the services whose policies name it (last
	// reading); known: the services under a policy.
	named map[string][]string
	known map[string]bool
	// lastUp and lastDown: when this agent last grew and shrank each
	// service; recommended: the stabilisation window's recommendations.
	lastUp, lastDown map[string]time.Time
	recommended      map[string][]decide.Recommendation
	writeErr         map[string]string
	status           []ServiceStatus
	metrics          *serviceMetrics
}

type serviceMetrics struct {
	replicas  *prometheus.GaugeVec
	running   *prometheus.GaugeVec
	decisions *prometheus.CounterVec
	scaled    *prometheus.CounterVec
	stale     *prometheus.GaugeVec
	conflicts *prometheus.CounterVec
}

func newServiceMemory(reg *prometheus.Registry) serviceMemory {
	m := &serviceMetrics{
		replicas: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "autarky_service_replicas", Help: "Replicas a service under a service scaling policy asks for.",
		}, []string{"service"}),
		running: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "autarky_service_running_replicas", Help: "Running tasks of a service under a service scaling policy.",
		}, []string{"service"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "autarky_service_scaling_decisions_total", Help: "Service scaling evaluations by service, direction (up, down, hold) and reason code.",
		}, []string{"service", "direction", "code"}),
		scaled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "autarky_service_scaled_replicas_total", Help: "Replicas added (up) or removed (down) by service scaling.",
		}, []string{"service", "direction"}),
		stale: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "autarky_service_check_stale", Help: "1 while a service scaling check's data cannot be trusted: the service holds, never shrinks.",
		}, []string{"service", "check"}),
		conflicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "autarky_service_update_conflicts_total", Help: "Replica writes Swarm refused because the service changed since it was read; each was read and decided again.",
		}, []string{"service"}),
	}
	reg.MustRegister(m.replicas, m.running, m.decisions, m.scaled, m.stale, m.conflicts)
	return serviceMemory{
		alerts: map[serviceAlertKey]serviceAlert{}, named: map[string][]string{}, known: map[string]bool{},
		lastUp: map[string]time.Time{}, lastDown: map[string]time.Time{}, recommended: map[string][]decide.Recommendation{},
		writeErr: map[string]string{}, metrics: m,
	}
}

// noteServiceAlert takes one posted alert for the services it names: by
// its service label (Alertmanager's routing, as docker-scaler's rules
// do), else by its name when a service policy names it. Its scale label
// gives the direction (up when it has none); any other value is not a
// service alert. a.mu held.
func (a *Agent) noteServiceAlert(n alertNotice, now time.Time) (kept bool) {
	mem := &a.services
	dir := decide.ScaleUp
	switch n.Scale {
	case "", "up":
	case "down":
		dir = decide.ScaleDown
	default:
		return false
	}
	targets := mem.named[n.Name]
	if n.Service != "" {
		targets = []string{n.Service}
	}
	for _, svc := range targets {
		k := serviceAlertKey{svc, n.Name}
		if _, ok := mem.alerts[k]; !ok && len(mem.alerts) >= maxServiceAlerts {
			continue
		}
		mem.alerts[k] = serviceAlert{direction: dir, firing: n.Firing, receivedAt: now}
		kept = true
	}
	return kept
}

// serviceRound is one evaluation's service decisions, with what the
// agent needs to carry them out.
type serviceRound struct {
	decisions []decide.ServiceDecision
	states    []decide.ServiceState
	services  map[string]swarm.Service
	// policies are the policies of the round, by service, to decide a
	// service again after it changed.
	policies map[string]servicePolicy
	samples  map[string][]decide.CheckSample
}

// servicePolicy is a service's policy and where it comes from.
type servicePolicy struct {
	rules  policy.ServiceScalingRules
	source string
	note   string
	// invalid says why the policy cannot be used.
	invalid string
}

// decideServices finds every service's policy, reads its checks and
// decides, then reports. It never fails the evaluation: a store that
// cannot be read holds every service, since a Terraform policy it holds
// must win over labels.
func (a *Agent) decideServices(ctx context.Context, o *observation) serviceRound {
	r := serviceRound{services: map[string]swarm.Service{}, policies: map[string]servicePolicy{}, samples: map[string][]decide.CheckSample{}}
	stored, storeErr := a.storedServicePolicies(ctx)
	byName := map[string]swarm.Service{}
	for _, s := range o.services {
		byName[s.Name] = s
	}
	var names []string
	for _, s := range o.services {
		if _, ok := stored[s.Name]; ok || policy.HasScalingLabels(s.Labels) {
			names = append(names, s.Name)
		}
	}
	for name := range stored {
		if _, ok := byName[name]; !ok {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	named := map[string][]string{}
	known := map[string]bool{}
	var statuses []ServiceStatus
	for _, name := range names {
		svc, exists := byName[name]
		if !exists {
			statuses = append(statuses, ServiceStatus{Name: name, Source: policy.ServiceSourceTerraform, Direction: string(decide.ScaleHold),
				Code: "service_not_found", Message: "a Terraform service scaling policy names this service, but the swarm has no service of that name: nothing to scale"})
			continue
		}
		sp := servicePolicyOf(svc, stored)
		if storeErr != nil {
			sp = servicePolicy{invalid: fmt.Sprintf("the store's service scaling policies cannot be read (%v): hold, since a Terraform policy there would win over the labels", storeErr)}
		}
		if sp.invalid != "" {
			statuses = append(statuses, ServiceStatus{Name: name, Source: sp.source, Mode: svc.Mode, Replicas: svc.Replicas, Running: svc.Running,
				To: svc.Replicas, Direction: string(decide.ScaleHold), Code: string(decide.CodeInvalid), Message: sp.invalid})
			continue
		}
		known[name] = true
		for _, al := range sp.rules.Alert {
			named[al.Name] = append(named[al.Name], name)
		}
		r.policies[name] = sp
		r.services[name] = svc
		r.samples[name] = a.serviceSamples(ctx, sp.rules, o.now)
	}
	a.mu.Lock()
	mem := &a.services
	mem.named, mem.known = named, known
	// Alerts for services under no policy go, unless they arrived since
	// the last evaluation (the policy may be on its way).
	for k, al := range mem.alerts {
		if !known[k.service] && o.now.Sub(al.receivedAt) > a.cfg.EvaluationInterval {
			delete(mem.alerts, k)
		}
	}
	snap := decide.ServiceSnapshot{Now: o.now, DefaultMaxSampleAge: a.serviceMaxSampleAge()}
	for _, name := range names {
		if _, ok := r.policies[name]; ok {
			snap.Services = append(snap.Services, a.serviceStateLocked(r.services[name], r.policies[name], r.samples[name]))
		}
	}
	a.mu.Unlock()
	r.states = snap.Services
	r.decisions = decide.DecideServices(snap)
	a.mu.Lock()
	for i, d := range r.decisions {
		st := r.states[i]
		mem.recommended[d.Service] = decide.RememberService(mem.recommended[d.Service], d, o.now, st.Rules.CooldownDown)
	}
	for name := range mem.recommended {
		if !known[name] {
			delete(mem.recommended, name)
		}
	}
	a.mu.Unlock()
	for i, d := range r.decisions {
		statuses = append(statuses, a.serviceStatus(r.states[i], r.policies[d.Service], d))
	}
	sort.Slice(statuses, func(i, j int) bool { return statuses[i].Name < statuses[j].Name })
	a.reportServices(o, statuses)
	if !o.leader || a.cfg.DryRun {
		a.shadowServices(o, r)
	}
	return r
}

// shadowServices keeps, on an agent that does not act (a follower, or a
// dry run), the memory the leader keeps by acting: the notifications each
// decision answered are used up, and a decision to scale counts as done
// for the cooldowns. Alertmanager posts to every agent, so without this a
// follower that becomes leader would answer again every notification the
// old leader already answered, and a dry run would report the same
// notification as a change at every evaluation.
func (a *Agent) shadowServices(o *observation, r serviceRound) {
	for _, d := range r.decisions {
		a.consumeServiceAlerts(d)
		a.rememberServiceScale(d, o.now)
	}
}

// rememberServiceScale notes a scale-up or scale-down of a service at now,
// for its cooldowns; a hold changes nothing.
func (a *Agent) rememberServiceScale(d decide.ServiceDecision, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch d.Direction {
	case decide.ScaleUp:
		a.services.lastUp[d.Service] = now
	case decide.ScaleDown:
		a.services.lastDown[d.Service] = now
	}
}

// storedServicePolicies reads Terraform's service scaling policies, by
// service name.
func (a *Agent) storedServicePolicies(ctx context.Context) (map[string]policy.ServiceScaling, error) {
	out := map[string]policy.ServiceScaling{}
	ps, err := a.cluster.ServiceScalingPolicies(ctx)
	if err != nil {
		return nil, err
	}
	for _, p := range ps {
		out[p.Service] = p
	}
	return out, nil
}

// servicePolicyOf is a service's policy: the Terraform one when the store
// holds one for its name (it wins whole over the labels), else its
// labels'.
func servicePolicyOf(svc swarm.Service, stored map[string]policy.ServiceScaling) servicePolicy {
	if p, ok := stored[svc.Name]; ok {
		sp := servicePolicy{source: policy.ServiceSourceTerraform}
		if policy.HasScalingLabels(svc.Labels) {
			sp.note = "the service's scaling labels are ignored: a Terraform service scaling policy for it wins"
		}
		rules, err := p.Rules()
		if err != nil {
			sp.invalid = "the Terraform service scaling policy is invalid: " + err.Error()
		}
		sp.rules = rules
		return sp
	}
	sp := servicePolicy{source: policy.ServiceSourceLabels}
	p, _, err := policy.ServiceScalingFromLabels(svc.Name, svc.Labels)
	if err != nil {
		sp.invalid = "the service's scaling labels are invalid: " + err.Error()
		return sp
	}
	if sp.rules, err = p.Rules(); err != nil {
		sp.invalid = "the service's scaling labels are invalid: " + err.Error()
	}
	return sp
}

// serviceMaxSampleAge is the oldest sample a service check trusts when
// its policy leaves max_sample_age to the agent: twice its interval.
func (a *Agent) serviceMaxSampleAge() time.Duration {
	return max(2*a.cfg.EvaluationInterval, time.Second)
}

// serviceSamples reads a policy's Prometheus checks.
func (a *Agent) serviceSamples(ctx context.Context, rules policy.ServiceScalingRules, now time.Time) []decide.CheckSample {
	maxAge := rules.MaxSampleAge
	if maxAge <= 0 {
		maxAge = a.serviceMaxSampleAge()
	}
	out := make([]decide.CheckSample, 0, len(rules.Prometheus))
	for _, pr := range rules.Prometheus {
		out = append(out, a.prometheusSample(ctx, pr, maxAge, now))
	}
	return out
}

// serviceStateLocked is the decision core's view of one service. a.mu
// held.
func (a *Agent) serviceStateLocked(svc swarm.Service, sp servicePolicy, samples []decide.CheckSample) decide.ServiceState {
	mem := &a.services
	st := decide.ServiceState{Name: svc.Name, Mode: svc.Mode, Controller: policy.ControllerOf(svc.Labels),
		Replicas: svc.Replicas, Running: svc.Running, Rules: sp.rules, Checks: samples,
		LastScaleUp: mem.lastUp[svc.Name], LastScaleDown: mem.lastDown[svc.Name], Recommendations: mem.recommended[svc.Name]}
	if st.LastScaleUp.IsZero() && st.LastScaleDown.IsZero() && !svc.UpdatedAt.IsZero() {
		// No memory of this service: its last update stands in for a
		// scale-up as far as cooldown_down goes (see the file's doc).
		st.LastScaleDown = svc.UpdatedAt
	}
	steps := map[string]int{}
	for _, al := range sp.rules.Alert {
		steps[al.Name] = al.Step
	}
	for k, al := range mem.alerts {
		if k.service != svc.Name {
			continue
		}
		step, ok := steps[k.name]
		switch {
		case ok:
		case al.direction == decide.ScaleDown:
			step = sp.rules.ScaleDownBy
		default:
			step = sp.rules.ScaleUpBy
		}
		st.Alerts = append(st.Alerts, decide.ServiceAlert{Name: k.name, Direction: al.direction, Step: step,
			Firing: al.firing && !al.handled, ReceivedAt: al.receivedAt})
	}
	sort.Slice(st.Alerts, func(i, j int) bool { return st.Alerts[i].Name < st.Alerts[j].Name })
	return st
}

func (a *Agent) serviceStatus(st decide.ServiceState, sp servicePolicy, d decide.ServiceDecision) ServiceStatus {
	a.mu.Lock()
	last := a.services.lastUp[st.Name]
	if down := a.services.lastDown[st.Name]; down.After(last) {
		last = down
	}
	werr := a.services.writeErr[st.Name]
	a.mu.Unlock()
	return ServiceStatus{Name: st.Name, Source: sp.source, Note: sp.note, Mode: st.Mode, Replicas: st.Replicas, Running: st.Running,
		MinReplicas: st.Rules.MinReplicas, MaxReplicas: st.Rules.MaxReplicas, DryRun: d.DryRun || a.cfg.DryRun,
		To: d.To, Direction: string(d.Direction), Code: string(d.Code), Message: d.Message, Checks: d.PerCheck,
		LastScaled: last, Error: werr}
}

// reportServices publishes the services' decisions: status, metrics, and
// a decision entry (and log line) whenever a service's decision changes.
func (a *Agent) reportServices(o *observation, statuses []ServiceStatus) {
	m := a.services.metrics
	// Series are set, then the gone ones deleted: a Reset first would let
	// a scrape in between see no series at all, which Prometheus marks
	// stale (a check reading it would hold, an alert on it restart).
	services, checks := map[string]bool{}, map[[2]string]bool{}
	defer func() {
		keepOnly(m.replicas, func(l prometheus.Labels) bool { return services[l["service"]] })
		keepOnly(m.running, func(l prometheus.Labels) bool { return services[l["service"]] })
		keepOnly(m.stale, func(l prometheus.Labels) bool { return checks[[2]string{l["service"], l["check"]}] })
	}()
	for _, s := range statuses {
		services[s.Name] = true
		if s.Mode == swarm.ModeReplicated {
			a.history.record(SeriesService, s.Name, o.now, SizeSample{Size: s.Running, Desired: s.Replicas, Min: s.MinReplicas, Max: s.MaxReplicas})
		}
		m.replicas.WithLabelValues(s.Name).Set(float64(s.Replicas))
		m.running.WithLabelValues(s.Name).Set(float64(s.Running))
		m.decisions.WithLabelValues(s.Name, s.Direction, s.Code).Inc()
		for _, c := range s.Checks {
			if c.Kind == decide.CheckPrometheus {
				stale := 0.0
				if !c.Trusted {
					stale = 1
				}
				m.stale.WithLabelValues(s.Name, c.Name).Set(stale)
				checks[[2]string{s.Name, c.Name}] = true
			}
		}
		// Noted when the decision changes, not when its wording does
		// (an alert's age moves every second).
		if !a.changed("service/"+s.Name, fmt.Sprintf("%s %s %d->%d %s", s.Direction, s.Code, s.Replicas, s.To, s.Source)) {
			continue
		}
		kind := "service_scale_" + s.Direction
		a.log.Info("service scaling", "service", s.Name, "direction", s.Direction, "from", s.Replicas, "to", s.To, "code", s.Code,
			"message", s.Message, "source", s.Source, "dry_run", s.DryRun)
		a.addServiceDecision(o.now, s.Name, kind, s.Code, s.Message, s.DryRun)
	}
	a.mu.Lock()
	a.services.status = statuses
	a.mu.Unlock()
}

func (a *Agent) addServiceDecision(t time.Time, service, kind, code, msg string, dry bool) {
	a.appendDecision(Decision{Time: t, Service: service, Kind: kind, Code: code, Message: msg, DryRun: dry})
}

// actServices writes the replicas the decisions ask for, on the leader.
// A policy in dry run writes nothing. A write Swarm refuses because the
// service changed is decided again on the service as it is now.
func (a *Agent) actServices(ctx context.Context, o *observation, r serviceRound) error {
	a.consumeHeldServiceAlerts(r)
	for i, d := range r.decisions {
		if d.DryRun && d.Direction != decide.ScaleHold {
			// Answered, as a follower answers (shadowServices).
			a.shadowServices(o, serviceRound{decisions: []decide.ServiceDecision{d}})
		}
		if d.Direction == decide.ScaleHold || d.DryRun {
			continue
		}
		if err := a.scaleService(ctx, o, r, r.states[i], d); err != nil {
			if fenced(err) {
				return err
			}
			a.log.Error("service scaling failed", "service", d.Service, "error", err)
			a.mu.Lock()
			a.services.writeErr[d.Service] = err.Error()
			a.mu.Unlock()
			a.addServiceDecision(o.now, d.Service, "service_scale_"+string(d.Direction), "error", err.Error(), false)
		}
	}
	return nil
}

// scaleService writes one decision, deciding again on a fresh read when
// the service changed since it was read.
func (a *Agent) scaleService(ctx context.Context, o *observation, r serviceRound, st decide.ServiceState, d decide.ServiceDecision) error {
	svc := r.services[d.Service]
	for attempt := 1; ; attempt++ {
		err := a.guarded(ctx, "set the replicas of service "+svc.Name, func(cctx context.Context) error {
			return a.docker.SetReplicas(cctx, svc, d.To)
		})
		if err == nil {
			break
		}
		if !errors.Is(err, swarm.ErrServiceChanged) || attempt >= serviceWriteAttempts {
			return err
		}
		a.services.metrics.conflicts.WithLabelValues(svc.Name).Inc()
		fresh, found, rerr := a.docker.Service(ctx, svc.Name)
		if rerr != nil {
			return fmt.Errorf("%w; reading it again: %v", err, rerr)
		}
		if !found {
			a.log.Info("service gone before its replicas were written", "service", svc.Name)
			return nil
		}
		sp := servicePolicyOf(fresh, map[string]policy.ServiceScaling{})
		if old := r.policies[svc.Name]; old.source == policy.ServiceSourceTerraform {
			sp = old
		}
		if sp.invalid != "" {
			return fmt.Errorf("%w; read again, its policy is invalid: %s", err, sp.invalid)
		}
		a.mu.Lock()
		st = a.serviceStateLocked(fresh, sp, r.samples[svc.Name])
		st.Recommendations = nil // this round's are remembered already
		a.mu.Unlock()
		d = decide.DecideServices(decide.ServiceSnapshot{Now: o.now, DefaultMaxSampleAge: a.serviceMaxSampleAge(),
			Services: []decide.ServiceState{st}})[0]
		a.log.Info("service changed since it was read: decided again", "service", svc.Name, "version", svc.Version, "now", fresh.Version,
			"direction", d.Direction, "to", d.To, "message", d.Message)
		a.addServiceDecision(o.now, svc.Name, "service_scale_"+string(d.Direction), "reread_"+string(d.Code),
			"the service changed since it was read (someone else updated it): read again and decided again: "+d.Message, false)
		if d.Direction == decide.ScaleHold || d.DryRun {
			a.consumeServiceAlerts(d)
			return nil
		}
		svc = fresh
	}
	a.log.Info("service scaled", "service", svc.Name, "from", d.From, "to", d.To, "code", d.Code)
	a.notifyServiceScaled(svc.Name, d)
	a.rememberServiceScale(d, o.now)
	a.mu.Lock()
	delete(a.services.writeErr, svc.Name)
	a.mu.Unlock()
	a.consumeServiceAlerts(d)
	a.services.metrics.scaled.WithLabelValues(svc.Name, string(d.Direction)).Add(float64(max(d.To-d.From, d.From-d.To)))
	a.addServiceDecision(o.now, svc.Name, "service_scale_"+string(d.Direction), string(d.Code),
		fmt.Sprintf("replicas written: %d -> %d", d.From, d.To), false)
	return nil
}

// consumeServiceAlerts marks the notifications a decision answered.
func (a *Agent) consumeServiceAlerts(d decide.ServiceDecision) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, name := range d.ConsumedAlerts {
		k := serviceAlertKey{d.Service, name}
		if al, ok := a.services.alerts[k]; ok {
			al.handled = true
			a.services.alerts[k] = al
		}
	}
}

// consumeHeldServiceAlerts answers, on the leader, the alerts of the
// decisions that held for good (a bound, an untrusted metric, a check
// asking for more): their notifications are refused, not kept for later.
func (a *Agent) consumeHeldServiceAlerts(r serviceRound) {
	for _, d := range r.decisions {
		if d.Direction == decide.ScaleHold {
			a.consumeServiceAlerts(d)
		}
	}
}

// serviceStatuses is the services' last decisions, for Status. a.mu held.
func (a *Agent) serviceStatuses() []ServiceStatus {
	return append([]ServiceStatus(nil), a.services.status...)
}

// printServices writes the services' decisions for a person (PrintStatus).
func printServices(w io.Writer, services []ServiceStatus) {
	for _, s := range services {
		src := s.Source
		if s.DryRun {
			src += ", dry-run"
		}
		fmt.Fprintf(w, "\nservice %s (%s, %d replicas, %d running, in [%d, %d]): %s %d -> %d (%s): %s\n", s.Name, src,
			s.Replicas, s.Running, s.MinReplicas, s.MaxReplicas, s.Direction, s.Replicas, s.To, s.Code, s.Message)
		if s.Note != "" {
			fmt.Fprintf(w, "  note: %s\n", s.Note)
		}
		if s.Error != "" {
			fmt.Fprintf(w, "  last write failed: %s\n", s.Error)
		}
		for _, c := range s.Checks {
			trust := "trusted"
			if !c.Trusted {
				trust = "UNTRUSTED"
			}
			fmt.Fprintf(w, "    %s %s (%s) asks for %d: %s\n", c.Kind, c.Name, trust, c.Desired, c.Reason)
		}
	}
}
