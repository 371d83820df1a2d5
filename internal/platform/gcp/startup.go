package gcp

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"text/template"
	"time"
	"unicode/utf8"

	"github.com/autarky/terraform-provider-autarky/internal/packaging"
	"github.com/autarky/terraform-provider-autarky/internal/platform/group"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

// The startup script is the aws user data's boot protocol on Compute
// Engine. What is the same: one manager wins a create-only lock and runs
// `docker swarm init`, then stores both join tokens; every other manager,
// and every worker, waits for its role's token and joins through a
// running manager that listens on 2377, posting the join to the engine's
// socket so the token is never an argument; engine and node labels; the
// agent's systemd unit on managers, with its bearer token and address
// files. What differs, and why:
//
//   - The store is the cluster's Cloud Storage bucket (objects under
//     autarky/<cluster>/), not SSM: the init lock is an upload with
//     ifGenerationMatch=0, which Cloud Storage lets exactly one writer win
//     (the others get 412), where SSM had Overwrite=false.
//   - No cloud CLI: Compute Engine images do not all carry gcloud, and
//     installing it at boot is slow. The script talks to the JSON APIs
//     with curl, with an access token of the VM's service account from the
//     metadata server. That token goes to curl in a 0600 header file
//     (-H @file, curl 7.55 or later), never as an argument, like the join
//     token. (Any process on the VM may ask the metadata server for it,
//     so this is hygiene rather than a boundary; the boundary is the
//     service account's roles, see AgentRoles.)
//   - The managers are found through the managers' regional group
//     (listManagedInstances, then each VM's status and address), where
//     aws filtered DescribeInstances by the group's tag.
//   - The VM's identity comes from the metadata server; autarky.instance
//     is the VM's numeric id, not its name: a VM the group recreates keeps
//     its name and gets a new id, and the agent keys members by id.
//   - Compute Engine runs the startup script at every boot, not once: the
//     script was already idempotent (a member of the swarm stays; the
//     agent's token file changes only when the token did).
//   - The tokens are stored as they are: Cloud Storage encrypts every
//     object at rest (with the bucket's default key, a customer managed
//     one if the bucket has it), so there is no SecureString or KMS key
//     field; who may read which object is the roles' conditions.
//
// The endpoints are fields so that tests can point the script at
// fake-gcs-server and stand-ins; empty means Google's.
//
// Much of the script (installing Docker, the engine labels, the private
// directory, the join through the engine's socket, the agent's unit) is
// the aws template's text: a shared fragment could hold it later.
//
//go:embed startup.sh.tmpl
var startupTemplate string

var startupTmpl = template.Must(template.New("startup").
	Delims("{%", "%}").
	Funcs(template.FuncMap{"sh": startupQuote}).
	Parse(startupTemplate))

// MaxStartupScriptSize is Compute Engine's limit on one metadata value.
const MaxStartupScriptSize = 256 * 1024

// StartupJoinTimeout bounds how long a booting VM tries to join, unless
// StartupScript.JoinTimeout says otherwise.
const StartupJoinTimeout = 10 * time.Minute

// Google's endpoints, the defaults of StartupScript's.
const (
	DefaultMetadataEndpoint = "http://metadata.google.internal"
	DefaultStorageEndpoint  = "https://storage.googleapis.com"
	DefaultComputeEndpoint  = "https://compute.googleapis.com"
)

// StartupScript is what a VM's startup script needs to know. It never
// holds a join token: the script reads the token from the bucket at boot.
type StartupScript struct {
	Cluster string
	// Pool is the node pool; the manager pool is policy.ManagerPoolName
	// and has Role policy.RoleManager, every other pool RoleWorker.
	Pool string
	Role string
	// Project and Region are where the managers' regional group is.
	Project string
	Region  string
	// Bucket holds the cluster's objects, under autarky/<cluster>/.
	Bucket string
	// ManagerGroup is the managers' Managed Instance Group: a joining VM
	// finds manager addresses among its running VMs.
	ManagerGroup string
	// Labels are the pool's own labels, added to the engine (and, on
	// managers, the node) beside autarky.cluster, autarky.pool and
	// autarky.instance.
	Labels map[string]string
	// JoinTimeout bounds the join; zero means StartupJoinTimeout.
	JoinTimeout time.Duration
	// HeartbeatPeriod is the swarm's dispatcher heartbeat, set by the
	// manager that initialises it; zero keeps Swarm's default.
	HeartbeatPeriod time.Duration
	// Agent, on managers, installs and starts autarky-agent; nil starts
	// none.
	Agent *StartupAgent
	// MetadataEndpoint, StorageEndpoint and ComputeEndpoint are the base
	// URLs of the metadata server and the two APIs (scheme and host, and
	// a path if any, no trailing slash); empty means Google's.
	MetadataEndpoint string
	StorageEndpoint  string
	ComputeEndpoint  string
}

