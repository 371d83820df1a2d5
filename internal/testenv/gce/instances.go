package gce

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// vm is a virtual machine (a Compute Engine instance) of a group.
type vm struct {
	project, zone, name string
	id                  uint64
	status              string // PROVISIONING, RUNNING, STOPPING
	created             time.Time
	runningAt, goneAt   time.Time
	deleting, gone      bool
	ip                  string
	group               *group
	template            string
	props               map[string]any // the template's properties when created
}

func (v *vm) url() string { return link(v.project) + "/zones/" + v.zone + "/instances/" + v.name }

// createVM makes m's VM, unless the quota fault refuses it: then the
// managed instance keeps no VM and says why in lastAttempt.errors, and the
// next reconcile tries again.
func (s *Server) createVM(g *group, m *member, now time.Time) {
	if s.quotaf != nil && s.quotaf(g.name, m.zone) {
		m.errors = []any{map[string]any{
			"code":    "QUOTA_EXCEEDED",
			"message": fmt.Sprintf("Instance '%s' creation failed: Quota 'CPUS' exceeded.  Limit: 24.0 in region %s.", m.name, g.region),
			"errorDetails": []any{map[string]any{"quotaInfo": map[string]any{
				"metricName": "compute.googleapis.com/cpus",
				"limitName":  "CPUS-per-project-region",
				"dimensions": map[string]any{"region": g.region},
				"limit":      24,
			}}},
		}}
		return
	}
	t := s.templates[g.project+"/"+lastSeg(m.template)]
	props := map[string]any{}
	if t != nil {
		props, _ = copyJSON(getMap(t.res, "properties")).(map[string]any)
	}
	m.errors = nil
	v := &vm{project: g.project, zone: m.zone, name: m.name, id: s.newID(), status: "PROVISIONING",
		created: now, runningAt: now.Add(s.opts.CreateDelay), group: g, template: m.template, props: props,
		ip: fmt.Sprintf("10.128.%d.%d", s.nextIP/250, s.nextIP%250+2)}
	s.nextIP++
	s.vms[g.project+"/"+v.zone+"/"+v.name] = v
	m.vm = v
	s.event(EventCreated, v)
}

// startDelete begins deleting a VM: STOPPING, gone after DeleteDelay.
func (s *Server) startDelete(v *vm, now time.Time) {
	if v.deleting {
		return
	}
	v.deleting = true
	v.status = "STOPPING"
	v.goneAt = now.Add(s.opts.DeleteDelay)
	s.event(EventDeleting, v)
}

// json is the VM as instances.get answers it: its template's properties
// made concrete (machine type and disks in its zone, its network address),
// plus the metadata Google adds to a group's VMs (instance-template,
// created-by).
func (v *vm) json() map[string]any {
	zoneURL := link(v.project) + "/zones/" + v.zone
	out := map[string]any{}
	for k, val := range v.props {
		switch k {
		case "machineType", "disks", "networkInterfaces", "metadata":
		default:
			out[k] = copyJSON(val)
		}
	}
	out["kind"] = "compute#instance"
	out["id"] = strconv.FormatUint(v.id, 10)
	out["name"] = v.name
	out["zone"] = zoneURL
	out["selfLink"] = v.url()
	out["status"] = v.status
	out["creationTimestamp"] = stamp(v.created)
	out["machineType"] = zoneURL + "/machineTypes/" + lastSeg(getString(v.props, "machineType"))
	var disks []any
	for i, d := range anySlice(v.props["disks"]) {
		dm, _ := d.(map[string]any)
		disk := map[string]any{"kind": "compute#attachedDisk", "type": "PERSISTENT", "mode": "READ_WRITE",
			"index": i, "deviceName": fmt.Sprintf("persistent-disk-%d", i)}
		for _, k := range []string{"boot", "autoDelete", "deviceName", "type", "mode", "interface"} {
			if dm[k] != nil {
				disk[k] = dm[k]
			}
		}
		name := v.name
		if i > 0 {
			name = fmt.Sprintf("%s-%d", v.name, i)
		}
		disk["source"] = zoneURL + "/disks/" + name
		disks = append(disks, disk)
	}
	if disks != nil {
		out["disks"] = disks
	}
	nics := anySlice(copyJSON(v.props["networkInterfaces"]))
	if len(nics) == 0 {
		nics = []any{map[string]any{"network": "global/networks/default"}}
	}
	for i, n := range nics {
		nm, _ := n.(map[string]any)
		nm["kind"] = "compute#networkInterface"
		nm["name"] = fmt.Sprintf("nic%d", i)
		if i == 0 {
			nm["networkIP"] = v.ip
		}
		if net := getString(nm, "network"); net != "" && !strings.HasPrefix(net, "https://") {
			nm["network"] = link(v.project) + "/" + strings.TrimPrefix(net, "projects/"+v.project+"/")
		}
	}
	out["networkInterfaces"] = nics
	md := map[string]any{"kind": "compute#metadata", "fingerprint": "ZmFrZS1mcA=="}
	var items []any
	for _, it := range anySlice(getMap(v.props, "metadata")["items"]) {
		items = append(items, copyJSON(it))
	}
	items = append(items,
		map[string]any{"key": "instance-template", "value": strings.TrimPrefix(v.template, googleBase)},
		map[string]any{"key": "created-by", "value": v.group.path()})
	md["items"] = items
	out["metadata"] = md
	return out
}

