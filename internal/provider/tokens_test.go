package provider

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/autarky/terraform-provider-autarky/internal/platform/aws"
	"github.com/autarky/terraform-provider-autarky/internal/swarm"
	"github.com/autarky/terraform-provider-autarky/internal/testenv"
)

// swarmTokens reads the join tokens from the swarm itself, through the
// cluster's docker_host: the state has none to read.
func swarmTokens(s *terraform.State, cluster string) (swarm.Tokens, error) {
	rs, ok := s.RootModule().Resources[cluster]
	if !ok {
		return swarm.Tokens{}, fmt.Errorf("%s not in state", cluster)
	}
	cli, err := swarm.Dial(rs.Primary.Attributes["docker_host"])
	if err != nil {
		return swarm.Tokens{}, err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	t, err := cli.JoinTokens(ctx)
	if err == nil && (!strings.HasPrefix(t.Worker, "SWMTKN-") || !strings.HasPrefix(t.Manager, "SWMTKN-")) {
		err = fmt.Errorf("the swarm gave tokens that are not SWMTKN-: the test cannot look for them")
	}
	return t, err
}

// secretPart is what makes a token secret: a token is
// SWMTKN-1-<the swarm's CA digest>-<secret>, and the digest is shared by
// both tokens and survives rotation, so the canary is the last part.
func secretPart(token string) string { return token[strings.LastIndex(token, "-")+1:] }

// noTokenIn fails when any attribute of any resource in the state holds a
// token (its secret part), or is a token attribute at all.
func noTokenIn(s *terraform.State, tokens ...string) error {
	var parts []string
	for _, tok := range tokens {
		parts = append(parts, secretPart(tok))
	}
	if err := noSecretIn(s, parts...); err != nil {
		return err
	}
	for _, m := range s.Modules {
		for name, rs := range m.Resources {
			for attr := range rs.Primary.Attributes {
				if strings.Contains(attr, "join_token") && attr != "join_token_rotation" {
					return fmt.Errorf("the state has a token attribute %s.%s", name, attr)
				}
			}
		}
	}
	return nil
}

// rejoinWorker takes the pool's worker out of the swarm and joins it
// again: with token old it must be refused, with token current let in.
func rejoinWorker(s *terraform.State, stateDir, cluster, pool, old, current string) error {
	recs := testenv.Records(stateDir, cluster, pool)
	if len(recs) == 0 {
		return fmt.Errorf("no instance of %s/%s to rejoin", cluster, pool)
	}
	managers := []string{s.RootModule().Resources["autarky_cluster.test"].Primary.Attributes["manager_addresses.0"]}
	cli, err := swarm.Dial(recs[0].DockerHost)
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := cli.Leave(ctx, true); err != nil {
		return fmt.Errorf("worker leaving the swarm: %w", err)
	}
	if err := cli.Join(ctx, recs[0].Addr, managers, old); err == nil {
		return errors.New("a node joined the swarm with the worker token from before the rotation")
	} else if strings.Contains(err.Error(), secretPart(old)) {
		return errors.New("the refused join's error holds the old token")
	}
	if err := cli.Join(ctx, recs[0].Addr, managers, current); err != nil {
		return fmt.Errorf("joining with the rotated worker token: %w", err)
	}
	return nil
}

// The SEC1 and SEC2: the join tokens are in no state and no log,
// not even at TF_LOG=trace, and a change of join_token_rotation rotates
// both in the swarm, after which a node joining with an old token is
// refused.
func TestAccCluster_tokensOutOfStateAndRotation(t *testing.T) {
	stateDir := testenv.StateDir(t)
	logPath := stateDir + "/terraform.log"
	t.Setenv("TF_LOG", "trace")
	t.Setenv("TF_ACC_LOG_PATH", logPath)
	config := poolConfig(stateDir, "secret", 1, 1, "{}")
	rotated := strings.Replace(config, `heartbeat_period = "1s"`, `heartbeat_period = "1s"
  join_token_rotation = "2026-11-27"`, 1)
	if rotated == config {
		t.Fatal("the test could not add join_token_rotation to the configuration")
	}
	var before, after swarm.Tokens
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { preCheck(t) },
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config: config,
				Check: func(s *terraform.State) (err error) {
					if before, err = swarmTokens(s, "autarky_cluster.test"); err != nil {
						return err
					}
					return noTokenIn(s, before.Worker, before.Manager)
				},
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
			},
			{
				Config: rotated,
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply:             []plancheck.PlanCheck{plancheck.ExpectResourceAction("autarky_cluster.test", plancheck.ResourceActionUpdate)},
					PostApplyPostRefresh: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
				Check: func(s *terraform.State) (err error) {
					if after, err = swarmTokens(s, "autarky_cluster.test"); err != nil {
						return err
					}
					if after.Worker == before.Worker || after.Manager == before.Manager {
						return errors.New("join_token_rotation changed and the swarm still has an old token")
					}
					if err := noTokenIn(s, before.Worker, before.Manager, after.Worker, after.Manager); err != nil {
						return err
					}
					return rejoinWorker(s, stateDir, "secret", "web", before.Worker, after.Worker)
				},
			},
		},
	})
	logText, err := os.ReadFile(logPath)
	if err != nil || len(logText) == 0 {
		t.Fatalf("Terraform's log %s is empty or missing (%v): the test cannot check it", logPath, err)
	}
	for _, tok := range []string{before.Worker, before.Manager, after.Worker, after.Manager} {
		if strings.Contains(string(logText), secretPart(tok)) {
			t.Errorf("a join token appears in Terraform's log at TF_LOG=trace")
		}
	}
}

