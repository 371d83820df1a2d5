package swarm

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/docker/docker/api/types/filters"
	dswarm "github.com/docker/docker/api/types/swarm"
)

// Resources are CPU (in billionths of a CPU) and memory (bytes).
type Resources struct {
	NanoCPUs    int64
	MemoryBytes int64
}

// PendingTask is a task the scheduler could not place.
type PendingTask struct {
	ID          string
	ServiceID   string
	Reservation Resources
	Constraints []string
	// Reason is the scheduler's message, such as "no suitable node
	// (insufficient resources on 3 nodes)".
	Reason string
}

// TaskLoad is what the running tasks of one node reserve.
type TaskLoad struct {
	Running  int
	Reserved Resources
}

// TaskView is one reading of the cluster's tasks.
type TaskView struct {
	// Pending are the tasks the scheduler could not place.
	Pending []PendingTask
	// Load is, by node, what the running tasks reserve.
	Load map[string]TaskLoad
	// StillRunning counts, by node, the tasks whose containers run,
	// whatever Swarm wants of them (see TasksStillRunning). Only a view
	// read from the whole listing has it: Tasks leaves it nil when it
	// needed only the tasks Swarm wants running.
	StillRunning map[string]int
	// Incomplete says why the task listing cannot be the whole truth, or is
	// empty when it can: a replicated service wants more replicas than
	// the listing holds tasks meant to run for it. A manager that has just
	// started (or just become leader) can answer before its store has
	// caught up, with few or no tasks (kubernetes/autoscaler#446 is the
	// same failure on another scheduler); on such a listing every node
	// looks idle, so nothing may be scaled in on it.
	Incomplete string
	// Services are the services of the same listing, with their running
	// tasks, for service scaling (service.go): read with the tasks, so
	// scaling services costs no call of its own.
	Services []Service
}

// Tasks reads the tasks, then the services: pending tasks the scheduler
// could not place, per node the running tasks and their reservations,
// and whether the listing holds every task the services ask for. The
// services are read after the tasks, so a service scaled up between the
// two reads makes the view incomplete (a scale-in waits one evaluation),
// never one scaled down (its extra tasks are still listed).
//
// It asks the engine only for the tasks Swarm wants running (the filter
// desired-state=running, applied by the manager): everything the view
// holds but Incomplete and StillRunning comes from those alone, and a
// long-lived swarm's listing is mostly the history Swarm keeps of every
// slot (task_history_retention_limit, 5 by default), four fifths of its
// bytes. The other tasks can only add to what Incomplete counts (a task
// told to stop whose container still runs holds its slot, as on a node
// draining or in a rolling update), so when the wanted tasks leave
// services short, Tasks reads every task of those services (at most
// maxShortServices of them; beyond, the whole listing) and the services
// again, and counts theirs from that: the view is the whole listing's,
// but for StillRunning, which it leaves nil (TasksStillRunning reads the
// whole listing).
func (c *Client) Tasks(ctx context.Context) (TaskView, error) {
	running, err := c.taskList(ctx, filters.NewArgs(filters.Arg("desired-state", taskRunning)))
	if err != nil {
		return TaskView{}, err
	}
	services, err := c.serviceList(ctx)
	if err != nil {
		return TaskView{}, err
	}
	v := viewOf(running, services)
	v.StillRunning = nil
	v.Services = servicesOf(running, services)
	if v.Incomplete == "" {
		return v, nil
	}
	meant := meantOf(running)
	var short []string
	for _, s := range services {
		if r := s.Spec.Mode.Replicated; r != nil && r.Replicas != nil && meant[s.ID] < *r.Replicas {
			short = append(short, s.ID)
		}
	}
	if len(short) > maxShortServices {
		return c.readView(ctx, filters.Args{})
	}
	f := filters.NewArgs()
	for _, id := range short {
		f.Add("service", id)
	}
	theirs, err := c.taskList(ctx, f)
	if err != nil {
		// A short service removed since is not found: the whole
		// listing decides.
		return c.readView(ctx, filters.Args{})
	}
	if services, err = c.serviceList(ctx); err != nil {
		return TaskView{}, err
	}
	recount := meantOf(theirs)
	for _, id := range short {
		meant[id] = recount[id]
	}
	v.Incomplete = missingTasks(services, meant)
	v.Services = servicesOf(running, services)
	return v, nil
}