func (s *Server) findVM(r *request) (*vm, *apiError) {
	v := s.vms[r.project+"/"+r.path["zone"]+"/"+r.path["instance"]]
	if v == nil {
		return nil, notFound(fmt.Sprintf("projects/%s/zones/%s/instances/%s", r.project, r.path["zone"], r.path["instance"]))
	}
	return v, nil
}

func hInstanceGet(s *Server, r *request) (any, *apiError) {
	v, err := s.findVM(r)
	if err != nil {
		return nil, err
	}
	return v.json(), nil
}

func hInstanceDelete(s *Server, r *request) (any, *apiError) {
	v, err := s.findVM(r)
	if err != nil {
		return nil, err
	}
	return s.newOp(r, "zones", v.zone, "delete", v.url(), v.id, func() {
		s.startDelete(v, time.Now())
	}, func() bool { return v.gone }), nil
}

// vmsOf are the project's VMs matching the list's filter, by zone then name.
func (s *Server) vmsOf(r *request, zone string) ([]*vm, *apiError) {
	match, err := s.parseFilter(r.Query.Get("filter"))
	if err != nil {
		return nil, err
	}
	if r.Query.Get("orderBy") != "" {
		return nil, s.notModeled("orderBy on instance lists")
	}
	var out []*vm
	for _, k := range sortedKeys(s.vms) {
		v := s.vms[k]
		if v.project == r.project && (zone == "" || v.zone == zone) && match(v.json()) {
			out = append(out, v)
		}
	}
	return out, nil
}

func hInstanceList(s *Server, r *request) (any, *apiError) {
	vms, err := s.vmsOf(r, r.path["zone"])
	if err != nil {
		return nil, err
	}
	items := []any{}
	for _, v := range vms {
		items = append(items, v.json())
	}
	return listAnswer(r, "compute#instanceList", "zones/"+r.path["zone"]+"/instances", items)
}

// hInstanceAggregatedList lists VMs of every zone, paged across zones.
// Google also lists the zones without instances, each with a warning; the
// fake lists only zones that have some on the page.
func hInstanceAggregatedList(s *Server, r *request) (any, *apiError) {
	vms, err := s.vmsOf(r, "")
	if err != nil {
		return nil, err
	}
	vms, next, err := page(r, vms)
	if err != nil {
		return nil, err
	}
	items := map[string]any{}
	for _, v := range vms {
		key := "zones/" + v.zone
		sl, _ := items[key].(map[string]any)
		if sl == nil {
			sl = map[string]any{"instances": []any{}}
			items[key] = sl
		}
		sl["instances"] = append(sl["instances"].([]any), v.json())
	}
	out := map[string]any{
		"kind":     "compute#instanceAggregatedList",
		"id":       "projects/" + r.project + "/aggregated/instances",
		"selfLink": link(r.project) + "/aggregated/instances",
		"items":    items,
	}
	if next != "" {
		out["nextPageToken"] = next
	}
	return out, nil
}

