package gcp

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/autarky/terraform-provider-autarky/internal/platform/group"
)

// iamMethods are the API methods the managers' and the workers' service
// accounts call, by their ids in Google's discovery documents, with the
// permission each requires (the "Authorization requires the following IAM
// permission" line of each method's REST reference). storage.objects.insert
// over an existing object also needs storage.objects.delete.
var iamMethods = map[string][]string{
	"compute.regionInstanceGroupManagers.get":                  {"compute.instanceGroupManagers.get"},
	"compute.regionInstanceGroupManagers.list":                 {"compute.instanceGroupManagers.list"},
	"compute.regionInstanceGroupManagers.listManagedInstances": {"compute.instanceGroupManagers.get"},
	"compute.regionInstanceGroupManagers.listErrors":           {"compute.instanceGroupManagers.get"},
	"compute.regionInstanceGroupManagers.resize":               {"compute.instanceGroupManagers.update"},
	"compute.regionInstanceGroupManagers.deleteInstances":      {"compute.instanceGroupManagers.update"},
	"compute.regionInstanceGroupManagers.recreateInstances":    {"compute.instanceGroupManagers.update"},
	"compute.instances.get":                                    {"compute.instances.get"},
	"compute.instances.aggregatedList":                         {"compute.instances.list"},
	"compute.regionOperations.get":                             {"compute.regionOperations.get"},
	"storage.objects.get":                                      {"storage.objects.get"},
	"storage.objects.list":                                     {"storage.objects.list"},
	"storage.objects.insert":                                   {"storage.objects.create", "storage.objects.delete"},
	"storage.objects.delete":                                   {"storage.objects.delete"},
}

// What each side calls: the agent (the gcp adapter's Describe, Details,
// Resize, Remove, operations; the store's Get, List, Put, Delete) and the
// managers' startup script; the workers' startup script.
var (
	managerMethods = []string{
		"compute.regionInstanceGroupManagers.get", "compute.regionInstanceGroupManagers.list",
		"compute.regionInstanceGroupManagers.listManagedInstances", "compute.regionInstanceGroupManagers.listErrors",
		"compute.regionInstanceGroupManagers.resize", "compute.regionInstanceGroupManagers.deleteInstances",
		"compute.regionInstanceGroupManagers.recreateInstances", "compute.instances.get", "compute.instances.aggregatedList",
		"compute.regionOperations.get", "storage.objects.get", "storage.objects.list", "storage.objects.insert", "storage.objects.delete",
	}
	workerMethods = []string{"compute.regionInstanceGroupManagers.listManagedInstances", "compute.instances.get", "storage.objects.get"}
)

// discoveryDoc is the part of a discovery document this test reads.
type discoveryDoc struct {
	Resources map[string]discoveryResource `json:"resources"`
}

type discoveryResource struct {
	Methods   map[string]struct{ ID string } `json:"methods"`
	Resources map[string]discoveryResource   `json:"resources"`
}

// loadDiscovery reads Google's own API descriptions of Compute Engine and
// Cloud Storage, as the Go module google.golang.org/api ships them, and
// returns their method ids and resource collection names (compute:
// instanceGroupManagers, storage: objects, ...).
func loadDiscovery(t *testing.T) (methods, collections map[string]bool) {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "google.golang.org/api").Output()
	if err != nil {
		t.Fatalf("go list google.golang.org/api: %v", err)
	}
	methods, collections = map[string]bool{}, map[string]bool{}
	for service, file := range map[string]string{"compute": "compute/v1/compute-api.json", "storage": "storage/v1/storage-api.json"} {
		b, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(out)), file))
		if err != nil {
			t.Fatal(err)
		}
		var d discoveryDoc
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatal(err)
		}
		var walk func(map[string]discoveryResource)
		walk = func(rs map[string]discoveryResource) {
			for name, r := range rs {
				collections[service+"."+name] = true
				for _, m := range r.Methods {
					methods[m.ID] = true
				}
				walk(r.Resources)
			}
		}
		walk(d.Resources)
	}
	if len(methods) < 100 || !collections["compute.instanceGroupManagers"] {
		t.Fatalf("the discovery documents hold %d methods: not read", len(methods))
	}
	return methods, collections
}

var permissionRE = regexp.MustCompile(`^(compute|storage)\.([a-zA-Z]+)\.([a-zA-Z]+)$`)

// checkPermissionsReal checks every permission of roles: service.collection.verb
// with no wildcard, the collection one of the service's in its discovery
// document, and the permission one that a method the table names (which
// exists in the discovery document) requires.
func checkPermissionsReal(t *testing.T, who string, roles []CustomRole) {
	t.Helper()
	methods, collections := loadDiscovery(t)
	required := map[string]bool{}
	for m, perms := range iamMethods {
		if !methods[m] {
			t.Errorf("method %s is not in Google's discovery document", m)
		}
		for _, p := range perms {
			required[p] = true
		}
	}
	for _, p := range Permissions(roles) {
		f := permissionRE.FindStringSubmatch(p)
		if f == nil || strings.ContainsAny(p, "*?") {
			t.Errorf("%s: permission %q is not service.collection.verb (or is a wildcard)", who, p)
			continue
		}
		if !collections[f[1]+"."+f[2]] {
			t.Errorf("%s: permission %q: %s has no collection %q", who, p, f[1], f[2])
		}
		if !required[p] {
			t.Errorf("%s: permission %q is required by no method the agent or the startup script calls", who, p)
		}
	}
}

