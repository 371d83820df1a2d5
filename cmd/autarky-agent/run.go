package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/autarky/terraform-provider-autarky/internal/agent"
	"github.com/autarky/terraform-provider-autarky/internal/notify"
	"github.com/autarky/terraform-provider-autarky/internal/platform"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

// runAgent is `autarky-agent run`.
func runAgent(args []string, stderr io.Writer) error { return runOrCheck(args, nil, stderr) }

// runOrCheck runs the agent; with check set (`autarky-agent
// check-config`) it stops once every setting is checked, and prints the
// settings and what the configuration file adopts to check instead.
func runOrCheck(args []string, check, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	if check != nil {
		fs = flag.NewFlagSet("check-config", flag.ContinueOnError)
	}
	fs.SetOutput(stderr)
	cluster := fs.String("cluster", "", "name of the cluster this agent serves (required)")
	plat := fs.String("platform", policy.PlatformLocal, "platform of the cluster: local, aws or gcp")
	region := fs.String("region", "", "aws: the region (default $AWS_REGION, else the shared config's); credentials come from the standard chain, the instance role on a manager, and $AWS_ENDPOINT_URL points at an emulator or private endpoint. gcp: the region of the cluster's groups (required)")
	project := fs.String("project", "", "gcp: the project of the cluster's groups (default: the credentials'); credentials are Application Default Credentials, the VM's service account on a manager")
	bucket := fs.String("bucket", "", "gcp: the Cloud Storage bucket holding the cluster's store (required)")
	computeEndpoint := fs.String("compute-endpoint", "", "gcp: the Compute Engine endpoint (default Google's; a private endpoint)")
	storageEndpoint := fs.String("storage-endpoint", "", "gcp: the Cloud Storage JSON API endpoint (default Google's; a private endpoint)")
	stateDir := fs.String("state-dir", "", "local platform: the provider's state dir (default $AUTARKY_STATE_DIR, else /var/lib/autarky)")
	dockerHost := fs.String("docker-host", "unix:///var/run/docker.sock", "Docker endpoint of the manager this agent runs beside (unix socket; tcp:// without TLS is refused)")
	listen := fs.String("listen", fmt.Sprintf("127.0.0.1:%d", policy.AgentPort), "address to serve /metrics, /healthz, /v1/status and the status page (/) on; host \"node\" (node:9910) is the node's own address in its swarm, as the engine says (one command line for every manager: the stack file)")
	dryRun := fs.Bool("dry-run", false, "decide and report, change nothing")
	logFormat := fs.String("log-format", "text", "log format: json or text")
	interval := fs.String("evaluation-interval", policy.DefaultEvaluationInterval.String(), "how often to evaluate when no event arrives")
	drain := fs.Duration("drain-timeout", 2*time.Minute, "how long a node with tasks is drained before it is removed anyway")
	tokenFile := fs.String("alert-token-file", "", "file holding the bearer token /v1/alerts requires (also $AUTARKY_ALERT_TOKEN); required for alerts when --listen is beyond loopback, where /v1/status takes it too unless --status-token-file gives another")
	statusTokenFile := fs.String("status-token-file", "", "file holding the bearer token /v1/status and the status page require (also $AUTARKY_STATUS_TOKEN; the page also takes it as a Basic password); default: open on loopback, the alert token beyond")
	notifyFile := fs.String("notify-webhook-file", "", "file holding the webhook URL to notify (also $AUTARKY_NOTIFY_WEBHOOK_URL; a secret, so never a flag value): https://, or http:// to loopback only. The leader's agent posts when it acts (node replaced, pool grown or shrunk, service scaled) and when it cannot (pool or service at its maximum with work pending, circuit breaker open, instances failing to launch or join, checks untrusted, an action stuck), every agent when quorum is lost, followers when the leader's agent is down; each condition once, then resolved")
	notifyFormat := fs.String("notify-format", string(notify.FormatJSON), "webhook body: json (the generic body, fields in the README) or slack (Slack's incoming-webhook format)")
	notifyStale := fs.Duration("notify-stale-after", agent.DefaultNotifyUntrustedAfter, "notify when a scaling check has been untrusted (stale, empty, NaN, unreachable) for this long")
	notifyResolve := fs.Duration("notify-resolve-after", time.Minute, "send a condition's resolved message once it has stayed cleared this long (a condition back before then sends nothing)")
	configFile := fs.String("config", "", "HCL file of the agent's settings (the flags' names, '_' for '-') and of a cluster it adopts (an adopt block: see the adopting guide); a flag given here overrides the file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	file, err := applyConfig(fs, *configFile)
	if err != nil {
		return err
	}
	if *cluster == "" {
		return errors.New("--cluster is required (or cluster in the --config file)")
	}
	if err := policy.ValidateName(*cluster); err != nil {
		return fmt.Errorf("--cluster: %w", err)
	}
	if err := policy.ValidatePlatform(*plat); err != nil {
		return fmt.Errorf("--platform: %w", err)
	}
	if *logFormat != "json" && *logFormat != "text" {
		return fmt.Errorf("--log-format %q: use json or text", *logFormat)
	}
	every, err := policy.ParseEvaluationInterval(*interval)
	if err != nil {
		return fmt.Errorf("--evaluation-interval: %w", err)
	}
	if err := agent.ValidateDockerHost(*dockerHost); err != nil {
		return fmt.Errorf("--docker-host: %w", err)
	}
	token, err := agent.ReadToken("--alert-token-file", *tokenFile, "AUTARKY_ALERT_TOKEN", os.Getenv("AUTARKY_ALERT_TOKEN"))
	if err != nil {
		return err
	}
	statusToken, err := agent.ReadToken("--status-token-file", *statusTokenFile, "AUTARKY_STATUS_TOKEN", os.Getenv("AUTARKY_STATUS_TOKEN"))
	if err != nil {
		return err
	}
	format, err := notify.ParseFormat("--notify-format", *notifyFormat)
	if err != nil {
		return err
	}
	hook, err := notify.WebhookFrom("--notify-webhook-file", *notifyFile, "AUTARKY_NOTIFY_WEBHOOK_URL", os.Getenv("AUTARKY_NOTIFY_WEBHOOK_URL"))
	if err != nil {
		return err
	}
	if *notifyStale <= 0 || *notifyResolve < 0 {
		return errors.New("--notify-stale-after must be positive and --notify-resolve-after not negative (such as 5m and 1m)")
	}
	adopt, err := adoption(file, *cluster, *plat, *interval, *dryRun)
	if err != nil {
		return err
	}
	settings := platform.AgentSettings{Cluster: *cluster, Region: *region, Project: *project, Bucket: *bucket,
		ComputeEndpoint: *computeEndpoint, StorageEndpoint: *storageEndpoint, StateDir: *stateDir,
		DockerHost: *dockerHost, Adopt: adopt, UserAgent: userAgent()}
	if check != nil {
		if err := printCheck(check, fs, file, adopt); err != nil || adopt == nil {
			return err
		}
		settings.Check = true
		return printSurvey(context.Background(), check, *plat, settings)
	}
	logger := hclog.New(&hclog.LoggerOptions{Name: "autarky-agent", Output: stderr, JSONFormat: *logFormat == "json", Level: hclog.Info})
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	addr, err := agent.ResolveListen(ctx, *dockerHost, *listen)
	if err != nil {
		return err
	}
	cfg := agent.Config{
		DockerHost: *dockerHost, Listen: addr, DryRun: *dryRun, EvaluationInterval: every, DrainTimeout: *drain, Logger: logger, AlertToken: token,
		StatusToken: statusToken,
	}
	settings.Progress = func(msg string, kv ...any) { logger.Info(msg, kv...) }
	opened, err := platform.Open(ctx, *plat, settings)
	if err != nil {
		return err
	}
	cfg.Collectors = append(cfg.Collectors, opened.Collectors...)
	if hook == nil {
		if hook, err = storedWebhook(ctx, opened.Cluster); err != nil {
			return err
		}
	}
	if hook != nil {
		n, err := notify.New(notify.Config{Webhook: hook, Format: format, Cluster: *cluster, DryRun: *dryRun,
			Logger: logger.Named("notify"), ResolveAfter: *notifyResolve})
		if err != nil {
			return err
		}
		defer func() {
			// Give what is queued a moment to go out; never hold up a stop.
			cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			n.Close(cctx)
		}()
		cfg.Notifier, cfg.NotifyUntrustedAfter = n, *notifyStale
		logger.Info("notifications on", "webhook", hook.Redacted(), "format", format)
	}
	cl := opened.Cluster
	a, err := agent.New(cfg, cl)
	if err != nil {
		return err
	}
	return a.Run(ctx)
}

// storedWebhook is the webhook an operator put in the cluster's store
// (platform.Cluster's NotifyWebhook), for an agent started without one;
// nil when there is none.
func storedWebhook(ctx context.Context, cl platform.Cluster) (*notify.Webhook, error) {
	raw, err := cl.NotifyWebhook(ctx)
	if err != nil || raw == "" {
		return nil, err
	}
	return notify.ParseWebhook(cl.NotifyWebhookWhere(), raw)
}

// statusCmd is `autarky-agent status`.
func statusCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("address", "", fmt.Sprintf("the agent's HTTP address (default: what %s says, as the boot script on aws writes it, else http://127.0.0.1:%d)", policy.AgentAddressFile, policy.AgentPort))
	asJSON := fs.Bool("json", false, "print the raw JSON of /v1/status")
	tokenFile := fs.String("token-file", "", "file holding the token /v1/status requires beyond loopback (default "+policy.AgentTokenFile+" when it exists, as the boot script on aws writes it)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	file := *tokenFile
	if file == "" {
		if _, err := os.Stat(policy.AgentTokenFile); err == nil {
			file = policy.AgentTokenFile
		}
	}
	token, err := agent.ReadToken("--token-file", file, "", "")
	if err != nil {
		return err
	}
	if *addr == "" {
		*addr = defaultAgentAddress(policy.AgentAddressFile)
	}
	if *asJSON {
		body, err := agent.FetchStatus(*addr, token)
		if err != nil {
			return err
		}
		_, err = stdout.Write(body)
		return err
	}
	return agent.PrintRemoteStatus(stdout, *addr, token)
}

// defaultAgentAddress is the URL in file (one line, http or https), else
// the agent's loopback default.
func defaultAgentAddress(file string) string {
	if b, err := os.ReadFile(file); err == nil {
		if u := strings.TrimSpace(string(b)); strings.HasPrefix(u, "http://") || strings.HasPrefix(u, "https://") {
			return u
		}
	}
	return fmt.Sprintf("http://127.0.0.1:%d", policy.AgentPort)
}

// userAgent is the agent's product token in the User-Agent of its cloud
// calls (platform.AgentSettings), its release as `version` prints it.
func userAgent() string { return "autarky-agent/" + version }
