package aws

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	awsv2 "github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go/middleware"
	"golang.org/x/time/rate"
)

// Deadlines bound every AWS call; the SDK sets none of its own, so without
// them a hung endpoint (a black-holed VPC endpoint, a half-open connection)
// holds a call until its caller's context ends: for the agent, the whole
// evaluation. Zero fields take the defaults.
type Deadlines struct {
	// Attempt bounds one HTTP exchange, body included (the HTTP client's
	// timeout). An attempt cut off is a connection error the retryer
	// retries like any other. The APIs the platform calls (Auto Scaling,
	// EC2, SSM) answer in well under a second; default 10 s.
	Attempt time.Duration
	// Operation bounds one call with all its attempts, the rate limiter's
	// waits and the retryer's backoff. It fits in the agent's evaluation
	// deadline under a watchdog (half of systemd's WatchdogSec=60), so a
	// hung endpoint ends a call, the evaluation notes which, and the next
	// evaluation goes on; longer throttling is the next evaluation's
	// business. Default 30 s.
	Operation time.Duration
}

// Default deadlines; see Deadlines.
const (
	DefaultAttemptDeadline   = 10 * time.Second
	DefaultOperationDeadline = 30 * time.Second
)

func (d Deadlines) withDefaults() Deadlines {
	if d.Attempt <= 0 {
		d.Attempt = DefaultAttemptDeadline
	}
	if d.Operation <= 0 {
		d.Operation = DefaultOperationDeadline
	}
	return d
}

// Rate is a token bucket: PerSecond tokens a second, up to Burst at once.
type Rate struct {
	PerSecond float64
	Burst     int
}

// RateLimits are the client-side rates of the services the platform calls,
// shared by every client of one account and region in the process (see
// limiterFor). AWS meters each API per account and region with token
// buckets of its own; a client that stays under its share never makes
// them throttle the account's other users (cluster-autoscaler crashed at
// start on throttled DescribeAutoScalingGroups: kubernetes/autoscaler#252).
// Zero fields take the defaults.
type RateLimits struct {
	// EC2: its documented non-mutating bucket refills 20 a second, burst
	// 100; Autarky takes half the refill, 10/s, burst 20.
	EC2 Rate
	// AutoScaling: AWS does not document its buckets, and they are the ones
	// autoscalers hit first; 5/s, burst 10 (an evaluation makes one
	// DescribeAutoScalingGroups for every group at once).
	AutoScaling Rate
	// SSM: Parameter Store's default throughput is 40 a second for reads
	// and lower for writes; 10/s, burst 20.
	SSM Rate
}

// Default rates; see RateLimits.
var (
	DefaultEC2Rate         = Rate{PerSecond: 10, Burst: 20}
	DefaultAutoScalingRate = Rate{PerSecond: 5, Burst: 10}
	DefaultSSMRate         = Rate{PerSecond: 10, Burst: 20}
)

func (r Rate) or(def Rate) Rate {
	if r.PerSecond <= 0 {
		r.PerSecond = def.PerSecond
	}
	if r.Burst <= 0 {
		r.Burst = def.Burst
	}
	return r
}

func (l RateLimits) withDefaults() RateLimits {
	return RateLimits{EC2: l.EC2.or(DefaultEC2Rate), AutoScaling: l.AutoScaling.or(DefaultAutoScalingRate), SSM: l.SSM.or(DefaultSSMRate)}
}

// Services, as the limiters and the wait metric name them.
const (
	serviceEC2         = "ec2"
	serviceAutoScaling = "autoscaling"
	serviceSSM         = "ssm"
)

// limiterKey is one account's one service in one region.
type limiterKey struct{ account, region, service string }

// limiters is the process's registry: every client of the same account and
// region shares one bucket per service, however many clients were made
// (the provider makes one per configuration, the agent one at start, a
// test several). The first client of a key sets its rate.
var limiters = struct {
	sync.Mutex
	m map[limiterKey]*rate.Limiter
}{m: map[limiterKey]*rate.Limiter{}}

func limiterFor(k limiterKey, r Rate) *rate.Limiter {
	limiters.Lock()
	defer limiters.Unlock()
	l, ok := limiters.m[k]
	if !ok {
		l = rate.NewLimiter(rate.Limit(r.PerSecond), r.Burst)
		limiters.m[k] = l
	}
	return l
}

// accountOf names the account of a client's credentials: the account id
// when the credential source gives it (SSO, process credentials,
// AWS_ACCOUNT_ID), else the access key id, which belongs to one principal
// of one account: never two accounts sharing a bucket, at worst two
// principals of one account with a bucket each.
func accountOf(c awsv2.Credentials) string {
	if c.AccountID != "" {
		return "account:" + c.AccountID
	}
	return "key:" + c.AccessKeyID
}

// rateLimit takes a token from the account's and region's bucket for the
// service before every attempt, retries included: AWS counts attempts,
// not operations. It sits in the Finalize step right after the retryer,
// before signing. Waiting respects the operation's context (its deadline
// included): a wait longer than what is left fails at once.
type rateLimit struct {
	creds   awsv2.CredentialsProvider
	region  string
	service string
	rate    Rate
	metrics *Metrics
}

func (*rateLimit) ID() string { return "AutarkyRateLimit" }

