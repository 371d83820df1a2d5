package swarm

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	dswarm "github.com/docker/docker/api/types/swarm"

	"github.com/autarky/terraform-provider-autarky/internal/testenv"
)

// wireOf is what the agent reads of a task decoded whole into the Docker
// client's type: the reference decodeTask must match.
func wireOf(t dswarm.Task) taskWire {
	w := taskWire{ID: t.ID, ServiceID: t.ServiceID, NodeID: t.NodeID, DesiredState: string(t.DesiredState),
		State: string(t.Status.State), Err: t.Status.Err}
	if r := t.Spec.Resources; r != nil && r.Reservations != nil {
		w.Reservation = Resources{NanoCPUs: r.Reservations.NanoCPUs, MemoryBytes: r.Reservations.MemoryBytes}
	}
	if t.Spec.Placement != nil {
		w.Constraints = t.Spec.Placement.Constraints
	}
	return w
}

// taskView is the view of a whole listing decoded into the Docker
// client's types.
func taskView(tasks []dswarm.Task, services []dswarm.Service) TaskView {
	ws := make([]taskWire, 0, len(tasks))
	for _, t := range tasks {
		ws = append(ws, wireOf(t))
	}
	return viewOf(ws, services)
}

// smallSwarm is a generated swarm with every kind of task the generator
// makes, and the odd shapes a real listing can hold besides.
func smallSwarm() *testenv.BigSwarm {
	b := testenv.BigSwarmSpec{Cluster: "c", Managers: 3, Workers: 60, Pools: 3, Services: 12, RunningTasks: 240, HistoryPerSlot: 4, Pending: 3}.Generate()
	odd := b.Tasks[len(b.Tasks)-1]
	odd.ID = "odd1"
	odd.Status.Err = "no suitable node (\"quoted\", back\\slash, é, \u2028, tab\t)"
	odd.Spec.Placement = &dswarm.Placement{Constraints: []string{}}
	odd.Spec.Resources = &dswarm.ResourceRequirements{Limits: &dswarm.Limit{NanoCPUs: 1}}
	b.Tasks = append(b.Tasks, odd)
	bare := dswarm.Task{ID: "bare", ServiceID: odd.ServiceID, DesiredState: dswarm.TaskStateRunning, Status: dswarm.TaskStatus{State: dswarm.TaskStatePending, Err: "no suitable node"}}
	b.Tasks = append(b.Tasks, bare)
	n := b.Nodes[len(b.Nodes)-1]
	n.ID = "bare-node"
	n.Spec.Labels = map[string]string{}
	n.Description.Engine.Labels = nil
	n.Description.Hostname = "h\"x\\y"
	b.Nodes = append(b.Nodes, n)
	return b
}

// decodeTask and decodeNode read from the Engine API's JSON exactly what
// the Docker client's types decoded by encoding/json give, whatever the
// layout and however the bytes arrive (97 at a time: every element
// spans reads).
func TestWireDecodingMatchesDockerTypes(t *testing.T) {
	b := smallSwarm()
	for _, layout := range []string{"compact", "indented"} {
		marshal := func(v any) []byte {
			out, err := json.Marshal(v)
			if layout == "indented" {
				out, err = json.MarshalIndent(v, " ", "\t")
			}
			if err != nil {
				t.Fatal(err)
			}
			return out
		}
		tasksJSON, nodesJSON := marshal(b.Tasks), marshal(b.Nodes)
		var full []dswarm.Task
		if err := json.Unmarshal(tasksJSON, &full); err != nil {
			t.Fatal(err)
		}
		var fullNodes []dswarm.Node
		if err := json.Unmarshal(nodesJSON, &fullNodes); err != nil {
			t.Fatal(err)
		}
		for _, small := range []bool{false, true} {
			read := func(js []byte, f func([]byte) error) {
				var r = bytes.NewReader(js)
				var err error
				if small {
					err = eachElement(&chunks{r: r, n: 97}, f)
				} else {
					err = eachElement(r, f)
				}
				if err != nil {
					t.Fatalf("%s, small reads %v: %v", layout, small, err)
				}
			}
			var got []taskWire
			read(tasksJSON, func(e []byte) error {
				w, err := decodeTask(e)
				got = append(got, w)
				return err
			})
			if len(got) != len(full) {
				t.Fatalf("%d tasks decoded, want %d", len(got), len(full))
			}
			for i := range full {
				if want := wireOf(full[i]); !reflect.DeepEqual(got[i], want) {
					t.Fatalf("%s, small reads %v: task %d:\n got %#v\nwant %#v", layout, small, i, got[i], want)
				}
			}
			var nodes []Node
			read(nodesJSON, func(e []byte) error {
				n, err := decodeNode(e)
				nodes = append(nodes, n)
				return err
			})
			for i := range fullNodes {
				if want := toNode(fullNodes[i]); !reflect.DeepEqual(nodes[i], want) {
					t.Fatalf("%s, small reads %v: node %d:\n got %#v\nwant %#v", layout, small, i, nodes[i], want)
				}
			}
		}
	}
}

