package gcp

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/packaging"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
	"github.com/autarky/terraform-provider-autarky/internal/testenv"
)

func startupOK(role string) StartupScript {
	s := StartupScript{Cluster: "prod", Pool: "web", Role: policy.RoleWorker, Project: "my-project", Region: "europe-west1",
		Bucket: "autarky-state", ManagerGroup: "prod-managers"}
	if role == policy.RoleManager {
		s.Pool, s.Role = policy.ManagerPoolName, policy.RoleManager
	}
	return s
}

// TestStartupScriptShellcheck renders the startup script of a manager
// (with the agent) and of a worker pool and runs shellcheck (Debian's) on
// both: POSIX sh, no warning; sh -n and bash -n parse them. Neither holds
// a token, each names its own token object, only the manager's takes the
// init lock (ifGenerationMatch=0) and runs `docker swarm init`, in one
// place, and the worker's never names the manager token.
func TestStartupScriptShellcheck(t *testing.T) {
	shellcheck, err := exec.LookPath("shellcheck")
	if err != nil {
		t.Fatalf("shellcheck is not installed: run `%s` (it installs Debian's shellcheck)", testenv.Setup)
	}
	manager := startupOK(policy.RoleManager)
	manager.Labels = map[string]string{"zone": "it's \"quoted\" $(not run) `x`"}
	manager.HeartbeatPeriod = 5 * time.Second
	manager.Agent = &StartupAgent{URL: "https://github.com/autarky/terraform-provider-autarky/releases/download/v0.1.0/autarky-agent_linux_amd64",
		SHA256: strings.Repeat("ab", 32), EvaluationInterval: "5s", DryRun: true}
	worker := startupOK(policy.RoleWorker)
	worker.Labels = map[string]string{"tier": "frontend"}
	dir := t.TempDir()
	for name, s := range map[string]StartupScript{"manager": manager, "worker": worker} {
		out, err := RenderStartupScript(s)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		t.Logf("%s startup script: %d bytes", name, len(out))
		isManager := s.Role == policy.RoleManager
		if strings.Contains(out, "SWMTKN") || strings.Contains(out, "set -x") {
			t.Errorf("%s startup script holds a token or traces commands", name)
		}
		own := "TOKEN_OBJECT='autarky%2Fprod%2Ftokens%2F" + s.Role + "'\n"
		if !strings.Contains(out, own) {
			t.Errorf("%s startup script does not name its token object: want %s", name, own)
		}
		if !isManager && strings.Contains(out, "tokens%2Fmanager") {
			t.Errorf("the worker's startup script names the manager token")
		}
		for _, want := range []string{"autarky.instance=$INSTANCE_ID", "Metadata-Flavor: Google", "instance/service-accounts/default/token",
			`"autarky.cluster=prod"`, `"autarky.pool=` + s.Pool + `"`, "STORAGE='" + DefaultStorageEndpoint + "'", "METADATA='" + DefaultMetadataEndpoint + "'",
			`-H "@$SECRET_DIR/auth"`, "alt=media"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s startup script lacks %s", name, want)
			}
		}
		// Workers upload nothing.
		if strings.Contains(out, "uploadType=media") != isManager {
			t.Errorf("%s startup script: uploads %t, want %t", name, !isManager, isManager)
		}
		if strings.Contains(out, "ifGenerationMatch=0") != isManager {
			t.Errorf("%s startup script: takes the init lock %t, want %t", name, !isManager, isManager)
		}
		inits := 0
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "docker swarm init") {
				inits++
				if !strings.Contains(line, "--dispatcher-heartbeat 5s") {
					t.Errorf("swarm init without the heartbeat: %s", line)
				}
			}
		}
		if isManager && inits != 1 || !isManager && inits != 0 {
			t.Errorf("%s startup script runs `docker swarm init` in %d places", name, inits)
		}
		if strings.Contains(out, "\tstart_agent\n") != isManager {
			t.Errorf("%s startup script: agent started %t, want %t", name, !isManager, isManager)
		}
		// The unit is the one the agent ships (autarky-agent unit,
		// internal/packaging); this manager's flags go in its
		// environment file, whose AUTARKY_AGENT_FLAGS the unit runs.
		if isManager && !strings.Contains(out, `printf '`+packaging.FlagsVariable+`=%s\n' "--cluster $CLUSTER --platform gcp --project $PROJECT --region $REGION --bucket $BUCKET --listen $PRIVATE_IP:9910 --alert-token-file $AGENT_TOKEN_FILE --evaluation-interval 5s --log-format json --dry-run" >"$AGENT_ENV_FILE"`) {
			t.Errorf("the manager's environment file does not run the agent on gcp with its token file")
		}
		if isManager && !strings.Contains(out, `"$AGENT_BIN" unit >"$AGENT_UNIT.tmp"`) {
			t.Errorf("the manager's startup script does not install the agent's own unit")
		}
		path := filepath.Join(dir, name+".sh")
		if err := os.WriteFile(path, []byte(out), 0o600); err != nil {
			t.Fatal(err)
		}
		if b, err := exec.Command(shellcheck, "--shell=sh", "--severity=style", path).CombinedOutput(); err != nil {
			t.Errorf("shellcheck %s startup script: %v\n%s", name, err, b)
		}
		for _, shell := range []string{"sh", "bash"} {
			if b, err := exec.Command(shell, "-n", path).CombinedOutput(); err != nil {
				t.Errorf("%s -n %s startup script: %v\n%s", shell, name, err, b)
			}
		}
	}
}

