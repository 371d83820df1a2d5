package main

import (
	"os"
	"regexp"
	"strings"
	"testing"

	awsv2 "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/autarky/terraform-provider-autarky/internal/platform/aws"
	"github.com/autarky/terraform-provider-autarky/internal/testenv"
)

// TestCheckConfigSurveysGroups: check-config of a file adopting Auto
// Scaling Groups says what exists of each pool now, from AWS (moto): the
// group's desired, min and max, its instances, and the size the agent
// would start from (the group's, not the file's desired_size); its calls
// say autarky-agent/<version>. A group the file names that does not exist
// is an error naming the pool and the group.
func TestCheckConfigSurveysGroups(t *testing.T) {
	seen, _ := awsAgentEnv(t)
	cfg := awsv2.Config{Region: "eu-west-1", Credentials: credentials.NewStaticCredentialsProvider("testing", "testing", ""),
		BaseEndpoint: awsv2.String(os.Getenv("AWS_ENDPOINT_URL"))}
	c := aws.NewClients(cfg, aws.Config{}, nil)
	testenv.MakeGroups(t, c.EC2, c.AutoScaling, "eu-west-1", "legacy",
		testenv.HandMadeGroup{Name: "legacy-web-asg", Min: 1, Desired: 3, Max: 11})
	const web = `cluster  = "legacy"
platform = "aws"
adopt {
  node_pool "web" {
    group        = "legacy-web-asg"
    min_size     = 2
    max_size     = 10
    desired_size = 2
  }
`
	seen.reset() // the groups' making above is the test's, not the agent's
	old := version
	version = uaVersion
	defer func() { version = old }()

	out, errs, code := checkConfig(t, "--config", writeConfig(t, web+"}\n"))
	if code != 0 {
		t.Fatalf("check-config: %d %s", code, errs)
	}
	want := regexp.MustCompile(`(?m)^what exists now:\n  node_pool "web": Auto Scaling group "legacy-web-asg" desired 3, min 1, max 11; 3 instance\(s\): i-[0-9a-f]+ \(.*\), i-[0-9a-f]+ \(.*\), i-[0-9a-f]+ \(.*\); the agent starts from size 3\n`)
	if !want.MatchString(out) {
		t.Errorf("check-config does not say what exists of pool web:\n%s", out)
	}
	seen.check(t, "DescribeAutoScalingGroups")

	cfgPath := writeConfig(t, web+"  node_pool \"batch\" {\n    group    = \"legacy-batch\"\n    max_size = 5\n  }\n}\n")
	_, errs, code = checkConfig(t, "--config", cfgPath)
	if wantErr := cfgPath + `: node_pool "batch": Auto Scaling group "legacy-batch" does not exist`; code == 0 || !strings.Contains(errs, wantErr) {
		t.Errorf("check-config of a group that does not exist: code %d, stderr %q, want %q", code, errs, wantErr)
	}
}
