package gce

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// group is a regional managed instance group.
type group struct {
	project, region, name string
	id                    uint64
	created               time.Time
	res                   map[string]any // as sent and patched, references normalized
	zones                 []string
	members               []*member
	autoscaler            string
	deleting              bool
	version               int // for the fingerprint
}

// member is a managed instance: a name in a zone, with or without a VM.
type member struct {
	name, zone string
	action     string // CREATING, RECREATING, DELETING, NONE
	vm         *vm
	template   string
	errors     []any // lastAttempt.errors.errors
	created    time.Time
}

func (g *group) url() string {
	return link(g.project) + "/regions/" + g.region + "/instanceGroupManagers/" + g.name
}

func (g *group) path() string {
	return "projects/" + g.project + "/regions/" + g.region + "/instanceGroupManagers/" + g.name
}

func (g *group) targetSize() int { return getInt(g.res, "targetSize") }

func (g *group) template() string { return getString(g.res, "instanceTemplate") }

func (g *group) usesTemplate(url string) bool {
	if g.template() == url {
		return true
	}
	for _, v := range anySlice(g.res["versions"]) {
		if vm, ok := v.(map[string]any); ok && getString(vm, "instanceTemplate") == url {
			return true
		}
	}
	return false
}

func anySlice(v any) []any { a, _ := v.([]any); return a }

func (s *Server) sortedGroups() []*group {
	out := make([]*group, 0, len(s.groups))
	for _, k := range sortedKeys(s.groups) {
		out = append(out, s.groups[k])
	}
	return out
}

func (s *Server) findGroup(r *request) (*group, *apiError) {
	g := s.groups[r.project+"/"+r.path["region"]+"/"+r.path["instanceGroupManager"]]
	if g == nil {
		return nil, notFound(fmt.Sprintf("projects/%s/regions/%s/instanceGroupManagers/%s", r.project, r.path["region"], r.path["instanceGroupManager"]))
	}
	return g, nil
}

// live are the members not being deleted.
func (g *group) live() []*member {
	var out []*member
	for _, m := range g.members {
		if m.action != "DELETING" {
			out = append(out, m)
		}
	}
	return out
}

var zoneRef = regexp.MustCompile(`^(?:(?:https://[^/]+/compute/v1/)?projects/[^/]+/)?zones/([^/]+)$`)

