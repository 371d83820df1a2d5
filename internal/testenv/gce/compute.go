package gce

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// googleBase is the prefix of Compute Engine's resource URLs (selfLink and
// references), whatever endpoint the client called.
const googleBase = "https://www.googleapis.com/compute/v1/"

func link(project string) string { return googleBase + "projects/" + project }

// stamp formats a time as Compute Engine does (RFC 3339 with milliseconds).
func stamp(t time.Time) string { return t.Format("2006-01-02T15:04:05.000-07:00") }

func (s *Server) newID() uint64 {
	return 1_000_000_000_000_000_000 + uint64(s.rnd.Int63n(8_000_000_000_000_000_000))
}

func notFound(res string) *apiError {
	return &apiError{Code: http.StatusNotFound, Reason: "notFound",
		Message: fmt.Sprintf("The resource '%s' was not found", res)}
}

func alreadyExists(res string) *apiError {
	return &apiError{Code: http.StatusConflict, Reason: "alreadyExists",
		Message: fmt.Sprintf("The resource '%s' already exists", res)}
}

// notModeled refuses what the fake does not model, and fails the test: a
// gap of the fake must not pass for Google's behaviour.
func (s *Server) notModeled(format string, a ...any) *apiError {
	msg := "the gce fake does not model " + fmt.Sprintf(format, a...)
	s.t.Errorf("gce fake: %s", msg)
	return &apiError{Code: http.StatusNotImplemented, Reason: "notImplemented", Message: msg}
}

// copyJSON deep-copies a decoded JSON value.
func copyJSON(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = copyJSON(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = copyJSON(e)
		}
		return out
	}
	return v
}

func lastSeg(s string) string { return s[strings.LastIndexByte(s, '/')+1:] }

func getInt(m map[string]any, k string) int {
	if n, ok := m[k].(json.Number); ok {
		i, _ := strconv.Atoi(n.String())
		return i
	}
	if i, ok := m[k].(int); ok {
		return i
	}
	return 0
}

func getString(m map[string]any, k string) string {
	v, _ := m[k].(string)
	return v
}

func getMap(m map[string]any, k string) map[string]any {
	v, _ := m[k].(map[string]any)
	return v
}

// ---- paging ----

// page cuts items by the maxResults and pageToken query parameters.
func page[T any](r *request, items []T) ([]T, string, *apiError) {
	max := 500
	if v := r.Query.Get("maxResults"); v != "" {
		n, _ := strconv.Atoi(v)
		if n > 0 && n < max {
			max = n
		}
	}
	start := 0
	if tok := r.Query.Get("pageToken"); tok != "" {
		b, err := base64.RawURLEncoding.DecodeString(tok)
		n, err2 := strconv.Atoi(strings.TrimPrefix(string(b), "offset:"))
		if err != nil || err2 != nil || !strings.HasPrefix(string(b), "offset:") || n < 0 || n > len(items) {
			return nil, "", badRequest("invalid", "Invalid value for field 'pageToken': '%s'. Invalid page token.", tok)
		}
		start = n
	}
	end := start + max
	if end >= len(items) {
		return items[start:], "", nil
	}
	return items[start:end], base64.RawURLEncoding.EncodeToString([]byte("offset:" + strconv.Itoa(end))), nil
}

// ---- instance templates ----

type template struct {
	project, name string
	id            uint64
	created       time.Time
	res           map[string]any // as sent
}

func (t *template) url() string { return link(t.project) + "/global/instanceTemplates/" + t.name }

func (t *template) json() map[string]any {
	return resourceJSON(t.res, "compute#instanceTemplate", t.id, t.url(), t.created)
}

// resourceJSON is a resource as sent plus the output fields every
// resource has.
func resourceJSON(res map[string]any, kind string, id uint64, selfLink string, created time.Time) map[string]any {
	out := copyJSON(res).(map[string]any)
	out["kind"] = kind
	out["id"] = strconv.FormatUint(id, 10)
	out["selfLink"] = selfLink
	out["creationTimestamp"] = stamp(created)
	return out
}

var templateRef = regexp.MustCompile(`^(?:(?:https://[^/]+/compute/v1/)?projects/([^/]+)/)?global/instanceTemplates/([^/]+)$`)

// findTemplate resolves a template reference (full or partial URL).
func (s *Server) findTemplate(project, ref, field string) (*template, *apiError) {
	m := templateRef.FindStringSubmatch(ref)
	if m == nil {
		return nil, badRequest("invalid", "Invalid value for field '%s': '%s'. Expected an instance template URL (global/instanceTemplates/NAME or a full URL).", field, ref)
	}
	if m[1] != "" {
		project = m[1]
	}
	t := s.templates[project+"/"+m[2]]
	if t == nil {
		return nil, notFound("projects/" + project + "/global/instanceTemplates/" + m[2])
	}
	return t, nil
}

