package aws

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	awsv2 "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling/types"

	"github.com/autarky/terraform-provider-autarky/internal/platform"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

// MaxGroupsPerDescribe is the most groups one DescribeAutoScalingGroups
// call names (the API's limit); it is also the page size asked for, so a
// batch is one call.
const MaxGroupsPerDescribe = 100

// How many recent scaling activities one check reads; see CheckProgress.
const activitiesPerCheck = 20

// Tags on every Auto Scaling Group the provider creates. The IAM policy
// limits the agent's mutating calls to groups carrying TagCluster.
const (
	TagCluster = policy.AWSTagCluster
	TagPool    = "autarky:pool"
)

// Auto Scaling processes the agent's actions depend on.
const (
	ProcessLaunch    = "Launch"
	ProcessTerminate = "Terminate"
)

// NodeGroups reads and changes a cluster's node pools through the Auto
// Scaling API: one Auto Scaling Group per pool.
type NodeGroups struct {
	api *autoscaling.Client
	// NoProgress skips the progress checks of DescribeGroups: for callers
	// that only read (the provider), not for the agent.
	NoProgress bool
}

// NewNodeGroups uses api (from NewClients, so calls are retried).
func NewNodeGroups(api *autoscaling.Client) *NodeGroups { return &NodeGroups{api: api} }

// Group is one Auto Scaling Group as the agent needs it.
type Group struct {
	Name    string
	Desired int32
	Min     int32
	Max     int32
	// Status is the group's own status; AWS sets it only while the group
	// is being deleted ("Delete in progress").
	Status    string
	Instances []GroupInstance
	// Suspended lists the suspended Auto Scaling processes, sorted.
	Suspended []string
	Tags      map[string]string

	// ProgressChecked is true once InstanceRefresh and ScalingActivity
	// below were asked from AWS (see CheckProgress); until then they are
	// unknown, and Busy says so. ProgressErr is why the last check failed.
	ProgressChecked bool
	ProgressErr     error
	// InstanceRefresh is the instance refresh in progress, nil when none.
	InstanceRefresh *Progress
	// ScalingActivity is a scaling activity in progress (the newest),
	// nil when none.
	ScalingActivity *Progress
}

// GroupInstance is one instance of a group.
type GroupInstance struct {
	ID string
	// LifecycleState is Auto Scaling's: Pending, InService, Terminating,
	// Standby, ...
	LifecycleState string
	// Health is Auto Scaling's health status: Healthy or Unhealthy.
	Health               string
	ProtectedFromScaleIn bool
	AvailabilityZone     string
	InstanceType         string
}

// Progress is work Auto Scaling is doing on a group.
type Progress struct {
	ID          string
	Status      string
	Description string
}

func (p *Progress) String() string {
	s := p.Status
	if p.ID != "" {
		s = p.ID + " " + s
	}
	if p.Description != "" {
		s += ": " + p.Description
	}
	return s
}

// DescribeGroups describes the named groups, keyed by name; a name that
// does not exist is absent from the map. It also checks for an instance
// refresh or a scaling activity in progress, but only on the groups whose
// description shows them in transition (see Settled).
//
// AWS calls per evaluation, bounded by the number of groups and never by
// the number of instances:
//
//   - DescribeAutoScalingGroups: ceil(len(names)/100). Each call names at
//     most 100 groups and asks for pages of 100, so a batch is one page
//     (the pager follows NextToken anyway, should AWS ever page shorter).
//   - DescribeInstanceRefreshes and DescribeScalingActivities: one each
//     (one page) per group in transition, so none at all while every pool
//     is steady; and CheckProgress adds one each for a group the agent is
//     about to change. Groups in transition are the ones Auto Scaling or
//     the agent is resizing or replacing, a handful per evaluation at most.
func (n *NodeGroups) DescribeGroups(ctx context.Context, names []string) (map[string]*Group, error) {
	uniq := make([]string, 0, len(names))
	seen := make(map[string]bool, len(names))
	for _, name := range names {
		if !seen[name] {
			seen[name] = true
			uniq = append(uniq, name)
		}
	}
	out := make(map[string]*Group, len(uniq))
	for start := 0; start < len(uniq); start += MaxGroupsPerDescribe {
		batch := uniq[start:min(start+MaxGroupsPerDescribe, len(uniq))]
		pages := autoscaling.NewDescribeAutoScalingGroupsPaginator(n.api, &autoscaling.DescribeAutoScalingGroupsInput{
			AutoScalingGroupNames: batch,
			MaxRecords:            awsv2.Int32(MaxGroupsPerDescribe),
		})
		for pages.HasMorePages() {
			page, err := pages.NextPage(ctx)
			if err != nil {
				return nil, fmt.Errorf("describe Auto Scaling groups: %w", err)
			}
			for _, g := range page.AutoScalingGroups {
				grp := groupFrom(g)
				out[grp.Name] = grp
			}
		}
	}
	for _, name := range uniq {
		if n.NoProgress {
			break
		}
		if g, ok := out[name]; ok && !g.Settled() {
			// A failed check leaves the group's progress unknown, which
			// Busy reports with the error, rather than hiding every other
			// group from the agent.
			_ = n.CheckProgress(ctx, g)
		}
	}
	return out, nil
}

