package provider

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	awsv2 "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/autarky/terraform-provider-autarky/internal/platform/aws"
)

// A cluster on aws with its agent: apply creates the agents' bearer token
// in SSM as a SecureString before the managers boot, and its value is in
// no state file Terraform writes (grepped on disk, backups too;
// TestAccAWS_noSecretsInStateOrLog greps the trace log); destroy removes
// it with the cluster's other parameters. Without the change no token was made, and the agents
// on aws refused every alert.
func TestAccAWS_agentToken(t *testing.T) {
	e := newAWSEnv(t)
	work := t.TempDir()
	t.Setenv("TF_ACC_TEMP_DIR", work)
	t.Setenv("TF_ACC_PERSIST_WORKING_DIR", "1")
	agent := fmt.Sprintf(`agent = {
    enabled       = true
    binary_url    = "https://example.com/autarky-agent"
    binary_sha256 = %q
  }`, strings.Repeat("0f", 32))
	param := aws.AlertTokenParameter("tok")
	var token string
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		CheckDestroy:             e.checkNothingLeftInAWS("tok"),
		Steps: []resource.TestStep{{
			Config: e.provider() + e.cluster("tok", 1, agent),
			Check: func(s *terraform.State) error {
				_, _, sm := e.clients()
				ctx := context.Background()
				plain, err := sm.GetParameter(ctx, &ssm.GetParameterInput{Name: awsv2.String(param)})
				if err != nil {
					return fmt.Errorf("apply made no agent token %s: %w", param, err)
				}
				if plain.Parameter.Type != ssmtypes.ParameterTypeSecureString {
					return fmt.Errorf("the agent token %s is a %s parameter, want SecureString", param, plain.Parameter.Type)
				}
				dec, err := sm.GetParameter(ctx, &ssm.GetParameterInput{Name: awsv2.String(param), WithDecryption: awsv2.Bool(true)})
				if err != nil {
					return err
				}
				token = awsv2.ToString(dec.Parameter.Value)
				if len(token) != 64 {
					return fmt.Errorf("the agent token is %d characters, want 64 hex digits", len(token))
				}
				for _, m := range s.Modules {
					for name, rs := range m.Resources {
						for attr, v := range rs.Primary.Attributes {
							if strings.Contains(v, token) {
								return fmt.Errorf("the state holds the agent token in %s.%s", name, attr)
							}
						}
					}
				}
				return nil
			},
		}},
	})
	if token == "" {
		t.Fatal("the test never read the agent token: it checks nothing")
	}
	states := 0
	err := filepath.WalkDir(work, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasPrefix(d.Name(), "terraform.tfstate") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if strings.Contains(string(b), `"autarky_cluster"`) {
			states++
		}
		if strings.Contains(string(b), token) {
			t.Errorf("the state file %s holds the agent token", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if states == 0 {
		t.Fatalf("no state file with the cluster under %s: the grep checks nothing", work)
	}
}
