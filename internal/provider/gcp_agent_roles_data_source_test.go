package provider

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	dsschema "github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/autarky/terraform-provider-autarky/internal/platform/gcp"
)

// gcpRolesCheck checks a rendered list of roles for project, cluster and
// bucket: every role a custom role of the project with sorted permissions
// and no wildcard; Cloud Storage only on the bucket and only with a
// condition naming the cluster's objects (the workers': the worker token
// and nothing else); a mutating Compute permission only with a condition
// on the cluster's groups; and the permissions exactly want.
func gcpRolesCheck(project, cluster, bucket string, workers bool, want []string) func(string) error {
	return func(doc string) error {
		dec := json.NewDecoder(strings.NewReader(doc))
		dec.DisallowUnknownFields()
		var roles []gcp.CustomRole
		if err := dec.Decode(&roles); err != nil {
			return fmt.Errorf("not a list of roles: %v\n%s", err, doc)
		}
		objects := "projects/_/buckets/" + bucket + "/objects/"
		var all []string
		for _, r := range roles {
			if r.Name != "projects/"+project+"/roles/"+r.RoleID || r.Title == "" || r.Description == "" || len(r.Permissions) == 0 {
				return fmt.Errorf("role %q: not a complete custom role of project %s: %+v", r.RoleID, project, r)
			}
			if !sort.StringsAreSorted(r.Permissions) {
				return fmt.Errorf("role %s: permissions not sorted", r.RoleID)
			}
			for _, p := range r.Permissions {
				all = append(all, p)
				if strings.ContainsAny(p, "*?") {
					return fmt.Errorf("role %s: wildcard %s", r.RoleID, p)
				}
				switch {
				case strings.HasPrefix(p, "storage."):
					if r.Scope != "bucket" || r.Condition == nil {
						return fmt.Errorf("role %s: %s granted on the %s, condition %v", r.RoleID, p, r.Scope, r.Condition)
					}
					wantExpr := `resource.name.startsWith("` + objects + `autarky/` + cluster + `/") || api.getAttribute("storage.googleapis.com/objectListPrefix", "").startsWith("autarky/` + cluster + `/")`
					if workers {
						wantExpr = `resource.name == "` + objects + `autarky/` + cluster + `/tokens/worker"`
					}
					if r.Condition.Expression != wantExpr {
						return fmt.Errorf("role %s: condition\n  %s\nwant\n  %s", r.RoleID, r.Condition.Expression, wantExpr)
					}
				case strings.HasSuffix(p, ".get") || strings.HasSuffix(p, ".list"):
					if r.Scope != "project" {
						return fmt.Errorf("role %s: %s granted on the %s", r.RoleID, p, r.Scope)
					}
				default:
					if workers {
						return fmt.Errorf("role %s: the workers may %s", r.RoleID, p)
					}
					wantExpr := `resource.type == "compute.googleapis.com/InstanceGroupManager" && resource.name.extract("/instanceGroupManagers/{name}").startsWith("` + cluster + `-")`
					if r.Scope != "project" || r.Condition == nil || r.Condition.Expression != wantExpr {
						return fmt.Errorf("role %s: %s not limited to the cluster's groups: %+v", r.RoleID, p, r.Condition)
					}
				}
			}
		}
		sort.Strings(all)
		if strings.Join(all, " ") != strings.Join(want, " ") {
			return fmt.Errorf("permissions\n  %v\nwant\n  %v", all, want)
		}
		return nil
	}
}

var (
	gcpManagerPermissions = []string{"compute.instanceGroupManagers.get", "compute.instanceGroupManagers.list", "compute.instanceGroupManagers.update",
		"compute.instances.get", "compute.instances.list", "compute.regionOperations.get",
		"storage.objects.create", "storage.objects.delete", "storage.objects.get", "storage.objects.list"}
	gcpWorkerPermissions = []string{"compute.instanceGroupManagers.get", "compute.instances.get", "storage.objects.get"}
)