// covers checks that roles grant every permission methods require.
func covers(t *testing.T, who string, roles []CustomRole, methods []string) {
	t.Helper()
	have := map[string]bool{}
	for _, p := range Permissions(roles) {
		have[p] = true
	}
	for _, m := range methods {
		for _, p := range iamMethods[m] {
			if !have[p] {
				t.Errorf("%s call %s, which needs %s: not granted", who, m, p)
			}
		}
	}
}

var celLiteralRE = regexp.MustCompile(`"((?:[^"\\]|\\.)*)"`)

func TestAgentRoles(t *testing.T) {
	in := RolesInput{Project: "my-project", Cluster: "prod", Bucket: "autarky-state"}
	set, err := AgentRoles(in)
	if err != nil {
		t.Fatal(err)
	}
	wantManagers := []string{"compute.instanceGroupManagers.get", "compute.instanceGroupManagers.list", "compute.instanceGroupManagers.update",
		"compute.instances.get", "compute.instances.list", "compute.regionOperations.get",
		"storage.objects.create", "storage.objects.delete", "storage.objects.get", "storage.objects.list"}
	if got := Permissions(set.Managers); strings.Join(got, " ") != strings.Join(wantManagers, " ") {
		t.Errorf("managers' permissions\n  %v\nwant\n  %v", got, wantManagers)
	}
	wantWorkers := []string{"compute.instanceGroupManagers.get", "compute.instances.get", "storage.objects.get"}
	if got := Permissions(set.Workers); strings.Join(got, " ") != strings.Join(wantWorkers, " ") {
		t.Errorf("workers' permissions\n  %v\nwant\n  %v", got, wantWorkers)
	}
	checkPermissionsReal(t, "managers", set.Managers)
	checkPermissionsReal(t, "workers", set.Workers)
	covers(t, "the managers", set.Managers, managerMethods)
	covers(t, "the workers", set.Workers, workerMethods)

	ids := map[string]bool{}
	roleIDRE := regexp.MustCompile(`^[a-zA-Z0-9_.]{3,64}$`)
	objects := "projects/_/buckets/autarky-state/objects/"
	for _, r := range append(append([]CustomRole(nil), set.Managers...), set.Workers...) {
		if !roleIDRE.MatchString(r.RoleID) || ids[r.RoleID] || r.Name != "projects/my-project/roles/"+r.RoleID {
			t.Errorf("role %q (%s): not a unique custom role id of the project", r.RoleID, r.Name)
		}
		ids[r.RoleID] = true
		if len(r.Title) == 0 || len(r.Title) > 100 || len(r.Description) == 0 || len(r.Description) > 256 {
			t.Errorf("role %s: title %d and description %d characters (IAM takes 1-100 and up to 256)", r.RoleID, len(r.Title), len(r.Description))
		}
		if !sort.StringsAreSorted(r.Permissions) {
			t.Errorf("role %s: permissions not sorted", r.RoleID)
		}
		for _, p := range r.Permissions {
			storage := strings.HasPrefix(p, "storage.")
			// Storage permissions only on the bucket, with a condition;
			// compute permissions only on the project.
			if storage != (r.Scope == ScopeBucket) || r.Scope != ScopeBucket && r.Scope != ScopeProject {
				t.Errorf("role %s: %s granted on the %s", r.RoleID, p, r.Scope)
			}
			if storage && r.Condition == nil {
				t.Errorf("role %s: %s on the whole bucket", r.RoleID, p)
			}
			readOnly := strings.HasSuffix(p, ".get") || strings.HasSuffix(p, ".list")
			if !storage && !readOnly {
				// A mutating Compute permission: only on the cluster's
				// groups.
				if r.Condition == nil || !strings.Contains(r.Condition.Expression, `resource.type == "compute.googleapis.com/InstanceGroupManager"`) ||
					!strings.Contains(r.Condition.Expression, `resource.name.extract("/instanceGroupManagers/{name}").startsWith("prod-")`) {
					t.Errorf("role %s: %s not limited to the cluster's groups: %+v", r.RoleID, p, r.Condition)
				}
			}
		}
	}
	for _, r := range set.Workers {
		for _, p := range r.Permissions {
			if !strings.HasSuffix(p, ".get") {
				t.Errorf("workers may only read: %s", p)
			}
		}
	}

	// The storage conditions, by the names they admit: the managers'
	// admit every object of the cluster and listings of its prefix, and
	// no other cluster's (prod-eu shares prod's first letters); the
	// workers' admits the worker token only.
	literals := func(r CustomRole) []string {
		var out []string
		for _, m := range celLiteralRE.FindAllStringSubmatch(r.Condition.Expression, -1) {
			out = append(out, m[1])
		}
		return out
	}
	for _, r := range set.Managers {
		if r.Scope != ScopeBucket {
			continue
		}
		want := `resource.name.startsWith("` + objects + `autarky/prod/") || api.getAttribute("storage.googleapis.com/objectListPrefix", "").startsWith("autarky/prod/")`
		if r.Condition.Expression != want {
			t.Errorf("managers' objects condition\n  %s\nwant\n  %s", r.Condition.Expression, want)
		}
		l := literals(r)
		for _, key := range []string{group.KeyManagerToken, group.KeyWorkerToken, group.KeyInitLock, group.KeyJournal, group.KeyDescriptor} {
			if !strings.HasPrefix(objects+ObjectName("prod", key), l[0]) {
				t.Errorf("the managers may not reach %s", key)
			}
		}
		if strings.HasPrefix(objects+ObjectName("prod-eu", group.KeyManagerToken), l[0]) || strings.HasPrefix(ClusterRoot("prod-eu"), l[len(l)-1]) {
			t.Errorf("the managers of prod reach prod-eu's objects")
		}
	}
	for _, r := range set.Workers {
		if r.Scope != ScopeBucket {
			continue
		}
		want := `resource.name == "` + objects + `autarky/prod/tokens/worker"`
		if r.Condition.Expression != want {
			t.Errorf("workers' token condition\n  %s\nwant\n  %s", r.Condition.Expression, want)
		}
	}

	// A cluster name of 63 characters still gives role ids IAM takes,
	// one per role.
	long := RolesInput{Project: "my-project", Cluster: strings.Repeat("a", 30) + "-" + strings.Repeat("b", 32), Bucket: "b-1"}
	set, err = AgentRoles(long)
	if err != nil {
		t.Fatal(err)
	}
	ids = map[string]bool{}
	for _, r := range append(set.Managers, set.Workers...) {
		if !roleIDRE.MatchString(r.RoleID) || ids[r.RoleID] {
			t.Errorf("long cluster: role id %q", r.RoleID)
		}
		ids[r.RoleID] = true
	}
}