// filterTerm is one comparison of a list filter in the AIP-160 form.
var filterTerm = regexp.MustCompile(`^\s*\(?\s*([A-Za-z][A-Za-z0-9_.\-]*)\s*(!=|=|:)\s*("(?:[^"\\]|\\.)*"|[^\s()]+)\s*\)?\s*`)

// filterRegex is a filter in the regular-expression form: one field
// compared with eq or ne to an RE2 that must match the whole value.
var filterRegex = regexp.MustCompile(`^\s*([A-Za-z][A-Za-z0-9_.\-]*)\s+(eq|ne)\s+("(?:[^"\\]|\\.)*"|'[^']*'|\S+)\s*$`)

// filterField reads a dotted field path (labels.KEY, name, status, zone)
// of a resource as its API answer has it; ok is false when it is absent
// or not a string.
func filterField(obj map[string]any, field string) (string, bool) {
	parts := strings.Split(field, ".")
	cur := obj
	for _, p := range parts[:len(parts)-1] {
		cur = getMap(cur, p)
	}
	v, ok := cur[parts[len(parts)-1]].(string)
	return v, ok
}

// parseFilter reads the part of Compute Engine's filter language the fake
// models, over string fields (labels.KEY, name, status, zone, ...):
//
//   - the AIP-160 form: comparisons `FIELD = "VALUE"`, `FIELD != VALUE` and
//     `FIELD:*` (present), optionally parenthesized, joined by AND or
//     juxtaposition;
//   - the regular-expression form: one `FIELD eq "RE2"` or `FIELD ne
//     'RE2'`, the expression matching the whole value.
//
// Other filters (OR, other operators, several regular expressions) fail
// the test rather than match everything.
func (s *Server) parseFilter(f string) (func(map[string]any) bool, *apiError) {
	if m := filterRegex.FindStringSubmatch(f); m != nil {
		field, op, val := m[1], m[2], m[3]
		switch {
		case strings.HasPrefix(val, `"`):
			u, err := strconv.Unquote(val)
			if err != nil {
				return nil, badRequest("invalid", "Invalid value for field 'filter': '%s'.", f)
			}
			val = u
		case strings.HasPrefix(val, "'"):
			val = val[1 : len(val)-1]
		}
		re, err := regexp.Compile("^(?:" + val + ")$")
		if err != nil {
			return nil, badRequest("invalid", "Invalid value for field 'filter': '%s'. Invalid regular expression: %v", f, err)
		}
		return func(obj map[string]any) bool {
			v, _ := filterField(obj, field)
			return re.MatchString(v) == (op == "eq")
		}, nil
	}
	var terms []func(map[string]any) bool
	rest := strings.TrimSpace(f)
	for rest != "" {
		m := filterTerm.FindStringSubmatch(rest)
		if m == nil {
			return nil, s.notModeled("the filter %q", f)
		}
		rest = strings.TrimSpace(rest[len(m[0]):])
		if strings.HasPrefix(rest, "AND ") {
			rest = strings.TrimSpace(rest[4:])
		}
		field, op, val := m[1], m[2], m[3]
		if strings.HasPrefix(val, `"`) {
			u, err := strconv.Unquote(val)
			if err != nil {
				return nil, badRequest("invalid", "Invalid value for field 'filter': '%s'.", f)
			}
			val = u
		}
		if op == ":" && val != "*" {
			return nil, s.notModeled("the filter %q (':' other than ':*')", f)
		}
		terms = append(terms, func(obj map[string]any) bool {
			v, ok := filterField(obj, field)
			switch op {
			case ":":
				return ok
			case "=":
				return ok && v == val
			}
			return !ok || v != val
		})
	}
	return func(obj map[string]any) bool {
		for _, t := range terms {
			if !t(obj) {
				return false
			}
		}
		return true
	}, nil
}

