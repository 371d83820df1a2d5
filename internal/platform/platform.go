// Package platform defines what Autarky needs from the place instances come
// from. Each platform (local, aws, gcp) lives in a sub-package, implements
// these types and registers itself (registry.go: the agent's Open, the
// provider's OpenBackend, the IAM data sources' RenderRights); the
// provider and the agent only speak to them through here, and the binaries
// link the platforms they ship.
package platform

import (
	"context"
	"errors"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/policy"
	"github.com/autarky/terraform-provider-autarky/internal/swarm"
)

// ClusterStatus is what the provider reports of a cluster beside its
// descriptor.
type ClusterStatus struct {
	ManagerAddresses []string // "ip:2377" of every live manager
	DockerHost       string   // endpoint of a live manager, where one is reachable
	LiveManagers     int
	// Lost says every manager is gone for good, so the swarm is too: on
	// local no manager process runs; on a cloud the managers' group is
	// gone (a group between instances is not lost).
	Lost bool
}

// PoolStatus is what the provider reports of a node pool beside its
// descriptor.
type PoolStatus struct {
	CurrentSize int      // live instances
	NodeIDs     []string // swarm node ids of live instances, where known
	Instances   []Instance
}

// Backend is what the provider needs from a platform: clusters, node
// pools and policies. The local platform and the clouds (over the shared
// layer's group.Platform) implement it.
type Backend interface {
	// Where says where the platform keeps clusters, for messages.
	Where() string
	// HasCluster reports whether the platform holds cluster.
	HasCluster(ctx context.Context, cluster string) (bool, error)
	CreateCluster(ctx context.Context, c policy.Cluster) (ClusterStatus, error)
	ReadCluster(ctx context.Context, name string) (policy.Cluster, ClusterStatus, error)
	UpdateCluster(ctx context.Context, c policy.Cluster) (ClusterStatus, error)
	DeleteCluster(ctx context.Context, name string) error
	// JoinTokens reads the swarm's join tokens where they live, for the
	// autarky_join_token ephemeral resource only: never for state.
	JoinTokens(ctx context.Context, cluster string) (swarm.Tokens, error)
	CreatePool(ctx context.Context, pool policy.Pool, wait time.Duration) (PoolStatus, error)
	ReadPool(ctx context.Context, cluster, name string) (policy.Pool, PoolStatus, error)
	UpdatePool(ctx context.Context, pool policy.Pool, wait time.Duration) (policy.Pool, PoolStatus, error)
	DeletePool(ctx context.Context, cluster, name string) error
	PutHealingPolicy(ctx context.Context, h policy.Healing) error
	GetHealingPolicy(ctx context.Context, poolID string) (policy.Healing, error)
	DeleteHealingPolicy(ctx context.Context, poolID string) error
	PutScalingPolicy(ctx context.Context, s policy.Scaling) error
	GetScalingPolicy(ctx context.Context, poolID string) (policy.Scaling, error)
	DeleteScalingPolicy(ctx context.Context, poolID string) error
	// The service scaling policies (autarky_service_scaling_policy), by
	// id "<cluster>/<service>" (policy.ServiceScalingID).
	PutServiceScalingPolicy(ctx context.Context, s policy.ServiceScaling) error
	GetServiceScalingPolicy(ctx context.Context, id string) (policy.ServiceScaling, error)
	DeleteServiceScalingPolicy(ctx context.Context, id string) error

	// Name is the platform's name: "local", "aws", "gcp".
	Name() string
	// WithProgress is the backend with its progress going to progress
	// (one request's log); the connections are the same.
	WithProgress(progress Progress) Backend
	// Fill puts into a cluster's descriptor what the provider's settings
	// of the platform decide for it (gcp: project, region and bucket), so
	// that the descriptor tells the agent and the boot script where the
	// cluster lives.
	Fill(c policy.Cluster) policy.Cluster
	// Preflight checks at plan time, before a cluster is created, what
	// can be checked without creating anything (gcp: that the bucket
	// exists and can be listed).
	Preflight(ctx context.Context, cluster string) error
}

// ErrExists is returned when a cluster or pool of that name already exists.
var ErrExists = errors.New("already exists")

// ErrNotFound is returned when a cluster, pool or instance does not exist.
var ErrNotFound = errors.New("not found")

// Instance is one machine of a node pool: on local a dockerd process, on AWS
// an EC2 instance in an Auto Scaling Group.
type Instance struct {
	ID         string    `json:"id"`
	Cluster    string    `json:"cluster"`
	Pool       string    `json:"pool"`
	Role       string    `json:"role"`
	Addr       string    `json:"addr"`
	DockerHost string    `json:"docker_host"`
	CreatedAt  time.Time `json:"created_at"`
	// Running is false when the platform knows the instance is gone or dead.
	Running bool `json:"-"`
}

// Progress receives human-readable progress lines with key/value context.
type Progress func(msg string, keyvals ...any)

// NoProgress discards progress.
func NoProgress(string, ...any) {}

// WaitFor polls cond every interval until it is true, returns an error, or ctx ends.
func WaitFor(ctx context.Context, interval time.Duration, cond func() (bool, error)) error {
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}

