package gcp

import (
	"cmp"
	"context"
	crand "crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	compute "cloud.google.com/go/compute/apiv1"
	"cloud.google.com/go/compute/apiv1/computepb"
	gax "github.com/googleapis/gax-go/v2"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
	"golang.org/x/time/rate"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/impersonate"
	"google.golang.org/api/option"
	htransport "google.golang.org/api/transport/http"

	"github.com/autarky/terraform-provider-autarky/internal/platform"
)

// Config says which project and region the platform talks to, as the
// provider's gcp block declares it. Credentials are Application Default
// Credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud's application
// default login, the metadata server of a VM, workload identity
// federation) unless CredentialsJSON is given; ImpersonateServiceAccount
// then acts as that service account through the IAM Credentials API.
type Config struct {
	// Project is the groups' project; empty: the credentials'.
	Project, Region string
	// Endpoint replaces https://compute.googleapis.com (a private
	// endpoint, or a test's fake).
	Endpoint                  string
	CredentialsJSON           []byte
	ImpersonateServiceAccount string
	// NoAuth sends no credentials at all: for a local fake only.
	NoAuth bool
	// UserAgent is every call's User-Agent header
	// (platform.ProviderSettings.UserAgent); "": the libraries' own.
	UserAgent string
	Limits    Limits
}

// Limits bound every call; zero fields take DefaultLimits. Retry n waits
// a uniform random time in [0, min(MaxDelay, BaseDelay*2^(n-1))) ("full
// jitter"), so agents throttled together do not retry together. Attempt
// bounds one HTTP exchange, Call one call with its retries and rate
// limiter waits (a listing: all its pages), within the agent's evaluation
// deadline as on aws. PerSecond is the project's bucket for this process
// (attempts, burst twice as many): Compute Engine meters requests per
// project and minute, a few thousand by default, and 10 a second leaves
// most of them to the project's other users.
type Limits struct {
	Attempts            int
	BaseDelay, MaxDelay time.Duration
	Attempt, Call       time.Duration
	PerSecond           float64
}

// DefaultLimits: see Limits.
var DefaultLimits = Limits{Attempts: 8, BaseDelay: time.Second, MaxDelay: 20 * time.Second,
	Attempt: 10 * time.Second, Call: 30 * time.Second, PerSecond: 10}

const scope = "https://www.googleapis.com/auth/cloud-platform"

// Metrics are the GCP platform's Prometheus metrics.
type Metrics struct {
	// Retries counts attempts made again, by operation and by what caused
	// them (HTTP status, error reason, or the transport's failure):
	// autarky_gcp_retries_total.
	Retries *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them on reg (nil: not
// registered); one already registered is reused, so every client of a
// process counts in one counter.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "autarky_gcp_retries_total",
		Help: "Compute Engine API calls retried by the agent, by operation and code (throttling and unavailability are waited out, never counted as pool failures).",
	}, []string{"operation", "code"})
	if reg != nil {
		if err := reg.Register(c); err != nil {
			are, ok := err.(prometheus.AlreadyRegisteredError)
			if !ok {
				return nil, err
			}
			if c, ok = are.ExistingCollector.(*prometheus.CounterVec); !ok {
				return nil, err
			}
		}
	}
	return &Metrics{Retries: c}, nil
}

// Clients are the Compute Engine REST clients the platform uses, sharing
// one authenticated, rate-limited HTTP client.
type Clients struct {
	Project, Region string
	Groups          *compute.RegionInstanceGroupManagersClient
	Templates       *compute.InstanceTemplatesClient
	Instances       *compute.InstancesClient
	RegionOps       *compute.RegionOperationsClient
	GlobalOps       *compute.GlobalOperationsClient

	tokens    oauth2.TokenSource
	userAgent string
	limits    Limits
	metrics   *Metrics
}