// normalize checks a group's references and fills what Google fills: the
// template as a full URL in instanceTemplate and versions, the zones of the
// distribution policy (default: zones a, b and c of the region), the
// update policy's defaults.
func (s *Server) normalize(project, region string, res map[string]any) ([]string, *apiError) {
	versions := anySlice(res["versions"])
	if len(versions) > 1 {
		return nil, s.notModeled("more than one version (canary updates)")
	}
	ref := getString(res, "instanceTemplate")
	if len(versions) == 1 {
		v, _ := versions[0].(map[string]any)
		if r := getString(v, "instanceTemplate"); r != "" {
			ref = r
		}
		if v["targetSize"] != nil {
			return nil, s.notModeled("a version's targetSize")
		}
	}
	if ref == "" {
		return nil, badRequest("invalid", "Invalid value for field 'resource.instanceTemplate': ''. An instance template must be specified (instanceTemplate or versions[].instanceTemplate).")
	}
	t, err := s.findTemplate(project, ref, "resource.instanceTemplate")
	if err != nil {
		return nil, err
	}
	res["instanceTemplate"] = t.url()
	v0 := map[string]any{}
	if len(versions) == 1 {
		v0, _ = versions[0].(map[string]any)
	}
	v0["instanceTemplate"] = t.url()
	res["versions"] = []any{v0}

	dp := getMap(res, "distributionPolicy")
	if dp == nil {
		dp = map[string]any{}
		res["distributionPolicy"] = dp
	}
	var zones []string
	for i, z := range anySlice(dp["zones"]) {
		zm, _ := z.(map[string]any)
		m := zoneRef.FindStringSubmatch(getString(zm, "zone"))
		if m == nil || !strings.HasPrefix(m[1], region+"-") {
			return nil, badRequest("invalid", "Invalid value for field 'resource.distributionPolicy.zones[%d].zone': '%s'. Expected a zone of region %s (zones/ZONE or a full URL).", i, getString(zm, "zone"), region)
		}
		zones = append(zones, m[1])
	}
	if len(zones) == 0 {
		zones = []string{region + "-a", region + "-b", region + "-c"}
	}
	zl := make([]any, len(zones))
	for i, z := range zones {
		zl[i] = map[string]any{"zone": link(project) + "/zones/" + z}
	}
	dp["zones"] = zl
	if dp["targetShape"] == nil {
		dp["targetShape"] = "EVEN"
	}
	up := getMap(res, "updatePolicy")
	if up == nil {
		up = map[string]any{}
		res["updatePolicy"] = up
	}
	defaults := map[string]any{"type": "OPPORTUNISTIC", "instanceRedistributionType": "PROACTIVE",
		"minimalAction": "REPLACE", "replacementMethod": "SUBSTITUTE"}
	for k, v := range defaults {
		if up[k] == nil {
			up[k] = v
		}
	}
	for _, k := range []string{"maxSurge", "maxUnavailable"} {
		fp := getMap(up, k)
		if fp == nil {
			fp = map[string]any{"fixed": json.Number(strconv.Itoa(len(zones)))}
			up[k] = fp
		}
		fp["calculated"] = json.Number(strconv.Itoa(getInt(fp, "fixed")))
	}
	if res["listManagedInstancesResults"] == nil {
		res["listManagedInstancesResults"] = "PAGELESS"
	}
	if getInt(res, "targetSize") < 0 {
		return nil, badRequest("invalid", "Invalid value for field 'resource.targetSize': '%d'. Must be greater than or equal to 0.", getInt(res, "targetSize"))
	}
	if getString(res, "baseInstanceName") == "" {
		res["baseInstanceName"] = getString(res, "name")
	}
	for _, k := range []string{"autoHealingPolicies", "statefulPolicy", "targetPools", "instanceLifecyclePolicy", "standbyPolicy", "instanceFlexibilityPolicy", "allInstancesConfig", "targetSizePolicy", "resourcePolicies"} {
		if res[k] != nil {
			return nil, s.notModeled("the group field %s", k)
		}
	}
	return zones, nil
}

// json is the group as regionInstanceGroupManagers.get answers it.
func (g *group) json() map[string]any {
	out := resourceJSON(g.res, "compute#instanceGroupManager", g.id, g.url(), g.created)
	out["region"] = link(g.project) + "/regions/" + g.region
	out["instanceGroup"] = link(g.project) + "/regions/" + g.region + "/instanceGroups/" + g.name
	out["fingerprint"] = base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf("v%07d", g.version)))
	counts := map[string]int{}
	stable, reached := true, true
	for _, m := range g.members {
		counts[m.action]++
		if m.action != "NONE" {
			stable = false
		}
		if m.template != g.template() {
			reached = false
		}
	}
	if len(g.live()) != g.targetSize() {
		stable = false
	}
	actions := map[string]any{}
	for _, k := range []string{"abandoning", "creating", "creatingWithoutRetries", "deleting", "none", "recreating",
		"refreshing", "restarting", "resuming", "starting", "stopping", "suspending", "verifying"} {
		actions[k] = counts[camelToAction(k)]
	}
	out["currentActions"] = actions
	status := map[string]any{
		"isStable":      stable,
		"versionTarget": map[string]any{"isReached": reached},
		"stateful": map[string]any{"hasStatefulConfig": false,
			"perInstanceConfigs": map[string]any{"allEffective": true}},
	}
	if g.autoscaler != "" {
		status["autoscaler"] = g.autoscaler
	}
	out["status"] = status
	return out
}

