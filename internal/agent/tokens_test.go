package agent_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/platform/aws"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
	"github.com/autarky/terraform-provider-autarky/internal/testenv"
)

// On aws Terraform does not reach the engines: apply writes the new
// join_token_rotation into the descriptor and waits; the leading agent
// rotates both tokens in the real swarm and stores them in SSM, where
// booting instances read them. Without an agent the update ends at its
// deadline with an error that says what to check. As in every agent test
// on AWS (newCloudWith), the agent signs with the managers' policy alone.
func TestAWSRotateJoinTokens(t *testing.T) {
	c := newCloud(t, "keys", 1)
	ctx := context.Background()
	old, err := c.h.tokens()
	if err != nil {
		t.Fatal(err)
	}
	desc, _, err := c.plat.ReadCluster(ctx, "keys")
	if err != nil {
		t.Fatal(err)
	}
	desc.Agent = &policy.Agent{Enabled: true, EvaluationInterval: "1s",
		BinaryURL: "https://releases.example.com/autarky-agent", BinarySHA256: strings.Repeat("ab", 32)}
	desc.JoinTokenRotation = "first"

	// No agent runs yet: the update waits, then says why it failed.
	short, cancel := context.WithTimeout(ctx, 5*time.Second)
	_, err = c.plat.UpdateCluster(short, desc)
	cancel()
	if err == nil || !strings.Contains(err.Error(), "join_token_rotation") || !strings.Contains(err.Error(), "autarky-agent status") {
		t.Fatalf("update without an agent: got %v, want an error naming join_token_rotation and what to check", err)
	}

	c.runAgent()
	// Bounded: an agent that cannot rotate leaves the update waiting.
	ctx, cancel = context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	started := time.Now()
	if _, err := c.plat.UpdateCluster(ctx, desc); err != nil {
		t.Fatalf("update with the agent running: %v", err)
	}
	t.Logf("rotation requested to stored: %s", time.Since(started).Round(time.Millisecond))
	now, err := c.h.tokens()
	if err != nil {
		t.Fatal(err)
	}
	if now.Worker == old.Worker || now.Manager == old.Manager {
		t.Fatal("the swarm still has a token from before the rotation")
	}
	s, err := aws.NewStore(c.agentC.SSM, "keys")
	if err != nil {
		t.Fatal(err)
	}
	stored, err := s.GetTokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if stored.Worker != now.Worker || stored.Manager != now.Manager {
		t.Fatal("SSM does not hold the swarm's rotated tokens: booting instances would be refused")
	}

	// The same trigger again rotates nothing; a new one rotates again.
	if _, err := c.plat.UpdateCluster(ctx, desc); err != nil {
		t.Fatal(err)
	}
	if again, err := c.h.tokens(); err != nil || again != now {
		t.Fatalf("an unchanged join_token_rotation rotated the tokens again (or they cannot be read: %v)", err)
	}
	desc.JoinTokenRotation = "second"
	if _, err := c.plat.UpdateCluster(ctx, desc); err != nil {
		t.Fatal(err)
	}
	if second, err := c.h.tokens(); err != nil || second.Worker == now.Worker {
		t.Fatalf("a second trigger did not rotate the tokens (%v)", err)
	}

}

// A rotation the store keeps refusing (here every write of the rotation
// record is denied) is retried with backoff, not every round: each retry
// rotates the swarm's tokens again.
func TestAWSRotationRetriesBackOff(t *testing.T) {
	c := newCloud(t, "spin", 1)
	var mu sync.Mutex
	var denied []time.Time
	c.proxy.SetFault(testenv.NoRefreshes(func(call testenv.AWSCall) *testenv.AWSFault {
		if call.Action != "PutParameter" || !strings.Contains(string(call.Body), "/tokens/rotation") {
			return nil
		}
		mu.Lock()
		denied = append(denied, time.Now())
		mu.Unlock()
		return testenv.AWSAPIError(call, "AccessDeniedException", "not allowed (injected)")
	}))
	before, err := c.h.tokens()
	if err != nil {
		t.Fatal(err)
	}
	desc, _, err := c.plat.ReadCluster(context.Background(), "spin")
	if err != nil {
		t.Fatal(err)
	}
	desc.Agent = &policy.Agent{Enabled: true, EvaluationInterval: "1s",
		BinaryURL: "https://releases.example.com/autarky-agent", BinarySHA256: strings.Repeat("ab", 32)}
	desc.JoinTokenRotation = "denied"
	a := c.runAgent() // evaluates every 500ms
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Second)
	_, err = c.plat.UpdateCluster(ctx, desc)
	cancel()
	if err == nil || !strings.Contains(err.Error(), "join_token_rotation") {
		t.Fatalf("update with every rotation record refused: got %v, want an error naming join_token_rotation", err)
	}
	mu.Lock()
	n := len(denied)
	mu.Unlock()
	// Tries at about 0s, 5s and 15s: at most 3 in 12s (trying every round
	// made 6 here).
	if n == 0 || n > 3 {
		t.Fatalf("%d attempts to store the rotation in 12s, want 1 to 3 (backing off)", n)
	}
	if now, err := c.h.tokens(); err != nil || now == before {
		t.Fatalf("the first attempt did not rotate the swarm's tokens (%v)", err)
	}
	found := false
	for _, d := range a.Status().Decisions {
		found = found || d.Kind == "rotate_tokens" && d.Code == "error"
	}
	if !found {
		t.Error("no rotate_tokens error among the agent's decisions")
	}
}