func hTemplateInsert(s *Server, r *request) (any, *apiError) {
	name := getString(r.body, "name")
	key := r.project + "/" + name
	if s.templates[key] != nil {
		return nil, alreadyExists("projects/" + r.project + "/global/instanceTemplates/" + name)
	}
	if getString(r.body, "sourceInstance") != "" {
		return nil, s.notModeled("instance templates from a source instance")
	}
	t := &template{project: r.project, name: name, id: s.newID(), res: r.body}
	url := t.url()
	return s.newOp(r, "global", "", "insert", url, t.id, func() {
		t.created = time.Now()
		s.templates[key] = t
	}, nil), nil
}

func hTemplateGet(s *Server, r *request) (any, *apiError) {
	t := s.templates[r.project+"/"+r.path["instanceTemplate"]]
	if t == nil {
		return nil, notFound("projects/" + r.project + "/global/instanceTemplates/" + r.path["instanceTemplate"])
	}
	return t.json(), nil
}

func hTemplateDelete(s *Server, r *request) (any, *apiError) {
	t := s.templates[r.project+"/"+r.path["instanceTemplate"]]
	if t == nil {
		return nil, notFound("projects/" + r.project + "/global/instanceTemplates/" + r.path["instanceTemplate"])
	}
	for _, g := range s.sortedGroups() {
		if g.project == t.project && g.usesTemplate(t.url()) {
			return nil, badRequest("resourceInUseByAnotherResource",
				"The instance_template resource 'projects/%s/global/instanceTemplates/%s' is already being used by 'projects/%s/regions/%s/instanceGroupManagers/%s'",
				t.project, t.name, g.project, g.region, g.name)
		}
	}
	return s.newOp(r, "global", "", "delete", t.url(), t.id, func() {
		delete(s.templates, t.project+"/"+t.name)
	}, nil), nil
}

func hTemplateList(s *Server, r *request) (any, *apiError) {
	match, aerr := s.parseFilter(r.Query.Get("filter"))
	if aerr != nil {
		return nil, aerr
	}
	items := []any{}
	for _, k := range sortedKeys(s.templates) {
		if t := s.templates[k]; t.project == r.project && match(t.json()) {
			items = append(items, t.json())
		}
	}
	return listAnswer(r, "compute#instanceTemplateList", "global/instanceTemplates", items)
}

// listAnswer is a page of a list method's items, in its answer.
func listAnswer(r *request, kind, path string, items []any) (any, *apiError) {
	items, next, err := page(r, items)
	if err != nil {
		return nil, err
	}
	out := map[string]any{
		"kind":     kind,
		"id":       "projects/" + r.project + "/" + path,
		"selfLink": link(r.project) + "/" + path,
		"items":    items,
	}
	if next != "" {
		out["nextPageToken"] = next
	}
	return out, nil
}

var handlers map[string]handler
var waitHandlers map[string]func(*Server, *request) (any, *apiError)

func init() {
	handlers = map[string]handler{
		"compute.instanceTemplates.insert": hTemplateInsert,
		"compute.instanceTemplates.get":    hTemplateGet,
		"compute.instanceTemplates.delete": hTemplateDelete,
		"compute.instanceTemplates.list":   hTemplateList,

		"compute.regionInstanceGroupManagers.insert":               hGroupInsert,
		"compute.regionInstanceGroupManagers.get":                  hGroupGet,
		"compute.regionInstanceGroupManagers.list":                 hGroupList,
		"compute.regionInstanceGroupManagers.delete":               hGroupDelete,
		"compute.regionInstanceGroupManagers.patch":                hGroupPatch,
		"compute.regionInstanceGroupManagers.resize":               hGroupResize,
		"compute.regionInstanceGroupManagers.deleteInstances":      hGroupDeleteInstances,
		"compute.regionInstanceGroupManagers.recreateInstances":    hGroupRecreateInstances,
		"compute.regionInstanceGroupManagers.listManagedInstances": hGroupListManaged,

		"compute.instances.get":            hInstanceGet,
		"compute.instances.list":           hInstanceList,
		"compute.instances.aggregatedList": hInstanceAggregatedList,
		"compute.instances.delete":         hInstanceDelete,

		"compute.regionOperations.get": opGetter("regions", "region"),
		"compute.globalOperations.get": opGetter("global", ""),
		"compute.zoneOperations.get":   opGetter("zones", "zone"),
	}
	waitHandlers = map[string]func(*Server, *request) (any, *apiError){
		"compute.regionOperations.wait": opWaiter("regions", "region"),
		"compute.globalOperations.wait": opWaiter("global", ""),
		"compute.zoneOperations.wait":   opWaiter("zones", "zone"),
	}
	for id := range waitHandlers { // modeled; served without the lock held
		handlers[id] = func(*Server, *request) (any, *apiError) { return nil, nil }
	}
}