func camelToAction(k string) string {
	var b strings.Builder
	for _, r := range k {
		if r >= 'A' && r <= 'Z' {
			b.WriteByte('_')
		}
		b.WriteRune(r)
	}
	return strings.ToUpper(b.String())
}

func hGroupInsert(s *Server, r *request) (any, *apiError) {
	region := r.path["region"]
	name := getString(r.body, "name")
	key := r.project + "/" + region + "/" + name
	if s.groups[key] != nil {
		return nil, alreadyExists("projects/" + r.project + "/regions/" + region + "/instanceGroupManagers/" + name)
	}
	if getString(r.body, "zone") != "" {
		return nil, badRequest("invalid", "Invalid value for field 'resource.zone': '%s'. A regional group has no zone.", getString(r.body, "zone"))
	}
	res := copyJSON(r.body).(map[string]any)
	zones, err := s.normalize(r.project, region, res)
	if err != nil {
		return nil, err
	}
	g := &group{project: r.project, region: region, name: name, id: s.newID(), res: res, zones: zones}
	return s.newOp(r, "regions", region, "insert", g.url(), g.id, func() {
		g.created = time.Now()
		s.groups[key] = g
	}, nil), nil
}

func hGroupGet(s *Server, r *request) (any, *apiError) {
	g, err := s.findGroup(r)
	if err != nil {
		return nil, err
	}
	return g.json(), nil
}

func hGroupList(s *Server, r *request) (any, *apiError) {
	match, aerr := s.parseFilter(r.Query.Get("filter"))
	if aerr != nil {
		return nil, aerr
	}
	items := []any{}
	for _, g := range s.sortedGroups() {
		if g.project == r.project && g.region == r.path["region"] && match(g.json()) {
			items = append(items, g.json())
		}
	}
	return listAnswer(r, "compute#regionInstanceGroupManagerList", "regions/"+r.path["region"]+"/instanceGroupManagers", items)
}

// notReady refuses a change to a group being deleted.
func notReady(g *group) *apiError {
	return badRequest("resourceNotReady", "The resource '%s' is not ready", g.path())
}

func hGroupDelete(s *Server, r *request) (any, *apiError) {
	g, err := s.findGroup(r)
	if err != nil {
		return nil, err
	}
	if g.autoscaler != "" {
		return nil, badRequest("resourceInUseByAnotherResource",
			"The instance_group_manager resource '%s' is already being used by '%s'", g.path(), strings.TrimPrefix(g.autoscaler, googleBase))
	}
	key := g.project + "/" + g.region + "/" + g.name
	return s.newOp(r, "regions", g.region, "delete", g.url(), g.id, func() {
		g.deleting = true
		for _, m := range g.members {
			m.action = "DELETING"
		}
	}, func() bool {
		if len(g.members) == 0 {
			delete(s.groups, key)
			return true
		}
		return false
	}), nil
}

// mergePatch applies a JSON merge patch (RFC 7396), as Compute Engine's
// PATCH methods do.
func mergePatch(dst, patch map[string]any) {
	for k, v := range patch {
		if v == nil {
			delete(dst, k)
			continue
		}
		if pv, ok := v.(map[string]any); ok {
			if dv, ok := dst[k].(map[string]any); ok {
				mergePatch(dv, pv)
				continue
			}
		}
		dst[k] = copyJSON(v)
	}
}

