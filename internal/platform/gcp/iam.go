package gcp

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/autarky/terraform-provider-autarky/internal/platform"
	"github.com/autarky/terraform-provider-autarky/internal/platform/group"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

// RolesInput names the cluster and where it lives, for AgentRoles.
type RolesInput struct {
	// Project holds the cluster's groups and the custom roles.
	Project string
	Cluster string
	// Bucket holds the cluster's objects, under autarky/<cluster>/.
	Bucket string
}

// CustomRole is one project custom role (google_project_iam_custom_role)
// and how to grant it: on the project (google_project_iam_member) or on
// the bucket (google_storage_bucket_iam_member), with its condition.
type CustomRole struct {
	// RoleID is the custom role's id in the project; Name, the role a
	// binding names: projects/<project>/roles/<RoleID>.
	RoleID      string   `json:"role_id"`
	Name        string   `json:"name"`
	Title       string   `json:"title"`
	Description string   `json:"description"`
	Permissions []string `json:"permissions"`
	// Scope is where the role is granted: ScopeProject or ScopeBucket.
	Scope string `json:"scope"`
	// Condition, if set, is the binding's IAM condition.
	Condition *Condition `json:"condition,omitempty"`
}

// Condition is an IAM condition of a role binding.
type Condition struct {
	Title       string `json:"title"`
	Description string `json:"description"`
	Expression  string `json:"expression"`
}

// Where a CustomRole is granted.
const (
	ScopeProject = "project"
	ScopeBucket  = "bucket"
)

// AgentRoleSet is the managers' and the workers' roles.
type AgentRoleSet struct {
	Managers []CustomRole `json:"managers"`
	Workers  []CustomRole `json:"workers"`
}

func (in RolesInput) validate() error {
	if err := policy.ValidateGCPProject(in.Project); err != nil {
		return fmt.Errorf("project: %w", err)
	}
	if err := policy.ValidateName(in.Cluster); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	if err := ValidateBucket(in.Bucket); err != nil {
		return fmt.Errorf("bucket: %w", err)
	}
	return nil
}

// roleID is the custom role id of one role of the cluster:
// autarky_<cluster>_<suffix>, '-' as '_' (a role id takes letters,
// digits, '_' and '.', at most 64); a cluster name too long for that is
// cut and followed by a digest of the whole.
func (in RolesInput) roleID(suffix string) string {
	c := strings.ReplaceAll(in.Cluster, "-", "_")
	if room := 64 - len("autarky__") - len(suffix); len(c) > room {
		sum := sha256.Sum256([]byte(in.Cluster))
		c = c[:room-9] + "_" + hex.EncodeToString(sum[:4])
	}
	return "autarky_" + c + "_" + suffix
}

func (in RolesInput) role(suffix, title, description, scope string, cond *Condition, permissions ...string) CustomRole {
	sort.Strings(permissions)
	id := in.roleID(suffix)
	return CustomRole{RoleID: id, Name: "projects/" + in.Project + "/roles/" + id, Title: title, Description: description,
		Permissions: permissions, Scope: scope, Condition: cond}
}

// celString quotes s as a CEL string literal. The names it quotes are
// checked (letters, digits, '-', '_', '.', '/'), so it never needs an
// escape; it quotes with %q for safety all the same.
func celString(s string) string { return fmt.Sprintf("%q", s) }

