package gcp

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	compute "cloud.google.com/go/compute/apiv1"
	"cloud.google.com/go/compute/apiv1/computepb"
	gax "github.com/googleapis/gax-go/v2"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/iterator"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/autarky/terraform-provider-autarky/internal/platform"
	"github.com/autarky/terraform-provider-autarky/internal/platform/group"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

// Labels on every instance template (and so every instance) of a pool.
// The managers' IAM role acts on the cluster's groups by name; the labels
// say which cluster and pool a VM belongs to when people look.
const (
	LabelCluster = "autarky-cluster"
	LabelPool    = "autarky-pool"
)

// PageSize is the maxResults of every listing (the API's most).
const PageSize = 500

// maxGroupName: a group's name plus "-" and 10 hex digits names its
// instance templates, which Compute Engine limits to 63 characters.
const maxGroupName = 63 - 11

// maxFilter bounds one list filter's length; more names take more calls.
const maxFilter = 2000

// Groups is group.Groups over regional Managed Instance Groups: one MIG
// per pool, named Name(cluster, pool), started from an instance template
// per version of the pool's settings.
//
// A MIG has no minimum or maximum without an autoscaler (and Autarky
// refuses groups with one: two deciders of one size fight), so Describe
// leaves Group.Min and Group.Max zero: the pool's bounds live in the
// store, and the shared layer keeps the size inside them.
type Groups struct {
	c *Clients
	// Script renders a pool's startup-script metadata (the boot
	// protocol: RenderStartupScript); nil boots without one.
	Script func(c policy.Cluster, pool policy.Pool) (string, error)
}

var _ group.Groups = (*Groups)(nil)

// NewGroups uses c (from Connect).
func NewGroups(c *Clients) *Groups { return &Groups{c: c} }

// Kind names the groups in messages.
func (g *Groups) Kind() string { return "managed instance group" }

// Name is "<cluster>-<pool>"; checkName says whether Compute Engine takes it.
func (g *Groups) Name(cluster, pool string) string { return cluster + "-" + pool }

func (g *Groups) checkName(cluster, pool string) (string, error) {
	name := g.Name(cluster, pool)
	if err := policy.ValidateGCEName(name); err != nil || len(name) > maxGroupName {
		return "", fmt.Errorf("node pool %s: its managed instance group would be named %q, which Compute Engine refuses: a group name starts with a lower-case letter and, with its template's suffix, has at most %d characters; shorten or rename the cluster or the pool",
			policy.PoolID(cluster, pool), name, maxGroupName)
	}
	return name, nil
}

// nameFilters are list filters matching exactly the given names (each
// followed by suffix, a regular expression): Compute Engine's `name eq
// "<RE2>"` form, which must match the whole name. Names are [a-z0-9-], so
// they need no quoting. One filter holds as many names as fit in maxFilter.
func nameFilters(names []string, suffix string) []string {
	var out []string
	var cur []string
	flush := func() {
		if len(cur) > 0 {
			out = append(out, fmt.Sprintf(`name eq "(%s)%s"`, strings.Join(cur, "|"), suffix))
			cur = nil
		}
	}
	n := 0
	for _, name := range names {
		if n+len(name) > maxFilter {
			flush()
			n = 0
		}
		cur = append(cur, name)
		n += len(name) + 1
	}
	flush()
	return out
}