// A state written by a provider with schema version 0 held both join
// tokens; Terraform upgrades it through UpgradeResourceState, and what
// comes back keeps every other value and has no token.
func TestClusterStateUpgradeDropsTokens(t *testing.T) {
	const worker, manager = "SWMTKN-1-digestdigest-workersecretcanary", "SWMTKN-1-digestdigest-managersecretcanary"
	v0 := `{"id":"life","name":"life","platform":"local","manager_count":3,"heartbeat_period":"5s","labels":null,` +
		`"manager_pool_id":"life/managers","manager_addresses":["10.0.0.1:2377"],"docker_host":"unix:///run/m.sock","agent":null,"aws":null,` +
		`"timeouts":null,"worker_join_token":"` + worker + `","manager_join_token":"` + manager + `"}`
	server, err := providerserver.NewProtocol6WithError(New("test")())()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := server.UpgradeResourceState(context.Background(), &tfprotov6.UpgradeResourceStateRequest{
		TypeName: "autarky_cluster", Version: 0, RawState: &tfprotov6.RawState{JSON: []byte(v0)}})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range resp.Diagnostics {
		t.Errorf("upgrade: %s: %s", d.Summary, d.Detail)
	}
	if resp.UpgradedState == nil {
		t.Fatal("no upgraded state")
	}
	got := string(resp.UpgradedState.MsgPack) + string(resp.UpgradedState.JSON)
	for _, canary := range []string{"workersecretcanary", "managersecretcanary"} {
		if strings.Contains(got, canary) {
			t.Errorf("the upgraded state still holds a join token")
		}
	}
	for _, kept := range []string{"life/managers", "10.0.0.1:2377", "unix:///run/m.sock"} {
		if !strings.Contains(got, kept) {
			t.Errorf("the upgraded state lost %q", kept)
		}
	}
}

// On aws no secret reaches the state or Terraform's log at TF_LOG=trace:
// not the AWS secret key the provider signs with, not the agents' bearer
// token it creates in SSM, and not join tokens the managers stored there
// (canaries: SSM holds them while the provider refreshes).
func TestAccAWS_noSecretsInStateOrLog(t *testing.T) {
	e := newAWSEnv(t)
	const secretKey = "canaryAwsSecretKey0123456789abcdefghijklmn"
	t.Setenv("AWS_SECRET_ACCESS_KEY", secretKey)
	logPath := e.stateDir + "/terraform.log"
	t.Setenv("TF_LOG", "trace")
	t.Setenv("TF_ACC_LOG_PATH", logPath)
	config := e.provider() + e.cluster("vault", 1, `agent = {
    enabled       = true
    binary_url    = "https://releases.example.com/autarky-agent"
    binary_sha256 = "`+strings.Repeat("ab", 32)+`"
  }`)
	_, _, ssmc := e.clients()
	store, err := aws.NewStore(ssmc, "vault")
	if err != nil {
		t.Fatal(err)
	}
	joinTokens := swarm.Tokens{Worker: "SWMTKN-1-digestdigest-workercanarysecret", Manager: "SWMTKN-1-digestdigest-managercanarysecret"}
	var agentToken string
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             e.checkNothingLeftInAWS("vault"),
		Steps: []resource.TestStep{
			{
				Config: config,
				Check: func(s *terraform.State) (err error) {
					// What the first manager's user data would store.
					if err := store.PutTokens(context.Background(), joinTokens); err != nil {
						return err
					}
					if agentToken, err = store.AlertToken(context.Background()); err != nil || len(agentToken) < 32 {
						return fmt.Errorf("the agents' bearer token was not created (%d characters): %v", len(agentToken), err)
					}
					return noSecretIn(s, secretKey, agentToken)
				},
			},
			{
				// A refresh and plan with the tokens in SSM.
				Config:   config,
				PlanOnly: true,
				Check: func(s *terraform.State) error {
					return noSecretIn(s, secretKey, agentToken, secretPart(joinTokens.Worker), secretPart(joinTokens.Manager))
				},
			},
		},
	})
	logText, err := os.ReadFile(logPath)
	if err != nil || len(logText) == 0 {
		t.Fatalf("Terraform's log %s is empty or missing (%v): the test cannot check it", logPath, err)
	}
	if !strings.Contains(string(logText), "vault-managers") {
		t.Fatal("Terraform's log does not mention the cluster's group: it is not the log of this run")
	}
	for name, canary := range map[string]string{"the AWS secret key": secretKey, "the agents' bearer token": agentToken,
		"the worker join token": secretPart(joinTokens.Worker), "the manager join token": secretPart(joinTokens.Manager)} {
		if canary == "" {
			t.Fatalf("no canary for %s", name)
		}
		if strings.Contains(string(logText), canary) {
			t.Errorf("%s appears in Terraform's log at TF_LOG=trace", name)
		}
	}
}

