package decide

import (
	"strings"
	"testing"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

// starting adds a running instance id to the pool, launched ago before t0,
// with no Swarm node.
func starting(p *PoolObservation, id string, ago time.Duration) *ObservedInstance {
	p.Instances = append(p.Instances, ObservedInstance{ID: id, Running: true, LaunchedAt: t0.Add(-ago)})
	return &p.Instances[len(p.Instances)-1]
}

func TestProvisionBackoffDelays(t *testing.T) {
	want := []time.Duration{0, 5 * time.Minute, 10 * time.Minute, 20 * time.Minute, 30 * time.Minute, 30 * time.Minute}
	for n, w := range want {
		if got := ProvisionBackoffDelay(n); got != w {
			t.Errorf("ProvisionBackoffDelay(%d) = %s, want %s", n, got, w)
		}
	}
	var b ProvisionBackoff
	b = b.Record(t0)
	if b.Timeouts != 1 || !b.Until(t0).Equal(t0.Add(5*time.Minute)) {
		t.Fatalf("after one timeout: %+v, until %s", b, b.Until(t0))
	}
	b = b.Record(t0.Add(6 * time.Minute))
	if b.Timeouts != 2 || !b.Until(t0.Add(6*time.Minute)).Equal(t0.Add(16*time.Minute)) {
		t.Fatalf("after two timeouts: %+v, until %s", b, b.Until(t0.Add(6*time.Minute)))
	}
	if u := b.Until(t0.Add(16 * time.Minute)); !u.IsZero() {
		t.Errorf("backoff still on at its end: until %s", u)
	}
	// Three hours without a timeout reset the record: the next starts at 5m.
	later := t0.Add(6*time.Minute + ProvisionBackoffReset)
	if b.Active(later) {
		t.Errorf("record still active %s after the last timeout", ProvisionBackoffReset)
	}
	if b = b.Record(later); b.Timeouts != 1 {
		t.Errorf("a timeout after the reset counts %d, want 1", b.Timeouts)
	}
	// Just before the reset it still grows, up to the cap.
	b = ProvisionBackoff{Timeouts: 6, LastTimeout: t0}
	if b = b.Record(t0.Add(ProvisionBackoffReset - time.Second)); b.Timeouts != 7 || ProvisionBackoffDelay(b.Timeouts) != ProvisionBackoffCap {
		t.Errorf("before the reset: %+v, delay %s", b, ProvisionBackoffDelay(b.Timeouts))
	}
}

// An instance that never registers counts as starting only until
// provision_timeout: then it is no capacity, is named for termination, and
// the pool backs off. Nodes that joined and went down, and instances an
// action in flight names, are not provision failures.
func TestBuildScalePoolProvisionTimeout(t *testing.T) {
	p := observedPool(2)
	starting(&p, "i-young", 14*time.Minute)
	starting(&p, "i-stuck", 16*time.Minute)
	starting(&p, "i-unknown-launch", 0).LaunchedAt = time.Time{}
	starting(&p, "i-healing", time.Hour).InFlight = true
	// A node that registered and is down: healing's to judge.
	p.Nodes = append(p.Nodes, ObservedNode{ID: "wd", InstanceID: "i-down", State: NodeDown, Role: policy.RoleWorker, CreatedAt: t0.Add(-2 * time.Hour)})
	starting(&p, "i-down", 2*time.Hour)

	sp, _ := BuildScalePool(t0, p, nil)
	if len(sp.TimedOut) != 1 || sp.TimedOut[0] != "i-stuck" {
		t.Fatalf("TimedOut = %v, want [i-stuck]", sp.TimedOut)
	}
	// 2 ready + young + unknown launch + healing + down; not the stuck one.
	if sp.Current != 6 || sp.Pending != 4 {
		t.Errorf("Current %d, Pending %d; want 6 and 4", sp.Current, sp.Pending)
	}
	if sp.ProvisionBackoff.Timeouts != 1 || !sp.ProvisionBackoff.LastTimeout.Equal(t0) {
		t.Errorf("backoff %+v, want one timeout at t0", sp.ProvisionBackoff)
	}

	// Without the timeout (a pure observation of older rules) nothing times out.
	p.Rules.ProvisionTimeout = 0
	sp, _ = BuildScalePool(t0, p, nil)
	if len(sp.TimedOut) != 0 || sp.Current != 7 || sp.Pending != 5 || sp.ProvisionBackoff.Timeouts != 0 {
		t.Errorf("without provision_timeout: TimedOut %v, Current %d, Pending %d, backoff %+v", sp.TimedOut, sp.Current, sp.Pending, sp.ProvisionBackoff)
	}
}

// The decision: pending work that a stuck instance used to absorb holds
// with "backoff" and names the instance; once the backoff is over, the pool
// grows again. Before the timeout the stuck instance absorbs the demand.
func TestScaleProvisionTimeoutDecision(t *testing.T) {
	p := observedPool(2)
	starting(&p, "i-stuck", 16*time.Minute)
	unplaced(&p, 1, cpu2, gib) // one more node's worth

	// Just before the timeout: the instance is capacity on its way.
	sp, _ := BuildScalePool(t0.Add(-2*time.Minute), p, nil)
	d := Scale(ScaleSnapshot{Now: t0.Add(-2 * time.Minute), Pools: []ScalePool{sp}}).Decisions[0]
	if d.Direction != ScaleHold || d.From != 3 {
		t.Fatalf("before the timeout: %s %d->%d (%s): %s", d.Direction, d.From, d.To, d.Code, d.Message)
	}

	sp, _ = BuildScalePool(t0, p, nil)
	d = Scale(ScaleSnapshot{Now: t0, Pools: []ScalePool{sp}}).Decisions[0]
	if d.Direction != ScaleHold || d.Code != CodeBackoff || d.From != 2 {
		t.Fatalf("at the timeout: %s %d->%d (%s): %s", d.Direction, d.From, d.To, d.Code, d.Message)
	}
	for _, want := range []string{"i-stuck", "provision_timeout 15m0s", "no scale-out before", "(backoff 5m0s)", "1 timeout in a row"} {
		if !strings.Contains(d.Message, want) {
			t.Errorf("message %q lacks %q", d.Message, want)
		}
	}

	// The agent terminated it and kept the backoff; 4 minutes on, still
	// backing off; 5 minutes on, the pool grows.
	p.Instances = p.Instances[:2]
	p.ProvisionBackoff = sp.ProvisionBackoff
	for _, c := range []struct {
		after time.Duration
		dir   ScaleDirection
		code  ScaleCode
	}{{4 * time.Minute, ScaleHold, CodeBackoff}, {5 * time.Minute, ScaleUp, CodePendingTasks}} {
		now := t0.Add(c.after)
		p.LastScaleUp = time.Time{}
		sp, _ = BuildScalePool(now, p, nil)
		d = Scale(ScaleSnapshot{Now: now, Pools: []ScalePool{sp}}).Decisions[0]
		if d.Direction != c.dir || d.Code != c.code {
			t.Errorf("%s after the timeout: %s %d->%d (%s), want %s (%s): %s", c.after, d.Direction, d.From, d.To, d.Code, c.dir, c.code, d.Message)
		}
	}

	// Below min_size the pool waits out the backoff too.
	p.PoolMinSize = 4
	sp, _ = BuildScalePool(t0.Add(time.Minute), p, nil)
	d = Scale(ScaleSnapshot{Now: t0.Add(time.Minute), Pools: []ScalePool{sp}}).Decisions[0]
	if d.Direction != ScaleHold || d.Code != CodeBackoff || !strings.Contains(d.Message, "fewer than min_size 4") {
		t.Errorf("below min_size while backing off: %s (%s): %s", d.Direction, d.Code, d.Message)
	}
}

// A request the platform does not list yet (an eventually consistent
// describe, reliability scenario A3) is capacity on its way: the same
// demand asks for nothing more. After provision_timeout the part never
// listed is abandoned and the pool backs off.
func TestBuildScalePoolUnlisted(t *testing.T) {
	p := observedPool(2)
	unplaced(&p, 1, cpu2, gib)
	p.Requested = ScaleRequest{Size: 3, At: t0.Add(-time.Minute)}
	sp, _ := BuildScalePool(t0, p, nil)
	if sp.Unlisted != 1 || sp.Current != 3 || sp.Pending != 1 || sp.Abandoned != 0 {
		t.Fatalf("Unlisted %d, Current %d, Pending %d, Abandoned %d; want 1, 3, 1, 0", sp.Unlisted, sp.Current, sp.Pending, sp.Abandoned)
	}
	d := Scale(ScaleSnapshot{Now: t0, Pools: []ScalePool{sp}}).Decisions[0]
	if d.Direction != ScaleHold {
		t.Fatalf("the unlisted instance should absorb the demand: %s %d->%d (%s): %s", d.Direction, d.From, d.To, d.Code, d.Message)
	}
	// More demand grows from the requested size, not from the listed one.
	unplaced(&p, 1, cpu2, gib)
	sp, _ = BuildScalePool(t0, p, nil)
	d = Scale(ScaleSnapshot{Now: t0, Pools: []ScalePool{sp}}).Decisions[0]
	if d.Direction != ScaleUp || d.From != 3 || d.To != 4 {
		t.Fatalf("more demand: %s %d->%d (%s): %s", d.Direction, d.From, d.To, d.Code, d.Message)
	}

	// Listed at last: nothing unlisted.
	p.Instances = append(p.Instances, ObservedInstance{ID: "i-w3", Running: true, LaunchedAt: t0})
	sp, _ = BuildScalePool(t0, p, nil)
	if sp.Unlisted != 0 || sp.Current != 3 {
		t.Errorf("listed: Unlisted %d, Current %d", sp.Unlisted, sp.Current)
	}

	// Never listed: abandoned after provision_timeout.
	p.Instances = p.Instances[:2]
	now := t0.Add(15 * time.Minute)
	sp, _ = BuildScalePool(now, p, nil)
	if sp.Abandoned != 1 || sp.Unlisted != 0 || sp.Current != 2 || sp.ProvisionBackoff.Timeouts != 1 {
		t.Fatalf("abandoned: Abandoned %d, Unlisted %d, Current %d, backoff %+v", sp.Abandoned, sp.Unlisted, sp.Current, sp.ProvisionBackoff)
	}
	d = Scale(ScaleSnapshot{Now: now, Pools: []ScalePool{sp}}).Decisions[0]
	if d.Code != CodeBackoff || !strings.Contains(d.Message, "1 instance asked for never listed") {
		t.Errorf("abandoned: %s (%s): %s", d.Direction, d.Code, d.Message)
	}
}

// Reliability scenario A3 in the pure core: a cloud whose describe shows
// the old size for 60 s after every change, evaluated every 10 s for 10
// minutes under a steady demand of 3 more nodes than the pool has. The
// agent asks for exactly the intended size, once: no increment is ever
// repeated, and the sum of the increments is the intended growth.
func TestScaleStaleDescribeNoExtraIncrements(t *testing.T) {
	const stale = 60 * time.Second
	type change struct {
		at   time.Time
		size int
	}
	var changes []change
	visible := func(now time.Time) int { // the size a describe shows at now
		size := 2
		for _, c := range changes {
			if now.Sub(c.at) >= stale {
				size = c.size
			}
		}
		return size
	}
	var req ScaleRequest
	var lastUp time.Time
	increments := 0
	for now := t0; now.Before(t0.Add(10 * time.Minute)); now = now.Add(10 * time.Second) {
		p := observedPool(0)
		p.Rules.CooldownUp = 0 // only the accounting may stop a repeat
		for i := 1; i <= visible(now); i++ {
			joined(&p, "n"+string(rune('0'+i)), time.Hour)
		}
		// The demand: 5 nodes' worth in total, less what the visible
		// nodes already run.
		unplaced(&p, 5-visible(now), cpu2, gib)
		if req.Size <= visible(now) {
			req = ScaleRequest{} // the agent clears a request once listed
		}
		p.Requested, p.LastScaleUp = req, lastUp
		sp, _ := BuildScalePool(now, p, nil)
		d := Scale(ScaleSnapshot{Now: now, Pools: []ScalePool{sp}}).Decisions[0]
		if d.Direction == ScaleUp {
			increments += d.To - d.From
			changes = append(changes, change{now, d.To})
			req, lastUp = ScaleRequest{Size: d.To, At: now}, now
		}
	}
	if increments != 3 || len(changes) != 1 || changes[0].size != 5 {
		t.Fatalf("requested %d more nodes in %d changes %+v; want 3 in one change to 5", increments, len(changes), changes)
	}
}
