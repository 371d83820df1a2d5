package agent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	awsv2 "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/hashicorp/go-hclog"

	"github.com/autarky/terraform-provider-autarky/internal/agent"
	"github.com/autarky/terraform-provider-autarky/internal/platform/aws"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
	"github.com/autarky/terraform-provider-autarky/internal/testenv"
)

// An agent set up the way the aws platform sets one up, end to end with
// real parts: the platform creates the cluster's agent token in moto's
// Parameter Store (a SecureString); the managers' rendered user data
// copies it, with the real AWS CLI, into the token file; the agent reads
// that file as `--alert-token-file` does and listens beyond loopback.
// Then /v1/alerts and /v1/status answer 401 without the token and 202 and
// 200 with it, /metrics and /healthz stay open, `autarky-agent status`'s
// fetch works with the token and says what is missing without it, and a
// real Alertmanager with the receiver the docs give (http_config.
// authorization, credentials_file holding the same secret) delivers its
// alert, while a receiver without it is refused. Without the change the
// agent on aws had no token (every post 401) and /v1/status was open.
func TestAgentTokenTheAWSWay(t *testing.T) {
	am, err := exec.LookPath("prometheus-alertmanager")
	if err != nil {
		t.Fatalf("prometheus-alertmanager is not installed: run `%s` (Debian's prometheus-alertmanager)", testenv.Setup)
	}
	if _, err := exec.LookPath("aws"); err != nil {
		t.Fatalf("the AWS CLI is not installed: run `%s`", testenv.Setup)
	}
	h := newHarnessWith(t, "tk", 1, false, "1s", false)
	h.pool("web", 0, nil)
	h.scale(scalingPolicy("tk/web", func(s *policy.Scaling) {
		s.Alert = []policy.AlertCheck{{Name: "WebOverloaded"}, {Name: "Unauthenticated"}}
	}))

	// The provider's side: the cluster on aws, with its agent.
	ctx := context.Background()
	moto := testenv.StartMoto(t)
	ami, subnet, sg := testenv.MotoNetwork(t, moto)
	clients := aws.NewClients(clientConfig(moto), aws.Config{}, nil)
	p := aws.NewPlatform(clients, nil)
	p.Poll = 50 * time.Millisecond
	boot := &policy.Agent{Enabled: true, EvaluationInterval: "1s", BinaryURL: "https://example.com/autarky-agent", BinarySHA256: strings.Repeat("0f", 32)}
	if _, err := p.CreateCluster(ctx, policy.Cluster{Name: "tk", Platform: policy.PlatformAWS, ManagerCount: 1, HeartbeatPeriod: "1s", Agent: boot,
		AWS: &policy.AWS{AMI: ami, InstanceType: "t3.micro", Subnets: []string{subnet}, SecurityGroups: []string{sg}}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.DeleteCluster(context.Background(), "tk") })
	param := aws.AlertTokenParameter("tk")
	got, err := clients.SSM.GetParameter(ctx, &ssm.GetParameterInput{Name: awsv2.String(param)})
	if err != nil {
		t.Fatalf("the platform made no agent token: %v", err)
	}
	if got.Parameter.Type != ssmtypes.ParameterTypeSecureString {
		t.Fatalf("the agent token %s is a %s parameter, want SecureString", param, got.Parameter.Type)
	}
	store, err := aws.NewStore(clients.SSM, "tk")
	if err != nil {
		t.Fatal(err)
	}
	secret, err := store.AlertToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(secret) != 64 {
		t.Fatalf("the agent token is %d characters, want 64 hex digits", len(secret))
	}

	// The manager's side: its user data's write_agent_token, with the
	// real AWS CLI pointed at moto, writes the token file.
	tokenFile := filepath.Join(t.TempDir(), "etc", "autarky", "alert-token")
	runAgentTokenBoot(t, moto, tokenFile)
	if fi, err := os.Stat(tokenFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the token file: %v, mode %v; want mode 600", err, fi)
	}
	token, err := agent.ReadToken("--alert-token-file", tokenFile, "AUTARKY_ALERT_TOKEN", "")
	if err != nil {
		t.Fatal(err)
	}
	if token != secret {
		t.Fatalf("the token file holds another token than %s", param)
	}

	// Beyond loopback, as on a manager (its private address): all
	// addresses here, reached through 127.0.0.1.
	port := strings.TrimPrefix(freeAddr(t), "127.0.0.1:")
	a, err := agent.New(agent.Config{
		DockerHost: h.records(policy.ManagerPoolName)[0].DockerHost, Listen: "0.0.0.0:" + port, AlertToken: token,
		DryRun: true, EvaluationInterval: time.Second,
		Logger: hclog.New(&hclog.LoggerOptions{Name: "agent", Output: testWriter{t}, Level: hclog.Info}),
	}, h.c)
	if err != nil {
		t.Fatal(err)
	}
	actx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- a.Run(actx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	url := "http://127.0.0.1:" + port
	status := func() agent.Status {
		t.Helper()
		body, err := agent.FetchStatus(url, token)
		if err != nil {
			t.Fatal(err)
		}
		var s agent.Status
		if err := json.Unmarshal(body, &s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	h.waitFor("the agent's first evaluation", time.Minute, func() (bool, string) {
		body, err := agent.FetchStatus(url, token)
		if err != nil {
			return false, err.Error()
		}
		var s agent.Status
		_ = json.Unmarshal(body, &s)
		return !s.LastEvaluation.IsZero() && s.Error == "", s.Error
	})

	t.Run("bearer token required", func(t *testing.T) {
		for _, auth := range []string{"", token, "Bearer wrong", "Basic " + token} {
			if code := postAlerts(t, url, auth, alertPost("Unauthenticated")); code != http.StatusUnauthorized {
				t.Errorf("/v1/alerts with Authorization %q: %d, want 401", strings.ReplaceAll(auth, token, "<token>"), code)
			}
			if code := getAuthCode(t, url+"/v1/status", auth); code != http.StatusUnauthorized {
				t.Errorf("/v1/status with Authorization %q: %d, want 401", strings.ReplaceAll(auth, token, "<token>"), code)
			}
		}
		if code := getAuthCode(t, url+"/v1/status", "Bearer "+token); code != http.StatusOK {
			t.Errorf("/v1/status with the token: %d, want 200", code)
		}
		for _, open := range []string{"/metrics", "/healthz"} {
			if code := getAuthCode(t, url+open, ""); code != http.StatusOK {
				t.Errorf("%s without a token: %d, want 200 (Prometheus and the other agents read it)", open, code)
			}
		}
		if _, err := agent.FetchStatus(url, ""); err == nil || !strings.Contains(err.Error(), "--token-file") || !strings.Contains(err.Error(), policy.AgentTokenFile) {
			t.Errorf("status without the token: %v; want an error naming --token-file and %s", err, policy.AgentTokenFile)
		}
		if names := alertNames(status()); len(names) != 0 {
			t.Fatalf("refused posts were remembered: %v", names)
		}
		if code := postAlerts(t, url, "Bearer "+token, alertPost("WebOverloaded")); code != http.StatusAccepted {
			t.Fatalf("/v1/alerts with the token: %d, want 202", code)
		}
		if names := alertNames(status()); len(names) != 1 || names[0] != "WebOverloaded" {
			t.Fatalf("remembered %v, want [WebOverloaded]", names)
		}
	})

	t.Run("alertmanager with credentials_file", func(t *testing.T) {
		// The agent forgets nothing between subtests: start afresh.
		h.scale(scalingPolicy("tk/web", func(s *policy.Scaling) {
			s.Alert = []policy.AlertCheck{{Name: "Unauthenticated"}}
		}))
		h.waitFor("the agent to drop WebOverloaded", 30*time.Second, func() (bool, string) {
			names := alertNames(status())
			return len(names) == 0, fmt.Sprint(names)
		})
		h.scale(scalingPolicy("tk/web", func(s *policy.Scaling) {
			s.Alert = []policy.AlertCheck{{Name: "WebOverloaded"}, {Name: "Unauthenticated"}}
		}))
		amURL := startAlertmanager(t, am, fmt.Sprintf(`route:
  receiver: autarky
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
  routes:
    - receiver: no-token
      matchers: [alertname="Unauthenticated"]
receivers:
  - name: autarky
    webhook_configs:
      - url: %[1]s/v1/alerts
        http_config:
          authorization:
            type: Bearer
            credentials_file: %[2]s
  - name: no-token
    webhook_configs:
      - url: %[1]s/v1/alerts
`, url, tokenFile))
		resp, err := http.Post(amURL+"/api/v2/alerts", "application/json",
			strings.NewReader(`[{"labels":{"alertname":"WebOverloaded"}},{"labels":{"alertname":"Unauthenticated"}}]`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("Alertmanager took the alerts with %s", resp.Status)
		}
		h.waitFor("Alertmanager's alert to reach the agent", time.Minute, func() (bool, string) {
			names := alertNames(status())
			return len(names) == 1 && names[0] == "WebOverloaded", fmt.Sprint(names)
		})
		h.waitFor("Alertmanager to fail the receiver without a token", time.Minute, func() (bool, string) {
			n := alertmanagerFailures(t, amURL)
			return n > 0, fmt.Sprintf("%g failed webhook notifications", n)
		})
		if names := alertNames(status()); len(names) != 1 || names[0] != "WebOverloaded" {
			t.Fatalf("remembered %v: the receiver without the token got through", names)
		}
	})
}

// runAgentTokenBoot runs the managers' rendered user data's
// write_agent_token with bash and the real AWS CLI against moto, writing
// file in place of policy.AgentTokenFile.
func runAgentTokenBoot(t *testing.T, moto, file string) {
	t.Helper()
	script, err := aws.RenderUserData(aws.UserData{Cluster: "tk", Pool: policy.ManagerPoolName, Role: policy.RoleManager,
		Region: testenv.MotoRegion, ManagerGroup: aws.GroupName("tk", policy.ManagerPoolName),
		Agent: &aws.AgentBoot{URL: "https://example.com/autarky-agent", SHA256: strings.Repeat("0f", 32)}})
	if err != nil {
		t.Fatal(err)
	}
	body, ok := strings.CutSuffix(script, "\nmain \"$@\"\n")
	if !ok {
		t.Fatal("the user data does not end with main \"$@\"")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", body+"\nAGENT_TOKEN_FILE="+file+"\nwrite_agent_token\n")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	none := filepath.Join(t.TempDir(), "none")
	cmd.Env = append(cmd.Env, "AWS_ENDPOINT_URL="+moto, "AWS_ACCESS_KEY_ID=testing", "AWS_SECRET_ACCESS_KEY=testing",
		"AWS_CONFIG_FILE="+none, "AWS_SHARED_CREDENTIALS_FILE="+none, "AWS_EC2_METADATA_DISABLED=true")
	out, err := cmd.CombinedOutput()
	t.Logf("write_agent_token: %s", out)
	if err != nil {
		t.Fatalf("write_agent_token: %v", err)
	}
}

// getAuthCode GETs url with the Authorization header auth (none when empty).
func getAuthCode(t *testing.T, url, auth string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// startAlertmanager runs Debian's Alertmanager with config on a free
// loopback port, without clustering, until the test ends; its URL.
func startAlertmanager(t *testing.T, bin, config string) string {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	cmd := exec.Command(bin, "--config.file="+cfg, "--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--cluster.listen-address=")
	testenv.StartServer(t, "alertmanager", cmd, "http://"+addr+"/-/ready", 30*time.Second)
	return "http://" + addr
}

// alertmanagerFailures sums Alertmanager's failed webhook notifications.
func alertmanagerFailures(t *testing.T, url string) float64 {
	t.Helper()
	body, err := get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "alertmanager_notifications_failed_total{") && strings.Contains(line, `integration="webhook"`) {
			var v float64
			if _, err := fmt.Sscanf(line[strings.LastIndexByte(line, ' ')+1:], "%g", &v); err == nil {
				sum += v
			}
		}
	}
	return sum
}