func (m *rateLimit) HandleFinalize(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
	account := "anonymous"
	if m.creds != nil {
		c, err := m.creds.Retrieve(ctx)
		if err != nil {
			return middleware.FinalizeOutput{}, middleware.Metadata{}, err
		}
		account = accountOf(c)
	}
	region := m.region
	if r := awsmiddleware.GetRegion(ctx); r != "" {
		region = r
	}
	l := limiterFor(limiterKey{account: account, region: region, service: m.service}, m.rate)
	start := time.Now()
	if err := l.Wait(ctx); err != nil {
		return middleware.FinalizeOutput{}, middleware.Metadata{}, &RateLimitError{Service: m.service, Rate: m.rate, Err: err}
	}
	if waited := time.Since(start); m.metrics != nil && waited > time.Millisecond {
		m.metrics.RateWait.WithLabelValues(m.service).Add(waited.Seconds())
	}
	return next.HandleFinalize(ctx, in)
}

// RateLimitError is a call the client-side rate limiter held back past
// its context's end: "not now", like AWS's own throttling (IsTransient).
type RateLimitError struct {
	Service string
	Rate    Rate
	Err     error
}

func (e *RateLimitError) Error() string {
	return fmt.Sprintf("waiting for the client-side %s rate limit (%g/s, burst %d): %v", e.Service, e.Rate.PerSecond, e.Rate.Burst, e.Err)
}

func (e *RateLimitError) Unwrap() error { return e.Err }

// OperationDeadlineError is an AWS call that did not finish within its
// operation deadline, with the error of its last attempt (a timeout for a
// hung endpoint; throttling for a throttled one, which keeps it transient:
// see IsTransient).
type OperationDeadlineError struct {
	Service   string
	Operation string
	After     time.Duration
	Last      error
}

func (e *OperationDeadlineError) Error() string {
	msg := fmt.Sprintf("AWS %s %s did not finish within its deadline of %s", e.Service, e.Operation, e.After)
	if e.Last != nil {
		msg += "; last attempt: " + e.Last.Error()
	}
	return msg
}

func (e *OperationDeadlineError) Unwrap() []error {
	if e.Last == nil {
		return []error{context.DeadlineExceeded}
	}
	return []error{context.DeadlineExceeded, e.Last}
}

// attemptErr carries the last attempt's error up to operationDeadline.
type attemptErrKey struct{}

type lastAttempt struct {
	mu  sync.Mutex
	err error
}

// operationDeadline bounds the whole operation (Initialize step, first),
// and names the operation and its last attempt's error when it runs out.
type operationDeadline struct{ after time.Duration }

func (*operationDeadline) ID() string { return "AutarkyOperationDeadline" }

func (m *operationDeadline) HandleInitialize(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
	last := &lastAttempt{}
	octx, cancel := context.WithTimeout(context.WithValue(ctx, attemptErrKey{}, last), m.after)
	defer cancel()
	out, md, err := next.HandleInitialize(octx, in)
	if err != nil && ctx.Err() == nil && errors.Is(octx.Err(), context.DeadlineExceeded) {
		last.mu.Lock()
		le := last.err
		last.mu.Unlock()
		err = &OperationDeadlineError{Service: awsmiddleware.GetServiceID(ctx), Operation: awsmiddleware.GetOperationName(ctx), After: m.after, Last: le}
	}
	return out, md, err
}

// noteAttempt records each attempt's error (Finalize step, after the
// retryer) for operationDeadline.
type noteAttempt struct{}

func (noteAttempt) ID() string { return "AutarkyNoteAttempt" }

func (noteAttempt) HandleFinalize(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
	out, md, err := next.HandleFinalize(ctx, in)
	// An attempt cut by the operation's end is not the last real answer.
	if err != nil && ctx.Err() == nil {
		if last, ok := ctx.Value(attemptErrKey{}).(*lastAttempt); ok {
			last.mu.Lock()
			last.err = err
			last.mu.Unlock()
		}
	}
	return out, md, err
}

// callLimits adds the deadlines and the service's rate limiter to a
// client's middleware stack: the one place every call of the platform
// passes.
func callLimits(d Deadlines, rl *rateLimit) func(*middleware.Stack) error {
	return func(s *middleware.Stack) error {
		if err := s.Initialize.Add(&operationDeadline{after: d.Operation}, middleware.Before); err != nil {
			return err
		}
		// After the retryer: once per attempt. Then the attempt's error is
		// noted below the limiter, so a failed wait (the deadline) never
		// hides the last real answer.
		if err := s.Finalize.Insert(rl, "Retry", middleware.After); err != nil {
			if err := s.Finalize.Add(rl, middleware.Before); err != nil {
				return err
			}
		}
		return s.Finalize.Insert(noteAttempt{}, rl.ID(), middleware.After)
	}
}

// withAttemptTimeout gives the configuration's HTTP client the attempt
// deadline. A client of another kind (set by a caller) is left alone: its
// owner chose its timeouts; the operation deadline still applies.
func withAttemptTimeout(cfg *awsv2.Config, d time.Duration) {
	switch hc := cfg.HTTPClient.(type) {
	case nil:
		cfg.HTTPClient = awshttp.NewBuildableClient().WithTimeout(d)
	case *awshttp.BuildableClient:
		cfg.HTTPClient = hc.WithTimeout(d)
	}
}