// EventKind is what happened to a VM.
type EventKind string

const (
	// EventCreated: the VM exists (PROVISIONING).
	EventCreated EventKind = "created"
	// EventRunning: the VM is RUNNING (its boot would start now).
	EventRunning EventKind = "running"
	// EventDeleting: the VM is being deleted (STOPPING).
	EventDeleting EventKind = "deleting"
	// EventDeleted: the VM is gone.
	EventDeleted EventKind = "deleted"
)

// Event is a VM event for OnInstance.
type Event struct {
	Kind     EventKind
	Instance Instance
}

// Instance is a VM as a test sees it.
type Instance struct {
	Project, Region, Zone, Name string
	// ID is the VM's numeric id (a managed instance's id, as a string in
	// the API).
	ID uint64
	// Group is the name of its managed instance group.
	Group  string
	Status string
	// NetworkIP is its private address.
	NetworkIP string
	Created   time.Time
	// Metadata are its metadata items (startup-script among them), Labels
	// its labels, both from its template.
	Metadata map[string]string
	Labels   map[string]string
	// Template is the URL of the template it was created from.
	Template string
}

func (v *vm) snapshot() Instance {
	in := Instance{Project: v.project, Region: v.group.region, Zone: v.zone, Name: v.name, ID: v.id,
		Group: v.group.name, Status: v.status, NetworkIP: v.ip, Created: v.created, Template: v.template,
		Metadata: map[string]string{}, Labels: map[string]string{}}
	for _, it := range anySlice(getMap(v.json(), "metadata")["items"]) {
		im, _ := it.(map[string]any)
		in.Metadata[getString(im, "key")] = getString(im, "value")
	}
	for k, l := range getMap(v.props, "labels") {
		in.Labels[k], _ = l.(string)
	}
	return in
}

func (s *Server) event(kind EventKind, v *vm) {
	if s.onInstance != nil {
		s.events = append(s.events, Event{Kind: kind, Instance: v.snapshot()})
	}
}

// Instances are the VMs of the groups named group (any project and
// region; every group when group is ""), being deleted included, by zone
// then name.
func (s *Server) Instances(group string) []Instance {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Instance
	for _, k := range sortedKeys(s.vms) {
		if v := s.vms[k]; group == "" || v.group.name == group {
			out = append(out, v.snapshot())
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Zone < out[j].Zone })
	return out
}

// DeleteInstance deletes a VM behind its group's back, as a failed host or
// someone's instances.delete would (no call is counted); its group then
// recreates it under the same name with a new id.
func (s *Server) DeleteInstance(zone, name string) error {
	s.mu.Lock()
	var v *vm
	for _, k := range sortedKeys(s.vms) {
		if x := s.vms[k]; x.zone == zone && x.name == name {
			v = x
		}
	}
	if v == nil {
		s.mu.Unlock()
		return fmt.Errorf("gce fake: no instance %s in zone %s", name, zone)
	}
	s.startDelete(v, time.Now())
	events := s.takeEvents()
	s.mu.Unlock()
	s.deliver(events)
	return nil
}

// SetAutoscaler attaches the autoscaler autoscalerURL to the group of
// project and region ("" detaches it): the group's status.autoscaler names
// it, and deleting the group is refused while it is attached. The fake
// models no autoscaling: only the attachment an adapter must notice.
func (s *Server) SetAutoscaler(project, region, group, autoscalerURL string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[project+"/"+region+"/"+group]
	if g == nil {
		return fmt.Errorf("gce fake: no group %s in project %s region %s", group, project, region)
	}
	g.autoscaler = autoscalerURL
	return nil
}

// GroupResource is the group as regionInstanceGroupManagers.get would
// answer it (what was sent, with Google's defaults), for assertions.
func (s *Server) GroupResource(region, group string) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, g := range s.sortedGroups() {
		if g.region == region && g.name == group {
			return g.json()
		}
	}
	return nil
}