// Describe reads the named groups and their members. Compute calls,
// bounded by the number of groups in transition, never by members:
//
//   - regionInstanceGroupManagers.list filtered on the names (a filter
//     holds ~100 names), one call per page of 500 groups;
//   - one instances.aggregatedList (per page of 500 VMs) over the VMs of
//     the steady groups (status.isStable, no currentActions): a steady
//     group's members are its VMs, each RUNNING or stopped, and they come
//     with their details, so Details asks nothing more for them;
//   - regionInstanceGroupManagers.listManagedInstances, one call for each
//     group in transition (listManagedInstancesResults PAGELESS, Google's
//     default, answers every member at once), or whose VMs do not add up
//     to its target size.
//
// Everything Busy needs (status.isStable, status.versionTarget,
// status.autoscaler, currentActions, each member's lastAttempt) comes with
// these, so progress asks nothing more.
func (g *Groups) Describe(ctx context.Context, names []string, progress bool) (map[string]*group.Group, error) {
	want := map[string]bool{}
	var valid []string
	for _, n := range names {
		if !want[n] && policy.ValidateGCEName(n) == nil {
			valid = append(valid, n)
		}
		want[n] = true
	}
	var migs []*computepb.InstanceGroupManager
	var steady []string
	for _, f := range nameFilters(valid, "") {
		err := g.c.do(ctx, "regionInstanceGroupManagers.list", func(ctx context.Context, r gax.CallOption) error {
			it := g.c.Groups.List(ctx, &computepb.ListRegionInstanceGroupManagersRequest{Project: g.c.Project, Region: g.c.Region, Filter: &f, MaxResults: proto.Uint32(PageSize)}, r)
			return Each(it.Next, func(m *computepb.InstanceGroupManager) {
				if want[m.GetName()] {
					migs = append(migs, m)
					if m.GetStatus().GetIsStable() && actions(m.GetCurrentActions()) == "" {
						steady = append(steady, m.GetName())
					}
				}
			})
		})
		if err != nil {
			return nil, err
		}
	}
	vms, err := g.vms(ctx, steady)
	if err != nil {
		return nil, err
	}
	out := make(map[string]*group.Group, len(migs))
	for _, m := range migs {
		var members []*computepb.ManagedInstance
		if in := vms[m.GetName()]; slices.Contains(steady, m.GetName()) && len(in) == int(m.GetTargetSize()) {
			for _, vm := range in {
				members = append(members, &computepb.ManagedInstance{Id: vm.Id, Name: vm.Name, Instance: vm.SelfLink, InstanceStatus: vm.Status, CurrentAction: proto.String("NONE")})
			}
		} else if members, err = g.managed(ctx, m.GetName()); errors.Is(err, platform.ErrNotFound) {
			continue // deleted since the listing
		} else if err != nil {
			return nil, err
		}
		grp := &group.Group{Name: m.GetName(), Desired: int(m.GetTargetSize())}
		for _, mi := range members {
			grp.Members = append(grp.Members, group.Member{ID: memberID(mi), Running: running(mi),
				Ready: mi.GetCurrentAction() == "NONE" && mi.GetInstanceStatus() == "RUNNING"})
		}
		sort.Slice(grp.Members, func(i, j int) bool { return grp.Members[i].ID < grp.Members[j].ID })
		fill(grp, vms[grp.Name])
		grp.Busy = busy(m, members)
		out[grp.Name] = grp
	}
	return out, nil
}

// Each drains an iterator of Google's API clients, calling f on every
// item: the Compute Engine listings here, and the tests' own.
func Each[T any](next func() (T, error), f func(T)) error {
	for {
		v, err := next()
		if errors.Is(err, iterator.Done) {
			return nil
		}
		if err != nil {
			return err
		}
		f(v)
	}
}

// managed lists a group's managed instances, pages of 500.
func (g *Groups) managed(ctx context.Context, name string) ([]*computepb.ManagedInstance, error) {
	var out []*computepb.ManagedInstance
	err := g.c.do(ctx, "regionInstanceGroupManagers.listManagedInstances", func(ctx context.Context, r gax.CallOption) error {
		out = nil
		it := g.c.Groups.ListManagedInstances(ctx, &computepb.ListManagedInstancesRegionInstanceGroupManagersRequest{Project: g.c.Project, Region: g.c.Region, InstanceGroupManager: name, MaxResults: proto.Uint32(PageSize)}, r)
		return Each(it.Next, func(mi *computepb.ManagedInstance) { out = append(out, mi) })
	})
	return out, err
}

// memberID keys a member by its VM's numeric id. A member the group is
// still creating may have no VM yet (its launch failing on a quota, say),
// and so no id: it is keyed by its instance name until its VM exists.
func memberID(mi *computepb.ManagedInstance) string {
	if mi.GetId() == 0 {
		return mi.GetName()
	}
	return strconv.FormatUint(mi.GetId(), 10)
}

