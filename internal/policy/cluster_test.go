package policy

import (
	"strings"
	"testing"
)

// join_token_rotation takes a short printable trigger; anything else is
// refused naming the field and what is allowed, and on a cloud (aws, gcp)
// it needs an agent that acts, which needs its download.
func TestJoinTokenRotationValidation(t *testing.T) {
	base := Cluster{Name: "c", Platform: PlatformLocal, ManagerCount: 1, HeartbeatPeriod: "5s"}
	for _, tc := range []struct {
		name, rotation, platform string
		agent                    *Agent
		want                     string
	}{
		{name: "date", rotation: "2026-11-27"},
		{name: "unset", rotation: ""},
		{name: "too long", rotation: strings.Repeat("x", 257), want: "join_token_rotation: is 257 characters long: use at most 256"},
		{name: "newline", rotation: "a\nb", want: "join_token_rotation: holds a control character"},
		{name: "aws without agent", rotation: "r1", platform: PlatformAWS, want: "join_token_rotation: on platform \"aws\" the agent"},
		{name: "aws dry run", rotation: "r1", platform: PlatformAWS, want: "set agent.enabled = true and agent.dry_run = false",
			agent: &Agent{Enabled: true, DryRun: true, EvaluationInterval: "2s", BinaryURL: "https://x.example/agent", BinarySHA256: strings.Repeat("ab", 32)}},
		{name: "aws with agent", rotation: "r1", platform: PlatformAWS,
			agent: &Agent{Enabled: true, EvaluationInterval: "2s", BinaryURL: "https://x.example/agent", BinarySHA256: strings.Repeat("ab", 32)}},
		{name: "gcp without agent", rotation: "r1", platform: PlatformGCP, want: "join_token_rotation: on platform \"gcp\" the agent"},
		{name: "gcp agent without download", platform: PlatformGCP, agent: &Agent{Enabled: true, EvaluationInterval: "2s"},
			want: "agent.binary_url: \"\" is not an http(s) URL (managers on gcp download the agent at boot)"},
		{name: "gcp with agent", rotation: "r1", platform: PlatformGCP,
			agent: &Agent{Enabled: true, EvaluationInterval: "2s", BinaryURL: "https://x.example/agent", BinarySHA256: strings.Repeat("ab", 32)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base
			c.JoinTokenRotation, c.Agent = tc.rotation, tc.agent
			switch tc.platform {
			case PlatformAWS:
				c.Platform, c.AWS = PlatformAWS, &AWS{AMI: "ami-0123456789abcdef0", InstanceType: "t3.micro", Subnets: []string{"subnet-0123abcd"}}
			case PlatformGCP:
				c.Platform, c.GCP = PlatformGCP, &GCP{Project: "autarky-test", Region: "europe-west1", MachineType: "e2-small",
					Image: "projects/debian-cloud/global/images/family/debian-12", Subnetwork: "regions/europe-west1/subnetworks/nodes", Bucket: "autarky-test-store"}
			}
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
}
