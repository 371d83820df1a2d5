package aws

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"text/template"
	"time"
	"unicode/utf8"

	"github.com/autarky/terraform-provider-autarky/internal/packaging"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

// userDataTemplate is the POSIX sh script every instance of a cluster boots
// with. Its delimiters are {% %} so the Go templates the script hands to
// `docker info --format` stay literal.
//
//go:embed userdata.sh.tmpl
var userDataTemplate string

var userDataTmpl = template.Must(template.New("userdata").
	Delims("{%", "%}").
	Funcs(template.FuncMap{"sh": shellQuote}).
	Parse(userDataTemplate))

// MaxUserDataSize is EC2's limit on user data, before base64.
const MaxUserDataSize = 16384

// DefaultJoinTimeout bounds how long a booting instance tries to join.
const DefaultJoinTimeout = 10 * time.Minute

// UserData is what an instance's boot script needs to know. It never holds
// a join token: the script reads the token from SSM at boot.
type UserData struct {
	Cluster string
	// Pool is the node pool; the manager pool is policy.ManagerPoolName
	// and has Role policy.RoleManager, every other pool RoleWorker.
	Pool   string
	Role   string
	Region string
	// ManagerGroup is the managers' Auto Scaling Group: a joining instance
	// finds manager addresses among its running instances.
	ManagerGroup string
	// Labels are the pool's own labels, added to the engine (and, on
	// managers, the node) beside autarky.cluster, autarky.pool and
	// autarky.instance.
	Labels map[string]string
	// KMSKeyID encrypts the tokens the first manager writes; empty means
	// SSM's AWS managed key.
	KMSKeyID string
	// JoinTimeout bounds the join; zero means DefaultJoinTimeout.
	JoinTimeout time.Duration
	// HeartbeatPeriod is the swarm's dispatcher heartbeat, set by the
	// manager that initialises it; empty keeps Swarm's default.
	HeartbeatPeriod time.Duration
	// Agent, on managers, installs and starts autarky-agent; nil starts
	// none.
	Agent *AgentBoot
}

// AgentBoot says where a manager gets autarky-agent and how it runs it.
type AgentBoot struct {
	// URL serves a static linux autarky-agent binary for the instance's
	// architecture; SHA256 is its hex digest, checked before it runs.
	URL                string
	SHA256             string
	EvaluationInterval string
	DryRun             bool
}

var (
	asgNameRE  = regexp.MustCompile(`^[A-Za-z0-9._-]{1,255}$`)
	labelKeyRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]*$`)
	kmsKeyRE   = regexp.MustCompile(`^[A-Za-z0-9:/_-]+$`)
	sha256RE   = regexp.MustCompile(`^[0-9a-f]{64}$`)
	urlRE      = regexp.MustCompile(`^https?://[^\s'"\\]+$`)
)

type userDataView struct {
	UserData
	TokenParameter       string
	WorkerTokenParameter string
	LockParameter        string
	StaticLabelsJSON     string
	NodeLabels           []string
	JoinTimeoutSeconds   int
	Heartbeat            string
	IsManager            bool
	Agent                *agentView
}

type agentView struct {
	AgentBoot
	Port int
	// TokenParameter holds the agents' bearer token, which the script
	// copies into TokenFile for the unit's --alert-token-file.
	TokenParameter, TokenFile string
	// AddressFile is where the script writes the agent's URL, which
	// `autarky-agent status` on the manager reads.
	AddressFile string
	// UnitPath is where the agent's own unit (autarky-agent unit) is
	// installed; it runs as User, with run's flags in EnvFile (as
	// AUTARKY_AGENT_FLAGS, packaging.FlagsVariable).
	UnitPath, User, EnvFile string
}

