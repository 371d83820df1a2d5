package aws

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	awsv2 "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/autarky/terraform-provider-autarky/internal/testenv"
)

// accountConfig is a client configuration for moto whose credentials
// name their account, as SSO or process credentials do.
func accountConfig(endpoint, account, region string) awsv2.Config {
	return awsv2.Config{
		Region:       region,
		BaseEndpoint: awsv2.String(endpoint),
		Credentials: awsv2.CredentialsProviderFunc(func(context.Context) (awsv2.Credentials, error) {
			return awsv2.Credentials{AccessKeyID: "testing", SecretAccessKey: "testing", AccountID: account, Source: "test"}, nil
		}),
	}
}

// describeAll makes n DescribeAutoScalingGroups calls on each client at
// once and returns how long they took together.
func describeAll(t *testing.T, n int, clients ...*Clients) time.Duration {
	t.Helper()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, n*len(clients))
	for _, c := range clients {
		wg.Add(1)
		go func(c *Clients) {
			defer wg.Done()
			for i := 0; i < n; i++ {
				if _, err := c.AutoScaling.DescribeAutoScalingGroups(context.Background(), &autoscaling.DescribeAutoScalingGroupsInput{}); err != nil {
					errs <- err
				}
			}
		}(c)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return time.Since(start)
}

// Clients of one account and region share one token bucket per service,
// however many are made; another account or another region has its own.
// At 4 calls a second with a burst of 1, eight calls through two clients
// of one account take at least 7/4 s; the same eight calls split between
// two accounts, or two regions, take about 3/4 s.
func TestRateLimiterSharedPerAccountAndRegion(t *testing.T) {
	moto := testenv.StartMoto(t)
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	// Account ids of their own, so no other test shares these buckets.
	acctA, acctB := "100000000001", "100000000002"
	c := Config{Rates: RateLimits{AutoScaling: Rate{PerSecond: 4, Burst: 1}}, Retry: fastRetry}
	a1 := NewClients(accountConfig(moto, acctA, testRegion), c, m)
	a2 := NewClients(accountConfig(moto, acctA, testRegion), c, m)

	shared := describeAll(t, 4, a1, a2)
	if shared < 1700*time.Millisecond {
		t.Fatalf("8 calls through two clients of one account took %s: want at least 1.75s at 4/s (the clients do not share a bucket, or it does not limit)", shared)
	}
	waited := testutil.ToFloat64(m.RateWait.WithLabelValues(serviceAutoScaling))
	if waited < 1 {
		t.Errorf("autarky_aws_rate_limit_wait_seconds_total{service=autoscaling} = %g, want at least 1 s", waited)
	}

	b := NewClients(accountConfig(moto, acctB, testRegion), c, m)
	a3 := NewClients(accountConfig(moto, acctA, "eu-west-1"), c, m)
	// acctA/us-east-1's bucket is empty now; these two have full ones.
	apart := describeAll(t, 4, b, a3)
	if apart > 1400*time.Millisecond {
		t.Fatalf("4 calls each on another account and another region took %s together: want about 0.75s (they share a bucket with each other or with the first account)", apart)
	}
	t.Logf("8 calls: %s sharing one account's bucket, %s split over two buckets", shared.Round(time.Millisecond), apart.Round(time.Millisecond))

	// Waiting respects the caller's context: a wait longer than what is
	// left fails at once, as "not now".
	slow := NewClients(accountConfig(moto, "100000000003", testRegion), Config{Rates: RateLimits{AutoScaling: Rate{PerSecond: 0.1, Burst: 1}}, Retry: fastRetry}, m)
	describeAll(t, 1, slow)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = slow.AutoScaling.DescribeAutoScalingGroups(ctx, &autoscaling.DescribeAutoScalingGroupsInput{})
	var limited *RateLimitError
	if !errors.As(err, &limited) || !IsTransient(err) {
		t.Fatalf("a call the limiter holds past its context: %v (want a transient *RateLimitError)", err)
	}
	if d := time.Since(start); d > 300*time.Millisecond {
		t.Fatalf("the limiter held a call %s past its context's deadline of 200ms", d)
	}
}

// A hung endpoint ends every call at its deadline: each attempt is cut at
// the attempt deadline and retried, and the operation ends at its own,
// with an error naming the operation and the last attempt's failure, not
// taken for throttling. A throttled call cut by the operation deadline
// stays transient.
func TestAWSCallDeadlines(t *testing.T) {
	p := newProxy(t, testenv.StartMoto(t))
	c := NewClients(testConfig(p.URL), Config{
		Retry:     RetryConfig{MaxAttempts: 20, BaseDelay: 10 * time.Millisecond, MaxDelay: 50 * time.Millisecond},
		Deadlines: Deadlines{Attempt: 300 * time.Millisecond, Operation: 1500 * time.Millisecond},
	}, nil)
	// moto loads a service's backend at its first call, which can take
	// longer than the short attempt deadline here.
	if _, err := NewClients(testConfig(p.URL), Config{}, nil).AutoScaling.DescribeAutoScalingGroups(context.Background(), &autoscaling.DescribeAutoScalingGroupsInput{}); err != nil {
		t.Fatal(err)
	}
	p.Reset()
	p.SetFault(func(c call) *fault {
		if c.Action == "DescribeAutoScalingGroups" {
			return &fault{Hang: true}
		}
		return nil
	})
	start := time.Now()
	_, err := c.AutoScaling.DescribeAutoScalingGroups(context.Background(), &autoscaling.DescribeAutoScalingGroupsInput{})
	took := time.Since(start)
	var de *OperationDeadlineError
	if !errors.As(err, &de) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a hung DescribeAutoScalingGroups: %v (want an *OperationDeadlineError)", err)
	}
	if took < 1400*time.Millisecond || took > 3*time.Second {
		t.Fatalf("a hung call ended after %s: want its operation deadline, 1.5s", took)
	}
	if IsTransient(err) {
		t.Fatalf("a hung endpoint reads as transient: %v", err)
	}
	if de.Operation != "DescribeAutoScalingGroups" || de.Last == nil {
		t.Fatalf("the error does not name the operation and its last attempt: %+v", de)
	}
	if n := p.Calls("DescribeAutoScalingGroups"); n < 3 {
		t.Fatalf("%d attempts: want each cut at 300ms and retried", n)
	}
	t.Logf("hung: %v after %s, %d attempts", err, took.Round(time.Millisecond), p.Calls("DescribeAutoScalingGroups"))

	// Throttled for longer than the operation deadline: still "not now".
	p.SetFault(func(c call) *fault {
		if c.Action == "DescribeAutoScalingGroups" {
			f := apiError(c, CodeThrottling, "Rate exceeded")
			f.Delay = 200 * time.Millisecond
			return f
		}
		return nil
	})
	_, err = c.AutoScaling.DescribeAutoScalingGroups(context.Background(), &autoscaling.DescribeAutoScalingGroupsInput{})
	if !errors.As(err, &de) || !IsTransient(err) {
		t.Fatalf("throttled past the operation deadline: %v (want a transient *OperationDeadlineError)", err)
	}

	// The endpoint answers again: so do the calls.
	p.SetFault(nil)
	if _, err := c.AutoScaling.DescribeAutoScalingGroups(context.Background(), &autoscaling.DescribeAutoScalingGroupsInput{}); err != nil {
		t.Fatal(err)
	}
}