// TestAgentRolesJSON: the JSON a user feeds to google_project_iam_custom_role
// and the bindings parses back to the roles, with the fields named as
// those resources name theirs.
func TestAgentRolesJSON(t *testing.T) {
	set, err := AgentRoles(RolesInput{Project: "my-project", Cluster: "prod", Bucket: "autarky-state"})
	if err != nil {
		t.Fatal(err)
	}
	doc, err := RolesJSON(set.Workers)
	if err != nil {
		t.Fatal(err)
	}
	var raw []map[string]any
	if err := json.Unmarshal([]byte(doc), &raw); err != nil {
		t.Fatal(err)
	}
	if len(raw) != 2 {
		t.Fatalf("%d worker roles, want 2", len(raw))
	}
	for _, key := range []string{"role_id", "name", "title", "description", "permissions", "scope"} {
		if _, ok := raw[1][key]; !ok {
			t.Errorf("no %s in %v", key, raw[1])
		}
	}
	cond, _ := raw[1]["condition"].(map[string]any)
	if cond["expression"] != `resource.name == "projects/_/buckets/autarky-state/objects/autarky/prod/tokens/worker"` || cond["title"] == "" {
		t.Errorf("the worker token's condition: %v", cond)
	}
	if strings.Contains(doc, "tokens/manager") {
		t.Errorf("the workers' roles name the manager token:\n%s", doc)
	}
}

// TestAgentRolesRefuses: bad input is refused, the error naming the
// field.
func TestAgentRolesRefuses(t *testing.T) {
	for _, c := range []struct {
		in    RolesInput
		field string
	}{
		{RolesInput{Project: "My-Project", Cluster: "prod", Bucket: "b-1"}, "project:"},
		{RolesInput{Project: "", Cluster: "prod", Bucket: "b-1"}, "project:"},
		{RolesInput{Project: "my-project", Cluster: "Prod", Bucket: "b-1"}, "cluster:"},
		{RolesInput{Project: "my-project", Cluster: "prod\"x", Bucket: "b-1"}, "cluster:"},
		{RolesInput{Project: "my-project", Cluster: "prod", Bucket: "gs://b-1"}, "bucket:"},
		{RolesInput{Project: "my-project", Cluster: "prod", Bucket: "b\")||true||(\""}, "bucket:"},
		{RolesInput{Project: "my-project", Cluster: "prod", Bucket: ""}, "bucket:"},
	} {
		_, err := AgentRoles(c.in)
		if err == nil || !strings.HasPrefix(err.Error(), "IAM roles: "+c.field) {
			t.Errorf("%+v: %v, want an error naming %s", c.in, err, c.field)
		}
	}
}