// running says whether a managed instance is on its way to serve or
// serving. One whose launch failed (lastAttempt.errors, no VM: a quota)
// is not, though Google retries it: as on aws, where a failed launch
// leaves no instance, the agent's TrimDesired then gives it up. Members
// are keyed by the VM's numeric id, not its name: recreateInstances keeps
// the name and makes a new VM with a new id, so the old member disappears
// and a new one appears, as on aws.
//
//   - Leaving: DELETING, ABANDONING (leaving the group), RECREATING (the
//     VM with this id is being deleted; its successor gets a new id),
//     STOPPING and SUSPENDING: not running.
//   - Launching or changing in place: CREATING,
//     CREATING_WITHOUT_RETRIES, VERIFYING, STARTING, RESUMING,
//     RESTARTING, REFRESHING: running (the VM is coming up or stays up),
//     whatever its status says meanwhile.
//   - NONE and any action Google adds later: the VM's own status decides:
//     STOPPING, STOPPED, SUSPENDING, SUSPENDED and TERMINATED (a stopped
//     VM) are not running; PROVISIONING, STAGING, RUNNING and REPAIRING are.
func running(mi *computepb.ManagedInstance) bool {
	if mi.GetId() == 0 && len(mi.GetLastAttempt().GetErrors().GetErrors()) > 0 {
		return false
	}
	switch mi.GetCurrentAction() {
	case "DELETING", "ABANDONING", "RECREATING", "STOPPING", "SUSPENDING":
		return false
	case "CREATING", "CREATING_WITHOUT_RETRIES", "VERIFYING", "STARTING", "RESUMING", "RESTARTING", "REFRESHING":
		return true
	}
	switch mi.GetInstanceStatus() {
	case "STOPPING", "STOPPED", "SUSPENDING", "SUSPENDED", "TERMINATED":
		return false
	}
	return true
}

// BusyError says why the agent must wait instead of changing a group: the
// group is doing its own work. It is transient (platform.Transient): the
// agent holds the pool and asks again at the next evaluation.
type BusyError struct {
	Group   string
	Action  group.Action
	Reasons []string
	// FailedLaunch is the failed-launch signal: the errors of the last
	// attempt to create a member (lastAttempt.errors, such as
	// QUOTA_EXCEEDED or ZONE_RESOURCE_POOL_EXHAUSTED), "" when none.
	// Compute Engine keeps retrying such a member (it stays CREATING), so
	// the group is busy until the cause goes away or the agent gives the
	// launch up.
	FailedLaunch string
}

func (e *BusyError) Transient() bool { return true }

func (e *BusyError) Error() string {
	return fmt.Sprintf("managed instance group %s is busy, not going to %s it now: %s", e.Group, e.Action, strings.Join(e.Reasons, "; "))
}

// busy is a group's Busy. The group is busy for any action while
// status.isStable is false or currentActions count members in an action
// (the group creating, deleting, recreating, verifying ... on its own or
// for an earlier call), while status.versionTarget.isReached is false
// under a PROACTIVE update policy (a rolling update: Google replaces VMs;
// under Autarky's OPPORTUNISTIC it only says some VMs run an older
// template, which Google leaves alone), or with an autoscaler attached; and for ScaleIn when
// the member is not running (already leaving). A member not in the group
// is platform.ErrNotFound, not a reason to wait.
func busy(m *computepb.InstanceGroupManager, members []*computepb.ManagedInstance) func(group.Action, string) error {
	return func(a group.Action, id string) error {
		e := &BusyError{Group: m.GetName(), Action: a}
		if as := m.GetStatus().GetAutoscaler(); as != "" {
			e.Reasons = append(e.Reasons, "autoscaler "+path.Base(as)+" is attached (Autarky sizes the group itself: detach it)")
		}
		if acts := actions(m.GetCurrentActions()); acts != "" {
			e.Reasons = append(e.Reasons, "the group is not stable (members "+acts+")")
		} else if !m.GetStatus().GetIsStable() {
			e.Reasons = append(e.Reasons, "the group is not stable")
		}
		if vt := m.GetStatus().GetVersionTarget(); vt != nil && !vt.GetIsReached() && m.GetUpdatePolicy().GetType() == "PROACTIVE" {
			e.Reasons = append(e.Reasons, "a rolling update to another instance template is in progress")
		}
		var member *computepb.ManagedInstance
		for _, mi := range members {
			if errs := mi.GetLastAttempt().GetErrors().GetErrors(); len(errs) > 0 && e.FailedLaunch == "" {
				e.FailedLaunch = fmt.Sprintf("instance %s: %s: %s", mi.GetName(), errs[0].GetCode(), errs[0].GetMessage())
				e.Reasons = append(e.Reasons, "the last launch failed: "+e.FailedLaunch)
			}
			if memberID(mi) == id {
				member = mi
			}
		}
		if a == group.ScaleIn {
			if member == nil {
				return fmt.Errorf("instance %q is not in managed instance group %s: %w", id, m.GetName(), platform.ErrNotFound)
			}
			if !running(member) {
				e.Reasons = append(e.Reasons, fmt.Sprintf("instance %s is %s (%s)", id, member.GetCurrentAction(), member.GetInstanceStatus()))
			}
		}
		if len(e.Reasons) == 0 {
			return nil
		}
		return e
	}
}

