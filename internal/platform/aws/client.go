package aws

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"time"

	awsv2 "github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

// Config says which AWS account and region the platform talks to, as the
// provider's aws block declares it. Credentials come from the standard
// chain (environment, including AWS_ROLE_ARN with
// AWS_WEB_IDENTITY_TOKEN_FILE; shared config and credentials files, SSO,
// container and instance roles); Profile picks a shared-config profile and
// SharedConfigFiles replaces the shared config files. WebIdentity and
// AssumeRole then change whose credentials they are (see credentials.go).
type Config struct {
	Region            string
	Profile           string
	SharedConfigFiles []string
	WebIdentity       *WebIdentity
	AssumeRole        *AssumeRole
	Endpoints         Endpoints
	Retry             RetryConfig
	// Deadlines bound each call and each attempt; Rates are the
	// client-side token buckets, shared per account and region.
	Deadlines Deadlines
	Rates     RateLimits
	// UserAgent: the product tokens every service call adds to the SDK's
	// User-Agent (platform.ProviderSettings.UserAgent).
	UserAgent string
}

// Endpoints are policy's: see policy.AWSEndpoints.
type Endpoints = policy.AWSEndpoints

// RetryConfig tunes the retryer; zero fields take the defaults.
type RetryConfig struct {
	// MaxAttempts bounds the attempts of one call, the first included.
	MaxAttempts int
	// BaseDelay is the backoff before the first retry; each retry doubles
	// it, up to MaxDelay, and the actual wait is drawn uniformly from
	// [0, backoff) ("full jitter"), so agents throttled together do not
	// retry together.
	BaseDelay time.Duration
	MaxDelay  time.Duration
}

// Retry defaults: enough for a burst of throttling or a short scaling
// activity; the operation deadline (Deadlines) cuts the waiting at 30 s,
// and longer waits are the next evaluation's business.
const (
	DefaultMaxAttempts = 8
	DefaultBaseDelay   = time.Second
	DefaultMaxDelay    = 20 * time.Second
)

func (r RetryConfig) withDefaults() RetryConfig {
	if r.MaxAttempts <= 0 {
		r.MaxAttempts = DefaultMaxAttempts
	}
	if r.BaseDelay <= 0 {
		r.BaseDelay = DefaultBaseDelay
	}
	if r.MaxDelay <= 0 {
		r.MaxDelay = DefaultMaxDelay
	}
	if r.MaxDelay < r.BaseDelay {
		r.MaxDelay = r.BaseDelay
	}
	return r
}

// Error codes that mean "not now" rather than "failed".
const (
	CodeThrottling                = "Throttling"
	CodeThrottlingException       = "ThrottlingException"  // SSM's spelling
	CodeRequestLimitExceeded      = "RequestLimitExceeded" // EC2's spelling
	CodeScalingActivityInProgress = "ScalingActivityInProgress"
)

// transientCodes are retried by the retryer and never count as a pool's
// failure: the API said "not now", not "no".
var transientCodes = map[string]struct{}{
	CodeThrottling:                {},
	CodeThrottlingException:       {},
	CodeRequestLimitExceeded:      {},
	CodeScalingActivityInProgress: {},
}

// IsTransient reports whether err only means "not now": throttling
// (Throttling, ThrottlingException, RequestLimitExceeded) that outlasted
// the retries, a scaling activity in progress, or a group busy with its
// own work (a *BusyError). The agent holds the pool and tries again at the
// next evaluation; such an error never counts as a failure of the pool.
func IsTransient(err error) bool {
	if err == nil {
		return false
	}
	var busy *BusyError
	if errors.As(err, &busy) {
		return true
	}
	var limited *RateLimitError
	if errors.As(err, &limited) {
		return true
	}
	_, ok := transientCodes[errorCode(err)]
	return ok
}

// errorCode is the AWS error code of err, "" when it has none.
func errorCode(err error) string {
	var api smithy.APIError
	if errors.As(err, &api) {
		return api.ErrorCode()
	}
	return ""
}

