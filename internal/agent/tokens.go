package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/platform"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

// rotateJoinTokens carries out a join_token_rotation on a platform whose
// tokens live in a store of its own (platform.TokenStore: SSM on aws),
// which Terraform's apply waits on. When the descriptor names a trigger
// the store has not seen, the leader rotates both tokens in the swarm and
// stores the new ones, the trigger last; a node booting meanwhile reads an
// old token, is refused, and reads again (its user data retries). A
// failed store write is retried later (backing off) with another
// rotation, so the store never keeps tokens the swarm no longer takes for
// long. It returns only the
// errors that end the round's acting (deposed, fenced).
func (a *Agent) rotateJoinTokens(ctx context.Context, o *observation) error {
	ts, ok := a.cluster.(platform.TokenStore)
	want := o.cluster.JoinTokenRotation
	if !ok || want == "" || want == a.tokensRotatedFor || o.now.Before(a.tokensRetryAt) {
		return nil
	}
	managers := policy.PoolID(o.cluster.Name, policy.ManagerPoolName)
	done, err := ts.TokensRotatedFor(ctx)
	if err != nil {
		a.log.Warn("cannot read which join token rotation the store holds", "error", err)
		return nil
	}
	if done != want {
		err := a.guarded(ctx, "rotating the join tokens", func(cctx context.Context) error {
			t, err := a.docker.RotateJoinTokens(cctx)
			if err != nil {
				return err
			}
			// The store keeps the tokens out of its errors (aws: scrub).
			return ts.PutRotatedTokens(cctx, want, t)
		})
		if fenced(err) {
			return err
		}
		if err != nil {
			// A failure that persists (a policy without the right, a
			// store that refuses) must not rotate the swarm's tokens
			// every round: the retries back off, doubling to a cap.
			a.tokensBackoff = min(max(2*a.tokensBackoff, tokenRetryMin), tokenRetryMax)
			a.tokensRetryAt = o.now.Add(a.tokensBackoff)
			a.log.Error("rotating the join tokens failed: trying again later", "rotation", want, "retry_in", a.tokensBackoff, "error", err)
			a.addDecision(o.now, managers, "rotate_tokens", "error", err.Error(), false)
			return nil
		}
		a.tokensBackoff = 0
		msg := fmt.Sprintf("rotated both join tokens for join_token_rotation %q and stored them: a node joining with an earlier token is refused", want)
		a.log.Info(msg, "rotation", want)
		a.addDecision(o.now, managers, "rotate_tokens", "rotation", msg, false)
	}
	a.tokensRotatedFor = want
	return nil
}

// The backoff of a failed join token rotation: from tokenRetryMin,
// doubling, to tokenRetryMax.
const (
	tokenRetryMin = 5 * time.Second
	tokenRetryMax = 5 * time.Minute
)
