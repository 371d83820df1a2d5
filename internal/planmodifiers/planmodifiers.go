// Package planmodifiers holds the provider's plan modifiers.
package planmodifiers

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/tfsdk"
)

// StateUnlessChanged reports whether a computed attribute can keep its prior
// state value: true when the resource exists and none of the attributes in
// paths changes in the plan. Attributes derived from those (addresses, node
// ids) are otherwise left unknown until apply.
func StateUnlessChanged(ctx context.Context, state tfsdk.State, plan tfsdk.Plan, paths ...path.Path) bool {
	if state.Raw.IsNull() || plan.Raw.IsNull() {
		return false
	}
	for _, p := range paths {
		var before, after attr.Value
		if d := state.GetAttribute(ctx, p, &before); d.HasError() {
			return false
		}
		if d := plan.GetAttribute(ctx, p, &after); d.HasError() {
			return false
		}
		if before == nil || after == nil || after.IsUnknown() || !before.Equal(after) {
			return false
		}
	}
	return true
}