// retryLabel names why a call was retried, for the metric: the AWS error
// code, else the HTTP status, else the kind of transport failure. The set
// is bounded by what AWS and the network can say, never by node count.
func retryLabel(err error) string {
	if c := errorCode(err); c != "" {
		return c
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return fmt.Sprintf("HTTP%d", re.HTTPStatusCode())
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	return "connection"
}

// Metrics are the AWS platform's Prometheus metrics.
type Metrics struct {
	// Retries counts calls the retryer made again, by operation and by
	// the error code that caused it: autarky_aws_retries_total.
	Retries *prometheus.CounterVec
	// RateWait is the time calls spent waiting for the client-side rate
	// limiter, by service: autarky_aws_rate_limit_wait_seconds_total.
	RateWait *prometheus.CounterVec
}

// NewMetrics creates the platform's metrics and registers them on reg; a
// nil reg leaves them unregistered. Registering on a registry that already
// has them reuses the registered ones, so several clients of one agent
// share one counter.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	retries := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "autarky_aws_retries_total",
		Help: "AWS API calls retried by the agent, by operation and error code (throttling and scaling activities in progress are waited out, never counted as pool failures).",
	}, []string{"operation", "code"})
	wait := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "autarky_aws_rate_limit_wait_seconds_total",
		Help: "Seconds AWS calls waited for the client-side rate limiter shared by the account and region, by service (ec2, autoscaling, ssm).",
	}, []string{"service"})
	var err error
	if retries, err = registerCounter(reg, retries); err != nil {
		return nil, err
	}
	if wait, err = registerCounter(reg, wait); err != nil {
		return nil, err
	}
	return &Metrics{Retries: retries, RateWait: wait}, nil
}

// registerCounter registers c on reg (nil: leaves it unregistered), or
// returns the counter already registered under its name.
func registerCounter(reg prometheus.Registerer, c *prometheus.CounterVec) (*prometheus.CounterVec, error) {
	if reg == nil {
		return c, nil
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			return nil, err
		}
		existing, ok := are.ExistingCollector.(*prometheus.CounterVec)
		if !ok {
			return nil, err
		}
		return existing, nil
	}
	return c, nil
}

// Clients are the SDK clients of the services the platform uses.
type Clients struct {
	Config      awsv2.Config
	EC2         *ec2.Client
	AutoScaling *autoscaling.Client
	SSM         *ssm.Client
}

// LoadConfig resolves the SDK configuration the way the AWS CLI and the
// Terraform AWS provider do: the standard credential chain, Region and
// Profile when given, else AWS_REGION / AWS_PROFILE and the shared config.
// It fails when no region can be found; missing credentials show up at the
// first call, or earlier with CheckCredentials.
func LoadConfig(ctx context.Context, c Config) (awsv2.Config, error) {
	var opts []func(*config.LoadOptions) error
	if c.Region != "" {
		opts = append(opts, config.WithRegion(c.Region))
	}
	if c.Profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(c.Profile))
	}
	if len(c.SharedConfigFiles) > 0 {
		opts = append(opts, config.WithSharedConfigFiles(c.SharedConfigFiles))
	}
	opts = append(opts, stsOptions(c.Endpoints.STS)...)
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return awsv2.Config{}, fmt.Errorf("loading AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		return awsv2.Config{}, errors.New("no AWS region: set region in the provider's aws block, or AWS_REGION, or a region in the shared config profile")
	}
	if err := assumeRoles(&cfg, c); err != nil {
		return awsv2.Config{}, err
	}
	return cfg, nil
}

const noCredentials = "no valid credential sources found for AWS: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile, AWS_ROLE_ARN with AWS_WEB_IDENTITY_TOKEN_FILE, or run with an instance role"

// CheckCredentials resolves credentials once, so a user without any gets
// the error at plan time, worded as the AWS provider words it, rather than
// from the first API call.
func CheckCredentials(ctx context.Context, cfg awsv2.Config) error {
	if cfg.Credentials == nil {
		return errors.New(noCredentials)
	}
	if _, err := cfg.Credentials.Retrieve(ctx); err != nil {
		return fmt.Errorf("%s: %w", noCredentials, err)
	}
	return nil
}

// Connect loads the configuration (LoadConfig) and makes the clients.
func Connect(ctx context.Context, c Config, m *Metrics) (*Clients, error) {
	cfg, err := LoadConfig(ctx, c)
	if err != nil {
		return nil, err
	}
	return NewClients(cfg, c, m), nil
}