func hGroupPatch(s *Server, r *request) (any, *apiError) {
	g, err := s.findGroup(r)
	if err != nil {
		return nil, err
	}
	if g.deleting {
		return nil, notReady(g)
	}
	if fp := getString(r.body, "fingerprint"); fp != "" && fp != g.json()["fingerprint"] {
		return nil, &apiError{Code: http.StatusPreconditionFailed, Reason: "conditionNotMet",
			Message: "Supplied fingerprint does not match current metadata fingerprint."}
	}
	if n := getString(r.body, "name"); n != "" && n != g.name {
		return nil, badRequest("invalid", "Invalid value for field 'resource.name': '%s'. The name of a group cannot change.", n)
	}
	res := copyJSON(g.res).(map[string]any)
	patch := copyJSON(r.body).(map[string]any)
	delete(patch, "fingerprint")
	if patch["instanceTemplate"] != nil && patch["versions"] == nil {
		delete(res, "versions")
	}
	if patch["versions"] != nil && patch["instanceTemplate"] == nil {
		delete(res, "instanceTemplate")
	}
	mergePatch(res, patch)
	zones, aerr := s.normalize(g.project, g.region, res)
	if aerr != nil {
		return nil, aerr
	}
	if getString(getMap(res, "updatePolicy"), "type") == "PROACTIVE" && res["instanceTemplate"] != g.template() {
		return nil, s.notModeled("a proactive (rolling) update to a new template")
	}
	if !reflect.DeepEqual(zones, g.zones) {
		return nil, badRequest("invalid", "Invalid value for field 'resource.distributionPolicy.zones'. The zones of a regional managed instance group cannot be changed.")
	}
	return s.newOp(r, "regions", g.region, "patch", g.url(), g.id, func() {
		g.res = res
		g.version++
	}, nil), nil
}

func hGroupResize(s *Server, r *request) (any, *apiError) {
	g, err := s.findGroup(r)
	if err != nil {
		return nil, err
	}
	if g.deleting {
		return nil, notReady(g)
	}
	size, _ := strconv.Atoi(r.Query.Get("size"))
	if size < 0 {
		return nil, badRequest("invalid", "Invalid value for field 'size': '%d'. Must be greater than or equal to 0.", size)
	}
	return s.newOp(r, "regions", g.region, "compute.regionInstanceGroupManagers.resize", g.url(), g.id, func() {
		g.res["targetSize"] = json.Number(strconv.Itoa(size))
		g.version++
	}, nil), nil
}

var instanceRef = regexp.MustCompile(`^(?:(?:https://[^/]+/compute/v1/)?projects/([^/]+)/)?zones/([^/]+)/instances/([^/]+)$`)

// members resolves the instances of a deleteInstances or recreateInstances
// request: a malformed URL or one outside the group's region always
// fails; one that is not a member (or is being deleted) fails unless skip.
func (s *Server) members(g *group, refs []any, skip bool) ([]*member, *apiError) {
	var out []*member
	for i, ref := range refs {
		str, _ := ref.(string)
		m := instanceRef.FindStringSubmatch(str)
		if m == nil || (m[1] != "" && m[1] != g.project) || !contains(g.zones, m[2]) {
			return nil, badRequest("invalid", "Invalid value for field 'resource.instances[%d]': '%s'. Expected the URL of an instance in a zone of the group (zones/ZONE/instances/NAME).", i, str)
		}
		var found *member
		for _, mb := range g.members {
			if mb.zone == m[2] && mb.name == m[3] && mb.action != "DELETING" {
				found = mb
			}
		}
		if found == nil {
			if skip {
				continue
			}
			return nil, badRequest("invalid", "Invalid value for field 'resource.instances[%d]': '%s'. The instance is not a member of the group or is being deleted.", i, str)
		}
		out = append(out, found)
	}
	return out, nil
}

// instancesAction is a deleteInstances or recreateInstances request's
// group and members; the operation applies act to them.
func (s *Server) instancesAction(r *request, skip bool, act func(g *group, ms []*member)) (any, *apiError) {
	g, err := s.findGroup(r)
	if err != nil {
		return nil, err
	}
	if g.deleting {
		return nil, notReady(g)
	}
	ms, err := s.members(g, anySlice(r.body["instances"]), skip)
	if err != nil {
		return nil, err
	}
	return s.newOp(r, "regions", g.region, r.Method, g.url(), g.id, func() { act(g, ms) }, nil), nil
}

