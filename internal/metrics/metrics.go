// Package metrics queries Prometheus for the agent's scaling checks and
// decides whether a result can be trusted. An empty result, NaN or ±Inf, a
// sample whose inputs are older than the allowed age, a failed freshness
// check, or an unreachable Prometheus is reported as untrusted, never as a
// number: the decision core holds on it.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

// Sample is one check's reading.
type Sample struct {
	Value float64
	// Time is when the sample's data was written: after Check, the oldest
	// of the newest raw sample times of the series the query reads; after
	// Query alone, Prometheus's timestamp of the result (the evaluation
	// time for anything but a bare selector).
	Time time.Time
	// Empty is true when the query returned no series.
	Empty bool
	// Err says why the reading failed: unreachable, rejected query, more
	// than one series. Empty when the query answered.
	Err string
}

// Trusted reports whether the sample may drive a scaling decision: it
// answered with one finite value no older than maxAge at now.
func (s Sample) Trusted(now time.Time, maxAge time.Duration) (bool, string) {
	switch {
	case s.Err != "":
		return false, s.Err
	case s.Empty:
		return false, "the query returned no series"
	case math.IsNaN(s.Value) || math.IsInf(s.Value, 0):
		return false, fmt.Sprintf("the query returned %v", s.Value)
	case now.Sub(s.Time) > maxAge:
		return false, fmt.Sprintf("the newest sample is %s old, more than %s", now.Sub(s.Time).Round(time.Second), maxAge)
	}
	return true, ""
}

// Client queries Prometheus servers, one API client per address.
type Client struct {
	timeout time.Duration
	apis    map[string]v1.API
}

// NewClient returns a client whose queries time out after timeout.
func NewClient(timeout time.Duration) *Client {
	return &Client{timeout: timeout, apis: map[string]v1.API{}}
}

// ValidateAddress accepts http and https URLs.
func ValidateAddress(address string) error {
	u, err := url.Parse(address)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not a Prometheus address: use http://host:port", address)
	}
	return nil
}

func (c *Client) api(address string) (v1.API, error) {
	if a, ok := c.apis[address]; ok {
		return a, nil
	}
	if err := ValidateAddress(address); err != nil {
		return nil, err
	}
	cl, err := api.NewClient(api.Config{Address: address})
	if err != nil {
		return nil, err
	}
	a := v1.NewAPI(cl)
	c.apis[address] = a
	return a, nil
}

// Query runs an instant query and reduces it to one sample. A query must
// return exactly one series (or a scalar): several would make the value
// ambiguous, so they are an error the user has to fix in the query.
func (c *Client) Query(ctx context.Context, address, query string, now time.Time) Sample {
	a, err := c.api(address)
	if err != nil {
		return Sample{Err: err.Error()}
	}
	qctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	val, _, err := a.Query(qctx, query, now)
	if err != nil {
		return Sample{Err: describe(address, err)}
	}
	switch v := val.(type) {
	case model.Vector:
		if len(v) == 0 {
			return Sample{Empty: true}
		}
		if len(v) > 1 {
			return Sample{Err: fmt.Sprintf("the query returned %d series: aggregate it to one (for example with avg() or sum())", len(v))}
		}
		return Sample{Value: float64(v[0].Value), Time: v[0].Timestamp.Time()}
	case *model.Scalar:
		return Sample{Value: float64(v.Value), Time: v.Timestamp.Time()}
	default:
		return Sample{Err: fmt.Sprintf("the query returned a %s: use an instant vector or a scalar", val.Type())}
	}
}

// Check runs a check's query and finds how fresh its inputs are: the
// sample's Time is the oldest of the newest raw sample times of the series
// selectors the query reads (LastSampleTime), so every input must be fresh
// for the sample to be. The query's own timestamp is only the evaluation
// time: for avg(rate(x[1m])) Prometheus keeps answering for a minute after
// x's exporter stopped. A freshness check that fails (Prometheus errs, a
// selector has no sample in the window) makes the sample untrusted with
// that reason; it is never skipped. maxAge is the oldest sample the caller
// trusts; the window asked for is wider (freshnessWindow), so a stale
// input shows with its age.
func (c *Client) Check(ctx context.Context, address, query string, now time.Time, maxAge time.Duration) Sample {
	s := c.Query(ctx, address, query, now)
	if s.Err != "" || s.Empty {
		return s
	}
	last, err := c.LastSampleTime(ctx, address, query, now, freshnessWindow(maxAge))
	switch {
	case err != nil:
		s.Err = "the freshness check of the query's series failed: " + err.Error()
	case !last.IsZero() && last.Before(s.Time):
		s.Time = last
	}
	return s
}

