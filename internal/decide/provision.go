package decide

import (
	"fmt"
	"strings"
	"time"
)

// Provisioning: the instances a pool asked for, on their way to becoming
// Ready Swarm nodes (reliability scenarios F1, F10, A3 and A4).
//
// The scaling core counts an instance that runs without a Ready node as
// capacity on its way (ScalePool.Pending): scale-out subtracts it, so the
// same work is never asked for twice, and no scale-in happens while there
// is one. Without a bound that is a trap: an instance that never joins
// (broken user data, a network that does not reach the managers) holds
// the pool forever, and so does a raise of a group's desired size that
// the cloud never answers (a capacity shortage). provision_timeout bounds
// it, as cluster-autoscaler's max-node-provision-time and Karpenter's
// registration timeout do (15 minutes by default in both). Past it the
// instance is no capacity: the agent terminates it, sets the desired size
// back to the real size (cluster-autoscaler's clusterstate UC4), and the
// pool backs off, so a pool that cannot get machines does not ask again
// every evaluation. The backoff is cluster-autoscaler's per node group: 5
// minutes after the first timeout, doubling to at most 30, and forgotten
// 3 hours after the last timeout.

// Provision backoff delays.
const (
	ProvisionBackoffBase  = 5 * time.Minute
	ProvisionBackoffCap   = 30 * time.Minute
	ProvisionBackoffReset = 3 * time.Hour
)

// ProvisionBackoff is a pool's record of provision timeouts, kept in the
// agent's journal across leaders.
type ProvisionBackoff struct {
	// Timeouts counts the timeouts since the record was last reset.
	Timeouts    int       `json:"timeouts"`
	LastTimeout time.Time `json:"last_timeout"`
}

// ProvisionBackoffDelay is how long a pool does not scale out after its
// timeouts-th provision timeout in a row: 5m, 10m, 20m, then 30m. Zero
// when there was none.
func ProvisionBackoffDelay(timeouts int) time.Duration {
	if timeouts <= 0 {
		return 0
	}
	d := ProvisionBackoffBase
	for i := 1; i < timeouts && d < ProvisionBackoffCap; i++ {
		d *= 2
	}
	return min(d, ProvisionBackoffCap)
}

// Active tells whether the record still counts at now: it is forgotten
// ProvisionBackoffReset after its last timeout.
func (b ProvisionBackoff) Active(now time.Time) bool {
	return b.Timeouts > 0 && !b.LastTimeout.IsZero() && now.Sub(b.LastTimeout) < ProvisionBackoffReset
}

// Until is when the pool may scale out again; the zero time when it is not
// backing off at now.
func (b ProvisionBackoff) Until(now time.Time) time.Time {
	if !b.Active(now) {
		return time.Time{}
	}
	if u := b.LastTimeout.Add(ProvisionBackoffDelay(b.Timeouts)); now.Before(u) {
		return u
	}
	return time.Time{}
}

// Record is the record after a timeout at now: one more, or the first
// again when the old record had been forgotten.
func (b ProvisionBackoff) Record(now time.Time) ProvisionBackoff {
	if !b.Active(now) {
		b.Timeouts = 0
	}
	return ProvisionBackoff{Timeouts: b.Timeouts + 1, LastTimeout: now}
}

// ScaleRequest is the size the agent last asked a pool's platform for when
// it grew the pool, and when; the agent keeps it in the journal until the
// platform lists that many instances. A cloud's reads are eventually
// consistent (reliability scenario A3): right after a raise of a group's
// desired capacity, describing the group can show the old size and the
// old instances for a while. The instances asked for and not listed yet
// are counted as capacity on its way (ScalePool.Unlisted), never as a
// reason to ask again, for at most provision_timeout after the request;
// after that they never came, and the part not listed is given up
// (ScalePool.Abandoned).
type ScaleRequest struct {
	Size int       `json:"size"`
	At   time.Time `json:"at"`
}

// backoffHold holds a scale-out while the pool backs off after provision
// timeouts; asks says what the checks (or min_size) want. Even a pool below
// min_size waits: what it would launch is what just failed to come.
func (r *poolScale) backoffHold(asks string) (ScaleDecision, bool) {
	until := r.p.ProvisionBackoff.Until(r.now)
	if until.IsZero() {
		return ScaleDecision{}, false
	}
	// The message names fixed times only, so it reads the same at every
	// evaluation of the backoff and is logged once.
	b := r.p.ProvisionBackoff
	msg := fmt.Sprintf("%s, but instances it asked for did not become Ready nodes within provision_timeout %s (%s in a row, the last at %s): no scale-out before %s (backoff %s)",
		asks, r.p.Rules.ProvisionTimeout, plural(b.Timeouts, "timeout"), b.LastTimeout.UTC().Format(time.RFC3339),
		until.UTC().Format(time.RFC3339), ProvisionBackoffDelay(b.Timeouts))
	return r.hold(CodeBackoff, msg+r.timedOutNote()), true
}

// timedOutNote names the instances this decision gives up.
func (r *poolScale) timedOutNote() string {
	var parts []string
	if n := len(r.p.TimedOut); n > 0 {
		parts = append(parts, fmt.Sprintf("%s never registered (%s): terminate", plural(n, "instance"), listIDs(r.p.TimedOut)))
	}
	if r.p.Abandoned > 0 {
		parts = append(parts, fmt.Sprintf("%s asked for never listed: set the desired size to the real size", plural(r.p.Abandoned, "instance")))
	}
	if len(parts) == 0 {
		return ""
	}
	return "; " + strings.Join(parts, "; ")
}