func groupFrom(g types.AutoScalingGroup) *Group {
	grp := &Group{
		Name:    awsv2.ToString(g.AutoScalingGroupName),
		Desired: awsv2.ToInt32(g.DesiredCapacity),
		Min:     awsv2.ToInt32(g.MinSize),
		Max:     awsv2.ToInt32(g.MaxSize),
		Status:  awsv2.ToString(g.Status),
		Tags:    make(map[string]string, len(g.Tags)),
	}
	for _, in := range g.Instances {
		grp.Instances = append(grp.Instances, GroupInstance{
			ID:                   awsv2.ToString(in.InstanceId),
			LifecycleState:       string(in.LifecycleState),
			Health:               awsv2.ToString(in.HealthStatus),
			ProtectedFromScaleIn: awsv2.ToBool(in.ProtectedFromScaleIn),
			AvailabilityZone:     awsv2.ToString(in.AvailabilityZone),
			InstanceType:         awsv2.ToString(in.InstanceType),
		})
	}
	sort.Slice(grp.Instances, func(i, j int) bool { return grp.Instances[i].ID < grp.Instances[j].ID })
	for _, p := range g.SuspendedProcesses {
		grp.Suspended = append(grp.Suspended, awsv2.ToString(p.ProcessName))
	}
	sort.Strings(grp.Suspended)
	for _, t := range g.Tags {
		grp.Tags[awsv2.ToString(t.Key)] = awsv2.ToString(t.Value)
	}
	return grp
}

// Settled reports whether the description shows no transition: every
// instance InService or Standby, as many InService as desired, and the
// group not being deleted. Auto Scaling launching, terminating or
// replacing instances always shows as instances in another state or a
// count that differs from the desired one. (An instance refresh between
// two replacements can look settled; that is why CheckProgress runs before
// every change, not only for unsettled groups.)
func (g *Group) Settled() bool {
	if g.Status != "" {
		return false
	}
	inService := int32(0)
	for _, in := range g.Instances {
		switch types.LifecycleState(in.LifecycleState) {
		case types.LifecycleStateInService:
			inService++
		case types.LifecycleStateStandby:
		default:
			return false
		}
	}
	return inService == g.Desired
}

// CheckProgress asks AWS whether an instance refresh or a scaling activity
// is in progress on g and records the answer in g: one
// DescribeInstanceRefreshes and one DescribeScalingActivities call, one
// page each. Both list the newest first, and whatever is in progress is
// among the newest (one instance refresh at most is active per group), so
// one page is enough. A group already checked is not asked again.
func (n *NodeGroups) CheckProgress(ctx context.Context, g *Group) error {
	if g.ProgressChecked {
		return nil
	}
	err := n.checkProgress(ctx, g)
	g.ProgressChecked, g.ProgressErr = err == nil, err
	return err
}