// freshnessWindow is how far back LastSampleTime looks for a selector's
// newest sample: three times the allowed age, at least a minute, so an
// input that is stale shows how old it is rather than only that it is
// older than allowed.
func freshnessWindow(maxAge time.Duration) time.Duration {
	return max(time.Minute, 3*maxAge)
}

// LastSampleTime finds how fresh the raw series behind a query are. It
// parses the query with Prometheus's parser (policy.QuerySelectors), asks
// for the newest raw sample time of each series selector within window,
// and returns the oldest of those: the query is only as fresh as its
// stalest input. It returns the zero time and no error for a query that
// reads no series (vector(1), time()): nothing of it can go stale.
//
// A selector with no sample within window, or any failed request, is an
// error naming the selector: the caller cannot tell the data is fresh.
func (c *Client) LastSampleTime(ctx context.Context, address, query string, now time.Time, window time.Duration) (time.Time, error) {
	sels, err := policy.QuerySelectors(query)
	if err != nil {
		return time.Time{}, err
	}
	a, err := c.api(address)
	if err != nil {
		return time.Time{}, err
	}
	var oldest time.Time
	for _, sel := range sels {
		t, err := c.newestSample(ctx, a, address, sel, now, window)
		if err != nil {
			return time.Time{}, err
		}
		if oldest.IsZero() || t.Before(oldest) {
			oldest = t
		}
	}
	return oldest, nil
}

// newestSample asks for the newest raw sample time of a selector's series.
//
// timestamp() of an instant selector is the sample's own time (Prometheus
// special-cases it), but a selector whose target stopped answering holds a
// staleness marker and returns nothing, even though rate(sel[1m]) still
// answers from the samples before it. So the live case is answered exactly
// by max(timestamp(sel)), and the stopped case by the newest real sample
// seen at any step of a subquery over the window, with a resolution of a
// sixtieth of it (at least 1s): a step after the marker sees nothing, a
// step before it sees a real sample's own time. timestamp() of any other
// expression (last_over_time(sel[w]), say) would be the evaluation time,
// which is what the old max(timestamp(query)) check measured.
func (c *Client) newestSample(ctx context.Context, a v1.API, address, sel string, now time.Time, window time.Duration) (time.Time, error) {
	res := max(time.Second, (window / 60).Truncate(time.Second))
	q := fmt.Sprintf("max(timestamp(%s)) or max(max_over_time(timestamp(%s)[%s:%s]))", sel, sel, model.Duration(window), model.Duration(res))
	qctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	val, _, err := a.Query(qctx, q, now)
	if err != nil {
		return time.Time{}, fmt.Errorf("asking for the newest sample of %s: %s", sel, describe(address, err))
	}
	v, ok := val.(model.Vector)
	if !ok {
		return time.Time{}, fmt.Errorf("asking for the newest sample of %s: Prometheus at %s answered a %s", sel, address, val.Type())
	}
	if len(v) == 0 {
		return time.Time{}, fmt.Errorf("%s has no sample in the last %s: its exporter stopped, or the series is gone", sel, window)
	}
	sec := float64(v[0].Value)
	return time.Unix(0, int64(sec*float64(time.Second))), nil
}

func describe(address string, err error) string {
	var perr *v1.Error
	if errors.As(err, &perr) && perr.Type == v1.ErrBadData {
		return fmt.Sprintf("Prometheus at %s rejected the query: %s", address, perr.Msg)
	}
	s := err.Error()
	if strings.Contains(s, "connection refused") || strings.Contains(s, "no such host") || strings.Contains(s, "deadline exceeded") {
		return fmt.Sprintf("Prometheus at %s is unreachable: %s", address, s)
	}
	return fmt.Sprintf("Prometheus at %s: %s", address, s)
}