// NewClients makes the service clients from a resolved SDK configuration:
// each service uses its endpoint from c.Endpoints when given (else cfg's
// own, such as a BaseEndpoint a test set), and every client retries with
// the platform's retryer, counting retries in m (nil: not counted). Every
// call has an operation deadline and every attempt an attempt deadline
// (c.Deadlines), and every attempt takes a token from its service's
// bucket, shared by all clients of the same account and region in the
// process (c.Rates; see limiterFor).
func NewClients(cfg awsv2.Config, c Config, m *Metrics) *Clients {
	cfg = cfg.Copy()
	cfg.Retryer = NewRetryer(c.Retry, m)
	d := c.Deadlines.withDefaults()
	rates := c.Rates.withDefaults()
	withAttemptTimeout(&cfg, d.Attempt)
	cfg.APIOptions = append(cfg.APIOptions, userAgent(c.UserAgent)...)
	if cfg.Credentials != nil && !awsv2.IsCredentialsProvider(cfg.Credentials, (*awsv2.CredentialsCache)(nil)) {
		// The limiter asks for the account on every attempt: cached.
		cfg.Credentials = awsv2.NewCredentialsCache(cfg.Credentials)
	}
	limits := func(service string, r Rate) func(*middleware.Stack) error {
		return callLimits(d, &rateLimit{creds: cfg.Credentials, region: cfg.Region, service: service, rate: r, metrics: m})
	}
	endpoint := func(ep string) *string {
		if ep == "" {
			return nil
		}
		return awsv2.String(ep)
	}
	out := &Clients{Config: cfg}
	out.EC2 = ec2.NewFromConfig(cfg, func(o *ec2.Options) {
		if ep := endpoint(c.Endpoints.EC2); ep != nil {
			o.BaseEndpoint = ep
		}
		o.APIOptions = append(o.APIOptions, limits(serviceEC2, rates.EC2))
	})
	out.AutoScaling = autoscaling.NewFromConfig(cfg, func(o *autoscaling.Options) {
		if ep := endpoint(c.Endpoints.AutoScaling); ep != nil {
			o.BaseEndpoint = ep
		}
		o.APIOptions = append(o.APIOptions, limits(serviceAutoScaling, rates.AutoScaling))
	})
	out.SSM = ssm.NewFromConfig(cfg, func(o *ssm.Options) {
		if ep := endpoint(c.Endpoints.SSM); ep != nil {
			o.BaseEndpoint = ep
		}
		o.APIOptions = append(o.APIOptions, limits(serviceSSM, rates.SSM))
	})
	return out
}

// userAgent adds each "name/version" token of ua to the SDK's User-Agent
// after its own (aws-sdk-go-v2/... os/... lang/...), as the hashicorp
// providers add theirs: the SDK keeps only characters a header token may
// hold, so the tokens are added one by one rather than as one string.
func userAgent(ua string) []func(*middleware.Stack) error {
	var out []func(*middleware.Stack) error
	for _, tok := range strings.Fields(ua) {
		name, version, _ := strings.Cut(tok, "/")
		if version == "" {
			out = append(out, awsmiddleware.AddUserAgentKey(name))
		} else {
			out = append(out, awsmiddleware.AddUserAgentKeyValue(name, version))
		}
	}
	return out
}

// NewRetryer returns the platform's retryer factory: the SDK's standard
// retryer (it already retries Throttling, RequestLimitExceeded, 5xx and
// connection errors), also retrying ScalingActivityInProgress, with full
// jitter exponential backoff, and counting each retry in m.
//
// The SDK's client-side retry quota is off: the agent makes a handful of
// calls per evaluation, and an exhausted quota would turn throttling into
// an error that no longer carries its code (so it would no longer read as
// transient). Attempts and backoff bound the retrying instead.
//
// Retrying a mutating call is safe here: SetDesiredCapacity is absolute,
// and a TerminateInstanceInAutoScalingGroup that AWS already carried out
// fails on the retry (the instance is no longer in service), it does not
// decrement twice.
func NewRetryer(rc RetryConfig, m *Metrics) func() awsv2.Retryer {
	rc = rc.withDefaults()
	return func() awsv2.Retryer {
		std := retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = rc.MaxAttempts
			o.MaxBackoff = rc.MaxDelay
			o.Backoff = fullJitter{base: rc.BaseDelay, max: rc.MaxDelay}
			o.Retryables = append(o.Retryables, retry.RetryableErrorCode{
				Codes: map[string]struct{}{CodeScalingActivityInProgress: {}},
			})
			o.RateLimiter = ratelimit.None
		})
		return &countingRetryer{RetryerV2: std, metrics: m}
	}
}

// fullJitter waits a uniform random time in [0, min(max, base*2^(n-1)))
// before retry n: AWS's "full jitter" backoff.
type fullJitter struct{ base, max time.Duration }

func (j fullJitter) BackoffDelay(attempt int, _ error) (time.Duration, error) {
	if attempt < 1 {
		attempt = 1
	}
	ceiling := j.max
	if attempt < 32 {
		if d := j.base << (attempt - 1); d > 0 && d < ceiling {
			ceiling = d
		}
	}
	return time.Duration(rand.Int64N(int64(ceiling) + 1)), nil
}

// countingRetryer counts retries. The SDK asks for a retry token exactly
// when it has decided to retry (the error is retryable and attempts are
// left), with the operation's context, so that is where a retry is counted.
type countingRetryer struct {
	awsv2.RetryerV2
	metrics *Metrics
}

func (r *countingRetryer) GetRetryToken(ctx context.Context, opErr error) (func(error) error, error) {
	release, err := r.RetryerV2.GetRetryToken(ctx, opErr)
	if err == nil && r.metrics != nil {
		r.metrics.Retries.WithLabelValues(awsmiddleware.GetOperationName(ctx), retryLabel(opErr)).Inc()
	}
	return release, err
}