func (n *NodeGroups) checkProgress(ctx context.Context, g *Group) error {
	refreshes, err := n.api.DescribeInstanceRefreshes(ctx, &autoscaling.DescribeInstanceRefreshesInput{
		AutoScalingGroupName: awsv2.String(g.Name),
		MaxRecords:           awsv2.Int32(1),
	})
	if err != nil {
		return fmt.Errorf("describe instance refreshes of %s: %w", g.Name, err)
	}
	g.InstanceRefresh = nil
	for _, r := range refreshes.InstanceRefreshes {
		if refreshActive(r.Status) {
			g.InstanceRefresh = &Progress{
				ID:          awsv2.ToString(r.InstanceRefreshId),
				Status:      string(r.Status),
				Description: awsv2.ToString(r.StatusReason),
			}
			break
		}
	}
	acts, err := n.api.DescribeScalingActivities(ctx, &autoscaling.DescribeScalingActivitiesInput{
		AutoScalingGroupName: awsv2.String(g.Name),
		MaxRecords:           awsv2.Int32(activitiesPerCheck),
	})
	if err != nil {
		return fmt.Errorf("describe scaling activities of %s: %w", g.Name, err)
	}
	g.ScalingActivity = nil
	for _, a := range acts.Activities {
		if activityActive(a.StatusCode) {
			g.ScalingActivity = &Progress{
				ID:          awsv2.ToString(a.ActivityId),
				Status:      string(a.StatusCode),
				Description: awsv2.ToString(a.Description),
			}
			break
		}
	}
	return nil
}

// refreshActive: every status but the final ones.
func refreshActive(s types.InstanceRefreshStatus) bool {
	switch s {
	case types.InstanceRefreshStatusSuccessful, types.InstanceRefreshStatusFailed,
		types.InstanceRefreshStatusCancelled, types.InstanceRefreshStatusRollbackFailed,
		types.InstanceRefreshStatusRollbackSuccessful:
		return false
	}
	return s != ""
}

// activityActive: every status code but the final ones, so a status code
// AWS adds later counts as in progress (the safe side).
func activityActive(s types.ScalingActivityStatusCode) bool {
	switch s {
	case types.ScalingActivityStatusCodeSuccessful, types.ScalingActivityStatusCodeFailed,
		types.ScalingActivityStatusCodeCancelled:
		return false
	}
	return s != ""
}

// Action is a change the agent means to make to a group; Busy judges it.
type Action int

const (
	// Grow raises the desired capacity: Auto Scaling launches.
	Grow Action = iota
	// Shrink lowers the desired capacity: Auto Scaling terminates.
	Shrink
	// Replace terminates one instance without decrement: Auto Scaling
	// launches its replacement.
	Replace
	// ScaleIn terminates one chosen (drained) instance with decrement.
	ScaleIn
)

func (a Action) String() string {
	switch a {
	case Grow:
		return "grow"
	case Shrink:
		return "shrink"
	case Replace:
		return "replace"
	case ScaleIn:
		return "scale in"
	}
	return fmt.Sprintf("Action(%d)", int(a))
}

// processes are the Auto Scaling processes an action needs.
func (a Action) processes() []string {
	switch a {
	case Grow:
		return []string{ProcessLaunch}
	case Shrink, ScaleIn:
		return []string{ProcessTerminate}
	case Replace:
		return []string{ProcessLaunch, ProcessTerminate}
	}
	return nil
}

// BusyError says why the agent must wait instead of changing a group: the
// group is doing its own work, or someone has told it not to. It is
// transient (IsTransient): the agent holds the pool and asks again at the
// next evaluation; it is never a failure of the pool.
type BusyError struct {
	Group   string
	Action  Action
	Reasons []string
}

// Transient: a busy group is "not now", never a failure (platform.Transient).
func (e *BusyError) Transient() bool { return true }

func (e *BusyError) Error() string {
	return fmt.Sprintf("Auto Scaling group %s is busy, not going to %s it now: %s", e.Group, e.Action, strings.Join(e.Reasons, "; "))
}