func gcpRolesChecks(addr, project, cluster, bucket string) []resource.TestCheckFunc {
	checks := []resource.TestCheckFunc{
		resource.TestCheckResourceAttrWith(addr, "managers_json", gcpRolesCheck(project, cluster, bucket, false, gcpManagerPermissions)),
		resource.TestCheckResourceAttrWith(addr, "workers_json", gcpRolesCheck(project, cluster, bucket, true, gcpWorkerPermissions)),
		resource.TestCheckResourceAttr(addr, "managers_permissions.#", fmt.Sprint(len(gcpManagerPermissions))),
		resource.TestCheckResourceAttr(addr, "workers_permissions.#", fmt.Sprint(len(gcpWorkerPermissions))),
	}
	for i, p := range gcpManagerPermissions {
		checks = append(checks, resource.TestCheckResourceAttr(addr, fmt.Sprintf("managers_permissions.%d", i), p))
	}
	for i, p := range gcpWorkerPermissions {
		checks = append(checks, resource.TestCheckResourceAttr(addr, fmt.Sprintf("workers_permissions.%d", i), p))
	}
	return checks
}

const gcpRolesConfig = `
data "autarky_gcp_agent_roles" "prod" {
  project      = "my-project"
  cluster_name = "prod"
  bucket       = "autarky-state"
}

data "autarky_gcp_agent_roles" "dotted" {
  project      = "other-project-1"
  cluster_name = "web-1"
  bucket       = "state.example.com"
}

output "worker_roles" {
  value = jsondecode(data.autarky_gcp_agent_roles.prod.workers_json)
}
`

// The rendered roles, through the Terraform CLI, are least privilege for
// their project, cluster and bucket, with no provider configuration and
// with an empty provider block.
func TestAccGCPRoles_render(t *testing.T) {
	checks := append(gcpRolesChecks("data.autarky_gcp_agent_roles.prod", "my-project", "prod", "autarky-state"),
		gcpRolesChecks("data.autarky_gcp_agent_roles.dotted", "other-project-1", "web-1", "state.example.com")...)
	resource.ParallelTest(t, resource.TestCase{
		PreCheck:                 func() { agentPolicyPreCheck(t) },
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{
			{
				Config: gcpRolesConfig,
				Check:  resource.ComposeAggregateTestCheckFunc(checks...),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue("data.autarky_gcp_agent_roles.prod", tfjsonpath.New("id"), knownvalue.StringExact("prod")),
					statecheck.ExpectKnownOutputValueAtPath("worker_roles", tfjsonpath.New(1).AtMapKey("condition").AtMapKey("expression"),
						knownvalue.StringExact(`resource.name == "projects/_/buckets/autarky-state/objects/autarky/prod/tokens/worker"`)),
				},
			},
			{Config: "provider \"autarky\" {}\n" + gcpRolesConfig, PlanOnly: true},
		},
	})
}

// Bad input is refused at plan time, naming the attribute and what it
// takes.
func TestAccGCPRoles_badInput(t *testing.T) {
	roles := func(attrs string) string { return "data \"autarky_gcp_agent_roles\" \"bad\" {\n" + attrs + "\n}\n" }
	ok := map[string]string{"project": `"my-project"`, "cluster_name": `"prod"`, "bucket": `"autarky-state"`}
	with := func(attr, value string) string {
		var lines []string
		for k, v := range ok {
			if k == attr {
				v = value
			}
			if v != "" {
				lines = append(lines, k+" = "+v)
			}
		}
		sort.Strings(lines)
		return roles(strings.Join(lines, "\n"))
	}
	cases := []struct{ config, want string }{
		{with("project", `"My_Project"`), `project: "My_Project" is not a project id: use 6 to 30 lower-case letters`},
		{with("project", `"abc"`), `project: "abc" is not a project id`},
		{with("cluster_name", `"Prod"`), `cluster_name: "Prod" is not a DNS label`},
		{with("bucket", `"gs://autarky-state"`), `bucket: "gs://autarky-state" is not a Cloud Storage bucket name: name the bucket, such as "my-autarky-state", without gs://`},
		{with("bucket", `"b\")||true"`), `is not a Cloud Storage bucket name`},
		{with("bucket", ""), `The argument "bucket" is required`},
		{with("project", ""), `The argument "project" is required`},
	}
	var steps []resource.TestStep
	for _, c := range cases {
		steps = append(steps, resource.TestStep{Config: c.config, PlanOnly: true, ExpectError: agentPolicyErrorRE(c.want)})
	}
	resource.ParallelTest(t, resource.TestCase{
		PreCheck:                 func() { agentPolicyPreCheck(t) },
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps:                    steps,
	})
}

