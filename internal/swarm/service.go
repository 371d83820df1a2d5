package swarm

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/docker/docker/api/types/filters"
	dswarm "github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/errdefs"
)

// Service modes, as Service.Mode names them.
const (
	ModeReplicated    = "replicated"
	ModeGlobal        = "global"
	ModeReplicatedJob = "replicated-job"
	ModeGlobalJob     = "global-job"
)

// ErrServiceChanged is the error of a replica write refused because the
// service changed since it was read (someone ran `docker service update`,
// or another writer won): the caller reads it again and decides again,
// and never writes over the change blindly.
var ErrServiceChanged = errors.New("the service changed since it was read")

// Service is one Swarm service as service scaling sees it: what it is,
// its replicas, and the version its spec was read at. The spec itself is
// kept unexported: SetReplicas writes it back with only the replicas
// changed, at that version.
type Service struct {
	ID, Name string
	// Version is the spec's version (Swarm's optimistic lock).
	Version uint64
	// Mode is ModeReplicated, ModeGlobal, ModeReplicatedJob or
	// ModeGlobalJob.
	Mode string
	// Replicas is the replica count a replicated service asks for; 0 for
	// the other modes.
	Replicas int
	// Running counts the service's tasks that Swarm wants running and that
	// run.
	Running int
	// Labels are the service's own labels (deploy.labels in a stack).
	Labels    map[string]string
	UpdatedAt time.Time
	spec      dswarm.ServiceSpec
}

// servicesOf reads a task and a service listing into Services, in the
// listing's order.
func servicesOf(tasks []taskWire, list []dswarm.Service) []Service {
	running := map[string]int{}
	for _, t := range tasks {
		if t.DesiredState == taskRunning && t.State == taskRunning {
			running[t.ServiceID]++
		}
	}
	out := make([]Service, 0, len(list))
	for _, s := range list {
		out = append(out, toService(s, running[s.ID]))
	}
	return out
}

func toService(s dswarm.Service, running int) Service {
	out := Service{ID: s.ID, Name: s.Spec.Name, Version: s.Version.Index, Running: running, Labels: s.Spec.Labels,
		UpdatedAt: s.UpdatedAt, spec: s.Spec}
	m := s.Spec.Mode
	switch {
	case m.Replicated != nil:
		out.Mode = ModeReplicated
		if m.Replicated.Replicas != nil {
			out.Replicas = int(min(*m.Replicated.Replicas, 1<<30))
		}
	case m.Global != nil:
		out.Mode = ModeGlobal
	case m.ReplicatedJob != nil:
		out.Mode = ModeReplicatedJob
	case m.GlobalJob != nil:
		out.Mode = ModeGlobalJob
	}
	return out
}

// Service reads one service by name or id, with its running tasks, for a
// decision taken again after ErrServiceChanged. found is false when it is
// gone.
func (c *Client) Service(ctx context.Context, nameOrID string) (s Service, found bool, err error) {
	svc, _, err := c.api.ServiceInspectWithRaw(ctx, nameOrID, dswarm.ServiceInspectOptions{})
	if errdefs.IsNotFound(err) {
		return Service{}, false, nil
	}
	if err != nil {
		return Service{}, false, fmt.Errorf("service inspect %s: %w", nameOrID, err)
	}
	tasks, err := c.taskList(ctx, filters.NewArgs(filters.Arg("service", svc.ID), filters.Arg("desired-state", "running")))
	if err != nil {
		return Service{}, false, fmt.Errorf("service %s: %w", svc.Spec.Name, err)
	}
	return servicesOf(tasks, []dswarm.Service{svc})[0], true, nil
}

// SetReplicas writes a replicated service's replica count, with nothing
// else of its spec changed, at the version s was read at: when the
// service changed since (a `docker service update` or `scale` by hand, a
// stack deploy, another writer), Swarm refuses the write and SetReplicas
// returns an error wrapping ErrServiceChanged, so the caller re-reads and
// decides again instead of writing an old spec over the new one.
func (c *Client) SetReplicas(ctx context.Context, s Service, replicas int) error {
	if s.spec.Mode.Replicated == nil {
		return fmt.Errorf("service %s is %s: only a replicated service has replicas to set", s.Name, s.Mode)
	}
	if replicas < 0 {
		return fmt.Errorf("service %s: %d replicas: the count must be 0 or more", s.Name, replicas)
	}
	spec := s.spec
	mode := *spec.Mode.Replicated
	n := uint64(replicas)
	mode.Replicas = &n
	spec.Mode.Replicated = &mode
	_, err := c.api.ServiceUpdate(ctx, s.ID, dswarm.Version{Index: s.Version}, spec, dswarm.ServiceUpdateOptions{})
	switch {
	case err == nil:
		return nil
	case strings.Contains(err.Error(), "update out of sequence"):
		return fmt.Errorf("service update %s at version %d: %w", s.Name, s.Version, ErrServiceChanged)
	case errdefs.IsNotFound(err):
		return fmt.Errorf("service update %s: the service is gone: %w", s.Name, ErrServiceChanged)
	}
	return fmt.Errorf("service update %s: %w", s.Name, err)
}
