package policy

import (
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"time"
)

// Settings of the provider's platform blocks: where a platform's clusters
// live and whose credentials reach them. The provider fills them from its
// configuration and hands them to the platform it opens
// (platform.OpenBackend); the rules for their fields live here, once, for
// the provider's plan-time checks and the platforms alike.

// Where the clouds keep a cluster: named here for the provider's
// documentation, and used by the platforms.
const (
	// AWSPathPrefix is the SSM path under which each cluster's parameters
	// live: /autarky/<cluster>/...
	AWSPathPrefix = "/autarky"
	// AWSTagCluster is the tag naming the cluster of an Auto Scaling Group.
	AWSTagCluster = "autarky:cluster"
	// GCSObjectPrefix is the object name prefix under which each cluster's
	// objects live in the bucket: autarky/<cluster>/...
	GCSObjectPrefix = "autarky"
)

// LocalSettings is the provider's local block.
type LocalSettings struct {
	// StateDir holds the local platform's clusters (StateDirFrom).
	StateDir string
	// WorkloadBinary is loaded into every node as autarky/workload:latest.
	WorkloadBinary string
}

// AWSSettings is the provider's aws block.
type AWSSettings struct {
	Region            string
	Profile           string
	SharedConfigFiles []string
	WebIdentity       *AWSWebIdentity
	AssumeRole        *AWSAssumeRole
	Endpoints         AWSEndpoints
}

// AWSEndpoints override the endpoint of one service each, to reach an
// emulator or a private (VPC) endpoint. Empty means the SDK's default for
// the region.
type AWSEndpoints struct {
	EC2         string
	AutoScaling string
	SSM         string
	// STS serves role assumption (web identity and assume_role), the
	// SDK's own chain included.
	STS string
}

// GCPSettings is the provider's gcp block, resolved with the environment's
// defaults (GOOGLE_PROJECT, GOOGLE_REGION, GOOGLE_CREDENTIALS).
type GCPSettings struct {
	// Project is the groups' project; empty: the credentials'.
	Project, Region string
	// Bucket holds every cluster's store.
	Bucket string
	// ComputeEndpoint replaces https://compute.googleapis.com and
	// StorageEndpoint Cloud Storage's JSON API (private endpoints, or a
	// test's fakes).
	ComputeEndpoint, StorageEndpoint string
	// CredentialsJSON is a credentials file's content; empty: Application
	// Default Credentials.
	CredentialsJSON           Secret
	ImpersonateServiceAccount string
	// NoAuth sends no credentials at all: for fakes on this machine only.
	NoAuth bool
}

// AWSAssumeRole is the aws block's assume_role block.
type AWSAssumeRole struct {
	RoleARN     string
	SessionName string
	ExternalID  string
	// Duration of the session; zero means STS's default (one hour).
	Duration       time.Duration
	Policy         string
	PolicyARNs     []string
	SourceIdentity string
}

// AWSWebIdentity is the aws block's assume_role_with_web_identity block. Empty fields
// fall back, as in the AWS provider, to AWS_ROLE_ARN,
// AWS_ROLE_SESSION_NAME and AWS_WEB_IDENTITY_TOKEN_FILE.
type AWSWebIdentity struct {
	RoleARN     string
	SessionName string
	// Token is the OIDC token itself; TokenFile names a file that holds
	// it, read again at every refresh (the issuer rotates it). At most one.
	Token      Secret
	TokenFile  string
	Duration   time.Duration
	Policy     string
	PolicyARNs []string
}

// Secret is a credential held in memory; its printed form is redacted so
// that no log line, error or debug dump shows it.
type Secret string

func (Secret) String() string   { return "(sensitive)" }
func (Secret) GoString() string { return "(sensitive)" }

// GetIdentityToken makes a Secret a token source for STS.
func (s Secret) GetIdentityToken() ([]byte, error) { return []byte(s), nil }

// STS session limits: AWS accepts 15 minutes to 12 hours (the role's own
// maximum may be lower; STS then says so).
const (
	MinSessionDuration = 15 * time.Minute
	MaxSessionDuration = 12 * time.Hour
)

var (
	roleARNRE     = regexp.MustCompile(`^arn:aws(-[a-z]+)*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$`)
	policyARNRE   = regexp.MustCompile(`^arn:aws(-[a-z]+)*:iam::(\d{12}|aws):policy/[\w+=,.@/-]{1,512}$`)
	sessionNameRE = regexp.MustCompile(`^[\w+=,.@-]{2,64}$`)
	externalIDRE  = regexp.MustCompile(`^[\w+=,.@:/-]+$`)
)