// TestStartupScriptEndpoints: the endpoints are the template's, for tests
// and private endpoints, and go into the script as given.
func TestStartupScriptEndpoints(t *testing.T) {
	s := startupOK(policy.RoleWorker)
	s.StorageEndpoint, s.ComputeEndpoint, s.MetadataEndpoint = "http://127.0.0.1:4443", "https://compute.example.com/base", "http://169.254.169.254"
	out, err := RenderStartupScript(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"STORAGE='http://127.0.0.1:4443'\n", "COMPUTE='https://compute.example.com/base'\n", "METADATA='http://169.254.169.254'\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("the script lacks %q", want)
		}
	}
	// The agent reaches the same endpoints; with Google's it is told
	// nothing.
	m := startupOK(policy.RoleManager)
	m.StorageEndpoint, m.ComputeEndpoint = s.StorageEndpoint, s.ComputeEndpoint
	m.Agent = &StartupAgent{URL: "https://example.com/a", SHA256: strings.Repeat("0f", 32)}
	out, err = RenderStartupScript(m)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, " --bucket $BUCKET --compute-endpoint $COMPUTE/ --storage-endpoint $STORAGE/storage/v1/ --listen ") {
		t.Errorf("the agent's unit does not pass the endpoints:\n%s", out)
	}
	m.StorageEndpoint, m.ComputeEndpoint = "", ""
	if out, _ = RenderStartupScript(m); strings.Contains(out, "-endpoint") {
		t.Errorf("the agent's unit passes Google's endpoints")
	}
}

// TestStartupScriptRefuses: bad input is refused, the error naming the
// field.
func TestStartupScriptRefuses(t *testing.T) {
	agent := func(a StartupAgent) func(*StartupScript) {
		return func(s *StartupScript) { *s = startupOK(policy.RoleManager); s.Agent = &a }
	}
	sha := strings.Repeat("0", 64)
	for name, c := range map[string]struct {
		mutate func(*StartupScript)
		field  string
	}{
		"bad cluster":          {func(s *StartupScript) { s.Cluster = "Prod;rm" }, "cluster:"},
		"bad pool":             {func(s *StartupScript) { s.Pool = "a b" }, "pool:"},
		"manager role in pool": {func(s *StartupScript) { s.Role = policy.RoleManager }, "role:"},
		"worker managers":      {func(s *StartupScript) { s.Pool = policy.ManagerPoolName }, "role:"},
		"no role":              {func(s *StartupScript) { s.Role = "" }, "role:"},
		"project":              {func(s *StartupScript) { s.Project = "My_Project" }, "project:"},
		"no project":           {func(s *StartupScript) { s.Project = "" }, "project:"},
		"region":               {func(s *StartupScript) { s.Region = "europe-west1'; reboot" }, "region:"},
		"zone for region":      {func(s *StartupScript) { s.Region = "europe-west1-b" }, "region:"},
		"bucket":               {func(s *StartupScript) { s.Bucket = "gs://b" }, "bucket:"},
		"bucket quote":         {func(s *StartupScript) { s.Bucket = "b'x" }, "bucket:"},
		"manager group":        {func(s *StartupScript) { s.ManagerGroup = "Prod-Managers" }, "manager group:"},
		"autarky label":        {func(s *StartupScript) { s.Labels = map[string]string{"autarky.pool": "x"} }, "labels:"},
		"newline label":        {func(s *StartupScript) { s.Labels = map[string]string{"a": "x\ny"} }, "labels:"},
		"bad utf-8 label":      {func(s *StartupScript) { s.Labels = map[string]string{"a": "\xff"} }, "labels:"},
		"storage endpoint":     {func(s *StartupScript) { s.StorageEndpoint = "ftp://x" }, "storage endpoint:"},
		"endpoint slash":       {func(s *StartupScript) { s.ComputeEndpoint = "https://x/" }, "compute endpoint:"},
		"endpoint quote":       {func(s *StartupScript) { s.MetadataEndpoint = "http://x/\"$(id)\"" }, "metadata endpoint:"},
		"endpoint query":       {func(s *StartupScript) { s.StorageEndpoint = "http://x?a=b" }, "storage endpoint:"},
		"endpoint percent":     {func(s *StartupScript) { s.StorageEndpoint = "http://x/a%41" }, "storage endpoint:"},
		"heartbeat":            {func(s *StartupScript) { s.HeartbeatPeriod = time.Millisecond }, "heartbeat period:"},
		"join timeout":         {func(s *StartupScript) { s.JoinTimeout = -time.Second }, "join timeout:"},
		"agent on worker": {func(s *StartupScript) {
			s.Agent = &StartupAgent{URL: "https://x/a", SHA256: sha}
		}, "agent:"},
		"agent url":      {agent(StartupAgent{URL: "ftp://x/a", SHA256: sha}), "agent URL:"},
		"agent quote":    {agent(StartupAgent{URL: "https://x/a'b", SHA256: sha}), "agent URL:"},
		"agent sha":      {agent(StartupAgent{URL: "https://x/a", SHA256: "abc"}), "agent SHA-256:"},
		"agent interval": {agent(StartupAgent{URL: "https://x/a", SHA256: sha, EvaluationInterval: "2h"}), "agent evaluation interval:"},
	} {
		s := startupOK(policy.RoleWorker)
		c.mutate(&s)
		_, err := RenderStartupScript(s)
		if err == nil {
			t.Errorf("%s: rendered", name)
			continue
		}
		if !strings.HasPrefix(err.Error(), "startup script: "+c.field) {
			t.Errorf("%s: %v: want the error to name %s", name, err, c.field)
		}
	}
	for _, role := range []string{policy.RoleWorker, policy.RoleManager} {
		if _, err := RenderStartupScript(startupOK(role)); err != nil {
			t.Errorf("%s: %v", role, err)
		}
	}
}