// Busy reports why the agent must not take action on g now (a *BusyError),
// or nil when it may. instanceID names the instance a Replace or ScaleIn
// would terminate. The agent waits rather than fights when:
//
//   - it does not know yet whether Auto Scaling is busy (CheckProgress has
//     not run on g);
//   - an instance refresh or a scaling activity is in progress;
//   - the group is being deleted;
//   - a process the action needs (Launch, Terminate) is suspended;
//   - the instance to terminate is protected from scale-in, or is already
//     leaving the group.
//
// An instance that is not in the group is an error wrapping
// platform.ErrNotFound, not a reason to wait.
func (g *Group) Busy(action Action, instanceID string) error {
	var reasons []string
	switch {
	case g.ProgressErr != nil:
		reasons = append(reasons, "whether an instance refresh or a scaling activity is in progress is not known: "+g.ProgressErr.Error())
	case !g.ProgressChecked:
		reasons = append(reasons, "whether an instance refresh or a scaling activity is in progress is not known yet (CheckProgress)")
	}
	if g.InstanceRefresh != nil {
		reasons = append(reasons, "instance refresh "+g.InstanceRefresh.String()+" is in progress")
	}
	if g.ScalingActivity != nil {
		reasons = append(reasons, "scaling activity "+g.ScalingActivity.String()+" is in progress")
	}
	if g.Status != "" {
		reasons = append(reasons, "the group's status is "+g.Status)
	}
	for _, p := range action.processes() {
		if contains(g.Suspended, p) {
			reasons = append(reasons, "its "+p+" process is suspended")
		}
	}
	if action == Replace || action == ScaleIn {
		in, ok := g.instance(instanceID)
		if !ok {
			return fmt.Errorf("instance %q is not in Auto Scaling group %s: %w", instanceID, g.Name, platform.ErrNotFound)
		}
		if in.ProtectedFromScaleIn {
			reasons = append(reasons, "instance "+in.ID+" is protected from scale-in")
		}
		if s := types.LifecycleState(in.LifecycleState); s != types.LifecycleStateInService && s != types.LifecycleStateStandby {
			reasons = append(reasons, "instance "+in.ID+" is "+in.LifecycleState)
		}
	}
	if len(reasons) == 0 {
		return nil
	}
	return &BusyError{Group: g.Name, Action: action, Reasons: reasons}
}

func (g *Group) instance(id string) (GroupInstance, bool) {
	for _, in := range g.Instances {
		if in.ID == id {
			return in, true
		}
	}
	return GroupInstance{}, false
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// SetDesiredCapacity sets a group's desired capacity to n, absolutely (so
// a retried or repeated call cannot resize twice), without honouring the
// group's cooldown: the agent keeps its own cooldowns. AWS refuses a size
// outside [min, max].
func (n *NodeGroups) SetDesiredCapacity(ctx context.Context, group string, size int32) error {
	_, err := n.api.SetDesiredCapacity(ctx, &autoscaling.SetDesiredCapacityInput{
		AutoScalingGroupName: awsv2.String(group),
		DesiredCapacity:      awsv2.Int32(size),
		HonorCooldown:        awsv2.Bool(false),
	})
	if err != nil {
		return fmt.Errorf("set desired capacity of %s to %d: %w", group, size, err)
	}
	return nil
}

// TerminateInstance terminates one instance of its group. With decrement
// the group's desired capacity drops by one (scale in: the agent chose and
// drained the instance); without, Auto Scaling launches a replacement
// (heal). An instance the group no longer has is an error wrapping
// platform.ErrNotFound.
func (n *NodeGroups) TerminateInstance(ctx context.Context, instanceID string, decrement bool) error {
	_, err := n.api.TerminateInstanceInAutoScalingGroup(ctx, &autoscaling.TerminateInstanceInAutoScalingGroupInput{
		InstanceId:                     awsv2.String(instanceID),
		ShouldDecrementDesiredCapacity: awsv2.Bool(decrement),
	})
	if err != nil {
		if isInstanceNotFound(err) {
			return fmt.Errorf("terminate instance %s: %w", instanceID, platform.ErrNotFound)
		}
		return fmt.Errorf("terminate instance %s (decrement %t): %w", instanceID, decrement, err)
	}
	return nil
}

// isInstanceNotFound recognises AWS's answer for an instance that is not
// (or no longer) in an Auto Scaling group: a ValidationError saying
// "Instance Id not found - No managed instance found for instance ID ...".
func isInstanceNotFound(err error) bool {
	var api interface {
		ErrorCode() string
		ErrorMessage() string
	}
	if !errors.As(err, &api) {
		return false
	}
	return api.ErrorCode() == "ValidationError" && strings.Contains(strings.ToLower(api.ErrorMessage()), "not found")
}
