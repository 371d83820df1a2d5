package swarm

import (
	"strings"
	"testing"

	dswarm "github.com/docker/docker/api/types/swarm"
)

func replicated(id, name string, n uint64) dswarm.Service {
	s := dswarm.Service{ID: id}
	s.Spec.Name = name
	s.Spec.Mode.Replicated = &dswarm.ReplicatedService{Replicas: &n}
	return s
}

func task(service, node string, desired, state dswarm.TaskState) dswarm.Task {
	return dswarm.Task{ServiceID: service, NodeID: node, DesiredState: desired, Status: dswarm.TaskStatus{State: state}}
}

// A listing is complete when every replicated service has as many tasks
// meant to run as it has replicas; shut-down tasks do not count, global
// services are not judged, and a listing with no task while a service asks
// for replicas (a manager answering before its store caught up) is not.
func TestTaskViewCompleteness(t *testing.T) {
	run, shut := dswarm.TaskStateRunning, dswarm.TaskStateShutdown
	global := dswarm.Service{ID: "g"}
	global.Spec.Name = "agent"
	global.Spec.Mode.Global = &dswarm.GlobalService{}
	cases := []struct {
		name     string
		tasks    []dswarm.Task
		services []dswarm.Service
		want     string // substring of Incomplete; empty: complete
	}{
		{name: "no services, no tasks"},
		{name: "all listed", services: []dswarm.Service{replicated("a", "web", 2), global},
			tasks: []dswarm.Task{task("a", "n1", run, run), task("a", "n2", run, dswarm.TaskStatePending)}},
		{name: "rolling update lists more", services: []dswarm.Service{replicated("a", "web", 1)},
			tasks: []dswarm.Task{task("a", "n1", run, run), task("a", "n2", run, dswarm.TaskStateStarting)}},
		{name: "zero replicas", services: []dswarm.Service{replicated("a", "web", 0)}},
		{name: "empty listing", services: []dswarm.Service{replicated("a", "web", 3), replicated("b", "db", 1)},
			want: "lacks 4 task(s) the services ask for (web wants 3, 0 listed; db wants 1, 0 listed)"},
		{name: "a task still stopping on a draining node holds its slot", services: []dswarm.Service{replicated("a", "web", 2)},
			tasks: []dswarm.Task{task("a", "n1", run, run), task("a", "n2", shut, run)}},
		{name: "shut-down tasks do not count", services: []dswarm.Service{replicated("a", "web", 2)},
			tasks: []dswarm.Task{task("a", "n1", run, run), task("a", "n2", shut, shut)}, want: "web wants 2, 1 listed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := taskView(c.tasks, c.services)
			if c.want == "" && v.Incomplete != "" {
				t.Fatalf("Incomplete = %q, want complete", v.Incomplete)
			}
			if !strings.Contains(v.Incomplete, c.want) {
				t.Fatalf("Incomplete = %q, want it to contain %q", v.Incomplete, c.want)
			}
		})
	}
	v := taskView([]dswarm.Task{task("a", "n1", run, run)}, []dswarm.Service{replicated("a", "web", 1)})
	// A task told to stop whose container still runs keeps its node busy.
	if v := taskView([]dswarm.Task{task("a", "n2", dswarm.TaskStateShutdown, run)}, nil); v.StillRunning["n2"] != 1 || v.Load["n2"].Running != 0 {
		t.Fatalf("a stopping task: still running %v, load %+v", v.StillRunning, v.Load)
	}
	if v.Load["n1"].Running != 1 || v.StillRunning["n1"] != 1 {
		t.Fatalf("load = %+v", v.Load)
	}
}
