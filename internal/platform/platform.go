// Package platform defines what Autarky needs from the place instances come
// from. Each platform (local, aws, gcp) lives in a sub-package and implements
// these types; the provider and the agent only speak to them through here.
package platform

import (
	"context"
	"errors"
	"time"
)

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

// NodeGroup is one node pool as the platform sees it, after the cluster
// autoscaler's cloudprovider.NodeGroup: sizes are the caller's business, the
// group only knows its instances.
type NodeGroup interface {
	// ID is "<cluster>/<pool>".
	ID() string
	// Instances lists the group's instances, dead ones included (Running=false).
	Instances(ctx context.Context) ([]Instance, error)
	// StartInstances starts n new instances; they join the swarm by themselves.
	StartInstances(ctx context.Context, n int) ([]Instance, error)
	// TerminateInstance stops an instance and releases everything it held.
	TerminateInstance(ctx context.Context, id string) error
}

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