// StartupAgent says where a manager gets autarky-agent and how it runs it.
type StartupAgent struct {
	// URL serves a static linux autarky-agent binary for the VM's
	// architecture; SHA256 is its hex digest, checked before it runs.
	URL                string
	SHA256             string
	EvaluationInterval string
	DryRun             bool
}

var (
	startupLabelRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]*$`)
	startupSHARE   = regexp.MustCompile(`^[0-9a-f]{64}$`)
	// startupURLRE keeps quotes, blanks, backslashes and shell expansions
	// out of a URL the script puts between double quotes.
	startupURLRE = regexp.MustCompile(`^https?://[^\s'"\\$` + "`" + `]+$`)
)

type startupView struct {
	StartupScript
	TokenObject        string
	WorkerTokenObject  string
	LockObject         string
	StaticLabelsJSON   string
	NodeLabels         []string
	JoinTimeoutSeconds int
	Heartbeat          string
	IsManager          bool
	Agent              *startupAgentView
}

type startupAgentView struct {
	StartupAgent
	Port int
	// TokenObject holds the agents' bearer token, which the script
	// copies into TokenFile for the unit's --alert-token-file.
	TokenObject, TokenFile string
	// AddressFile is where the script writes the agent's URL, which
	// `autarky-agent status` on the manager reads.
	AddressFile string
	// Endpoints are the agent's flags for the APIs' endpoints when they
	// are not Google's (a private endpoint): the agent then reaches the
	// same ones as the script.
	Endpoints string
	// UnitPath is where the agent's own unit (autarky-agent unit) is
	// installed; it runs as User, with run's flags in EnvFile (as
	// AUTARKY_AGENT_FLAGS, packaging.FlagsVariable).
	UnitPath, User, EnvFile string
}

// objectInURL is an object's name as a path segment or query value of the
// JSON API: every '/' escaped.
func objectInURL(cluster, key string) string {
	return url.PathEscape(ObjectName(cluster, key))
}

