package decide

import (
	"fmt"
	"math"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

// fuzzScaleSnapshot builds a small, often inconsistent snapshot: random
// bounds (sometimes outside the current size, sometimes broken), rules,
// cooldowns, nodes (busy, empty, draining, unneeded for some time) and
// samples of every kind, trusted or not.
func fuzzScaleSnapshot(data []byte) ScaleSnapshot {
	f := &fuzzReader{b: data}
	s := ScaleSnapshot{Now: t0}
	ago := func(step time.Duration, n int) time.Time {
		if f.intn(8) == 0 {
			return time.Time{}
		}
		return t0.Add(-time.Duration(f.intn(n)) * step)
	}
	durations := []time.Duration{0, 10 * time.Second, 30 * time.Second, time.Minute, 2 * time.Minute, 5 * time.Minute}
	values := []float64{0, 0.1, 0.2, 0.3, 0.45, 0.6, 0.9, 1.5, 5, -1, 1e300, math.NaN(), math.Inf(1), math.Inf(-1)}
	value := func() float64 {
		if f.intn(8) == 0 {
			return values[len(values)-3+f.intn(3)]
		}
		return values[f.intn(len(values)-3)]
	}
	selectors := append(slices.Clone(policy.NodeSelectors), policy.NodeSelectorEmptyFirst)
	kinds := []string{CheckPendingTasks, CheckPrometheus, CheckPrometheus, CheckAlert}

	for i := range 1 + f.intn(3) {
		minSize := f.intn(5)
		p := ScalePool{
			ID:      fmt.Sprintf("c/p%d", i),
			MinSize: minSize, MaxSize: minSize + f.intn(8),
			Current: f.intn(14),
			Rules: policy.ScalingRules{
				EvaluationInterval: 10 * time.Second,
				CooldownUp:         durations[f.intn(4)],
				CooldownDown:       durations[f.intn(len(durations))],
				ScaleInAfter:       durations[f.intn(len(durations))],
				MaxStep:            1 + f.intn(5),
				DrainTimeout:       5 * time.Minute,
				NodeSelector:       selectors[f.intn(len(selectors))],
				MaxSampleAge:       []time.Duration{0, 20 * time.Second, time.Minute}[f.intn(3)],
				Enabled:            !f.chance(1),
			},
			LastScaleUp:   ago(time.Minute, 10),
			LastScaleDown: ago(time.Minute, 10),
			NodeCapacity:  Resources{NanoCPUs: int64(f.intn(4)) * 1e9, MemoryBytes: int64(f.intn(4)) * gib},
		}
		if f.chance(6) { // mostly within bounds, so the checks decide
			p.Current = p.MinSize + f.intn(p.MaxSize-p.MinSize+1)
		}
		switch f.intn(32) {
		case 0:
			p.MaxSize = minSize - 1
		case 1:
			p.Rules.MaxStep = 0
		case 2:
			p.Rules.NodeSelector = "bogus"
		}
		if f.chance(2) {
			p.Pending = f.intn(4)
		}
		if f.intn(16) == 0 && i > 0 {
			p.ID = s.Pools[0].ID
		}
		if f.intn(32) == 0 {
			p.LastScaleUp = t0.Add(time.Minute) // a clock that went back
		}
		nNodes := f.intn(14)
		if f.chance(5) {
			nNodes = p.Current
		}
		for j := range nNodes {
			n := ScaleNode{
				ID:           fmt.Sprintf("n%d", j),
				CreatedAt:    ago(time.Hour, 48),
				RunningTasks: f.intn(4) * f.intn(2),
				Draining:     f.intn(6) == 0,
			}
			if f.intn(24) == 0 {
				n.ID = fmt.Sprintf("n%d", f.intn(j+1)) // a repeated id
			}
			n.Role = policy.RoleWorker
			if f.intn(6) == 0 {
				n.Role = policy.RoleManager // promoted by hand
			}
			n.Capacity = Resources{NanoCPUs: int64(f.intn(3)) * 1e9, MemoryBytes: int64(f.intn(3)) * gib}
			n.Reserved = Resources{NanoCPUs: int64(f.intn(3)) * 5e8, MemoryBytes: int64(f.intn(3)) * gib / 2}
			if f.chance(5) {
				n.UnneededSince = t0.Add(-time.Duration(f.intn(6)) * 30 * time.Second)
			}
			p.Nodes = append(p.Nodes, n)
		}
		for j := range f.intn(5) {
			c := CheckSample{Name: fmt.Sprintf("c%d", j), Kind: kinds[f.intn(len(kinds))], Step: f.intn(4)}
			if f.intn(32) == 0 {
				c.Kind = "other"
			}
			switch c.Kind {
			case CheckPendingTasks:
				for range f.intn(5) * f.intn(2) {
					c.PendingTasks = append(c.PendingTasks, PendingTask{NanoCPUs: int64(f.intn(4)) * 5e8, MemoryBytes: int64(f.intn(4)) * gib})
				}
			case CheckPrometheus:
				c.Value = value()
				c.SampleTime = t0.Add(-time.Duration(f.intn(4)) * 10 * time.Second)
				if f.intn(16) == 0 {
					c.SampleTime = time.Time{}
				}
				switch f.intn(4) {
				case 0:
					c.Upper = fp(values[f.intn(6)] + 0.5)
				case 1:
					c.Lower = fp(values[f.intn(6)])
				case 2:
					c.Upper, c.Lower = fp(0.8), fp(0.3)
				default:
					c.Target = fp([]float64{0.6, 0.5, 1, 0.6, 0.5, 1, 0.6, 0, -1}[f.intn(9)])
				}
				if f.intn(16) == 0 {
					c.Err = "connection refused"
				}
				if f.intn(16) == 0 {
					c.Empty = true
				}
			case CheckAlert:
				c.Firing = f.chance(3)
				c.ReceivedAt = ago(time.Minute, 5)
			}
			p.Checks = append(p.Checks, c)
		}
		switch f.intn(8) {
		case 0:
			p.Rules.Prometheus = []policy.PrometheusRule{{Name: "configured", TargetValue: fp(0.6)}}
		case 1:
			p.Rules.Alert = []policy.AlertRule{{Name: "configured", Step: 1}}
		case 2:
			p.Rules.PendingTasks = true
		}
		s.Pools = append(s.Pools, p)
	}
	return s
}

// FuzzScale checks the scaling invariants on random snapshots (see
// checkScaleInvariants).
func FuzzScale(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("a pool over its max with busy nodes draining and a stale metric"))
	for i := range 16 {
		seed := make([]byte, 128)
		for j := range seed {
			seed[j] = byte(i*53 + j*7)
		}
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s := fuzzScaleSnapshot(data)
		checkScaleInvariants(t, s, Scale(s))
	})
}