// The same on a real engine's listings: a swarm of a manager and two
// workers (Docker 20.10, Debian's), recorded from GET /v1.41/nodes,
// /tasks and /services with a replicated service updated once (its old
// tasks shut down), a global one, and one whose task fits no node.
func TestWireDecodingMatchesRealEngine(t *testing.T) {
	read := func(name string, into any) []byte {
		b, err := os.ReadFile(filepath.Join("testdata", "engine-20.10", name))
		if err == nil {
			err = json.Unmarshal(b, into)
		}
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var tasks []dswarm.Task
	var nodes []dswarm.Node
	var services []dswarm.Service
	tasksJSON, nodesJSON := read("tasks.json", &tasks), read("nodes.json", &nodes)
	read("services.json", &services)
	var got []taskWire
	if err := eachElement(bytes.NewReader(tasksJSON), func(e []byte) error {
		w, err := decodeTask(e)
		got = append(got, w)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var want []taskWire
	for _, tk := range tasks {
		want = append(want, wireOf(tk))
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("tasks:\n got %+v\nwant %+v", got, want)
	}
	if v := viewOf(got, services); len(v.Pending) != 1 || len(v.Load) != 3 || v.Incomplete != "" {
		t.Fatalf("the recorded swarm's view: %+v", v)
	}
	i := 0
	if err := eachElement(bytes.NewReader(nodesJSON), func(e []byte) error {
		n, err := decodeNode(e)
		if want := toNode(nodes[i]); !reflect.DeepEqual(n, want) {
			t.Errorf("node %d:\n got %+v\nwant %+v", i, n, want)
		}
		i++
		return err
	}); err != nil || i != 3 {
		t.Fatalf("%d nodes: %v", i, err)
	}
}

// Malformed answers are errors naming where, never a partial listing
// taken as whole; null and [] are empty listings.
func TestEachElementMalformed(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"[]", ""}, {" null ", ""}, {"[ {\"a\":1} , {\"b\":[1,{\"c\":\"]\"}]} ]", ""},
		{"", "unexpected EOF"},
		{"[{\"a\":1}", "unexpected EOF"},
		{"[{\"a\":1} {\"b\":2}]", "comma"},
		{"[{\"a\":\"x]", "unexpected EOF"},
		{"{\"a\":1}", "where an array begins"},
		{"nul", "not an array"},
	} {
		n := 0
		err := eachElement(strings.NewReader(c.in), func([]byte) error { n++; return nil })
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%q: %v", c.in, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%q: error %v, want one saying %q", c.in, err, c.want)
		}
	}
	for _, in := range []string{`{"ID" 1}`, `{"ID":"a" "NodeID":"b"}`, `{"Spec":{"Resources":{"Reservations":{"NanoCPUs":"x"}}}}`, `{"Status":[1]}`} {
		if _, err := decodeTask([]byte(in)); err == nil {
			t.Errorf("decodeTask(%s) took it", in)
		}
	}
}

// serveSwarm serves b over HTTP on a unix socket, as a manager would.
func serveSwarm(t *testing.T, b *testenv.BigSwarm) (*Client, *testenv.EngineHandler) {
	dir, err := os.MkdirTemp("/tmp", "akws")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "docker.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	h := testenv.NewEngineHandler(b)
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(ln) }()
	c, err := Dial("unix://" + sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(); _ = srv.Close(); _ = os.RemoveAll(dir) })
	return c, h
}