// RenderStartupScript renders the startup script of one pool's VMs, the
// value of their `startup-script` metadata key.
func RenderStartupScript(s StartupScript) (string, error) {
	s.MetadataEndpoint = orDefault(s.MetadataEndpoint, DefaultMetadataEndpoint)
	s.StorageEndpoint = orDefault(s.StorageEndpoint, DefaultStorageEndpoint)
	s.ComputeEndpoint = orDefault(s.ComputeEndpoint, DefaultComputeEndpoint)
	if err := s.validate(); err != nil {
		return "", fmt.Errorf("startup script: %w", err)
	}
	timeout := s.JoinTimeout
	if timeout == 0 {
		timeout = StartupJoinTimeout
	}
	labels := []string{policy.LabelCluster + "=" + s.Cluster, policy.LabelPool + "=" + s.Pool}
	keys := make([]string, 0, len(s.Labels))
	for k := range s.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		labels = append(labels, k+"="+s.Labels[k])
	}
	// Each label a JSON string, for daemon.json's list.
	quoted, err := json.Marshal(labels)
	if err != nil {
		return "", err
	}
	tokenKey := group.KeyWorkerToken
	if s.Role == policy.RoleManager {
		tokenKey = group.KeyManagerToken
	}
	v := startupView{
		StartupScript:      s,
		TokenObject:        objectInURL(s.Cluster, tokenKey),
		WorkerTokenObject:  objectInURL(s.Cluster, group.KeyWorkerToken),
		LockObject:         objectInURL(s.Cluster, group.KeyInitLock),
		StaticLabelsJSON:   strings.TrimSuffix(strings.TrimPrefix(string(quoted), "["), "]"),
		NodeLabels:         labels,
		JoinTimeoutSeconds: int(timeout / time.Second),
		Heartbeat:          s.HeartbeatPeriod.String(),
		IsManager:          s.Role == policy.RoleManager,
	}
	if s.Agent != nil {
		a := *s.Agent
		if a.EvaluationInterval == "" {
			a.EvaluationInterval = policy.DefaultEvaluationInterval.String()
		}
		v.Agent = &startupAgentView{StartupAgent: a, Port: policy.AgentPort,
			TokenObject: objectInURL(s.Cluster, group.KeyAlertToken), TokenFile: policy.AgentTokenFile, AddressFile: policy.AgentAddressFile,
			UnitPath: packaging.UnitPath, User: packaging.User, EnvFile: packaging.EnvironmentFile}
		// The Go clients take the endpoints as base URLs: Compute
		// Engine's before compute/v1/, Cloud Storage's JSON API's with it.
		if s.ComputeEndpoint != DefaultComputeEndpoint {
			v.Agent.Endpoints += " --compute-endpoint $COMPUTE/"
		}
		if s.StorageEndpoint != DefaultStorageEndpoint {
			v.Agent.Endpoints += " --storage-endpoint $STORAGE/storage/v1/"
		}
	}
	var buf bytes.Buffer
	if err := startupTmpl.Execute(&buf, v); err != nil {
		return "", fmt.Errorf("startup script: %w", err)
	}
	if buf.Len() > MaxStartupScriptSize {
		return "", fmt.Errorf("startup script is %d bytes: a metadata value holds at most %d", buf.Len(), MaxStartupScriptSize)
	}
	return buf.String(), nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func (s StartupScript) validate() error {
	if err := policy.ValidateName(s.Cluster); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	if err := policy.ValidateName(s.Pool); err != nil {
		return fmt.Errorf("pool: %w", err)
	}
	switch {
	case s.Role == policy.RoleManager && s.Pool != policy.ManagerPoolName:
		return fmt.Errorf("role: %q belongs to the manager pool %q only", s.Role, policy.ManagerPoolName)
	case s.Role == policy.RoleWorker && s.Pool == policy.ManagerPoolName:
		return fmt.Errorf("role: pool %q is the manager pool: its role is %q", s.Pool, policy.RoleManager)
	case s.Role != policy.RoleManager && s.Role != policy.RoleWorker:
		return fmt.Errorf("role: %q: use %q or %q", s.Role, policy.RoleWorker, policy.RoleManager)
	}
	if err := policy.ValidateGCPProject(s.Project); err != nil {
		return fmt.Errorf("project: %w", err)
	}
	if err := policy.ValidateGCPRegion(s.Region); err != nil {
		return fmt.Errorf("region: %w", err)
	}
	if err := ValidateBucket(s.Bucket); err != nil {
		return fmt.Errorf("bucket: %w", err)
	}
	if err := policy.ValidateGCEName(s.ManagerGroup); err != nil {
		return fmt.Errorf("manager group: %w", err)
	}
	for k, v := range s.Labels {
		if !startupLabelRE.MatchString(k) || strings.HasPrefix(k, "autarky.") {
			return fmt.Errorf("labels: %q: use letters, digits, '.', '_', '/' and '-', not starting with \"autarky.\"", k)
		}
		if strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return fmt.Errorf("labels: %q: its value holds a control character", k)
		}
		if !utf8.ValidString(v) {
			// daemon.json is JSON, which would replace the bad bytes.
			return fmt.Errorf("labels: %q: its value is not valid UTF-8 text", k)
		}
	}
	for name, e := range map[string]string{"metadata endpoint": s.MetadataEndpoint, "storage endpoint": s.StorageEndpoint, "compute endpoint": s.ComputeEndpoint} {
		u, err := url.Parse(e)
		if err != nil || !startupURLRE.MatchString(e) || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(e, "/") ||
			strings.Contains(e, "%") {
			// No '%' either: the agent's unit (systemd) would read it as
			// a specifier.
			return fmt.Errorf("%s: %q: use an http(s) URL of a host, without a query, a '%%' or a trailing '/'", name, e)
		}
	}
	if s.HeartbeatPeriod != 0 && s.HeartbeatPeriod < time.Second {
		return fmt.Errorf("heartbeat period: %s: use at least 1s", s.HeartbeatPeriod)
	}
	if s.JoinTimeout < 0 || (s.JoinTimeout > 0 && s.JoinTimeout < time.Second) {
		return fmt.Errorf("join timeout: %s: use at least 1s", s.JoinTimeout)
	}
	if a := s.Agent; a != nil {
		if s.Role != policy.RoleManager {
			return fmt.Errorf("agent: it runs on managers only, not on pool %q", s.Pool)
		}
		if !startupURLRE.MatchString(a.URL) {
			return fmt.Errorf("agent URL: %q is not an http(s) URL", a.URL)
		}
		if !startupSHARE.MatchString(a.SHA256) {
			return fmt.Errorf("agent SHA-256: %q: use 64 lower-case hex digits", a.SHA256)
		}
		if a.EvaluationInterval != "" {
			if _, err := policy.ParseEvaluationInterval(a.EvaluationInterval); err != nil {
				return fmt.Errorf("agent evaluation interval: %w", err)
			}
			if strings.ContainsAny(a.EvaluationInterval, " \t'\"\\$`") {
				return fmt.Errorf("agent evaluation interval: %q", a.EvaluationInterval)
			}
		}
	}
	return nil
}

// startupQuote quotes s for POSIX sh: inside single quotes nothing
// expands.
func startupQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