// TestScaleFuzzSnapshotsAct makes sure the fuzz generator reaches every
// path: scale-ups, scale-ins, forced moves and every code.
func TestScaleFuzzSnapshotsAct(t *testing.T) {
	dirs := map[ScaleDirection]int{}
	codes := map[ScaleCode]int{}
	forced, shrinks := 0, 0
	for i := range 20000 {
		data := make([]byte, 256)
		x := uint32(i*2654435761 + 7)
		for j := range data {
			x ^= x << 13
			x ^= x >> 17
			x ^= x << 5
			data[j] = byte(x)
		}
		s := fuzzScaleSnapshot(data)
		p := Scale(s)
		checkScaleInvariants(t, s, p)
		if t.Failed() {
			t.Fatalf("invariants broken for seed %d", i)
		}
		for _, d := range p.Decisions {
			dirs[d.Direction]++
			codes[d.Code]++
			if d.Forced {
				forced++
			} else if d.Direction == ScaleDown {
				shrinks++
			}
		}
	}
	t.Logf("directions %v, forced %d, scale-ins by the checks %d, codes %v", dirs, forced, shrinks, codes)
	for _, d := range []ScaleDirection{ScaleUp, ScaleDown, ScaleHold} {
		if dirs[d] == 0 {
			t.Errorf("no %q in 20000 random snapshots", d)
		}
	}
	for _, c := range []ScaleCode{CodePendingTasks, CodeTargetTracking, CodeThreshold, CodeAlert, CodeCooldownUp,
		CodeCooldownDown, CodeMaxSize, CodeMinSize, CodeStaleMetric, CodeNoData, CodeScaleInAfter, CodeDraining,
		CodeWithinTarget, CodeDisabled, CodeInvalid} {
		if codes[c] == 0 {
			t.Errorf("no %q in 20000 random snapshots", c)
		}
	}
	if forced == 0 || shrinks == 0 {
		t.Errorf("%d forced decisions and %d scale-ins by the checks in 20000 random snapshots", forced, shrinks)
	}
}