// Tasks asks the manager for the tasks Swarm wants running only, and its
// view is the whole listing's (but for StillRunning): on a steady swarm
// from that listing alone; when services are short on it (a task told to
// stop whose container still runs holds its slot, or a service really
// lacks tasks), with every task of those services read again, or the
// whole listing when too many are short. Nodes, Service and
// TasksStillRunning read the same as the Docker client's types.
func TestTasksSameAsWholeListing(t *testing.T) {
	ctx := context.Background()
	stopping := func(b *testenv.BigSwarm) {
		// A drained node's task: told to stop, still running, its
		// replacement not created yet.
		for i := range b.Tasks {
			if b.Tasks[i].DesiredState == dswarm.TaskStateRunning && b.Tasks[i].Status.State == dswarm.TaskStateRunning {
				b.Tasks[i].DesiredState = dswarm.TaskStateShutdown
				return
			}
		}
	}
	lacking := func(b *testenv.BigSwarm) {
		for i := range b.Tasks {
			if b.Tasks[i].DesiredState == dswarm.TaskStateRunning && b.Tasks[i].Status.State == dswarm.TaskStateRunning {
				b.Tasks = append(b.Tasks[:i], b.Tasks[i+1:]...)
				return
			}
		}
	}
	lackingThree := func(b *testenv.BigSwarm) {
		for _, svc := range b.Services[:3] {
			for i := 0; i < len(b.Tasks); i++ {
				if b.Tasks[i].ServiceID == svc.ID && b.Tasks[i].DesiredState == dswarm.TaskStateRunning {
					b.Tasks = append(b.Tasks[:i], b.Tasks[i+1:]...)
					i--
				}
			}
		}
	}
	defer func(n int) { maxShortServices = n }(maxShortServices)
	maxShortServices = 2
	for _, c := range []struct {
		name   string
		change func(*testenv.BigSwarm)
		// the task listings read besides the one of the wanted tasks:
		// of the short services' every task, the whole listing
		theirs, whole bool
		incomplete    bool
	}{
		{name: "steady", change: func(*testenv.BigSwarm) {}},
		{name: "a task still stopping", change: stopping, theirs: true},
		{name: "a service short", change: lacking, theirs: true, incomplete: true},
		{name: "more services short than are listed by name", change: lackingThree, whole: true, incomplete: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := smallSwarm()
			c.change(b)
			cl, h := serveSwarm(t, b)
			got, err := cl.Tasks(ctx)
			if err != nil {
				t.Fatal(err)
			}
			// The reference: the whole listing as the Docker client's
			// types decode the engine's JSON of it.
			var tasks []dswarm.Task
			var nodes []dswarm.Node
			roundTrip(t, b.Tasks, &tasks)
			roundTrip(t, b.Nodes, &nodes)
			want := taskView(tasks, b.Services)
			var wholeTasks []taskWire
			for _, tk := range tasks {
				wholeTasks = append(wholeTasks, wireOf(tk))
			}
			want.Services = servicesOf(wholeTasks, b.Services)
			if !c.whole {
				want.StillRunning = nil
			}
			if (got.Incomplete != "") != c.incomplete {
				t.Fatalf("Incomplete = %q", got.Incomplete)
			}
			// Services hold their unexported specs, decoded from JSON
			// on one side: compare them as JSON.
			gs, _ := json.Marshal(got.Services)
			ws, _ := json.Marshal(want.Services)
			running := map[string]int{}
			for _, s := range want.Services {
				running[s.ID] = s.Running
			}
			got.Services, want.Services = nil, nil
			for what, same := range map[string]bool{"pending": reflect.DeepEqual(got.Pending, want.Pending), "load": reflect.DeepEqual(got.Load, want.Load),
				"still running": reflect.DeepEqual(got.StillRunning, want.StillRunning), "incomplete": got.Incomplete == want.Incomplete, "services": bytes.Equal(gs, ws)} {
				if !same {
					t.Errorf("%s differs from the whole listing's", what)
				}
			}
			if t.Failed() {
				t.Fatalf("services:\n got %s\nwant %s", gs, ws)
			}
			theirs := 0
			for p, n := range h.Stats().Paths {
				if strings.HasPrefix(p, `GET /tasks?{"service":`) {
					theirs += n
				}
			}
			paths := h.Stats().Paths
			if paths[`GET /tasks?{"desired-state":{"running":true}}`] != 1 || (theirs == 1) != c.theirs || (paths["GET /tasks"] == 1) != c.whole {
				t.Fatalf("task listings: %v", paths)
			}
			if c.name != "steady" {
				return
			}
			gotNodes, err := cl.Nodes(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var wantNodes []Node
			for _, n := range nodes {
				wantNodes = append(wantNodes, toNode(n))
			}
			sort.Slice(wantNodes, func(i, j int) bool {
				if wantNodes[i].Hostname != wantNodes[j].Hostname {
					return wantNodes[i].Hostname < wantNodes[j].Hostname
				}
				return wantNodes[i].ID < wantNodes[j].ID
			})
			if !reflect.DeepEqual(gotNodes, wantNodes) {
				t.Fatalf("nodes differ: got %d, want %d", len(gotNodes), len(wantNodes))
			}
			svc, found, err := cl.Service(ctx, b.Services[1].Spec.Name)
			if err != nil || !found || svc.Running != running[svc.ID] || svc.Running == 0 {
				t.Fatalf("service %s: %+v found %v err %v", b.Services[1].Spec.Name, svc, found, err)
			}
			node := b.Tasks[len(b.Tasks)-40].NodeID
			n, err := cl.TasksStillRunning(ctx, node)
			if err != nil || n != taskView(tasks, b.Services).StillRunning[node] || n == 0 {
				t.Fatalf("TasksStillRunning(%s) = %d, %v", node, n, err)
			}
		})
	}
}

func roundTrip(t *testing.T, v, into any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err == nil {
		err = json.Unmarshal(b, into)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// chunks reads at most n bytes at a time.
type chunks struct {
	r io.Reader
	n int
}

func (c *chunks) Read(p []byte) (int, error) { return c.r.Read(p[:min(len(p), c.n)]) }