func hGroupDeleteInstances(s *Server, r *request) (any, *apiError) {
	skip, _ := r.body["skipInstancesOnValidationError"].(bool)
	return s.instancesAction(r, skip, func(g *group, ms []*member) {
		n := 0
		for _, m := range ms {
			if m.action != "DELETING" {
				m.action = "DELETING"
				n++
			}
		}
		if size := g.targetSize() - n; size >= 0 {
			g.res["targetSize"] = json.Number(strconv.Itoa(size))
		}
		g.version++
	})
}

func hGroupRecreateInstances(s *Server, r *request) (any, *apiError) {
	return s.instancesAction(r, false, func(g *group, ms []*member) {
		for _, m := range ms {
			if m.action == "DELETING" {
				continue
			}
			m.action = "RECREATING"
			m.template = g.template()
			if m.vm != nil {
				s.startDelete(m.vm, time.Now())
			}
		}
	})
}

func (s *Server) managedJSON(g *group, m *member) map[string]any {
	out := map[string]any{
		"instance":      link(g.project) + "/zones/" + m.zone + "/instances/" + m.name,
		"name":          m.name,
		"currentAction": m.action,
		"targetStatus":  "RUNNING",
		"version":       map[string]any{"instanceTemplate": m.template},
	}
	if m.action == "DELETING" {
		out["targetStatus"] = "DELETED"
	}
	if m.vm != nil {
		out["id"] = strconv.FormatUint(m.vm.id, 10)
		out["instanceStatus"] = m.vm.status
	}
	if len(m.errors) > 0 {
		out["lastAttempt"] = map[string]any{"errors": map[string]any{"errors": m.errors}}
	}
	return out
}

func hGroupListManaged(s *Server, r *request) (any, *apiError) {
	g, err := s.findGroup(r)
	if err != nil {
		return nil, err
	}
	if r.Query.Get("filter") != "" || r.Query.Get("orderBy") != "" {
		return nil, s.notModeled("filter or orderBy on listManagedInstances")
	}
	ms := append([]*member(nil), g.members...)
	sort.Slice(ms, func(i, j int) bool {
		if ms[i].zone != ms[j].zone {
			return ms[i].zone < ms[j].zone
		}
		return ms[i].name < ms[j].name
	})
	items := make([]any, len(ms))
	for i, m := range ms {
		items[i] = s.managedJSON(g, m)
	}
	out := map[string]any{}
	if getString(g.res, "listManagedInstancesResults") == "PAGINATED" {
		var next string
		var aerr *apiError
		items, next, aerr = page(r, items)
		if aerr != nil {
			return nil, aerr
		}
		if next != "" {
			out["nextPageToken"] = next
		}
	}
	out["managedInstances"] = items
	return out, nil
}

// ---- reconciling ----

// step moves every group one step toward its target size and every VM and
// operation through its timeline.
func (s *Server) step(now time.Time) {
	for _, k := range sortedKeys(s.vms) {
		v := s.vms[k]
		if v.deleting && !now.Before(v.goneAt) {
			delete(s.vms, k)
			v.gone = true
			s.event(EventDeleted, v)
		} else if !v.deleting && v.status != "RUNNING" && !now.Before(v.runningAt) {
			v.status = "RUNNING"
			s.event(EventRunning, v)
		}
	}
	for _, g := range s.sortedGroups() {
		s.reconcile(g, now)
	}
	pending := s.pending[:0]
	for _, op := range s.pending {
		s.advanceOp(op, now)
		if op.status != "DONE" {
			pending = append(pending, op)
		}
	}
	s.pending = pending
}