// sampleUntrusted re-derives, independently of Scale, whether a Prometheus
// sample must not be acted on.
func sampleUntrusted(now time.Time, r *policy.ScalingRules, c *CheckSample) bool {
	maxAge := r.MaxSampleAge
	if maxAge <= 0 {
		maxAge = 2 * r.EvaluationInterval
	}
	return c.Err != "" || c.Empty || math.IsNaN(c.Value) || math.IsInf(c.Value, 0) ||
		c.SampleTime.IsZero() || now.Sub(c.SampleTime) > maxAge
}

// checkScaleInvariants asserts the safety rules every scaling plan keeps,
// whatever the snapshot: bounds and max_step, no scale-in on an untrusted
// check or within a cooldown, only nodes unneeded for scale_in_after (unless
// forced), never a draining node, a repeated id or a manager (managers are
// never scale-in candidates), one busy node draining at a time. The table tests, the simulation and FuzzScale
// share it.
func checkScaleInvariants(t testing.TB, s ScaleSnapshot, plan ScalePlan) {
	t.Helper()
	if again := Scale(s); !reflect.DeepEqual(again, plan) {
		t.Errorf("Scale is not deterministic:\n first %+v\nsecond %+v", plan, again)
	}
	if len(plan.Decisions) != len(s.Pools) {
		t.Fatalf("%d decisions for %d pools", len(plan.Decisions), len(s.Pools))
	}
	seen := map[string]bool{}
	for i, d := range plan.Decisions {
		p := &s.Pools[i]
		dup := seen[p.ID]
		seen[p.ID] = true
		if d.PoolID != p.ID || d.Code == "" || d.Message == "" {
			t.Errorf("decision %d = %+v for pool %q", i, d, p.ID)
		}
		draining, busyDraining := 0, 0
		nodes := map[string]*ScaleNode{}
		times := map[string]int{}
		for j := range p.Nodes {
			times[p.Nodes[j].ID]++
			n := &p.Nodes[j]
			if n.Draining {
				draining++
				if n.RunningTasks > 0 {
					busyDraining++
				}
			}
			if _, ok := nodes[n.ID]; !ok {
				nodes[n.ID] = n
			}
		}
		if want := max(0, p.Current-draining); d.From != want {
			t.Errorf("pool %s: From = %d, want Current %d less %d draining", p.ID, d.From, p.Current, draining)
		}
		wantDir := ScaleHold
		switch {
		case d.To > d.From:
			wantDir = ScaleUp
		case d.To < d.From:
			wantDir = ScaleDown
		}
		if d.Direction != wantDir {
			t.Errorf("pool %s: direction %q for %d -> %d", p.ID, d.Direction, d.From, d.To)
		}
		if d.To >= d.From && len(d.RemoveNodes) > 0 {
			t.Errorf("pool %s: removes %q while going %d -> %d", p.ID, d.RemoveNodes, d.From, d.To)
		}
		if d.Direction == ScaleHold && d.Forced {
			t.Errorf("pool %s: a forced hold", p.ID)
		}

		r := &p.Rules
		invalid := dup || p.MinSize < 0 || p.MaxSize < p.MinSize || p.Current < 0 || p.Pending < 0 ||
			r.MaxStep < 1 || !slices.Contains(policy.NodeSelectors, r.NodeSelector)
		if d.Code == CodeInvalid && !invalid {
			t.Errorf("pool %s: called invalid: %s", p.ID, d.Message)
		}
		if invalid && d.Code != CodeInvalid && d.Code != CodeDisabled {
			t.Errorf("pool %s is invalid but decided %s: %s", p.ID, d.Code, d.Message)
		}
		if !r.Enabled && d.Code != CodeDisabled && !dup {
			t.Errorf("pool %s: disabled policy decided %s", p.ID, d.Code)
		}
		if d.Code == CodeInvalid || d.Code == CodeDisabled {
			if d.To != d.From {
				t.Errorf("pool %s: %s but %d -> %d", p.ID, d.Code, d.From, d.To)
			}
			continue
		}

		// Safety rule 1: bounds and step.
		lo, hi := p.MinSize, p.MaxSize
		if step := d.To - d.From; step > r.MaxStep || -step > r.MaxStep {
			t.Errorf("pool %s: %d -> %d steps more than max_step %d", p.ID, d.From, d.To, r.MaxStep)
		}
		switch {
		case d.From >= lo && d.From <= hi:
			if d.To < lo || d.To > hi {
				t.Errorf("pool %s: %d -> %d leaves [%d, %d]", p.ID, d.From, d.To, lo, hi)
			}
			if d.Forced {
				t.Errorf("pool %s: forced within bounds: %s", p.ID, d.Message)
			}
		case d.From < lo:
			if d.To < d.From || d.To > lo || !d.Forced || d.To == d.From {
				t.Errorf("pool %s: below min %d, %d -> %d (forced %v)", p.ID, lo, d.From, d.To, d.Forced)
			}
		case d.From > hi:
			if d.To > d.From || d.To < hi || (d.To < d.From && !d.Forced) {
				t.Errorf("pool %s: above max %d, %d -> %d (forced %v)", p.ID, hi, d.From, d.To, d.Forced)
			}
		}

		// Every sample and every configured check has a result.
		if len(d.PerCheck) < len(p.Checks) {
			t.Errorf("pool %s: %d results for %d samples", p.ID, len(d.PerCheck), len(p.Checks))
		}
		maxTrusted := -1
		for _, c := range d.PerCheck {
			if c.Trusted {
				maxTrusted = max(maxTrusted, c.Desired)
			}
			if c.Reason == "" || c.Desired < 0 {
				t.Errorf("pool %s: check result %+v", p.ID, c)
			}
		}
		untrusted := false
		for j := range p.Checks {
			c := &p.Checks[j]
			if c.Kind == CheckPrometheus && sampleUntrusted(s.Now, r, c) {
				untrusted = true
				if d.PerCheck[j].Trusted {
					t.Errorf("pool %s: sample %+v is trusted", p.ID, c)
				}
			}
		}
		for _, c := range d.PerCheck {
			if !c.Trusted {
				untrusted = true
			}
		}

		cooling := func(last time.Time, dur time.Duration) bool { return !last.IsZero() && s.Now.Sub(last) < dur }
		if d.To > d.From && !d.Forced {
			if cooling(p.LastScaleUp, r.CooldownUp) {
				t.Errorf("pool %s: grows within cooldown_up", p.ID)
			}
			if maxTrusted < d.To {
				t.Errorf("pool %s: grows to %d, but no trusted check asks for it: %+v", p.ID, d.To, d.PerCheck)
			}
		}
		if d.To >= d.From {
			continue
		}

		// Scale-in.
		if len(d.RemoveNodes) != d.From-d.To {
			t.Errorf("pool %s: %d -> %d removes %q", p.ID, d.From, d.To, d.RemoveNodes)
		}
		removed := map[string]bool{}
		busy := 0
		for _, id := range d.RemoveNodes {
			n := nodes[id]
			switch {
			case n == nil:
				t.Errorf("pool %s: removes %q, not a node of the pool", p.ID, id)
				continue
			case removed[id]:
				t.Errorf("pool %s: removes %q twice", p.ID, id)
			case times[id] > 1:
				t.Errorf("pool %s: removes %q, an id the snapshot lists %d times", p.ID, id, times[id])
			case n.Draining:
				t.Errorf("pool %s: removes %q, which is draining already", p.ID, id)
			case n.Role == policy.RoleManager:
				// Safety rule 5: managers are never scale-in candidates.
				t.Errorf("pool %s: removes %q, a manager", p.ID, id)
			}
			removed[id] = true
			if n.RunningTasks > 0 {
				busy++
			}
			if !d.Forced && (n.UnneededSince.IsZero() || s.Now.Sub(n.UnneededSince) < r.ScaleInAfter) {
				t.Errorf("pool %s: removes %q, not unneeded for scale_in_after %s", p.ID, id, r.ScaleInAfter)
			}
		}
		if busyDraining+busy > max(1, busyDraining) {
			t.Errorf("pool %s: %d busy nodes draining and %d more chosen", p.ID, busyDraining, busy)
		}
		// The disruption budget, forced or not.
		if budget, disrupted := DisruptionBudget(p.Current, r.MaxDisruptedPercent), Disrupted(p); disrupted+len(d.RemoveNodes) > budget {
			t.Errorf("pool %s: removes %d with %d disrupted already, over the budget of %d", p.ID, len(d.RemoveNodes), disrupted, budget)
		}
		if d.Forced {
			continue
		}
		// The stabilisation window.
		for _, rec := range p.Recommendations {
			if age := s.Now.Sub(rec.At); age >= 0 && age < r.CooldownDown && d.To < min(rec.Size, d.From) {
				t.Errorf("pool %s: shrinks to %d below %d recommended %s ago", p.ID, d.To, rec.Size, age)
			}
		}
		// Safety rule 2 and the agreement of every check.
		if untrusted {
			t.Errorf("pool %s: scales in with an untrusted check: %+v", p.ID, d.PerCheck)
		}
		if maxTrusted > d.To {
			t.Errorf("pool %s: shrinks to %d while a check asks for %d", p.ID, d.To, maxTrusted)
		}
		if p.Pending > 0 || cooling(p.LastScaleDown, r.CooldownDown) || cooling(p.LastScaleUp, r.CooldownDown) {
			t.Errorf("pool %s: scales in within cooldown_down or with %d instances starting", p.ID, p.Pending)
		}
	}
}

