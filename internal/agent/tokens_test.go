package agent_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/platform/aws"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

// On aws Terraform does not reach the engines: apply writes the new
// join_token_rotation into the descriptor and waits; the leading agent
// rotates both tokens in the real swarm and stores them in SSM, where
// booting instances read them. Without an agent the update ends at its
// deadline with an error that says what to check.
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