// Cluster is one cluster as the agent sees it: the store the provider wrote
// (descriptor, pools, policies), the agent's own journal, and the instances
// of every pool. Every platform implements it.
type Cluster interface {
	Name() string
	Descriptor(ctx context.Context) (policy.Cluster, error)
	Pools(ctx context.Context) ([]policy.Pool, error)
	HealingPolicies(ctx context.Context) ([]policy.Healing, error)
	ScalingPolicies(ctx context.Context) ([]policy.Scaling, error)
	// ServiceScalingPolicies are Terraform's service scaling policies
	// (autarky_service_scaling_policy); a service's labels are the other
	// way to declare one.
	ServiceScalingPolicies(ctx context.Context) ([]policy.ServiceScaling, error)
	// NotifyWebhook is the webhook URL an operator put in the cluster's
	// store, a secret, "" when there is none: an agent started without a
	// webhook of its own (flag or environment) notifies it. Terraform
	// never writes it, so it is never in Terraform's state.
	NotifyWebhook(ctx context.Context) (string, error)
	// NotifyWebhookWhere says where NotifyWebhook reads, for messages.
	NotifyWebhookWhere() string
	// SetDesiredSize records the size the agent gave a worker pool.
	SetDesiredSize(ctx context.Context, pool string, size int64) error
	// Instances lists every instance of every pool, managers included, dead
	// ones with Running=false.
	Instances(ctx context.Context) ([]Instance, error)
	// StartInstance starts one instance of pool; it joins the swarm in the
	// pool's role with the pool's labels, as user data does on a cloud.
	StartInstance(ctx context.Context, pool policy.Pool) (Instance, error)
	// TerminateInstance stops an instance and releases what it held; an
	// instance that is already gone is not an error.
	TerminateInstance(ctx context.Context, id string) error
	// LoadJournal reads the agent's journal into v and returns its
	// revision, an opaque token ("" when there is no journal; v is left as
	// it is then). A journal that exists but cannot be decoded is an error
	// wrapping ErrJournalCorrupt; a store that cannot be read is any other
	// error.
	LoadJournal(ctx context.Context, v any) (rev string, err error)
	// SaveJournal replaces the agent's journal with v, atomically, and
	// returns the new revision. The write happens only while the
	// journal's revision is still rev, and is refused with an error
	// wrapping ErrConflict when another writer saved it since: atomically
	// where the store can (local), else as narrowly as it allows (SSM has
	// no conditional put), and there the leadership check before every
	// write is the main fence.
	SaveJournal(ctx context.Context, v any, rev string) (string, error)
	// SetAsideJournal keeps an unreadable journal for a person under a new
	// name, which it returns, and leaves no journal in its place.
	SetAsideJournal(ctx context.Context) (string, error)
}

// ErrJournalCorrupt is wrapped by LoadJournal's error when the journal
// exists but cannot be decoded (truncated, or not the agent's JSON).
var ErrJournalCorrupt = errors.New("the journal cannot be decoded")

// ErrConflict is wrapped by SaveJournal's error when the journal changed
// since the revision the writer read: another agent wrote it.
var ErrConflict = errors.New("the journal changed since it was read: another agent wrote it")

// GroupCluster is a Cluster whose pools are cloud groups (Auto Scaling
// Groups) that launch and replace instances by themselves to meet a
// desired capacity. The agent then works with the group instead of
// starting instances one by one:
//
//   - SetDesiredSize grows the group (the group launches the instances);
//     lowering it only records the size, and each instance the agent chose
//     and drained leaves with TerminateAndShrink, so the group never picks
//     a busy node itself;
//   - TerminateInstance leaves the desired capacity as it is, so the group
//     launches a replacement (healing a worker);
//   - StartInstance raises the desired capacity by one and returns an
//     Instance without an ID: the agent adopts the new instance when it
//     appears in Instances;
//   - the instance list is the cloud's own record, so an instance that is
//     gone from it is terminated.
type GroupCluster interface {
	Cluster
	TerminateAndShrink(ctx context.Context, id string) error
	// CheckScaleIn tells whether instance id of pool may be scaled in now:
	// nil, or a Transient error saying why not (protected from scale-in,
	// terminations suspended, the group busy with its own work).
	CheckScaleIn(ctx context.Context, pool, id string) error
}

// TokenStore is a Cluster whose join tokens live in a store of the
// platform (SSM on aws), where booting instances read them. Terraform
// does not reach the engines there, so when the descriptor's
// JoinTokenRotation changes, the leading agent rotates the tokens in the
// swarm and stores the new ones here, the trigger last.
type TokenStore interface {
	// TokensRotatedFor is the trigger the stored tokens were last rotated
	// for, "" when they never were.
	TokensRotatedFor(ctx context.Context) (string, error)
	// PutRotatedTokens stores tokens rotated for trigger.
	PutRotatedTokens(ctx context.Context, trigger string, t swarm.Tokens) error
}

// Transient is implemented by errors that mean "not now" (throttling, a
// group busy with its own work) rather than a failure.
type Transient interface{ Transient() bool }

// IsTransient reports whether err, or an error it wraps, is transient.
func IsTransient(err error) bool {
	var t Transient
	return errors.As(err, &t) && t.Transient()
}