// fuzzScaleObservation builds a small, often odd observation: nodes in
// every state, role and availability, some in flight, some just joined,
// instances with and without nodes, pending tasks of every size, matching
// the pool or not, and a previous unneeded-since map with stale entries.
func fuzzScaleObservation(data []byte) ScaleObservation {
	f := &fuzzReader{b: data}
	o := ScaleObservation{Now: t0, UnneededSince: map[string]time.Time{}}
	states := []string{NodeReady, NodeReady, NodeReady, NodeDown, NodeUnknown}
	avail := []string{"active", "active", "active", "drain", "pause"}
	for i := range 1 + f.intn(3) {
		rules := scaleRules()
		rules.PendingTasks = f.chance(6)
		rules.MaxStep = 1 + f.intn(5)
		rules.ScaleInAfter = time.Duration(f.intn(3)) * time.Minute
		p := PoolObservation{ID: fmt.Sprintf("c/p%d", i), Rules: rules, PoolMinSize: f.intn(3), LastScaleUp: t0.Add(-time.Hour)}
		p.PoolMaxSize = p.PoolMinSize + f.intn(10)
		if f.chance(2) {
			p.ClusterNodeCapacity = Resources{NanoCPUs: int64(f.intn(3)) * 1e9, MemoryBytes: int64(f.intn(3)) * gib}
		}
		for j := range f.intn(10) {
			id := fmt.Sprintf("p%dn%d", i, j)
			n := ObservedNode{ID: id, InstanceID: "i-" + id, State: states[f.intn(len(states))],
				Role: policy.RoleWorker, Availability: avail[f.intn(len(avail))], InFlight: f.intn(8) == 0,
				CreatedAt:    t0.Add(-time.Duration(f.intn(4)) * 5 * time.Second),
				Capacity:     Resources{NanoCPUs: int64(f.intn(3)) * 1e9, MemoryBytes: int64(f.intn(3)) * gib},
				Reserved:     Resources{NanoCPUs: int64(f.intn(3)) * 5e8, MemoryBytes: int64(f.intn(3)) * gib / 2},
				RunningTasks: f.intn(3) * f.intn(2)}
			if f.intn(6) == 0 {
				n.Role = policy.RoleManager
			}
			if f.chance(3) {
				o.UnneededSince[id] = t0.Add(-time.Duration(f.intn(6)) * time.Minute)
			}
			p.Nodes = append(p.Nodes, n)
			if f.chance(7) {
				p.Instances = append(p.Instances, ObservedInstance{ID: n.InstanceID, Running: f.chance(7)})
			}
		}
		for j := range f.intn(3) {
			p.Instances = append(p.Instances, ObservedInstance{ID: fmt.Sprintf("i-p%dnew%d", i, j), Running: f.chance(6)})
		}
		for range f.intn(6) {
			p.PendingTasks = append(p.PendingTasks, ObservedTask{MatchesPool: f.chance(6),
				Reservation: Resources{NanoCPUs: int64(f.intn(5)-1) * 5e8, MemoryBytes: int64(f.intn(5)-1) * gib}})
		}
		if f.chance(4) {
			p.Samples = append(p.Samples, target("cpu", []float64{0, 0.1, 0.6, 0.9}[f.intn(4)], 0.6))
		}
		o.Pools = append(o.Pools, p)
	}
	o.UnneededSince["gone"] = t0.Add(-time.Hour)
	return o
}

