package aws

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/autarky/terraform-provider-autarky/internal/packaging"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
	"github.com/autarky/terraform-provider-autarky/internal/swarm"
	"github.com/autarky/terraform-provider-autarky/internal/testenv"
)

// TestUserDataShellcheck renders the user data of a manager (with the
// agent) and of a worker pool, while the cluster's tokens sit in moto's
// Parameter Store, and runs shellcheck (Debian's) on both: POSIX sh, no
// warning, no token, only the token's parameter name; sh -n and bash -n
// parse them.
func TestUserDataShellcheck(t *testing.T) {
	shellcheck, err := exec.LookPath("shellcheck")
	if err != nil {
		t.Fatalf("shellcheck is not installed: run `%s` (it installs Debian's shellcheck)", testenv.Setup)
	}
	c, _ := testClients(t, nil)
	s, _ := NewStore(c.SSM, "prod")
	if err := s.PutTokens(context.Background(), swarm.Tokens{Worker: testWorkerToken, Manager: testManagerToken}); err != nil {
		t.Fatal(err)
	}

	cases := map[string]UserData{
		"manager": {
			Cluster: "prod", Pool: policy.ManagerPoolName, Role: policy.RoleManager, Region: testRegion,
			ManagerGroup: "prod-managers", KMSKeyID: "alias/autarky",
			Labels: map[string]string{"zone": "it's \"quoted\" $(not run)"},
			Agent: &AgentBoot{URL: "https://github.com/autarky/terraform-provider-autarky/releases/download/v0.1.0/autarky-agent_linux_amd64",
				SHA256: strings.Repeat("ab", 32), EvaluationInterval: "5s", DryRun: true},
		},
		"worker": {
			Cluster: "prod", Pool: "web", Role: policy.RoleWorker, Region: testRegion, ManagerGroup: "prod-managers",
			Labels: map[string]string{"tier": "frontend"},
		},
	}
	dir := t.TempDir()
	for name, u := range cases {
		out, err := RenderUserData(u)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		t.Logf("%s user data: %d bytes", name, len(out))
		for _, tok := range []string{testWorkerToken, testManagerToken, "SWMTKN"} {
			if strings.Contains(out, tok) {
				t.Errorf("%s user data holds a token", name)
			}
		}
		param := TokenParameter("prod", u.Role)
		if !strings.Contains(out, shellQuote(param)) {
			t.Errorf("%s user data does not name its token parameter %s", name, param)
		}
		if strings.Contains(out, "set -x") {
			t.Errorf("%s user data traces commands (set -x would print the token)", name)
		}
		for _, want := range []string{"autarky.instance=$INSTANCE_ID", "X-aws-ec2-metadata-token", `"autarky.cluster=prod"`, `"autarky.pool=` + u.Pool + `"`} {
			if !strings.Contains(out, want) {
				t.Errorf("%s user data lacks %s", name, want)
			}
		}
		manager := u.Role == policy.RoleManager
		if strings.Contains(out, "\tstart_agent\n") != manager {
			t.Errorf("%s user data: agent started %t, want %t", name, !manager, manager)
		}
		// The unit is the one the agent ships (autarky-agent unit); the
		// manager's flags go in its environment file.
		if manager && !strings.Contains(out, `"$AGENT_BIN" unit >"$AGENT_UNIT.tmp"`) {
			t.Errorf("%s user data does not install the agent's own unit", name)
		}
		if manager && !strings.Contains(out, `printf '`+packaging.FlagsVariable+`=%s\n' "--cluster $CLUSTER --platform aws`) {
			t.Errorf("%s user data does not write the agent's flags into its environment file", name)
		}
		if strings.Contains(out, "--no-overwrite") != manager {
			t.Errorf("%s user data: takes the init lock %t, want %t", name, !manager, manager)
		}
		inits := 0
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "docker swarm init") {
				inits++
			}
		}
		if manager && inits != 1 || !manager && inits != 0 {
			t.Errorf("%s user data runs `docker swarm init` in %d places", name, inits)
		}
		path := filepath.Join(dir, name+".sh")
		if err := os.WriteFile(path, []byte(out), 0o600); err != nil {
			t.Fatal(err)
		}
		if b, err := exec.Command(shellcheck, "--shell=sh", "--severity=style", path).CombinedOutput(); err != nil {
			t.Errorf("shellcheck %s user data: %v\n%s", name, err, b)
		}
		for _, shell := range []string{"sh", "bash"} {
			if b, err := exec.Command(shell, "-n", path).CombinedOutput(); err != nil {
				t.Errorf("%s -n %s user data: %v\n%s", shell, name, err, b)
			}
		}
	}
}

func TestUserDataRefuses(t *testing.T) {
	ok := UserData{Cluster: "prod", Pool: "web", Role: policy.RoleWorker, Region: testRegion, ManagerGroup: "prod-managers"}
	if _, err := RenderUserData(ok); err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(*UserData){
		"bad cluster":          func(u *UserData) { u.Cluster = "Prod;rm" },
		"manager role in pool": func(u *UserData) { u.Role = policy.RoleManager },
		"worker managers":      func(u *UserData) { u.Pool = policy.ManagerPoolName },
		"region":               func(u *UserData) { u.Region = "us-east-1'; reboot" },
		"manager group":        func(u *UserData) { u.ManagerGroup = "a b" },
		"autarky label":        func(u *UserData) { u.Labels = map[string]string{"autarky.pool": "x"} },
		"newline label":        func(u *UserData) { u.Labels = map[string]string{"a": "x\ny"} },
		"agent on worker":      func(u *UserData) { u.Agent = &AgentBoot{URL: "https://x/a", SHA256: strings.Repeat("0", 64)} },
		"kms key":              func(u *UserData) { u.KMSKeyID = "alias/x y" },
	} {
		u := ok
		mutate(&u)
		if _, err := RenderUserData(u); err == nil {
			t.Errorf("%s: rendered", name)
		}
	}
	m := UserData{Cluster: "prod", Pool: policy.ManagerPoolName, Role: policy.RoleManager, Region: testRegion, ManagerGroup: "prod-managers"}
	for name, a := range map[string]AgentBoot{
		"url":      {URL: "ftp://x/a", SHA256: strings.Repeat("0", 64)},
		"quote":    {URL: "https://x/a'b", SHA256: strings.Repeat("0", 64)},
		"sha":      {URL: "https://x/a", SHA256: "abc"},
		"interval": {URL: "https://x/a", SHA256: strings.Repeat("0", 64), EvaluationInterval: "2h"},
	} {
		u := m
		u.Agent = &a
		if _, err := RenderUserData(u); err == nil {
			t.Errorf("agent %s: rendered", name)
		}
	}
}