// RenderUserData renders the boot script of one pool's instances.
func RenderUserData(u UserData) (string, error) {
	if err := u.validate(); err != nil {
		return "", fmt.Errorf("user data: %w", err)
	}
	timeout := u.JoinTimeout
	if timeout == 0 {
		timeout = DefaultJoinTimeout
	}
	labels := []string{policy.LabelCluster + "=" + u.Cluster, policy.LabelPool + "=" + u.Pool}
	keys := make([]string, 0, len(u.Labels))
	for k := range u.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		labels = append(labels, k+"="+u.Labels[k])
	}
	quoted := make([]string, len(labels))
	for i, l := range labels {
		b, err := json.Marshal(l)
		if err != nil {
			return "", err
		}
		quoted[i] = string(b)
	}
	v := userDataView{
		UserData:             u,
		TokenParameter:       TokenParameter(u.Cluster, u.Role),
		WorkerTokenParameter: TokenParameter(u.Cluster, policy.RoleWorker),
		LockParameter:        InitLockParameter(u.Cluster),
		StaticLabelsJSON:     strings.Join(quoted, ", "),
		NodeLabels:           labels,
		JoinTimeoutSeconds:   int(timeout / time.Second),
		Heartbeat:            u.HeartbeatPeriod.String(),
		IsManager:            u.Role == policy.RoleManager,
	}
	if u.Agent != nil {
		a := *u.Agent
		if a.EvaluationInterval == "" {
			a.EvaluationInterval = policy.DefaultEvaluationInterval.String()
		}
		v.Agent = &agentView{AgentBoot: a, Port: policy.AgentPort,
			TokenParameter: AlertTokenParameter(u.Cluster), TokenFile: policy.AgentTokenFile, AddressFile: policy.AgentAddressFile,
			UnitPath: packaging.UnitPath, User: packaging.User, EnvFile: packaging.EnvironmentFile}
	}
	var buf bytes.Buffer
	if err := userDataTmpl.Execute(&buf, v); err != nil {
		return "", fmt.Errorf("user data: %w", err)
	}
	if buf.Len() > MaxUserDataSize {
		return "", fmt.Errorf("user data is %d bytes: EC2 takes at most %d", buf.Len(), MaxUserDataSize)
	}
	return buf.String(), nil
}

func (u UserData) validate() error {
	if err := policy.ValidateName(u.Cluster); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	if err := policy.ValidateName(u.Pool); err != nil {
		return fmt.Errorf("pool: %w", err)
	}
	switch {
	case u.Role == policy.RoleManager && u.Pool != policy.ManagerPoolName:
		return fmt.Errorf("role %q belongs to the manager pool %q only", u.Role, policy.ManagerPoolName)
	case u.Role == policy.RoleWorker && u.Pool == policy.ManagerPoolName:
		return fmt.Errorf("pool %q is the manager pool: its role is %q", u.Pool, policy.RoleManager)
	case u.Role != policy.RoleManager && u.Role != policy.RoleWorker:
		return fmt.Errorf("role %q: use %q or %q", u.Role, policy.RoleWorker, policy.RoleManager)
	}
	if policy.ValidateAWSRegion(u.Region) != nil {
		return fmt.Errorf("region %q is not an AWS region name", u.Region)
	}
	if !asgNameRE.MatchString(u.ManagerGroup) {
		return fmt.Errorf("manager group %q: use 1 to 255 letters, digits, '.', '_' and '-'", u.ManagerGroup)
	}
	for k, v := range u.Labels {
		if !labelKeyRE.MatchString(k) || strings.HasPrefix(k, "autarky.") {
			return fmt.Errorf("label %q: use letters, digits, '.', '_', '/' and '-', not starting with \"autarky.\"", k)
		}
		if strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return fmt.Errorf("label %q: its value holds a control character", k)
		}
		if !utf8.ValidString(v) {
			// JSON (the engine's daemon.json) would replace the bad bytes,
			// and the node would carry a label other than the pool's.
			return fmt.Errorf("label %q: its value is not valid UTF-8 text", k)
		}
	}
	if u.KMSKeyID != "" && !kmsKeyRE.MatchString(u.KMSKeyID) {
		return fmt.Errorf("KMS key id %q is not a key id, ARN or alias", u.KMSKeyID)
	}
	if u.HeartbeatPeriod != 0 && u.HeartbeatPeriod < time.Second {
		return fmt.Errorf("heartbeat period %s: use at least 1s", u.HeartbeatPeriod)
	}
	if u.JoinTimeout < 0 || (u.JoinTimeout > 0 && u.JoinTimeout < time.Second) {
		return fmt.Errorf("join timeout %s: use at least 1s", u.JoinTimeout)
	}
	if a := u.Agent; a != nil {
		if u.Role != policy.RoleManager {
			return fmt.Errorf("the agent runs on managers only, not on pool %q", u.Pool)
		}
		if !urlRE.MatchString(a.URL) {
			return fmt.Errorf("agent URL %q is not an http(s) URL", a.URL)
		}
		if !sha256RE.MatchString(a.SHA256) {
			return fmt.Errorf("agent SHA-256 %q: use 64 lower-case hex digits", a.SHA256)
		}
		if a.EvaluationInterval != "" {
			if _, err := policy.ParseEvaluationInterval(a.EvaluationInterval); err != nil {
				return fmt.Errorf("agent evaluation interval: %w", err)
			}
			if strings.ContainsAny(a.EvaluationInterval, " \t'\"\\$`") {
				return fmt.Errorf("agent evaluation interval %q", a.EvaluationInterval)
			}
		}
	}
	return nil
}

// shellQuote quotes s for POSIX sh: inside single quotes nothing expands.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