// noSecretIn fails when any attribute of any resource in the state holds
// one of secrets.
func noSecretIn(s *terraform.State, secrets ...string) error {
	for _, m := range s.Modules {
		for name, rs := range m.Resources {
			for attr, v := range rs.Primary.Attributes {
				for _, sec := range secrets {
					if sec != "" && strings.Contains(v, sec) {
						return fmt.Errorf("the state holds a secret in %s.%s", name, attr)
					}
				}
			}
		}
	}
	return nil
}

// pinOpenTofu runs the test on OpenTofu 1.12.6, which `make tools`
// builds, whichever CLI the suite runs on (AUTARKY_ACC_CLI): the tests of
// what neither Terraform 1.5 nor OpenTofu 1.6 knows (ephemeral resources)
// run with it.
func pinOpenTofu(t *testing.T) {
	t.Helper()
	p := os.Getenv("AUTARKY_TOFU_PATH")
	if p == "" {
		p = os.ExpandEnv("$HOME/.cache/autarky/tofu-1.12.6/tofu")
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("OpenTofu is not at %s: run `make tools` (it builds OpenTofu from the Go module proxy)", p)
	}
	rc := t.TempDir() + "/tofurc"
	if err := os.WriteFile(rc, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	useOpenTofu(t.Setenv, p, rc)
}

// autarky_join_token hands a token to where an ephemeral value may go
// (here a provisioner, which writes it to a file as a machine's bootstrap
// would) and nothing of it reaches the state; a wrong role is refused at
// plan, naming the attribute. Run with OpenTofu: Terraform 1.5 has no
// ephemeral resources.
func TestAccJoinToken_ephemeral(t *testing.T) {
	pinOpenTofu(t)
	stateDir := testenv.StateDir(t)
	dir := t.TempDir()
	config := func(workerRole string) string {
		return clusterConfig(stateDir, "ephem", 1, "") + fmt.Sprintf(`
ephemeral "autarky_join_token" "worker" {
  cluster_id = autarky_cluster.test.id
  role       = %q
}

ephemeral "autarky_join_token" "manager" {
  cluster_id = autarky_cluster.test.id
  role       = "manager"
}

resource "terraform_data" "bootstrap" {
  provisioner "local-exec" {
    command = "printf %%s \"$WORKER\" > %[2]s/worker && printf %%s \"$MANAGER\" > %[2]s/manager"
    environment = {
      WORKER  = ephemeral.autarky_join_token.worker.token
      MANAGER = ephemeral.autarky_join_token.manager.token
    }
  }
}
`, workerRole, dir)
	}
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { preCheck(t) },
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             checkNothingLeft(stateDir),
		Steps: []resource.TestStep{
			{Config: config("admin"), PlanOnly: true, ExpectError: regexp.MustCompile(`(?s)role.*worker.*manager`)},
			{
				Config: config("worker"),
				Check: func(s *terraform.State) error {
					tokens, err := swarmTokens(s, "autarky_cluster.test")
					if err != nil {
						return err
					}
					for role, want := range map[string]string{"worker": tokens.Worker, "manager": tokens.Manager} {
						got, err := os.ReadFile(dir + "/" + role)
						if err != nil {
							return fmt.Errorf("the provisioner wrote no %s token: %w", role, err)
						}
						if string(got) != want {
							return fmt.Errorf("the ephemeral %s token is not the swarm's", role)
						}
					}
					return noTokenIn(s, tokens.Worker, tokens.Manager)
				},
			},
		},
	})
}
