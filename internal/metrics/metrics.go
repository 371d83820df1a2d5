// Package metrics queries Prometheus for the agent's scaling checks and
// decides whether a result can be trusted. An empty result, NaN or ±Inf, a
// sample older than the allowed age, or an unreachable Prometheus is
// reported as untrusted, never as a number: the decision core holds on it.
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
)

// Sample is one check's reading.
type Sample struct {
	Value float64
	// Time is the timestamp of the newest sample the query used.
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

// LastSampleTime finds the newest raw sample time behind a query's series,
// so a frozen exporter (whose last value Prometheus keeps returning for
// the staleness window) is detected: the query's own timestamp is the
// evaluation time, not the scrape time.
func (c *Client) LastSampleTime(ctx context.Context, address, query string, now time.Time) (time.Time, error) {
	a, err := c.api(address)
	if err != nil {
		return time.Time{}, err
	}
	qctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	val, _, err := a.Query(qctx, fmt.Sprintf("max(timestamp(%s))", query), now)
	if err != nil {
		return time.Time{}, errors.New(describe(address, err))
	}
	v, ok := val.(model.Vector)
	if !ok || len(v) == 0 {
		return time.Time{}, nil
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