// maxShortServices bounds the services whose every task Tasks lists by
// name; more read the whole listing (a manager answering before its
// store has caught up lists few tasks for every service).
var maxShortServices = 50

func (c *Client) serviceList(ctx context.Context) ([]dswarm.Service, error) {
	services, err := c.api.ServiceList(ctx, dswarm.ServiceListOptions{})
	if err != nil {
		return nil, fmt.Errorf("service list: %w", err)
	}
	return services, nil
}

// readView reads the tasks the filters keep once, then the services; see
// Tasks.
func (c *Client) readView(ctx context.Context, f filters.Args) (TaskView, error) {
	tasks, err := c.taskList(ctx, f)
	if err != nil {
		return TaskView{}, err
	}
	services, err := c.serviceList(ctx)
	if err != nil {
		return TaskView{}, err
	}
	v := viewOf(tasks, services)
	v.Services = servicesOf(tasks, services)
	return v, nil
}

// taskList lists tasks through decodeTask (wire.go), which reads only
// the fields viewOf and servicesOf read.
func (c *Client) taskList(ctx context.Context, f filters.Args) ([]taskWire, error) {
	var tasks []taskWire
	err := c.list(ctx, "/tasks", f, func(b []byte) error {
		t, err := decodeTask(b)
		tasks = append(tasks, t)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("task list: %w", err)
	}
	return tasks, nil
}

const taskRunning = string(dswarm.TaskStateRunning)

// viewOf reads a task and a service listing; see Tasks.
func viewOf(tasks []taskWire, services []dswarm.Service) TaskView {
	var pending []PendingTask
	load := map[string]TaskLoad{}
	still := map[string]int{}
	for _, t := range tasks {
		if t.NodeID != "" && t.State == taskRunning {
			still[t.NodeID]++
		}
		if t.DesiredState != taskRunning {
			continue
		}
		res := t.Reservation
		switch dswarm.TaskState(t.State) {
		case dswarm.TaskStatePending:
			if !strings.Contains(t.Err, "no suitable node") {
				continue
			}
			pending = append(pending, PendingTask{ID: t.ID, ServiceID: t.ServiceID, Reservation: res, Reason: t.Err, Constraints: t.Constraints})
		case dswarm.TaskStateRunning, dswarm.TaskStateStarting, dswarm.TaskStateAssigned, dswarm.TaskStateAccepted, dswarm.TaskStatePreparing, dswarm.TaskStateReady:
			if t.NodeID == "" {
				continue
			}
			l := load[t.NodeID]
			if t.State == taskRunning {
				l.Running++
			}
			l.Reserved.NanoCPUs += res.NanoCPUs
			l.Reserved.MemoryBytes += res.MemoryBytes
			load[t.NodeID] = l
		}
	}
	return TaskView{Pending: pending, Load: load, StillRunning: still, Incomplete: missingTasks(services, meantOf(tasks))}
}

// meantOf counts, by service, the tasks meant to run or still running.
func meantOf(tasks []taskWire) map[string]uint64 {
	meant := map[string]uint64{}
	for _, t := range tasks {
		if t.DesiredState == taskRunning || alive(dswarm.TaskState(t.State)) {
			// A task being stopped (its node drains) still holds its
			// slot until it has stopped: Swarm creates the replacement
			// after, so the listing is whole with it.
			meant[t.ServiceID]++
		}
	}
	return meant
}

// alive reports whether a task in this state has (or is about to have) a
// container running.
func alive(s dswarm.TaskState) bool {
	switch s {
	case dswarm.TaskStateAssigned, dswarm.TaskStateAccepted, dswarm.TaskStatePreparing, dswarm.TaskStateReady,
		dswarm.TaskStateStarting, dswarm.TaskStateRunning:
		return true
	}
	return false
}

// missingTasks names the replicated services with fewer tasks meant to run
// than replicas, and how many are missing in all; empty when none.
func missingTasks(services []dswarm.Service, meant map[string]uint64) string {
	var names []string
	var missing uint64
	for _, s := range services {
		r := s.Spec.Mode.Replicated
		if r == nil || r.Replicas == nil || meant[s.ID] >= *r.Replicas {
			continue
		}
		missing += *r.Replicas - meant[s.ID]
		if len(names) < 3 {
			names = append(names, fmt.Sprintf("%s wants %d, %d listed", s.Spec.Name, *r.Replicas, meant[s.ID]))
		}
	}
	if missing == 0 {
		return ""
	}
	return fmt.Sprintf("the task listing lacks %d task(s) the services ask for (%s)", missing, strings.Join(names, "; "))
}

// Fits reports whether a new node with these labels and role would satisfy
// a task's placement constraints. Constraints on things a new node cannot
// have in advance (a host name, a node id) do not fit.
func Fits(constraints []string, role string, nodeLabels, engineLabels map[string]string) bool {
	for _, c := range constraints {
		key, want, eq, ok := parseConstraint(c)
		if !ok {
			return false
		}
		var have string
		var known bool
		switch {
		case key == "node.role":
			have, known = role, true
		case strings.HasPrefix(key, "node.labels."):
			have, known = nodeLabels[strings.TrimPrefix(key, "node.labels.")]
		case strings.HasPrefix(key, "engine.labels."):
			have, known = engineLabels[strings.TrimPrefix(key, "engine.labels.")]
		case key == "node.platform.os":
			have, known = "linux", true
		default:
			return false
		}
		match := known && strings.EqualFold(have, want)
		if match != eq {
			return false
		}
	}
	return true
}

// parseConstraint splits a constraint at its operator: the first "==" or
// "!=" in it, since a key holds neither '=' nor '!' and the value may hold
// both ("node.labels.expr==a!=b" asks for the value "a!=b"). Like Swarm,
// it trims spaces around key and value and refuses an empty one.
func parseConstraint(c string) (key, value string, eq, ok bool) {
	i, j := strings.Index(c, "=="), strings.Index(c, "!=")
	switch {
	case i < 0 && j < 0:
		return "", "", false, false
	case i < 0 || (j >= 0 && j < i):
		i, eq = j, false
	default:
		eq = true
	}
	key, value = strings.TrimSpace(c[:i]), strings.TrimSpace(c[i+2:])
	return key, value, eq, key != "" && value != ""
}

// RebalanceService makes Swarm reschedule a service's tasks (a forced
// update), which spreads them onto nodes that joined since: Swarm does not
// rebalance by itself.
func (c *Client) RebalanceService(ctx context.Context, serviceID string) error {
	svc, _, err := c.api.ServiceInspectWithRaw(ctx, serviceID, dswarm.ServiceInspectOptions{})
	if err != nil {
		return fmt.Errorf("service inspect %s: %w", serviceID, err)
	}
	spec := svc.Spec
	spec.TaskTemplate.ForceUpdate++
	if _, err := c.api.ServiceUpdate(ctx, serviceID, svc.Version, spec, dswarm.ServiceUpdateOptions{}); err != nil {
		return fmt.Errorf("service update %s: %w", serviceID, err)
	}
	return nil
}

// LabelledServices lists the ids of services carrying label=value.
func (c *Client) LabelledServices(ctx context.Context, label, value string) ([]string, error) {
	svcs, err := c.api.ServiceList(ctx, dswarm.ServiceListOptions{})
	if err != nil {
		return nil, fmt.Errorf("service list: %w", err)
	}
	var out []string
	for _, s := range svcs {
		if s.Spec.Labels[label] == value {
			out = append(out, s.ID)
		}
	}
	return out, nil
}

// TasksStillRunning counts the tasks whose containers still run on a node,
// whatever Swarm wants of them: a drained node's tasks are told to shut down
// at once, but a drain is only over when they have stopped. A listing that
// lacks tasks the services ask for (see TaskView.Incomplete) is an error,
// never zero: on it a busy node would look drained.
func (c *Client) TasksStillRunning(ctx context.Context, nodeID string) (int, error) {
	v, err := c.readView(ctx, filters.Args{})
	if err != nil {
		return 0, err
	}
	if v.Incomplete != "" {
		return 0, errors.New(v.Incomplete)
	}
	return v.StillRunning[nodeID], nil
}