// ValidateRoleARN checks the form of an IAM role ARN.
func ValidateRoleARN(s string) error {
	if !roleARNRE.MatchString(s) {
		return fmt.Errorf("%q is not an IAM role ARN: use one such as \"arn:aws:iam::123456789012:role/terraform\"", s)
	}
	return nil
}

// ValidatePolicyARN checks the form of an IAM managed policy ARN.
func ValidatePolicyARN(s string) error {
	if !policyARNRE.MatchString(s) {
		return fmt.Errorf("%q is not an IAM policy ARN: use one such as \"arn:aws:iam::aws:policy/ReadOnlyAccess\"", s)
	}
	return nil
}

// ValidateSessionName checks a role session name (also the form of a
// source identity): what STS accepts.
func ValidateSessionName(s string) error {
	if !sessionNameRE.MatchString(s) {
		return fmt.Errorf("%q is not a session name: use 2 to 64 letters, digits or any of _+=,.@-", s)
	}
	return nil
}

// ValidateExternalID checks an external ID: what STS accepts.
func ValidateExternalID(s string) error {
	if !externalIDRE.MatchString(s) || len(s) < 2 || len(s) > 1224 {
		return fmt.Errorf("%q is not an external ID: use 2 to 1224 letters, digits or any of _+=,.@:/-", s)
	}
	return nil
}

// ParseSessionDuration parses a session duration ("1h", "30m") and checks
// it is within what STS grants.
func ParseSessionDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration: use a number with a unit, such as \"15m\" or \"1h\"", s)
	}
	if d < MinSessionDuration || d > MaxSessionDuration {
		return 0, fmt.Errorf("%q is out of range: a session lasts from 15m to 12h", s)
	}
	return d, nil
}

// ValidateSessionDuration is ParseSessionDuration for validators.
func ValidateSessionDuration(s string) error {
	_, err := ParseSessionDuration(s)
	return err
}

// ValidatePolicyJSON checks that a session policy is a JSON object.
func ValidatePolicyJSON(s string) error {
	var doc map[string]any
	if err := json.Unmarshal([]byte(s), &doc); err != nil {
		return errors.New("is not a JSON policy document: use jsonencode({ Version = \"2012-10-17\", Statement = [...] })")
	}
	return nil
}

// DefaultStateDir is used when neither the provider nor AUTARKY_STATE_DIR names one.
const DefaultStateDir = "/var/lib/autarky"

// StateDirEnv names the environment variable that overrides DefaultStateDir.
const StateDirEnv = "AUTARKY_STATE_DIR"

// MaxStateDirLen keeps the longest unix socket a node creates
// (<state>/nodes/127.aaa.bbb.ccc/exec/containerd/containerd.sock.ttrpc)
// under the kernel's 108-byte limit.
const MaxStateDirLen = 50

// StateDirFrom picks the state directory: the configured one, else
// AUTARKY_STATE_DIR, else DefaultStateDir.
func StateDirFrom(configured string) string {
	if configured != "" {
		return configured
	}
	if env := os.Getenv(StateDirEnv); env != "" {
		return env
	}
	return DefaultStateDir
}

// ValidateStateDir checks a state directory can hold nodes.
func ValidateStateDir(dir string) error {
	if !filepath.IsAbs(dir) {
		return fmt.Errorf("state_dir %q must be an absolute path", dir)
	}
	if len(filepath.Clean(dir)) > MaxStateDirLen {
		return fmt.Errorf("state_dir %q is %d characters long: use at most %d, since each node's unix sockets live under it", dir, len(dir), MaxStateDirLen)
	}
	return nil
}

// ValidateWorkloadBinary checks that path is a static Linux executable, the
// only kind that runs in an image with nothing else in it.
func ValidateWorkloadBinary(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("workload_binary %q is not a Linux executable: %v", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("workload_binary %q is dynamically linked: build it static (for Go, CGO_ENABLED=0)", path)
		}
	}
	return nil
}

// IsLoopbackHost reports whether host (a URL's host name, without a port)
// is this machine: localhost, 127.0.0.0/8 or ::1. The provider's fakes,
// plain-http webhooks and an agent's open endpoints are allowed only there.
func IsLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

var awsRegionRE = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]+$`)

// ValidateAWSRegion checks the form of a region name ("eu-west-1").
func ValidateAWSRegion(r string) error {
	if !awsRegionRE.MatchString(r) {
		return fmt.Errorf("%q is not an AWS region name: use one such as \"eu-west-1\"", r)
	}
	return nil
}
