package aws

import (
	"strings"

	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"

	"github.com/autarky/terraform-provider-autarky/internal/platform"
	"github.com/autarky/terraform-provider-autarky/internal/platform/group"
)

var (
	_ platform.GroupCluster = (*Cluster)(nil)
	_ platform.TokenStore   = (*Cluster)(nil)
)

// transientError marks an AWS error that only means "not now" (IsTransient)
// so the agent, which knows no AWS error codes, reads it as
// platform.Transient.
type transientError struct{ error }

func (e transientError) Transient() bool { return true }
func (e transientError) Unwrap() error   { return e.error }

// mark wraps a transient err in transientError.
func mark(err error) error {
	if err != nil && IsTransient(err) && !platform.IsTransient(err) {
		return transientError{err}
	}
	return err
}

// MaxInstancesPerDescribe is the most instance ids one DescribeInstances
// call filters on (the limit of values in one EC2 filter).
const MaxInstancesPerDescribe = 200

// GroupName is the naming rule for a pool's Auto Scaling Group when the
// cluster is not told otherwise: "<cluster>-<pool>", so the managers of
// cluster "prod" live in the group "prod-managers" and its pool "web" in
// "prod-web".
func GroupName(cluster, pool string) string { return cluster + "-" + pool }

// Cluster is one cluster on AWS as the agent sees it (platform.Cluster):
// the shared layer's cluster (group.Cluster) over the SSM store and Auto
// Scaling Groups.
type Cluster = group.Cluster

// NewCluster opens cluster name on c (from NewClients). asgs maps pool
// names (policy.ManagerPoolName for the managers) to the names of their
// Auto Scaling Groups; a pool absent from asgs, or a nil asgs, follows the
// naming rule GroupName: "<cluster>-<pool>". Two pools cannot share a
// group.
func NewCluster(c *Clients, name string, asgs map[string]string) (*Cluster, error) {
	store, err := NewStore(c.SSM, name)
	if err != nil {
		return nil, err
	}
	return group.NewCluster(store.Store, newASGGroups(c), asgs)
}

// running reports whether an Auto Scaling lifecycle state counts as a
// running instance: InService, or Pending in any form (Pending,
// Pending:Wait and Pending:Proceed while a launch lifecycle hook runs),
// since a launching instance is on its way to join. Everything else
// (Terminating*, Terminated, Standby, Detaching, Warmed:*, ...) is not.
func running(state string) bool {
	return state == string(astypes.LifecycleStateInService) || strings.HasPrefix(state, string(astypes.LifecycleStatePending))
}
