package provider

import (
	"context"
	"fmt"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/types"
)

// mapFromModel turns a Terraform map of strings into a Go map; null and
// empty both become nil.
func mapFromModel(ctx context.Context, m types.Map) (map[string]string, error) {
	if m.IsNull() || m.IsUnknown() || len(m.Elements()) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	if diags := m.ElementsAs(ctx, &out, false); diags.HasError() {
		return nil, fmt.Errorf("%v", diags)
	}
	return out, nil
}

// mapToModel turns a Go map into a Terraform map. Empty becomes null, which
// is what a configuration without the attribute holds, unless prior holds an
// empty map (the configuration says `{}`).
func mapToModel(ctx context.Context, m map[string]string, prior types.Map) (types.Map, error) {
	if len(m) == 0 {
		if !prior.IsNull() && !prior.IsUnknown() && len(prior.Elements()) == 0 {
			return prior, nil
		}
		return types.MapNull(types.StringType), nil
	}
	v, diags := types.MapValueFrom(ctx, types.StringType, m)
	if diags.HasError() {
		return v, fmt.Errorf("%v", diags)
	}
	return v, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// listFromModel turns a Terraform list of strings into a Go slice; null
// and empty both become nil.
func listFromModel(ctx context.Context, l types.List) ([]string, error) {
	if l.IsNull() || l.IsUnknown() || len(l.Elements()) == 0 {
		return nil, nil
	}
	var out []string
	if diags := l.ElementsAs(ctx, &out, false); diags.HasError() {
		return nil, fmt.Errorf("%v", diags)
	}
	return out, nil
}

// listToModel turns a Go slice into a Terraform list; empty becomes null
// unless prior holds an empty list.
func listToModel(ctx context.Context, s []string, prior types.List) (types.List, error) {
	if len(s) == 0 {
		if !prior.IsNull() && !prior.IsUnknown() && len(prior.Elements()) == 0 {
			return prior, nil
		}
		return types.ListNull(types.StringType), nil
	}
	v, diags := types.ListValueFrom(ctx, types.StringType, s)
	if diags.HasError() {
		return v, fmt.Errorf("%v", diags)
	}
	return v, nil
}

// optionalString is null for "", the value otherwise.
func optionalString(s string) types.String {
	if s == "" {
		return types.StringNull()
	}
	return types.StringValue(s)
}

// allNull reports whether every value is null (an absent block's attributes).
func allNull(vs ...attr.Value) bool {
	for _, v := range vs {
		if !v.IsNull() {
			return false
		}
	}
	return true
}