// The documentation's example plans, and its outputs are the roles by id.
func TestAccGCPRoles_example(t *testing.T) {
	example, err := os.ReadFile("../../examples/data-sources/autarky_gcp_agent_roles/data-source.tf")
	if err != nil {
		t.Fatal(err)
	}
	resource.ParallelTest(t, resource.TestCase{
		PreCheck:                 func() { agentPolicyPreCheck(t) },
		ProtoV6ProviderFactories: protoV6ProviderFactories,
		Steps: []resource.TestStep{{
			Config: string(example),
			Check: resource.ComposeAggregateTestCheckFunc(append(gcpRolesChecks("data.autarky_gcp_agent_roles.prod", "my-project", "prod", "my-autarky-state"),
				func(s *terraform.State) error {
					for _, name := range []string{"manager_roles", "worker_roles", "manager_permissions"} {
						if _, ok := s.RootModule().Outputs[name]; !ok {
							return fmt.Errorf("no output %s", name)
						}
					}
					return nil
				})...),
			ConfigStateChecks: []statecheck.StateCheck{
				statecheck.ExpectKnownOutputValueAtPath("manager_roles", tfjsonpath.New("autarky_prod_mgr_act").AtMapKey("permissions"),
					knownvalue.ListExact([]knownvalue.Check{knownvalue.StringExact("compute.instanceGroupManagers.update")})),
			},
		}},
	})
}

// The data source's schema is valid and every attribute says what it is.
func TestGCPRolesDataSourceSchemaIsDescribed(t *testing.T) {
	ds := newGCPRolesDataSource()
	var meta datasource.MetadataResponse
	ds.Metadata(context.Background(), datasource.MetadataRequest{ProviderTypeName: "autarky"}, &meta)
	if meta.TypeName != "autarky_gcp_agent_roles" {
		t.Errorf("type name %q", meta.TypeName)
	}
	var resp datasource.SchemaResponse
	ds.Schema(context.Background(), datasource.SchemaRequest{}, &resp)
	if resp.Diagnostics.HasError() {
		t.Fatal(resp.Diagnostics)
	}
	if d := resp.Schema.ValidateImplementation(context.Background()); d.HasError() {
		t.Errorf("schema: %v", d)
	}
	want := map[string]string{"id": "computed", "project": "required", "cluster_name": "required", "bucket": "required",
		"managers_json": "computed", "workers_json": "computed", "managers_permissions": "computed", "workers_permissions": "computed"}
	if len(resp.Schema.Attributes) != len(want) {
		t.Errorf("%d attributes, want %d", len(resp.Schema.Attributes), len(want))
	}
	for name, kind := range want {
		a, ok := resp.Schema.Attributes[name]
		if !ok {
			t.Errorf("no attribute %s", name)
			continue
		}
		got := map[bool]string{true: "required"}[a.IsRequired()] + map[bool]string{true: "optional"}[a.IsOptional()] + map[bool]string{true: "computed"}[a.IsComputed()]
		if got != kind || len(a.GetMarkdownDescription()) < 20 {
			t.Errorf("attribute %s is %s (want %s), description %q", name, got, kind, a.GetMarkdownDescription())
		}
		if s, ok := a.(dsschema.StringAttribute); ok && kind == "required" && name != "cluster_name" && len(s.Validators) == 0 {
			t.Errorf("attribute %s is not validated at plan time", name)
		}
	}
}
