package policy

import (
	"fmt"

	"github.com/prometheus/prometheus/promql/parser"
)

// promql is the PromQL parser every check's query goes through, at plan
// time (the provider validates the policy) and in the agent (which
// validates the same policy and asks for the freshness of the series the
// query reads). It is Prometheus's own parser, so a query refused here is
// one Prometheus would refuse too. Every optional syntax is on: the server
// the agent asks may have enabled experimental functions, and refusing a
// query that server accepts would be worse than letting the server be the
// judge of a feature it does not have (the check then reports the server's
// error and holds the pool).
var promql = parser.NewParser(parser.Options{
	EnableExperimentalFunctions:  true,
	ExperimentalDurationExpr:     true,
	EnableExtendedRangeSelectors: true,
	EnableBinopFillModifiers:     true,
})

// ValidateQuery parses the check's query alone, with the error Validate
// gives for it (".query: check <name>: ..."; the caller puts the check's
// position in front). The provider calls it for a query known at plan time
// while other values of the policy are not yet, so a query that does not
// parse is refused by terraform plan whatever else waits for apply.
func (c PrometheusCheck) ValidateQuery() error {
	if _, err := QuerySelectors(c.Query); err != nil {
		return fmt.Errorf(".query: check %q: %w", c.Name, err)
	}
	return nil
}

// QuerySelectors parses a check's query and returns the series selectors
// it reads, in the order they first appear, each once: every instant
// selector and the selector inside every range selector and subquery, as
// `name{matchers}`. Offsets and @ modifiers are dropped: they say which
// past samples the query reads, while the question a selector answers for
// the agent is whether its series are still being written now.
//
// A query must evaluate to an instant vector or a scalar (the agent reads
// one number from it); a range vector or a string is refused here rather
// than at the first evaluation.
func QuerySelectors(query string) ([]string, error) {
	expr, err := promql.ParseExpr(query)
	if err != nil {
		return nil, fmt.Errorf("%q is not valid PromQL: %w", query, err)
	}
	switch t := expr.Type(); t {
	case parser.ValueTypeVector, parser.ValueTypeScalar:
	default:
		return nil, fmt.Errorf("%q returns a %s: use an expression that returns an instant vector or a scalar, such as avg(rate(x[1m]))", query, parser.DocumentedType(t))
	}
	var sels []string
	seen := map[string]bool{}
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		s := (&parser.VectorSelector{Name: vs.Name, LabelMatchers: vs.LabelMatchers}).String()
		if !seen[s] {
			seen[s] = true
			sels = append(sels, s)
		}
		return nil
	})
	return sels, nil
}
