// Package validators holds the plan-time attribute validators of the
// provider. Each defers to package policy, so the provider refuses at plan
// time exactly what the agent would refuse at run time.
package validators

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/schema/validator"

	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

type stringCheck struct {
	desc  string
	check func(string) error
}

func (v stringCheck) Description(context.Context) string         { return v.desc }
func (v stringCheck) MarkdownDescription(context.Context) string { return v.desc }

func (v stringCheck) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	if err := v.check(req.ConfigValue.ValueString()); err != nil {
		resp.Diagnostics.AddAttributeError(req.Path, "invalid "+req.Path.String(), fmt.Sprintf("%s: %s", req.Path, err))
	}
}

// Name accepts DNS labels.
func Name() validator.String {
	return stringCheck{desc: "must be a DNS label", check: policy.ValidateName}
}

// PoolName accepts DNS labels other than the reserved manager pool name.
func PoolName() validator.String {
	return stringCheck{desc: "must be a DNS label other than \"managers\"", check: policy.ValidatePoolName}
}

// Platform accepts the platforms this build supports.
func Platform() validator.String {
	return stringCheck{desc: "must be a supported platform", check: policy.ValidatePlatform}
}

// Role accepts the roles a declared node pool can have.
func Role() validator.String {
	return stringCheck{desc: "must be \"worker\"", check: policy.ValidateRole}
}

// Duration accepts Go durations of at least min.
func Duration(min time.Duration) validator.String {
	return stringCheck{
		desc: fmt.Sprintf("must be a duration such as \"30s\" or \"5m\", at least %s", min),
		check: func(s string) error {
			d, err := policy.ParseDuration(s)
			if err != nil {
				return err
			}
			if d < min {
				return fmt.Errorf("%q is too short: use at least %s", s, min)
			}
			return nil
		},
	}
}

type int64Check struct {
	desc  string
	check func(int64) error
}

func (v int64Check) Description(context.Context) string         { return v.desc }
func (v int64Check) MarkdownDescription(context.Context) string { return v.desc }

func (v int64Check) ValidateInt64(_ context.Context, req validator.Int64Request, resp *validator.Int64Response) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	if err := v.check(req.ConfigValue.ValueInt64()); err != nil {
		resp.Diagnostics.AddAttributeError(req.Path, "invalid "+req.Path.String(), fmt.Sprintf("%s: %s", req.Path, err))
	}
}

// ManagerCount accepts 1, 3, 5 or 7.
func ManagerCount() validator.Int64 {
	return int64Check{desc: "must be 1, 3, 5 or 7", check: policy.ValidateManagerCount}
}

// EvaluationInterval accepts an agent's evaluation interval.
func EvaluationInterval() validator.String {
	return stringCheck{desc: "must be a duration from 100ms to 1h", check: func(s string) error {
		_, err := policy.ParseEvaluationInterval(s)
		return err
	}}
}

// Check accepts what check accepts; desc says what that is.
func Check(desc string, check func(string) error) validator.String {
	return stringCheck{desc: desc, check: check}
}