// Connect finds the credentials (an error naming what to set when there
// are none, before any call) and makes the clients. m may be nil.
func Connect(ctx context.Context, cfg Config, m *Metrics) (*Clients, error) {
	if cfg.Region == "" {
		return nil, errors.New("gcp.region: no region: set region in the provider's gcp block")
	}
	l, d := cfg.Limits, DefaultLimits
	l = Limits{Attempts: cmp.Or(l.Attempts, d.Attempts), BaseDelay: cmp.Or(l.BaseDelay, d.BaseDelay), MaxDelay: cmp.Or(l.MaxDelay, d.MaxDelay),
		Attempt: cmp.Or(l.Attempt, d.Attempt), Call: cmp.Or(l.Call, d.Call), PerSecond: cmp.Or(l.PerSecond, d.PerSecond)}
	l.MaxDelay = max(l.MaxDelay, l.BaseDelay)
	c := &Clients{Project: cfg.Project, Region: cfg.Region, userAgent: cfg.UserAgent, limits: l, metrics: m}
	auth := option.WithoutAuthentication()
	if !cfg.NoAuth {
		ts, project, err := credentials(ctx, cfg)
		if err != nil {
			return nil, err
		}
		c.tokens, auth = ts, option.WithTokenSource(ts)
		if c.Project == "" {
			c.Project = project
		}
	}
	if c.Project == "" {
		return nil, errors.New("gcp.project: no project: set project in the provider's gcp block (the credentials name none)")
	}
	hopts := []option.ClientOption{auth, option.WithScopes(scope)}
	if cfg.UserAgent != "" {
		hopts = append(hopts, option.WithUserAgent(cfg.UserAgent))
	}
	hc, _, err := htransport.NewClient(ctx, hopts...)
	if err != nil {
		return nil, fmt.Errorf("gcp: HTTP client: %w", err)
	}
	hc.Transport = &limited{next: hc.Transport, l: limiterFor(c.Project, l.PerSecond)}
	hc.Timeout = l.Attempt
	opts := []option.ClientOption{option.WithHTTPClient(hc)}
	if cfg.Endpoint != "" {
		opts = append(opts, option.WithEndpoint(cfg.Endpoint))
	}
	if c.Groups, err = compute.NewRegionInstanceGroupManagersRESTClient(ctx, opts...); err == nil {
		if c.Templates, err = compute.NewInstanceTemplatesRESTClient(ctx, opts...); err == nil {
			if c.Instances, err = compute.NewInstancesRESTClient(ctx, opts...); err == nil {
				if c.RegionOps, err = compute.NewRegionOperationsRESTClient(ctx, opts...); err == nil {
					c.GlobalOps, err = compute.NewGlobalOperationsRESTClient(ctx, opts...)
				}
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("gcp: Compute Engine clients: %w", err)
	}
	return c, nil
}

// credentials resolves the token source and the project it names.
func credentials(ctx context.Context, cfg Config) (oauth2.TokenSource, string, error) {
	var creds *google.Credentials
	var err error
	if len(cfg.CredentialsJSON) > 0 {
		var f struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal(cfg.CredentialsJSON, &f); err != nil {
			return nil, "", fmt.Errorf("gcp.credentials: not a JSON credentials file: %v", err)
		}
		switch t := google.CredentialsType(f.Type); t {
		case google.ServiceAccount, google.AuthorizedUser, google.ExternalAccount, google.ImpersonatedServiceAccount:
			creds, err = google.CredentialsFromJSONWithType(ctx, cfg.CredentialsJSON, t, scope)
		default:
			return nil, "", fmt.Errorf("gcp.credentials: type %q is not accepted: use a service_account, authorized_user, external_account or impersonated_service_account file", f.Type)
		}
		if err != nil {
			return nil, "", fmt.Errorf("gcp.credentials: %w", err)
		}
	} else if creds, err = google.FindDefaultCredentials(ctx, scope); err != nil {
		return nil, "", fmt.Errorf("no Google credentials found: set credentials in the provider's gcp block, point GOOGLE_APPLICATION_CREDENTIALS at a credentials file, run `gcloud auth application-default login`, or run where a metadata server serves a service account: %w", err)
	}
	ts := creds.TokenSource
	if sa := cfg.ImpersonateServiceAccount; sa != "" {
		ts, err = impersonate.CredentialsTokenSource(ctx, impersonate.CredentialsConfig{TargetPrincipal: sa, Scopes: []string{scope}}, option.WithTokenSource(ts))
		if err != nil {
			return nil, "", fmt.Errorf("gcp.impersonate_service_account: %w", err)
		}
	}
	return ts, creds.ProjectID, nil
}

// CheckCredentials gets a token once, so that credentials that do not
// work fail at plan time rather than at the first call.
func (c *Clients) CheckCredentials(ctx context.Context) error {
	if c.tokens == nil {
		return nil
	}
	if _, err := c.tokens.Token(); err != nil {
		return fmt.Errorf("the Google credentials do not give a token (for impersonation, the caller needs roles/iam.serviceAccountTokenCreator on the service account): %w", err)
	}
	return nil
}

// Close releases the clients' connections.
func (c *Clients) Close() error {
	return errors.Join(c.Groups.Close(), c.Templates.Close(), c.Instances.Close(), c.RegionOps.Close(), c.GlobalOps.Close())
}

// limiters: one bucket per project in the process, whatever the number of
// clients (the provider makes one per configuration); the first sets it.
var limiters sync.Map

func limiterFor(project string, perSecond float64) *rate.Limiter {
	l, _ := limiters.LoadOrStore(project, rate.NewLimiter(rate.Limit(perSecond), int(2*perSecond)))
	return l.(*rate.Limiter)
}

// limited takes a token before every attempt: Google counts attempts.
type limited struct {
	next http.RoundTripper
	l    *rate.Limiter
}

func (t *limited) RoundTrip(r *http.Request) (*http.Response, error) {
	if err := t.l.Wait(r.Context()); err != nil {
		return nil, transient{fmt.Errorf("waiting for the client-side Compute Engine rate limit: %w", err)}
	}
	return t.next.RoundTrip(r)
}

// transient marks an error that only means "not now" (platform.Transient).
type transient struct{ error }

func (transient) Transient() bool { return true }
func (e transient) Unwrap() error { return e.error }

// retryCode says why err is worth another attempt ("" when it is not):
// 429, 503 and the other 5xx but 501, the rate-limit reasons Compute
// Engine gives with a 403, and transport failures. Every mutating call
// carries a requestId, so retrying one cannot act twice.
func retryCode(err error) string {
	var ge *googleapi.Error
	if errors.As(err, &ge) {
		if ge.Code == http.StatusTooManyRequests || ge.Code >= 500 && ge.Code != http.StatusNotImplemented {
			return fmt.Sprint(ge.Code)
		}
		for _, e := range ge.Errors {
			if e.Reason == "rateLimitExceeded" || e.Reason == "userRateLimitExceeded" {
				return e.Reason
			}
		}
		return ""
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	var ue *url.Error
	if errors.As(err, &ue) || errors.As(err, &ne) {
		return "connection"
	}
	return ""
}

// retryer is gax's Retryer for one call.
type retryer struct {
	c  *Clients
	op string
	n  int
}

func (r *retryer) Retry(err error) (time.Duration, bool) {
	code := retryCode(err)
	if code == "" || r.n+1 >= r.c.limits.Attempts {
		return 0, false
	}
	r.n++
	if r.c.metrics != nil {
		r.c.metrics.Retries.WithLabelValues(r.op, code).Inc()
	}
	ceiling := r.c.limits.MaxDelay
	if r.n < 32 {
		ceiling = min(ceiling, r.c.limits.BaseDelay<<(r.n-1))
	}
	return time.Duration(rand.Int64N(int64(ceiling) + 1)), true
}

// APIError is a failed call: which one, and Google's answer. It wraps
// platform.ErrNotFound for a 404 and platform.ErrExists for a 409, and is
// transient when Google only said "not now" (throttling, unavailable).
type APIError struct {
	Op  string
	Err error
}

func (e *APIError) Error() string   { return e.Op + ": " + e.Err.Error() }
func (e *APIError) Transient() bool { return retryCode(e.Err) != "" || platform.IsTransient(e.Err) }
func (e *APIError) Unwrap() []error {
	var ge *googleapi.Error
	if errors.As(e.Err, &ge) && ge.Code == http.StatusNotFound {
		return []error{e.Err, platform.ErrNotFound}
	}
	if errors.As(e.Err, &ge) && ge.Code == http.StatusConflict {
		return []error{e.Err, platform.ErrExists}
	}
	return []error{e.Err}
}

// do runs one call (for a listing, all its pages) within the operation
// deadline, retried as above; op names it in errors and in the metric.
func (c *Clients) do(ctx context.Context, op string, f func(context.Context, gax.CallOption) error) error {
	ctx, cancel := context.WithTimeout(ctx, c.limits.Call)
	defer cancel()
	if err := f(ctx, gax.WithRetry(func() gax.Retryer { return &retryer{c: c, op: op} })); err != nil {
		return &APIError{Op: op, Err: err}
	}
	return nil
}

// mutate runs a mutating call and waits until its operation is DONE,
// which Compute Engine sets once the action is scheduled (a resize) or
// carried out (an insert, a delete), not when the instances exist.
func (c *Clients) mutate(ctx context.Context, op string, f func(context.Context, gax.CallOption) (*compute.Operation, error)) error {
	var o *computepb.Operation
	if err := c.do(ctx, op, func(ctx context.Context, r gax.CallOption) error {
		res, err := f(ctx, r)
		if err == nil {
			o = res.Proto()
		}
		return err
	}); err != nil {
		return err
	}
	for o.GetStatus() != computepb.Operation_DONE {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: waiting for operation %s: %w", op, o.GetName(), ctx.Err())
		case <-time.After(time.Second):
		}
		err := c.do(ctx, op+" (operation)", func(ctx context.Context, r gax.CallOption) (err error) {
			if o.GetRegion() == "" {
				o, err = c.GlobalOps.Get(ctx, &computepb.GetGlobalOperationRequest{Project: c.Project, Operation: o.GetName()}, r)
			} else {
				o, err = c.RegionOps.Get(ctx, &computepb.GetRegionOperationRequest{Project: c.Project, Region: c.Region, Operation: o.GetName()}, r)
			}
			return err
		})
		if err != nil {
			return err
		}
	}
	if errs := o.GetError().GetErrors(); len(errs) > 0 {
		return &APIError{Op: op, Err: &googleapi.Error{Code: int(o.GetHttpErrorStatusCode()), Message: errs[0].GetCode() + ": " + errs[0].GetMessage()}}
	}
	return nil
}

// requestID is a new random (version 4) UUID: the requestId of one
// logical mutating call, the same on each of its retries, so that Google
// carries it out once.
func requestID() *string {
	var b [16]byte
	_, _ = crand.Read(b[:])
	b[6], b[8] = b[6]&0x0f|0x40, b[8]&0x3f|0x80
	s := fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
	return &s
}