// actions summarises the non-zero counts of currentActions but none,
// whatever actions Google counts ("1 creating, 2 deleting"), "" when the
// group is doing nothing.
func actions(s *computepb.InstanceGroupManagerActionsSummary) string {
	var out []string
	s.ProtoReflect().Range(func(f protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if f.Name() != "none" && v.Int() > 0 {
			out = append(out, fmt.Sprintf("%d %s", v.Int(), f.Name()))
		}
		return true
	})
	sort.Strings(out)
	return strings.Join(out, ", ")
}

// Details fills CreatedAt and Addr of the members Describe left without
// them (the groups in transition): one instances.aggregatedList as above.
func (g *Groups) Details(ctx context.Context, groups []*group.Group) error {
	var names []string
	for _, grp := range groups {
		if slices.ContainsFunc(grp.Members, func(m group.Member) bool { return m.Addr == "" }) {
			names = append(names, grp.Name)
		}
	}
	vms, err := g.vms(ctx, names)
	for _, grp := range groups {
		fill(grp, vms[grp.Name])
	}
	return err
}

// vms lists the VMs of the named groups, by group, in one
// instances.aggregatedList over every zone per page of 500 (per ~100
// groups): filtered on their names, "<group>-" and four characters
// (baseInstanceName is the group's name), and assigned to a group of the
// region by the created-by metadata Google sets on a group's VMs.
func (g *Groups) vms(ctx context.Context, groups []string) (map[string][]*computepb.Instance, error) {
	out := map[string][]*computepb.Instance{}
	for _, f := range nameFilters(groups, "-[a-z0-9]{4}") {
		err := g.c.do(ctx, "instances.aggregatedList", func(ctx context.Context, r gax.CallOption) error {
			it := g.c.Instances.AggregatedList(ctx, &computepb.AggregatedListInstancesRequest{Project: g.c.Project, Filter: &f, MaxResults: proto.Uint32(PageSize)}, r)
			return Each(it.Next, func(p compute.InstancesScopedListPair) {
				for _, in := range p.Value.GetInstances() {
					for _, it := range in.GetMetadata().GetItems() {
						if it.GetKey() == "created-by" && strings.Contains(it.GetValue(), "/regions/"+g.c.Region+"/instanceGroupManagers/") {
							out[path.Base(it.GetValue())] = append(out[path.Base(it.GetValue())], in)
						}
					}
				}
			})
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// fill gives grp's members the creation time and address of their VMs.
func fill(grp *group.Group, vms []*computepb.Instance) {
	for _, in := range vms {
		for i := range grp.Members {
			if m := &grp.Members[i]; m.ID == strconv.FormatUint(in.GetId(), 10) {
				m.CreatedAt, _ = time.Parse(time.RFC3339, in.GetCreationTimestamp())
				if nics := in.GetNetworkInterfaces(); len(nics) > 0 {
					m.Addr = nics[0].GetNetworkIP()
				}
			}
		}
	}
}

// Resize sets the group's target size: regionInstanceGroupManagers.resize
// with one requestId for all its retries, waiting until the operation is
// DONE (the resize is scheduled; the VMs come later).
func (g *Groups) Resize(ctx context.Context, name string, size int) error {
	req := &computepb.ResizeRegionInstanceGroupManagerRequest{Project: g.c.Project, Region: g.c.Region, InstanceGroupManager: name, Size: int32(size), RequestId: requestID()}
	return g.c.mutate(ctx, "regionInstanceGroupManagers.resize", func(ctx context.Context, r gax.CallOption) (*compute.Operation, error) {
		return g.c.Groups.Resize(ctx, req, r)
	})
}

// Remove deletes member id: with shrink deleteInstances (the target size
// goes down by one; skipInstancesOnValidationError, so an instance that
// left meanwhile is no error), else recreateInstances (the VM keeps its
// name and comes back with a new id). It finds the member's URL in one
// listManagedInstances; a member not there, or already being deleted or
// abandoned, is platform.ErrNotFound, and one being recreated is already
// being healed.
func (g *Groups) Remove(ctx context.Context, name, id string, shrink bool) error {
	members, err := g.managed(ctx, name)
	if err != nil {
		return err
	}
	var mi *computepb.ManagedInstance
	for _, m := range members {
		if memberID(m) == id {
			mi = m
		}
	}
	switch {
	case mi == nil || mi.GetCurrentAction() == "DELETING" || mi.GetCurrentAction() == "ABANDONING":
		return fmt.Errorf("instance %s of managed instance group %s: %w", id, name, platform.ErrNotFound)
	case shrink:
		req := &computepb.DeleteInstancesRegionInstanceGroupManagerRequest{Project: g.c.Project, Region: g.c.Region, InstanceGroupManager: name, RequestId: requestID(),
			RegionInstanceGroupManagersDeleteInstancesRequestResource: &computepb.RegionInstanceGroupManagersDeleteInstancesRequest{Instances: []string{mi.GetInstance()}, SkipInstancesOnValidationError: proto.Bool(true)}}
		return g.c.mutate(ctx, "regionInstanceGroupManagers.deleteInstances", func(ctx context.Context, r gax.CallOption) (*compute.Operation, error) {
			return g.c.Groups.DeleteInstances(ctx, req, r)
		})
	case mi.GetCurrentAction() == "RECREATING":
		return nil
	}
	req := &computepb.RecreateInstancesRegionInstanceGroupManagerRequest{Project: g.c.Project, Region: g.c.Region, InstanceGroupManager: name, RequestId: requestID(),
		RegionInstanceGroupManagersRecreateRequestResource: &computepb.RegionInstanceGroupManagersRecreateRequest{Instances: []string{mi.GetInstance()}}}
	return g.c.mutate(ctx, "regionInstanceGroupManagers.recreateInstances", func(ctx context.Context, r gax.CallOption) (*compute.Operation, error) {
		return g.c.Groups.RecreateInstances(ctx, req, r)
	})
}

// properties renders the instance template of a pool.
func (g *Groups) properties(c policy.Cluster, pool policy.Pool) (*computepb.InstanceProperties, error) {
	if c.GCP == nil {
		return nil, fmt.Errorf("cluster %s has no gcp settings", c.Name)
	}
	s := c.GCP
	props := &computepb.InstanceProperties{
		MachineType: proto.String(policy.MachineTypeOf(*s, pool.GCP)),
		Disks: []*computepb.AttachedDisk{{Boot: proto.Bool(true), AutoDelete: proto.Bool(true), Type: proto.String("PERSISTENT"),
			InitializeParams: &computepb.AttachedDiskInitializeParams{SourceImage: proto.String(s.Image)}}},
		// No access config: no external address. The subnetwork reaches
		// Google's APIs through Private Google Access, the rest through
		// Cloud NAT.
		NetworkInterfaces: []*computepb.NetworkInterface{{Subnetwork: proto.String(s.Subnetwork)}},
		// Rights come from the service account's roles (see iam.go), not
		// from access scopes.
		ServiceAccounts: []*computepb.ServiceAccount{{Email: proto.String(cmp.Or(policy.ServiceAccountOf(*s, pool.GCP), "default")), Scopes: []string{scope}}},
		Labels:          map[string]string{LabelCluster: c.Name, LabelPool: pool.Name},
	}
	if len(s.NetworkTags) > 0 {
		props.Tags = &computepb.Tags{Items: s.NetworkTags}
	}
	if g.Script != nil {
		script, err := g.Script(c, pool)
		if err != nil {
			return nil, err
		}
		props.Metadata = &computepb.Metadata{Items: []*computepb.Items{{Key: proto.String("startup-script"), Value: proto.String(script)}}}
	}
	return props, nil
}

// Put creates or updates a pool's instance template and group. Templates
// are immutable, so each version of the pool's settings is a template of
// its own, named from a digest of its content ("<group>-<10 hex>"): an
// update that changes nothing an instance boots with makes none. One
// patch then points the group at it (instanceTemplate and its one
// version: new and recreated VMs boot from it, running ones are left
// alone, updatePolicy OPPORTUNISTIC), and the pool's other templates are
// deleted.
//
// The group is regional, over the zones of the gcp block (fixed once the
// group exists: a change is refused naming gcp.zones), with
// updatePolicy.instanceRedistributionType NONE: the default, PROACTIVE,
// lets the group delete VMs, busy ones included, to even out the zones.
// Its target size is pool.DesiredSize; its minimum and maximum stay in
// the store (see Groups). A group with an autoscaler attached is refused.
func (g *Groups) Put(ctx context.Context, c policy.Cluster, pool policy.Pool, update bool) error {
	name, err := g.checkName(c.Name, pool.Name)
	if err != nil {
		return err
	}
	props, err := g.properties(c, pool)
	if err != nil {
		return err
	}
	raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(props)
	if err != nil {
		return err
	}
	tmpl := fmt.Sprintf("%s-%x", name, sha256.Sum256(raw))[:len(name)+11]
	tmplURL := "projects/" + g.c.Project + "/global/instanceTemplates/" + tmpl
	req := &computepb.InsertInstanceTemplateRequest{Project: g.c.Project, RequestId: requestID(), InstanceTemplateResource: &computepb.InstanceTemplate{
		Name: &tmpl, Description: proto.String("autarky node pool " + pool.ID()), Properties: props}}
	err = g.c.mutate(ctx, "instanceTemplates.insert", func(ctx context.Context, r gax.CallOption) (*compute.Operation, error) {
		return g.c.Templates.Insert(ctx, req, r)
	})
	if err != nil && !errors.Is(err, platform.ErrExists) {
		return err
	}
	var mig *computepb.InstanceGroupManager
	err = g.c.do(ctx, "regionInstanceGroupManagers.get", func(ctx context.Context, r gax.CallOption) (err error) {
		mig, err = g.c.Groups.Get(ctx, &computepb.GetRegionInstanceGroupManagerRequest{Project: g.c.Project, Region: g.c.Region, InstanceGroupManager: name}, r)
		return err
	})
	policyNone := &computepb.InstanceGroupManagerUpdatePolicy{Type: proto.String("OPPORTUNISTIC"), InstanceRedistributionType: proto.String("NONE"),
		MaxSurge: &computepb.FixedOrPercent{Fixed: proto.Int32(0)}}
	switch {
	case errors.Is(err, platform.ErrNotFound):
		m := &computepb.InstanceGroupManager{Name: &name, BaseInstanceName: &name, InstanceTemplate: &tmplURL, TargetSize: proto.Int32(int32(pool.DesiredSize)),
			Description: proto.String("autarky node pool " + pool.ID()), UpdatePolicy: policyNone}
		if len(c.GCP.Zones) > 0 {
			m.DistributionPolicy = &computepb.DistributionPolicy{}
			for _, z := range c.GCP.Zones {
				m.DistributionPolicy.Zones = append(m.DistributionPolicy.Zones, &computepb.DistributionPolicyZoneConfiguration{Zone: proto.String("zones/" + z)})
			}
		}
		req := &computepb.InsertRegionInstanceGroupManagerRequest{Project: g.c.Project, Region: g.c.Region, RequestId: requestID(), InstanceGroupManagerResource: m}
		return g.c.mutate(ctx, "regionInstanceGroupManagers.insert", func(ctx context.Context, r gax.CallOption) (*compute.Operation, error) {
			return g.c.Groups.Insert(ctx, req, r)
		})
	case err != nil:
		return err
	case !update:
		return fmt.Errorf("node pool %s: managed instance group %s: %w", pool.ID(), name, platform.ErrExists)
	case mig.GetStatus().GetAutoscaler() != "":
		return fmt.Errorf("node pool %s: managed instance group %s has autoscaler %s attached: Autarky sizes its groups itself and two deciders would fight; delete the autoscaler first", pool.ID(), name, path.Base(mig.GetStatus().GetAutoscaler()))
	}
	var zones []string
	for _, z := range mig.GetDistributionPolicy().GetZones() {
		zones = append(zones, path.Base(z.GetZone()))
	}
	if want := slices.Sorted(slices.Values(c.GCP.Zones)); len(want) > 0 && !slices.Equal(want, slices.Sorted(slices.Values(zones))) {
		return fmt.Errorf("gcp.zones: managed instance group %s of node pool %s spreads over %v, and a regional group's zones cannot change: keep them, or replace the pool", name, pool.ID(), zones)
	}
	if up := mig.GetUpdatePolicy(); up.GetInstanceRedistributionType() != "NONE" || up.GetType() != "OPPORTUNISTIC" || path.Base(mig.GetInstanceTemplate()) != tmpl {
		req := &computepb.PatchRegionInstanceGroupManagerRequest{Project: g.c.Project, Region: g.c.Region, InstanceGroupManager: name, RequestId: requestID(),
			InstanceGroupManagerResource: &computepb.InstanceGroupManager{UpdatePolicy: policyNone, InstanceTemplate: &tmplURL,
				Versions: []*computepb.InstanceGroupManagerVersion{{InstanceTemplate: &tmplURL}}}}
		if err := g.c.mutate(ctx, "regionInstanceGroupManagers.patch", func(ctx context.Context, r gax.CallOption) (*compute.Operation, error) {
			return g.c.Groups.Patch(ctx, req, r)
		}); err != nil {
			return err
		}
	}
	if mig.GetTargetSize() != int32(pool.DesiredSize) {
		if err := g.Resize(ctx, name, int(pool.DesiredSize)); err != nil {
			return err
		}
	}
	return g.deleteTemplates(ctx, name, tmpl)
}

// deleteTemplates deletes the group's templates but keep; one still in
// use (Compute Engine refuses) is left for the next update.
func (g *Groups) deleteTemplates(ctx context.Context, name, keep string) error {
	var stale []string
	f := fmt.Sprintf(`name eq "%s-[0-9a-f]{10}"`, name)
	err := g.c.do(ctx, "instanceTemplates.list", func(ctx context.Context, r gax.CallOption) error {
		stale = nil
		it := g.c.Templates.List(ctx, &computepb.ListInstanceTemplatesRequest{Project: g.c.Project, Filter: &f, MaxResults: proto.Uint32(PageSize)}, r)
		return Each(it.Next, func(t *computepb.InstanceTemplate) {
			if t.GetName() != keep {
				stale = append(stale, t.GetName())
			}
		})
	})
	for _, t := range stale {
		if err != nil {
			break
		}
		req := &computepb.DeleteInstanceTemplateRequest{Project: g.c.Project, InstanceTemplate: t, RequestId: requestID()}
		err = g.c.mutate(ctx, "instanceTemplates.delete", func(ctx context.Context, r gax.CallOption) (*compute.Operation, error) {
			return g.c.Templates.Delete(ctx, req, r)
		})
		if errors.Is(err, platform.ErrNotFound) || inUse(err) {
			err = nil
		}
	}
	return err
}

// inUse recognises Compute Engine's refusal to delete a template a group
// still uses (400 resourceInUseByAnotherResource).
func inUse(err error) bool {
	var ge *googleapi.Error
	if errors.As(err, &ge) {
		for _, e := range ge.Errors {
			if e.Reason == "resourceInUseByAnotherResource" {
				return true
			}
		}
	}
	return err != nil && strings.Contains(err.Error(), "resourceInUseByAnotherResource")
}

// Delete deletes the pool's group with its VMs (the operation is DONE
// once the group is gone), then its templates. What is already gone is
// not an error.
func (g *Groups) Delete(ctx context.Context, cluster, pool string) error {
	name := g.Name(cluster, pool)
	if policy.ValidateGCEName(name) != nil {
		return nil // no such group can exist
	}
	req := &computepb.DeleteRegionInstanceGroupManagerRequest{Project: g.c.Project, Region: g.c.Region, InstanceGroupManager: name, RequestId: requestID()}
	err := g.c.mutate(ctx, "regionInstanceGroupManagers.delete", func(ctx context.Context, r gax.CallOption) (*compute.Operation, error) {
		return g.c.Groups.Delete(ctx, req, r)
	})
	if err != nil && !errors.Is(err, platform.ErrNotFound) {
		return err
	}
	return g.deleteTemplates(ctx, name, "")
}
