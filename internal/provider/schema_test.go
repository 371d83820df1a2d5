package provider

import (
	"context"
	"testing"

	fwresource "github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
)

func schemaOf(t *testing.T, r fwresource.Resource) schema.Schema {
	t.Helper()
	var resp fwresource.SchemaResponse
	r.Schema(context.Background(), fwresource.SchemaRequest{}, &resp)
	if resp.Diagnostics.HasError() {
		t.Fatal(resp.Diagnostics)
	}
	return resp.Schema
}

// Every attribute of every resource says what it is, in a sentence.
func TestSchemasAreDescribed(t *testing.T) {
	for _, r := range []fwresource.Resource{newClusterResource(), newNodePoolResource(), newHealingPolicyResource(), newScalingPolicyResource()} {
		s := schemaOf(t, r)
		if d := s.ValidateImplementation(context.Background()); d.HasError() {
			t.Errorf("schema: %v", d)
		}
		for name, a := range s.Attributes {
			if len(a.GetMarkdownDescription()) < 20 {
				t.Errorf("attribute %s has no real description", name)
			}
		}
	}
}