// AgentRoles are the least-privilege custom roles of a cluster's service
// accounts on Compute Engine, what aws.AgentPolicy and aws.WorkerPolicy
// are on AWS.
//
// The managers' (autarky-agent and the managers' startup script):
//
//   - read Compute Engine (groups, their VMs, regional operations) on the
//     project, with no condition: list calls cannot be narrowed by name,
//     as the aws policy's Describe calls are on "*";
//   - compute.instanceGroupManagers.update (resize, deleteInstances,
//     recreateInstances: the group's service agent then deletes and
//     creates the VMs, so no compute.instances.* write is needed) only on
//     groups named <cluster>-*, by a condition on resource.name. That is
//     where aws used the autarky:cluster tag: a group's name is
//     <cluster>-<pool>, so a cluster whose name is another's plus "-…"
//     (prod and prod-eu) is matched by both conditions; give such
//     clusters separate projects, or names that are not prefixes;
//   - Cloud Storage objects get, list, create and delete (an upload over
//     an existing object needs delete too: the journal's compare-and-swap,
//     the tokens on rotation) only under autarky/<cluster>/ of the bucket.
//
// The workers' (their startup script):
//
//   - read the managers' group and its VMs, to find a manager to join
//     through; nothing that changes anything;
//   - storage.objects.get of autarky/<cluster>/tokens/worker and nothing
//     else: never the manager token.
//
// Cloud Storage has no role per object on a bucket: the split between the
// tokens is IAM Conditions on the bucket's bindings, on resource.name
// (projects/_/buckets/<bucket>/objects/<object>) and, for the managers'
// listings, on the listing's prefix (the request attribute
// storage.googleapis.com/objectListPrefix: a list request names the
// bucket, not an object). Conditions need the bucket's uniform
// bucket-level access, and ACLs must not grant more. The workers'
// condition is an equality, tighter than a prefix
// (tokens/worker-old would match one).
//
// Not granted, though named by the issue: compute.instanceGroupManagers.use
// (attaching a group to a load balancer's backend), and zone and global
// operations (the groups are regional; instance templates, whose
// operations are global, are the provider's, not the agent's).
func AgentRoles(in RolesInput) (AgentRoleSet, error) {
	if err := in.validate(); err != nil {
		return AgentRoleSet{}, fmt.Errorf("IAM roles: %w", err)
	}
	root := ClusterRoot(in.Cluster)
	objects := "projects/_/buckets/" + in.Bucket + "/objects/"
	managers := []CustomRole{
		in.role("mgr_read", "Autarky "+in.Cluster+" managers: read Compute Engine",
			"Read the cluster's Managed Instance Groups, their VMs and regional operations (autarky-agent, the managers' startup script).",
			ScopeProject, nil,
			"compute.instanceGroupManagers.get", "compute.instanceGroupManagers.list",
			"compute.instances.get", "compute.instances.list", "compute.regionOperations.get"),
		in.role("mgr_act", "Autarky "+in.Cluster+" managers: resize and replace",
			"Resize the cluster's Managed Instance Groups and delete or recreate their VMs (autarky-agent); the condition limits it to groups named "+in.Cluster+"-*.",
			ScopeProject, &Condition{
				Title:       "autarky-" + in.Cluster + "-groups",
				Description: "Only the Managed Instance Groups of cluster " + in.Cluster + " (named " + in.Cluster + "-<pool>).",
				Expression: `resource.type == "compute.googleapis.com/InstanceGroupManager" && resource.name.extract("/instanceGroupManagers/{name}").startsWith(` +
					celString(in.Cluster+"-") + ")",
			},
			"compute.instanceGroupManagers.update"),
		in.role("mgr_store", "Autarky "+in.Cluster+" managers: the cluster's objects",
			"Read, list, write and delete the objects under gs://"+in.Bucket+"/"+root+" (the agent's journal, the descriptors, the join tokens, the init lock).",
			ScopeBucket, &Condition{
				Title:       "autarky-" + in.Cluster + "-objects",
				Description: "Only the objects under " + root + " and listings of that prefix.",
				Expression: "resource.name.startsWith(" + celString(objects+root) + `) || api.getAttribute("storage.googleapis.com/objectListPrefix", "").startsWith(` +
					celString(root) + ")",
			},
			"storage.objects.create", "storage.objects.delete", "storage.objects.get", "storage.objects.list"),
	}
	workers := []CustomRole{
		in.role("wkr_read", "Autarky "+in.Cluster+" workers: find the managers",
			"Read the managers' Managed Instance Group and its VMs, to join the swarm through one (the workers' startup script).",
			ScopeProject, nil,
			"compute.instanceGroupManagers.get", "compute.instances.get"),
		in.role("wkr_token", "Autarky "+in.Cluster+" workers: the worker join token",
			"Read gs://"+in.Bucket+"/"+ObjectName(in.Cluster, group.KeyWorkerToken)+" and nothing else of the bucket.",
			ScopeBucket, &Condition{
				Title:       "autarky-" + in.Cluster + "-worker-token",
				Description: "Only the worker join token of cluster " + in.Cluster + ".",
				Expression:  "resource.name == " + celString(objects+ObjectName(in.Cluster, group.KeyWorkerToken)),
			},
			"storage.objects.get"),
	}
	return AgentRoleSet{Managers: managers, Workers: workers}, nil
}

// Permissions are every permission of roles, sorted, each once.
func Permissions(roles []CustomRole) []string {
	seen := map[string]bool{}
	var out []string
	for _, r := range roles {
		for _, p := range r.Permissions {
			if !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	sort.Strings(out)
	return out
}

// RolesJSON renders roles as JSON, for the data source.
func RolesJSON(roles []CustomRole) (string, error) {
	b, err := json.MarshalIndent(roles, "", "  ")
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// rights renders AgentRoles for the provider's data source
// (platform.RenderRights).
func rights(in platform.RightsInput) (platform.Rights, error) {
	set, err := AgentRoles(RolesInput{Project: in.Project, Cluster: in.Cluster, Bucket: in.Bucket})
	if err != nil {
		return platform.Rights{}, err
	}
	out := platform.Rights{ManagerPermissions: Permissions(set.Managers), WorkerPermissions: Permissions(set.Workers)}
	if out.Managers, err = RolesJSON(set.Managers); err == nil {
		out.Workers, err = RolesJSON(set.Workers)
	}
	return out, err
}
