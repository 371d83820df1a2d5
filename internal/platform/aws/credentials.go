package aws

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"time"

	awsv2 "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	ststypes "github.com/aws/aws-sdk-go-v2/service/sts/types"
)

// Role assumption, as the provider's aws block declares it. The settings
// are spelled as the hashicorp/aws provider spells them (assume_role,
// assume_role_with_web_identity), so a team moving a configuration between
// the two providers, or reading one provider's documentation for the
// other, finds the same knobs doing the same thing.
//
// The order is the AWS provider's: the base credentials come from the
// assume_role_with_web_identity block when there is one, else from the
// standard chain (which itself honours AWS_ROLE_ARN and
// AWS_WEB_IDENTITY_TOKEN_FILE, the way Terraform Cloud's dynamic provider
// credentials and EKS service accounts hand over a web identity); the
// assume_role block, when there is one, is then assumed with them.
//
// Every STS call goes to Endpoints.STS when it is set, the SDK's own chain
// included: a private (VPC) STS endpoint, or an emulator, must see the
// AssumeRoleWithWebIdentity of a run, not the public endpoint.
//
// Credentials are never logged, never returned in an error and never
// reach Terraform state: the provider block is not part of state, the
// token is a Secret whose printed form is redacted, and the SDK's
// providers keep the keys they get in memory only.

// AssumeRole is the assume_role block.
type AssumeRole struct {
	RoleARN     string
	SessionName string
	ExternalID  string
	// Duration of the session; zero means STS's default (one hour).
	Duration       time.Duration
	Policy         string
	PolicyARNs     []string
	SourceIdentity string
}

// WebIdentity is the assume_role_with_web_identity block. Empty fields
// fall back, as in the AWS provider, to AWS_ROLE_ARN,
// AWS_ROLE_SESSION_NAME and AWS_WEB_IDENTITY_TOKEN_FILE.
type WebIdentity struct {
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

// resolved fills the web identity's empty fields from the environment, as
// the AWS provider does, and checks that a role and a token are known.
func (w WebIdentity) resolved() (WebIdentity, error) {
	if w.RoleARN == "" {
		w.RoleARN = os.Getenv("AWS_ROLE_ARN")
	}
	if w.SessionName == "" {
		w.SessionName = os.Getenv("AWS_ROLE_SESSION_NAME")
	}
	if w.Token == "" && w.TokenFile == "" {
		w.TokenFile = os.Getenv("AWS_WEB_IDENTITY_TOKEN_FILE")
	}
	switch {
	case w.RoleARN == "":
		return w, errors.New("assume_role_with_web_identity.role_arn: not set, and AWS_ROLE_ARN is empty: name the role to assume")
	case w.Token != "" && w.TokenFile != "":
		return w, errors.New("assume_role_with_web_identity: set web_identity_token or web_identity_token_file, not both")
	case w.Token == "" && w.TokenFile == "":
		return w, errors.New("assume_role_with_web_identity: neither web_identity_token nor web_identity_token_file is set, and AWS_WEB_IDENTITY_TOKEN_FILE is empty: give the OIDC token or the file that holds it")
	}
	if err := ValidateRoleARN(w.RoleARN); err != nil {
		return w, fmt.Errorf("assume_role_with_web_identity.role_arn: %w", err)
	}
	return w, nil
}

// stsOptions are the SDK loader's options that send the STS calls of its
// own credential chain (web identity from the environment or a profile,
// role_arn in a profile) to endpoint. The loader makes those clients
// itself, from the configuration it is still loading, so the endpoint is
// put on each call instead.
func stsOptions(endpoint string) []func(*config.LoadOptions) error {
	if endpoint == "" {
		return nil
	}
	at := func(o *sts.Options) { o.BaseEndpoint = awsv2.String(endpoint) }
	return []func(*config.LoadOptions) error{
		config.WithWebIdentityRoleCredentialOptions(func(o *stscreds.WebIdentityRoleOptions) {
			if o.Client != nil { // nil on the loader's first, checking pass
				o.Client = webIdentityAt{next: o.Client, at: at}
			}
		}),
		config.WithAssumeRoleCredentialOptions(func(o *stscreds.AssumeRoleOptions) {
			if o.Client != nil {
				o.Client = assumeRoleAt{next: o.Client, at: at}
			}
		}),
	}
}

type webIdentityAt struct {
	next stscreds.AssumeRoleWithWebIdentityAPIClient
	at   func(*sts.Options)
}

func (c webIdentityAt) AssumeRoleWithWebIdentity(ctx context.Context, in *sts.AssumeRoleWithWebIdentityInput, opts ...func(*sts.Options)) (*sts.AssumeRoleWithWebIdentityOutput, error) {
	return c.next.AssumeRoleWithWebIdentity(ctx, in, append(opts, c.at)...)
}

type assumeRoleAt struct {
	next stscreds.AssumeRoleAPIClient
	at   func(*sts.Options)
}

func (c assumeRoleAt) AssumeRole(ctx context.Context, in *sts.AssumeRoleInput, opts ...func(*sts.Options)) (*sts.AssumeRoleOutput, error) {
	return c.next.AssumeRole(ctx, in, append(opts, c.at)...)
}

// assumeRoles replaces cfg's credentials with those of the web identity
// and assume_role blocks of c, in the AWS provider's order. Each provider
// is cached, so STS is called once per session, not once per API call.
func assumeRoles(cfg *awsv2.Config, c Config) error {
	stsClient := func() *sts.Client {
		return sts.NewFromConfig(*cfg, func(o *sts.Options) {
			if c.Endpoints.STS != "" {
				o.BaseEndpoint = awsv2.String(c.Endpoints.STS)
			}
		})
	}
	if c.WebIdentity != nil {
		w, err := c.WebIdentity.resolved()
		if err != nil {
			return err
		}
		var token stscreds.IdentityTokenRetriever = w.Token
		if w.TokenFile != "" {
			token = stscreds.IdentityTokenFile(w.TokenFile)
		}
		cfg.Credentials = awsv2.NewCredentialsCache(stscreds.NewWebIdentityRoleProvider(stsClient(), w.RoleARN, token, func(o *stscreds.WebIdentityRoleOptions) {
			o.RoleSessionName = w.SessionName
			o.Duration = w.Duration
			o.Policy = optional(w.Policy)
			o.PolicyARNs = policyARNs(w.PolicyARNs)
		}))
	}
	if a := c.AssumeRole; a != nil {
		if err := ValidateRoleARN(a.RoleARN); err != nil {
			return fmt.Errorf("assume_role.role_arn: %w", err)
		}
		cfg.Credentials = awsv2.NewCredentialsCache(stscreds.NewAssumeRoleProvider(stsClient(), a.RoleARN, func(o *stscreds.AssumeRoleOptions) {
			o.RoleSessionName = a.SessionName
			o.ExternalID = optional(a.ExternalID)
			if a.Duration > 0 {
				o.Duration = a.Duration
			}
			o.Policy = optional(a.Policy)
			o.PolicyARNs = policyARNs(a.PolicyARNs)
			o.SourceIdentity = optional(a.SourceIdentity)
		}))
	}
	return nil
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return awsv2.String(s)
}

func policyARNs(arns []string) []ststypes.PolicyDescriptorType {
	var out []ststypes.PolicyDescriptorType
	for _, a := range arns {
		out = append(out, ststypes.PolicyDescriptorType{Arn: awsv2.String(a)})
	}
	return out
}
