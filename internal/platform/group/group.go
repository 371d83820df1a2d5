// Package group is the shared layer of the cloud platforms (aws, gcp): a
// cluster whose node pools are cloud instance groups (an Auto Scaling
// Group, a Managed Instance Group) that launch and replace instances by
// themselves to meet a desired size, and whose store (the cluster
// descriptor, pools, policies, the agent's journal, the join tokens) is a
// cloud key-value store (SSM Parameter Store, a Cloud Storage bucket).
//
// A cloud supplies two small interfaces, the way nomad-autoscaler's target
// plugins and cluster-autoscaler's NodeGroup each take a handful of calls
// from a cloud and keep the logic on their side:
//
//   - Groups: describe groups with their members, resize, remove a member
//     with or without shrinking, put and delete a group with its template,
//     and say when the cloud is busy with a group (Busy);
//   - KV: a key-value store with create-if-absent and, where it can,
//     compare-and-swap on a revision.
//
// This package does the rest once for every cloud: the agent's view of
// the cluster (Cluster: which member belongs to which pool, growing only
// when the cloud is not busy, shrinking only by the member the agent chose
// and drained, sizes kept inside the pool's bounds) and the policy store's
// semantics (Store: a policy needs its pool, managers are never
// autoscaled, a scaling policy hands the pool's size to the agent).
package group

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/platform"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

// Surge is the room above a pool's maximum size its group keeps, for one
// replacement to join before the member it replaces leaves.
const Surge = 1

// Groups is what a cloud supplies for its instance groups. Every call is
// bounded by the number of groups, never by the number of members.
type Groups interface {
	// Kind names the cloud's groups in messages: "Auto Scaling group",
	// "managed instance group".
	Kind() string
	// Name is the name of a pool's group.
	Name(cluster, pool string) string
	// Describe reads the named groups with their members, keyed by name;
	// a name that does not exist is absent. With progress, each group's
	// Busy also knows the cloud's own work on it (at a few calls per group
	// in transition); without, Busy may answer from the description only.
	Describe(ctx context.Context, names []string, progress bool) (map[string]*Group, error)
	// Details fills CreatedAt and Addr of the members of groups, in calls
	// bounded by the number of members over the cloud's page size.
	Details(ctx context.Context, groups []*Group) error
	// Resize sets group's desired size (absolute: a repeated call resizes
	// once).
	Resize(ctx context.Context, group string, size int) error
	// Remove deletes member id of group. With shrink the group's desired
	// size goes down by one (scale in: nothing replaces it); without, the
	// group launches a replacement (heal). A member already gone is
	// platform.ErrNotFound.
	Remove(ctx context.Context, group, id string, shrink bool) error
	// Put creates the group of pool and its template (update false) or
	// gives them the descriptors' new settings (update true): the group's
	// minimum is pool.MinSize, its maximum pool.MaxSize+Surge, its desired
	// size pool.DesiredSize.
	Put(ctx context.Context, c policy.Cluster, pool policy.Pool, update bool) error
	// Delete deletes pool's group and its template, waiting until they
	// are gone; ones already gone are not an error.
	Delete(ctx context.Context, cluster, pool string) error
}

// Group is one instance group as the shared layer needs it.
type Group struct {
	Name    string
	Desired int
	// Bounded says the cloud keeps Min and Max (an Auto Scaling Group
	// does); when false (a MIG without an autoscaler has only a target
	// size) the pool descriptor's bounds are the only ones, and drift of
	// the bounds cannot be read from the cloud.
	Bounded bool
	Min     int
	Max     int
	Members []Member
	// Busy tells whether the cloud is doing its own work on the group
	// that action on member id ("" for Grow) would fight: nil, or an
	// error that is platform.Transient (a refresh, suspended processes,
	// an activity in progress, a member protected from scale-in). A nil
	// Busy means never busy.
	Busy func(action Action, id string) error
}

// Member is one instance of a group.
type Member struct {
	ID string
	// Running is true while the member is on its way to serve or serving
	// (launching included); false once the cloud is removing it or it is
	// gone.
	Running bool
	// Ready is true once the cloud counts the member in service (AWS
	// InService; a MIG's currentAction NONE with the VM RUNNING): what
	// apply waits for.
	Ready bool
	// CreatedAt and Addr (the private address) come from Details.
	CreatedAt time.Time
	Addr      string
}

// Action is what the agent is about to do to a group, for Busy.
type Action int

const (
	// Grow raises the desired size.
	Grow Action = iota
	// ScaleIn drains a member and removes it with shrink.
	ScaleIn
)

func (a Action) String() string {
	switch a {
	case Grow:
		return "grow"
	case ScaleIn:
		return "scale in"
	}
	return fmt.Sprintf("action(%d)", int(a))
}

// busy is Group.Busy that tolerates a nil func.
func (g *Group) busy(a Action, id string) error {
	if g.Busy == nil {
		return nil
	}
	return g.Busy(a, id)
}

// KV is a cloud's key-value store for one cluster. Keys are relative to
// the cluster's root and use "/" as separator ("cluster", "pools/web").
type KV interface {
	// Where names the cluster's root for messages and for people:
	// "SSM path /autarky/prod", "gs://bucket/autarky/prod/".
	Where() string
	// Get reads a key and its revision (an opaque token); an error
	// wrapping platform.ErrNotFound when it does not exist.
	Get(ctx context.Context, key string) (data []byte, rev string, err error)
	// List reads every key directly under prefix+"/", sorted by key. A
	// secret key is listed without its data.
	List(ctx context.Context, prefix string) ([]Entry, error)
	// Put writes a key and returns its new revision; see PutOptions.
	Put(ctx context.Context, key string, data []byte, o PutOptions) (rev string, err error)
	// Delete removes a key; one already gone is not an error.
	Delete(ctx context.Context, key string) error
	// DeleteAll removes every key of the cluster.
	DeleteAll(ctx context.Context) error
}

// PutOptions are the conditions and kind of a KV put.
type PutOptions struct {
	// IfAbsent creates the key only if it does not exist: an error
	// wrapping platform.ErrExists when it does. Every KV enforces it
	// atomically (SSM Overwrite=false, Cloud Storage ifGenerationMatch=0).
	IfAbsent bool
	// IfRev replaces the key only while its revision is IfRev: an error
	// wrapping platform.ErrConflict when it moved. Atomic where the store
	// has a conditional write (Cloud Storage generations); as narrow as
	// the store allows where it has none (SSM).
	IfRev string
	// Secret stores the value encrypted, readable only by those the
	// cloud's IAM lets decrypt it (SSM SecureString); a store that
	// encrypts everything at rest ignores it. An error about a secret
	// never carries its value (the KV scrubs what the cloud echoes back);
	// with IfAbsent, an existing key that is not stored as a secret is an
	// error, not platform.ErrExists.
	Secret bool
}

// Entry is one key of a KV listing.
type Entry struct {
	Key  string
	Data []byte
	Rev  string
}

// Journal is where the agent's journal lives (platform.Cluster's
// LoadJournal, SaveJournal and SetAsideJournal). KVJournal keeps it in one
// key of a KV with compare-and-swap; a store with small values and no
// conditional write (SSM) supplies its own layout.
type Journal interface {
	LoadJournal(ctx context.Context, v any) (rev string, err error)
	SaveJournal(ctx context.Context, v any, rev string) (string, error)
	SetAsideJournal(ctx context.Context) (string, error)
}

// ignoreGone makes platform.ErrNotFound nil.
func ignoreGone(err error) error {
	if errors.Is(err, platform.ErrNotFound) {
		return nil
	}
	return err
}