func (s *Server) reconcile(g *group, now time.Time) {
	kept := g.members[:0]
	for _, m := range g.members {
		if m.vm != nil && m.vm.gone {
			m.vm = nil
			if m.action == "NONE" || m.action == "CREATING" {
				m.action = "RECREATING" // deleted behind the group's back: it repairs
			}
		}
		switch m.action {
		case "DELETING":
			if m.vm == nil {
				continue // gone
			}
			if !m.vm.deleting {
				s.startDelete(m.vm, now)
			}
		case "CREATING", "RECREATING":
			if m.vm == nil {
				s.createVM(g, m, now)
			} else if m.vm.status == "RUNNING" && !m.vm.deleting {
				m.action = "NONE"
			}
		}
		kept = append(kept, m)
	}
	g.members = kept
	if g.deleting {
		return
	}
	live := g.live()
	for len(live) < g.targetSize() {
		m := &member{name: s.newName(g), zone: s.emptiestZone(g), action: "CREATING", template: g.template(), created: now}
		g.members = append(g.members, m)
		s.createVM(g, m, now)
		live = g.live()
	}
	for len(live) > g.targetSize() {
		victim := s.shrinkVictim(g, live)
		victim.action = "DELETING"
		if victim.vm != nil {
			s.startDelete(victim.vm, now)
		}
		live = g.live()
	}
	if up := getMap(g.res, "updatePolicy"); getString(up, "instanceRedistributionType") == "PROACTIVE" {
		s.redistribute(g, now)
	}
}

// redistribute is proactive redistribution: once the group is stable and
// its zones differ by more than one instance, it deletes an instance of
// the fullest zone (the next reconcile creates one in the emptiest), busy
// or not: the reason an adapter sets NONE.
func (s *Server) redistribute(g *group, now time.Time) {
	counts := map[string]int{}
	for _, m := range g.members {
		if m.action != "NONE" {
			return
		}
		counts[m.zone]++
	}
	lo, hi := -1, -1
	var full string
	for _, z := range g.zones {
		c := counts[z]
		if lo < 0 || c < lo {
			lo = c
		}
		if c > hi {
			hi, full = c, z
		}
	}
	if hi-lo <= 1 {
		return
	}
	for i := len(g.members) - 1; i >= 0; i-- {
		if m := g.members[i]; m.zone == full {
			m.action = "DELETING"
			if m.vm != nil {
				s.startDelete(m.vm, now)
			}
			return
		}
	}
}

// shrinkVictim picks the member a smaller target size deletes: one without
// a VM first, then one still being created, then the newest of the
// fullest zone.
func (s *Server) shrinkVictim(g *group, live []*member) *member {
	counts := map[string]int{}
	for _, m := range live {
		counts[m.zone]++
	}
	rank := func(m *member) int {
		switch {
		case m.vm == nil:
			return 0
		case m.action != "NONE":
			return 1
		}
		return 2
	}
	best := live[0]
	for _, m := range live[1:] {
		rb, rm := rank(best), rank(m)
		switch {
		case rm < rb:
			best = m
		case rm == rb && counts[m.zone] > counts[best.zone]:
			best = m
		case rm == rb && counts[m.zone] == counts[best.zone] && !m.created.Before(best.created):
			best = m
		}
	}
	return best
}

func (s *Server) emptiestZone(g *group) string {
	counts := map[string]int{}
	for _, m := range g.live() {
		counts[m.zone]++
	}
	best := g.zones[0]
	for _, z := range g.zones[1:] {
		if counts[z] < counts[best] {
			best = z
		}
	}
	return best
}

const nameChars = "abcdefghijklmnopqrstuvwxyz"

// newName is baseInstanceName-xxxx, unique in the group.
func (s *Server) newName(g *group) string {
	for {
		b := make([]byte, 4)
		for i := range b {
			b[i] = nameChars[s.rnd.Intn(len(nameChars))]
		}
		name := getString(g.res, "baseInstanceName") + "-" + string(b)
		taken := false
		for _, m := range g.members {
			taken = taken || m.name == name
		}
		if !taken {
			return name
		}
	}
}
