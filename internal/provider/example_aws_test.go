package provider

import (
	"os"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// exampleRefs maps "<type>.<name>.<attribute path>" of every attribute in
// a Terraform file to the resource and data source addresses its value
// refers to ("aws_iam_role.managers", "data.autarky_aws_agent_policy.this.json").
func exampleRefs(t *testing.T, file string) map[string][]string {
	t.Helper()
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	f, diags := hclsyntax.ParseConfig(src, file, hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatalf("%s: %v", file, diags)
	}
	refs := map[string][]string{}
	var walk func(prefix string, b *hclsyntax.Body)
	walk = func(prefix string, b *hclsyntax.Body) {
		for name, a := range b.Attributes {
			for _, tr := range a.Expr.Variables() {
				var parts []string
				parts = append(parts, tr.RootName())
				for _, step := range tr[1:] {
					if s, ok := step.(hcl.TraverseAttr); ok {
						parts = append(parts, s.Name)
					}
				}
				refs[prefix+name] = append(refs[prefix+name], strings.Join(parts, "."))
			}
		}
		for _, blk := range b.Blocks {
			p := prefix
			switch {
			case prefix == "" && blk.Type == "data" && len(blk.Labels) == 2:
				p = "data." + blk.Labels[0] + "." + blk.Labels[1] + "."
			case prefix == "" && len(blk.Labels) == 2:
				p = blk.Labels[0] + "." + blk.Labels[1] + "."
			default:
				p += blk.Type + "."
			}
			walk(p, blk.Body)
		}
	}
	walk("", f.Body.(*hclsyntax.Body))
	return refs
}

// roleOf follows an instance profile reference of the example to the
// policy its role holds: the data source attribute the role's
// aws_iam_role_policy renders.
func roleOf(t *testing.T, refs map[string][]string, attr string) (profile, policy string) {
	t.Helper()
	one := func(key, prefix string) string {
		for _, r := range refs[key] {
			if strings.HasPrefix(r, prefix) {
				return r
			}
		}
		t.Fatalf("examples/aws: %s refers to no %s (it refers to %v)", key, strings.TrimSuffix(prefix, "."), refs[key])
		return ""
	}
	profile = one(attr, "aws_iam_instance_profile.")
	profileAddr := strings.Join(strings.Split(profile, ".")[:2], ".")
	role := one(profileAddr+".role", "aws_iam_role.")
	roleAddr := strings.Join(strings.Split(role, ".")[:2], ".")
	for key, rs := range refs {
		if !strings.HasPrefix(key, "aws_iam_role_policy.") || !strings.HasSuffix(key, ".role") {
			continue
		}
		for _, r := range rs {
			if strings.HasPrefix(r, roleAddr+".") {
				return profileAddr, one(strings.TrimSuffix(key, ".role")+".policy", "data.autarky_aws_agent_policy.")
			}
		}
	}
	t.Fatalf("examples/aws: no aws_iam_role_policy gives %s (the role of %s) a policy", roleAddr, profileAddr)
	return "", ""
}

// examples/aws gives the managers and the workers their own instance
// profiles: the cluster's (the managers') holds the data source's json,
// every pool's its worker_json, and no pool shares the managers'.
func TestExampleAWSSeparatesManagersAndWorkers(t *testing.T) {
	refs := exampleRefs(t, "../../examples/aws/main.tf")
	mgrProfile, mgrPolicy := roleOf(t, refs, "autarky_cluster.prod.aws.instance_profile")
	if !strings.HasSuffix(mgrPolicy, ".json") || strings.HasSuffix(mgrPolicy, ".worker_json") {
		t.Errorf("the managers' role holds %s, want the data source's json", mgrPolicy)
	}
	pools := 0
	for key := range refs {
		if !strings.HasPrefix(key, "autarky_node_pool.") || !strings.HasSuffix(key, ".cluster_id") {
			continue
		}
		pools++
		pool := strings.TrimSuffix(key, ".cluster_id")
		profile, policy := roleOf(t, refs, pool+".aws.instance_profile")
		if profile == mgrProfile {
			t.Errorf("%s boots with the managers' instance profile %s", pool, profile)
		}
		if !strings.HasSuffix(policy, ".worker_json") {
			t.Errorf("the role of %s holds %s, want the data source's worker_json", pool, policy)
		}
	}
	if pools == 0 {
		t.Fatal("examples/aws declares no node pool")
	}
}
