package policy

import (
	"slices"
	"testing"
)

// The selectors of a query are every series it reads, instant, in a range
// or in a subquery, each once, without offsets or @: what the agent asks
// Prometheus the freshness of.
func TestQuerySelectors(t *testing.T) {
	cases := []struct {
		query string
		want  []string
	}{
		{"app_load", []string{"app_load"}},
		{"avg(rate(app_requests_total[1m]))", []string{"app_requests_total"}},
		{`sum(rate(http_requests_total{job="web",code=~"5.."}[5m])) / sum(rate(http_requests_total{job="web"}[5m]))`,
			[]string{`http_requests_total{code=~"5..",job="web"}`, `http_requests_total{job="web"}`}},
		{"app_load - app_load offset 1h", []string{"app_load"}},
		{"max_over_time(avg(app_load @ 1700000000)[10m:1m])", []string{"app_load"}},
		{`{__name__="app_load",job="a"} * on() group_left() queue_depth`, []string{`{__name__="app_load",job="a"}`, "queue_depth"}},
		{"scalar(app_load) + 1", []string{"app_load"}},
		{"vector(1)", nil},
		{"time()", nil},
	}
	for _, c := range cases {
		got, err := QuerySelectors(c.query)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("QuerySelectors(%q) = %q, %v; want %q", c.query, got, err, c.want)
		}
	}
	for _, bad := range []string{"avg(rate(x[1m]", "rate(x)", "x[1m]", `"a string"`, "sum by (", "x +"} {
		if _, err := QuerySelectors(bad); err == nil {
			t.Errorf("QuerySelectors(%q) accepted it", bad)
		}
	}
}