// checkBuildInvariants asserts what every built snapshot keeps, and that
// Scale keeps its own invariants on it.
func checkBuildInvariants(t testing.TB, o ScaleObservation, s ScaleSnapshot, unneeded map[string]time.Time) {
	t.Helper()
	if len(s.Pools) != len(o.Pools) || !s.Now.Equal(o.Now) {
		t.Fatalf("%d pools built from %d", len(s.Pools), len(o.Pools))
	}
	inMap := 0
	for i, p := range s.Pools {
		in := &o.Pools[i]
		if p.ID != in.ID {
			t.Errorf("pool %d is %q, want %q", i, p.ID, in.ID)
		}
		if lo, hi := in.Rules.Bounds(in.PoolMinSize, in.PoolMaxSize); p.MinSize != lo || p.MaxSize != hi {
			t.Errorf("pool %s: bounds [%d, %d], want [%d, %d]", p.ID, p.MinSize, p.MaxSize, lo, hi)
		}
		running := 0
		for _, inst := range in.Instances {
			if inst.Running {
				running++
			}
		}
		if p.Current != running || p.Pending < 0 || p.Pending > p.Current {
			t.Errorf("pool %s: Current %d, Pending %d for %d running instances", p.ID, p.Current, p.Pending, running)
		}
		observed := map[string]*ObservedNode{}
		for j := range in.Nodes {
			observed[in.Nodes[j].ID] = &in.Nodes[j]
		}
		for _, n := range p.Nodes {
			obs := observed[n.ID]
			switch {
			case obs == nil || obs.State != NodeReady:
				t.Errorf("pool %s: node %s is not a Ready node of the pool", p.ID, n.ID)
				continue
			case n.Role != obs.Role:
				t.Errorf("pool %s: node %s has role %q, Swarm says %q", p.ID, n.ID, n.Role, obs.Role)
			case n.Draining != (obs.Availability == "drain" || obs.InFlight):
				t.Errorf("pool %s: node %s Draining %v", p.ID, n.ID, n.Draining)
			}
			want := time.Time{}
			if n.Role != policy.RoleManager && Unneeded(n, UnneededShare) {
				want = o.Now
				if prev := o.UnneededSince[n.ID]; !prev.IsZero() {
					want = prev
				}
			}
			if !n.UnneededSince.Equal(want) || !unneeded[n.ID].Equal(want) {
				t.Errorf("pool %s: node %s unneeded since %v (map %v), want %v", p.ID, n.ID, n.UnneededSince, unneeded[n.ID], want)
			}
			if !want.IsZero() {
				inMap++
			}
		}
		fit := 0
		for _, task := range in.PendingTasks {
			if task.MatchesPool {
				fit++
			}
		}
		for _, c := range p.Checks {
			if c.Kind == CheckPendingTasks {
				if !in.Rules.PendingTasks || len(c.PendingTasks) > fit {
					t.Errorf("pool %s: %d pending tasks counted of %d matching (check configured %v)", p.ID, len(c.PendingTasks), fit, in.Rules.PendingTasks)
				}
				for _, task := range c.PendingTasks {
					if task.NanoCPUs < 0 || task.MemoryBytes < 0 || !fitsNode(Resources(task), p.NodeCapacity) {
						t.Errorf("pool %s: pending task %+v counted on nodes of %+v", p.ID, task, p.NodeCapacity)
					}
				}
			}
		}
	}
	if len(unneeded) != inMap {
		t.Errorf("the unneeded map holds %d nodes, %d are unneeded: %v", len(unneeded), inMap, unneeded)
	}
	checkScaleInvariants(t, s, Scale(s))
}

// FuzzBuildScaleSnapshot checks the builder's invariants (see
// checkBuildInvariants) on random observations.
func FuzzBuildScaleSnapshot(f *testing.F) {
	f.Add([]byte{})
	for i := range 16 {
		seed := make([]byte, 96)
		for j := range seed {
			seed[j] = byte(i*31 + j*11)
		}
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		o := fuzzScaleObservation(data)
		s, unneeded := BuildScaleSnapshot(o)
		checkBuildInvariants(t, o, s, unneeded)
	})
}
