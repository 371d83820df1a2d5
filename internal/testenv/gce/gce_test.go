package gce

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	compute "cloud.google.com/go/compute/apiv1"
	"cloud.google.com/go/compute/apiv1/computepb"
	"github.com/googleapis/gax-go/v2/apierror"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"
	"google.golang.org/protobuf/proto"
)

const (
	project = "autarky-test"
	region  = "us-central1"
)

// clients are the real REST clients of cloud.google.com/go/compute/apiv1,
// pointed at the fake.
type clients struct {
	templates *compute.InstanceTemplatesClient
	groups    *compute.RegionInstanceGroupManagersClient
	instances *compute.InstancesClient
	regionOps *compute.RegionOperationsClient
}

func newClients(t *testing.T, srv *Server) *clients {
	t.Helper()
	ctx := context.Background()
	opts := []option.ClientOption{option.WithEndpoint(srv.URL), option.WithoutAuthentication()}
	var c clients
	var err error
	if c.templates, err = compute.NewInstanceTemplatesRESTClient(ctx, opts...); err != nil {
		t.Fatal(err)
	}
	if c.groups, err = compute.NewRegionInstanceGroupManagersRESTClient(ctx, opts...); err != nil {
		t.Fatal(err)
	}
	if c.instances, err = compute.NewInstancesRESTClient(ctx, opts...); err != nil {
		t.Fatal(err)
	}
	if c.regionOps, err = compute.NewRegionOperationsRESTClient(ctx, opts...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.templates.Close()
		c.groups.Close()
		c.instances.Close()
		c.regionOps.Close()
	})
	return &c
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func wait(t *testing.T, op *compute.Operation, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	if err := op.Wait(ctxT(t)); err != nil {
		t.Fatal(err)
	}
}

func insertTemplate(t *testing.T, c *clients, name string) {
	t.Helper()
	ctx := ctxT(t)
	op, err := c.templates.Insert(ctx, &computepb.InsertInstanceTemplateRequest{
		Project: project,
		InstanceTemplateResource: &computepb.InstanceTemplate{
			Name: proto.String(name),
			Properties: &computepb.InstanceProperties{
				MachineType: proto.String("e2-small"),
				Disks: []*computepb.AttachedDisk{{
					Boot: proto.Bool(true), AutoDelete: proto.Bool(true),
					InitializeParams: &computepb.AttachedDiskInitializeParams{
						SourceImage: proto.String("projects/debian-cloud/global/images/family/debian-12"),
						DiskSizeGb:  proto.Int64(20),
					},
				}},
				NetworkInterfaces: []*computepb.NetworkInterface{{Network: proto.String("global/networks/default")}},
				Metadata: &computepb.Metadata{Items: []*computepb.Items{
					{Key: proto.String("startup-script"), Value: proto.String("#!/bin/sh\necho hello\n")},
				}},
				Labels: map[string]string{"autarky-cluster": "prod", "autarky-pool": "web"},
				ServiceAccounts: []*computepb.ServiceAccount{{
					Email:  proto.String("workers@autarky-test.iam.gserviceaccount.com"),
					Scopes: []string{"https://www.googleapis.com/auth/cloud-platform"},
				}},
				Tags: &computepb.Tags{Items: []string{"autarky"}},
			},
		},
	})
	wait(t, op, err)
}

func insertGroup(t *testing.T, c *clients, name, template string, size int32, paged bool) {
	t.Helper()
	igm := &computepb.InstanceGroupManager{
		Name:             proto.String(name),
		BaseInstanceName: proto.String(name),
		InstanceTemplate: proto.String("global/instanceTemplates/" + template),
		TargetSize:       proto.Int32(size),
		UpdatePolicy: &computepb.InstanceGroupManagerUpdatePolicy{
			InstanceRedistributionType: proto.String("NONE"),
		},
	}
	if paged {
		igm.ListManagedInstancesResults = proto.String("PAGINATED")
	}
	op, err := c.groups.Insert(ctxT(t), &computepb.InsertRegionInstanceGroupManagerRequest{
		Project: project, Region: region, InstanceGroupManagerResource: igm,
	})
	wait(t, op, err)
}

func managed(t *testing.T, c *clients, group string) []*computepb.ManagedInstance {
	t.Helper()
	it := c.groups.ListManagedInstances(ctxT(t), &computepb.ListManagedInstancesRegionInstanceGroupManagersRequest{
		Project: project, Region: region, InstanceGroupManager: group,
	})
	var out []*computepb.ManagedInstance
	for {
		mi, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, mi)
	}
}

// eventually polls cond until it holds or 10 s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func allRunning(ms []*computepb.ManagedInstance, n int) bool {
	if len(ms) != n {
		return false
	}
	for _, m := range ms {
		if m.GetCurrentAction() != "NONE" || m.GetInstanceStatus() != "RUNNING" {
			return false
		}
	}
	return true
}

// TestGroupLifecycle goes through a group's life with the real REST
// clients: insert, resize up (CREATING, then NONE and RUNNING), the VMs
// as instances, deleteInstances, recreateInstances (same name, new id),
// delete.
func TestGroupLifecycle(t *testing.T) {
	srv := Start(t, Options{})
	c := newClients(t, srv)
	ctx := ctxT(t)
	insertTemplate(t, c, "web-v1")
	insertGroup(t, c, "prod-web", "web-v1", 0, false)

	g, err := c.groups.Get(ctx, &computepb.GetRegionInstanceGroupManagerRequest{Project: project, Region: region, InstanceGroupManager: "prod-web"})
	if err != nil {
		t.Fatal(err)
	}
	if got := g.GetUpdatePolicy().GetInstanceRedistributionType(); got != "NONE" {
		t.Errorf("instanceRedistributionType = %q, want NONE as sent", got)
	}
	if !g.GetStatus().GetIsStable() || g.GetStatus().GetAutoscaler() != "" {
		t.Errorf("new empty group: status %v", g.GetStatus())
	}
	if len(g.GetDistributionPolicy().GetZones()) != 3 {
		t.Errorf("distribution zones = %v, want the region's a, b, c", g.GetDistributionPolicy().GetZones())
	}

	op, err := c.groups.Resize(ctx, &computepb.ResizeRegionInstanceGroupManagerRequest{
		Project: project, Region: region, InstanceGroupManager: "prod-web", Size: 3})
	if err != nil {
		t.Fatal(err)
	}
	if err := op.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	// DONE when scheduled: the VMs are not running yet.
	ms := managed(t, c, "prod-web")
	creating := 0
	for _, m := range ms {
		if m.GetCurrentAction() == "CREATING" {
			creating++
		}
	}
	if creating == 0 {
		t.Errorf("right after resize: no managed instance CREATING: %v", ms)
	}
	g, _ = c.groups.Get(ctx, &computepb.GetRegionInstanceGroupManagerRequest{Project: project, Region: region, InstanceGroupManager: "prod-web"})
	if g.GetStatus().GetIsStable() || g.GetCurrentActions().GetCreating() == 0 {
		t.Errorf("right after resize: isStable %v creating %d", g.GetStatus().GetIsStable(), g.GetCurrentActions().GetCreating())
	}
	eventually(t, "3 running instances", func() bool { return allRunning(managed(t, c, "prod-web"), 3) })
	ms = managed(t, c, "prod-web")
	zones := map[string]bool{}
	for _, m := range ms {
		if m.GetId() == 0 || !strings.HasPrefix(m.GetName(), "prod-web-") || len(m.GetName()) != len("prod-web-")+4 {
			t.Errorf("managed instance %v: want an id and name prod-web-xxxx", m)
		}
		zones[m.GetInstance()[:strings.Index(m.GetInstance(), "/instances/")]] = true
	}
	if len(zones) != 3 {
		t.Errorf("3 instances in %d zones, want one per zone", len(zones))
	}
	g, _ = c.groups.Get(ctx, &computepb.GetRegionInstanceGroupManagerRequest{Project: project, Region: region, InstanceGroupManager: "prod-web"})
	if !g.GetStatus().GetIsStable() || !g.GetStatus().GetVersionTarget().GetIsReached() || g.GetCurrentActions().GetNone() != 3 {
		t.Errorf("after reconciling: status %v actions %v", g.GetStatus(), g.GetCurrentActions())
	}

	// The VMs as instances, found by label.
	it := c.instances.AggregatedList(ctx, &computepb.AggregatedListInstancesRequest{
		Project: project, Filter: proto.String(`labels.autarky-cluster = "prod" AND labels.autarky-pool:*`)})
	var vms []*computepb.Instance
	for {
		pair, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		vms = append(vms, pair.Value.GetInstances()...)
	}
	if len(vms) != 3 {
		t.Fatalf("aggregatedList by label: %d instances, want 3", len(vms))
	}
	vm := vms[0]
	if vm.GetNetworkInterfaces()[0].GetNetworkIP() == "" || vm.GetCreationTimestamp() == "" || vm.GetLabels()["autarky-pool"] != "web" {
		t.Errorf("instance %v: want networkIP, creationTimestamp, labels", vm)
	}
	script := ""
	for _, it := range vm.GetMetadata().GetItems() {
		if it.GetKey() == "startup-script" {
			script = it.GetValue()
		}
	}
	if !strings.Contains(script, "echo hello") {
		t.Errorf("instance metadata %v: want the template's startup-script", vm.GetMetadata())
	}
	it = c.instances.AggregatedList(ctx, &computepb.AggregatedListInstancesRequest{
		Project: project, Filter: proto.String(`labels.autarky-cluster = "other"`)})
	if pair, err := it.Next(); !errors.Is(err, iterator.Done) {
		t.Errorf("aggregatedList for another cluster: %v %v, want none", pair, err)
	}
	if live := srv.Instances("prod-web"); len(live) != 3 || live[0].Metadata["startup-script"] == "" {
		t.Errorf("Instances hook: %v", live)
	}
	// The regular-expression filter form, matching the whole name.
	it = c.instances.AggregatedList(ctx, &computepb.AggregatedListInstancesRequest{
		Project: project, Filter: proto.String(`name eq "(prod-web|prod-db)-[a-z0-9]{4}"`)})
	n := 0
	for pair, err := it.Next(); err == nil; pair, err = it.Next() {
		n += len(pair.Value.GetInstances())
	}
	if n != 3 {
		t.Errorf("aggregatedList name eq: %d instances, want 3", n)
	}
	git := c.groups.List(ctx, &computepb.ListRegionInstanceGroupManagersRequest{
		Project: project, Region: region, Filter: proto.String(`name eq "(prod-web|prod-db)"`)})
	if g, err := git.Next(); err != nil || g.GetName() != "prod-web" {
		t.Errorf("groups list name eq: %v %v", g, err)
	}
	git = c.groups.List(ctx, &computepb.ListRegionInstanceGroupManagersRequest{
		Project: project, Region: region, Filter: proto.String(`name eq "prod"`)})
	if g, err := git.Next(); !errors.Is(err, iterator.Done) {
		t.Errorf("groups list name eq a prefix: %v %v, want none (the expression matches the whole name)", g, err)
	}
	tit := c.templates.List(ctx, &computepb.ListInstanceTemplatesRequest{Project: project, Filter: proto.String(`name eq 'web-v[0-9]+'`)})
	if tp, err := tit.Next(); err != nil || tp.GetProperties().GetMachineType() != "e2-small" {
		t.Errorf("templates list name eq: %v %v", tp, err)
	}

	// An autoscaler attached shows in the status and blocks the delete.
	as := "https://www.googleapis.com/compute/v1/projects/autarky-test/regions/us-central1/autoscalers/prod-web"
	if err := srv.SetAutoscaler(project, region, "prod-web", as); err != nil {
		t.Fatal(err)
	}
	g, _ = c.groups.Get(ctx, &computepb.GetRegionInstanceGroupManagerRequest{Project: project, Region: region, InstanceGroupManager: "prod-web"})
	if g.GetStatus().GetAutoscaler() != as {
		t.Errorf("status.autoscaler = %q, want %q", g.GetStatus().GetAutoscaler(), as)
	}
	if _, err := c.groups.Delete(ctx, &computepb.DeleteRegionInstanceGroupManagerRequest{Project: project, Region: region, InstanceGroupManager: "prod-web"}); code(err) != 400 {
		t.Errorf("deleting a group with an autoscaler: %v, want 400", err)
	}
	if err := srv.SetAutoscaler(project, region, "prod-web", ""); err != nil {
		t.Fatal(err)
	}

	// deleteInstances shrinks by the chosen one.
	victim := ms[0]
	op, err = c.groups.DeleteInstances(ctx, &computepb.DeleteInstancesRegionInstanceGroupManagerRequest{
		Project: project, Region: region, InstanceGroupManager: "prod-web",
		RegionInstanceGroupManagersDeleteInstancesRequestResource: &computepb.RegionInstanceGroupManagersDeleteInstancesRequest{
			Instances: []string{victim.GetInstance()}, SkipInstancesOnValidationError: proto.Bool(true)}})
	wait(t, op, err)
	g, _ = c.groups.Get(ctx, &computepb.GetRegionInstanceGroupManagerRequest{Project: project, Region: region, InstanceGroupManager: "prod-web"})
	if g.GetTargetSize() != 2 {
		t.Errorf("targetSize after deleteInstances = %d, want 2", g.GetTargetSize())
	}
	eventually(t, "the deleted instance gone", func() bool { return allRunning(managed(t, c, "prod-web"), 2) })
	for _, m := range managed(t, c, "prod-web") {
		if m.GetName() == victim.GetName() {
			t.Errorf("deleted instance %s still listed", victim.GetName())
		}
	}
	// Not a member any more: refused, unless skipped.
	_, err = c.groups.DeleteInstances(ctx, &computepb.DeleteInstancesRegionInstanceGroupManagerRequest{
		Project: project, Region: region, InstanceGroupManager: "prod-web",
		RegionInstanceGroupManagersDeleteInstancesRequestResource: &computepb.RegionInstanceGroupManagersDeleteInstancesRequest{
			Instances: []string{victim.GetInstance()}}})
	if code(err) != 400 {
		t.Errorf("deleteInstances of a non-member: %v, want 400", err)
	}

	// recreateInstances keeps the name, gives a new id.
	heal := managed(t, c, "prod-web")[0]
	op, err = c.groups.RecreateInstances(ctx, &computepb.RecreateInstancesRegionInstanceGroupManagerRequest{
		Project: project, Region: region, InstanceGroupManager: "prod-web",
		RegionInstanceGroupManagersRecreateRequestResource: &computepb.RegionInstanceGroupManagersRecreateRequest{
			Instances: []string{heal.GetInstance()}}})
	wait(t, op, err)
	if ms := managed(t, c, "prod-web"); ms[0].GetCurrentAction() != "RECREATING" {
		t.Errorf("right after recreateInstances: %v, want RECREATING", ms[0])
	}
	eventually(t, "the recreated instance running", func() bool { return allRunning(managed(t, c, "prod-web"), 2) })
	healed := managed(t, c, "prod-web")[0]
	if healed.GetName() != heal.GetName() || healed.GetId() == heal.GetId() || healed.GetId() == 0 {
		t.Errorf("recreated: %s id %d, was %s id %d: want the same name and a new id", healed.GetName(), healed.GetId(), heal.GetName(), heal.GetId())
	}

	// The template is in use; the group's delete is DONE once it is gone.
	_, err = c.templates.Delete(ctx, &computepb.DeleteInstanceTemplateRequest{Project: project, InstanceTemplate: "web-v1"})
	if code(err) != 400 || !strings.Contains(err.Error(), "already being used") {
		t.Errorf("deleting a template in use: %v, want 400 resourceInUseByAnotherResource", err)
	}
	op, err = c.groups.Delete(ctx, &computepb.DeleteRegionInstanceGroupManagerRequest{Project: project, Region: region, InstanceGroupManager: "prod-web"})
	wait(t, op, err)
	_, err = c.groups.Get(ctx, &computepb.GetRegionInstanceGroupManagerRequest{Project: project, Region: region, InstanceGroupManager: "prod-web"})
	if code(err) != 404 {
		t.Errorf("get after delete: %v, want 404", err)
	}
	if live := srv.Instances("prod-web"); len(live) != 0 {
		t.Errorf("instances left after the group's delete: %v", live)
	}
	op, err = c.templates.Delete(ctx, &computepb.DeleteInstanceTemplateRequest{Project: project, InstanceTemplate: "web-v1"})
	wait(t, op, err)
	if srv.Calls("compute.regionInstanceGroupManagers.resize") != 1 {
		t.Errorf("resize calls = %d, want 1", srv.Calls("compute.regionInstanceGroupManagers.resize"))
	}
}

// code is the HTTP status of a client error (0 if none).
func code(err error) int {
	var ae *apierror.APIError
	if errors.As(err, &ae) {
		return ae.HTTPCode()
	}
	return 0
}

// reason is the reason of a client error's first item in Google's error
// body.
func reason(err error) string {
	var ge *googleapi.Error
	if errors.As(err, &ge) && len(ge.Errors) > 0 {
		return ge.Errors[0].Reason
	}
	return ""
}

// raw sends a request without the client library.
func raw(t *testing.T, srv *Server, verb, path, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(verb, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestRequestValidation: requests that do not match the discovery
// document are refused with a 400 naming the field, in Google's error
// shape; the same request made right is accepted.
func TestRequestValidation(t *testing.T) {
	srv := Start(t, Options{})
	c := newClients(t, srv)
	insertTemplate(t, c, "web-v1")
	igms := "/compute/v1/projects/p1/regions/us-central1/instanceGroupManagers"
	good := `{"name":"g1","baseInstanceName":"g1","instanceTemplate":"projects/autarky-test/global/instanceTemplates/web-v1","targetSize":1}`
	cases := []struct {
		name, verb, path, body, want string
	}{
		{"unknown field", "POST", igms, `{"name":"g1","targetSize":1,"instanceTemplate":"global/instanceTemplates/web-v1","targetSise":2}`, `Unknown name \"targetSise\"`},
		{"unknown nested field", "POST", igms, `{"name":"g1","targetSize":1,"updatePolicy":{"redistribution":"NONE"}}`, `Unknown name \"redistribution\" at 'resource.updatePolicy'`},
		{"int64 as a number", "POST", "/compute/v1/projects/p1/global/instanceTemplates",
			`{"name":"t1","properties":{"machineType":"e2-small","disks":[{"initializeParams":{"diskSizeGb":20}}]}}`, `resource.properties.disks[0].initializeParams.diskSizeGb`},
		{"int32 as a string", "POST", igms, `{"name":"g1","targetSize":"1"}`, `resource.targetSize`},
		{"bad enum", "POST", igms, `{"name":"g1","targetSize":1,"updatePolicy":{"instanceRedistributionType":"SOMETIMES"}}`, `resource.updatePolicy.instanceRedistributionType`},
		{"required body field", "POST", igms, `{"name":"g1"}`, `Required field 'resource.targetSize'`},
		{"bad name pattern", "POST", igms, `{"name":"G_1","targetSize":1}`, `resource.name`},
		{"missing required query parameter", "POST", igms + "/g1/resize", ``, `Required field 'size'`},
		{"query parameter not an integer", "POST", igms + "/g1/resize?size=two", ``, `'size'`},
		{"unknown query parameter", "POST", igms + "/g1/resize?size=2&force=true", ``, `Unknown name \"force\"`},
		{"bad requestId", "POST", igms + "/g1/resize?size=2&requestId=abc", ``, `requestId`},
		{"body on a method without one", "POST", igms + "/g1/resize?size=2", `{"size":2}`, `takes no request body`},
		{"unknown path", "GET", "/compute/v1/projects/p1/regions/us-central1/instanceGroupManagerz", ``, `not found`},
	}
	for _, tc := range cases {
		st, body := raw(t, srv, tc.verb, tc.path, tc.body)
		if (st != 400 && st != 404) || !strings.Contains(body, tc.want) || !strings.Contains(body, `"error"`) {
			t.Errorf("%s: %d %s, want 400 naming %s", tc.name, st, body, tc.want)
		}
	}
	if n := len(srv.CallCounts()); n == 0 {
		t.Error("no calls counted")
	}
	if st, body := raw(t, srv, "POST", igms, good); st != 200 || !strings.Contains(body, `"compute#operation"`) {
		t.Errorf("the good request: %d %s", st, body)
	}
	if st, body := raw(t, srv, "POST", igms+"/g1/resize?size=2&requestId=0f8fad5b-d9cb-469f-a165-70867728950e", ""); st != 200 {
		t.Errorf("resize with a UUID requestId: %d %s", st, body)
	}
}

// TestResponseValidation: an answer that does not match the discovery
// document is caught (a bug of the fake fails the test): the validator
// refuses hand-made bad responses, and the server turns one into a 500
// and a test failure.
func TestResponseValidation(t *testing.T) {
	doc, err := loadDoc()
	if err != nil {
		t.Fatal(err)
	}
	m := doc.byID["compute.regionInstanceGroupManagers.listManagedInstances"]
	for name, body := range map[string]string{
		"uint64 id as a number": `{"managedInstances":[{"id":123,"currentAction":"NONE"}]}`,
		"bad enum":              `{"managedInstances":[{"currentAction":"BOOTING"}]}`,
		"unknown field":         `{"managedInstances":[{"currentAction":"NONE","health":"ok"}]}`,
		"wrong type deep":       `{"managedInstances":[{"lastAttempt":{"errors":{"errors":[{"code":7}]}}}]}`,
	} {
		if err := doc.checkResponse(m, []byte(body)); err == nil {
			t.Errorf("%s: %s passed validation", name, body)
		}
	}
	if err := doc.checkResponse(m, []byte(`{"managedInstances":[{"id":"123","currentAction":"NONE","lastAttempt":{"errors":{"errors":[{"code":"QUOTA_EXCEEDED"}]}}}]}`)); err != nil {
		t.Errorf("a good response refused: %v", err)
	}

	// Through the server: a recorder stands in for t, to see it fail.
	rec := &recorder{TB: t}
	srv := Start(rec, Options{})
	srv.mu.Lock()
	srv.badReply = func(id string, body []byte) []byte {
		if id == "compute.instanceTemplates.list" {
			return []byte(`{"items":[{"id":5}]}`)
		}
		return body
	}
	srv.mu.Unlock()
	st, body := raw(t, srv, "GET", "/compute/v1/projects/p1/global/instanceTemplates", "")
	if st != 500 || len(rec.errors) != 1 || !strings.Contains(rec.errors[0], "does not match the discovery document") {
		t.Errorf("bad response: %d %s, test errors %q: want 500 and one test failure", st, body, rec.errors)
	}
}

// recorder is a testing.TB whose Errorf is recorded instead of failing.
type recorder struct {
	testing.TB
	errors []string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

func resize(t *testing.T, c *clients, group string, size int32, requestID string) (*compute.Operation, error) {
	t.Helper()
	req := &computepb.ResizeRegionInstanceGroupManagerRequest{
		Project: project, Region: region, InstanceGroupManager: group, Size: size}
	if requestID != "" {
		req.RequestId = proto.String(requestID)
	}
	return c.groups.Resize(ctxT(t), req)
}

// TestPagination: lists page by maxResults and pageToken; a group's
// listManagedInstances pages only when the group asks for PAGINATED
// results, as on Google.
func TestPagination(t *testing.T) {
	srv := Start(t, Options{CreateDelay: 10 * time.Millisecond})
	c := newClients(t, srv)
	ctx := ctxT(t)
	for _, n := range []string{"t-a", "t-b", "t-c"} {
		insertTemplate(t, c, n)
	}
	insertGroup(t, c, "paged", "t-a", 5, true)
	insertGroup(t, c, "pageless", "t-a", 5, false)
	eventually(t, "10 instances", func() bool { return len(srv.Instances("")) == 10 })

	srv.Reset()
	it := c.groups.ListManagedInstances(ctx, &computepb.ListManagedInstancesRegionInstanceGroupManagersRequest{
		Project: project, Region: region, InstanceGroupManager: "paged"})
	it.PageInfo().MaxSize = 2
	names := map[string]bool{}
	for mi, err := it.Next(); !errors.Is(err, iterator.Done); mi, err = it.Next() {
		if err != nil {
			t.Fatal(err)
		}
		names[mi.GetName()] = true
	}
	if len(names) != 5 || srv.Calls("compute.regionInstanceGroupManagers.listManagedInstances") != 3 {
		t.Errorf("paged listManagedInstances by 2: %d names in %d calls, want 5 in 3", len(names),
			srv.Calls("compute.regionInstanceGroupManagers.listManagedInstances"))
	}
	st, body := raw(t, srv, "POST", "/compute/v1/projects/"+project+"/regions/"+region+"/instanceGroupManagers/pageless/listManagedInstances?maxResults=2", "")
	if st != 200 || strings.Count(body, `"currentAction"`) != 5 || strings.Contains(body, "nextPageToken") {
		t.Errorf("PAGELESS listManagedInstances with maxResults=2: %d %s, want all 5 and no token", st, body)
	}

	srv.Reset()
	ait := c.instances.AggregatedList(ctx, &computepb.AggregatedListInstancesRequest{Project: project})
	ait.PageInfo().MaxSize = 3
	ids := map[uint64]bool{}
	for pair, err := ait.Next(); !errors.Is(err, iterator.Done); pair, err = ait.Next() {
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range pair.Value.GetInstances() {
			ids[in.GetId()] = true
		}
	}
	if len(ids) != 10 || srv.Calls("compute.instances.aggregatedList") != 4 {
		t.Errorf("aggregatedList by 3: %d ids in %d calls, want 10 in 4", len(ids), srv.Calls("compute.instances.aggregatedList"))
	}

	tit := c.templates.List(ctx, &computepb.ListInstanceTemplatesRequest{Project: project})
	tit.PageInfo().MaxSize = 2
	var tn []string
	for tp, err := tit.Next(); !errors.Is(err, iterator.Done); tp, err = tit.Next() {
		if err != nil {
			t.Fatal(err)
		}
		tn = append(tn, tp.GetName())
	}
	if strings.Join(tn, ",") != "t-a,t-b,t-c" {
		t.Errorf("templates by 2: %v", tn)
	}
	if st, body := raw(t, srv, "GET", "/compute/v1/projects/"+project+"/global/instanceTemplates?pageToken=bogus", ""); st != 400 {
		t.Errorf("a bad page token: %d %s, want 400", st, body)
	}
}

// TestRequestIDDedup: a call repeated with its requestId answers the first
// call's operation and does not act twice, even when the first answer was
// lost (a 503 after acting); another requestId acts again.
func TestRequestIDDedup(t *testing.T) {
	srv := Start(t, Options{})
	c := newClients(t, srv)
	ctx := ctxT(t)
	const rid = "6f1c7a2e-3b4d-4e5f-8a9b-0c1d2e3f4a5b"
	lost := true
	srv.SetFault(func(call Call) *Fault {
		if call.Method == "compute.instanceTemplates.insert" && lost {
			lost = false
			f := BackendError()
			f.AfterAction = true
			return f
		}
		return nil
	})
	ins := func(id string) (*compute.Operation, error) {
		return c.templates.Insert(ctx, &computepb.InsertInstanceTemplateRequest{
			Project: project, RequestId: proto.String(id),
			InstanceTemplateResource: &computepb.InstanceTemplate{Name: proto.String("t1"),
				Properties: &computepb.InstanceProperties{MachineType: proto.String("e2-small")}}})
	}
	if _, err := ins(rid); code(err) != 503 {
		t.Fatalf("first insert: %v, want the 503 the fault answers after acting", err)
	}
	op1, err := ins(rid)
	if err != nil {
		t.Fatalf("retry with the same requestId: %v, want the first call's operation", err)
	}
	op2, err := ins(rid)
	if err != nil || op2.Name() != op1.Name() {
		t.Errorf("a third try: %v %v, want operation %s again", op2, err, op1.Name())
	}
	if _, err := ins("0f8fad5b-d9cb-469f-a165-70867728950e"); code(err) != 409 {
		t.Errorf("another requestId: %v, want 409 alreadyExists (it acts again)", err)
	}
	if n := len(srv.Requests("compute.instanceTemplates.insert")); n != 4 {
		t.Errorf("%d insert calls recorded, want 4", n)
	}

	// Resize twice with one requestId: one operation.
	insertGroup(t, c, "g", "t1", 0, false)
	a, err := resize(t, c, "g", 2, rid)
	if err != nil {
		t.Fatal(err)
	}
	b, err := resize(t, c, "g", 2, rid)
	if err != nil || a.Name() != b.Name() {
		t.Errorf("resize repeated with its requestId: %v, operations %s and %s, want one", err, a.Name(), b.Name())
	}
}

// TestFaults: 429 and 503 in Google's error shape, a delayed answer, a
// slow operation (RUNNING, its action not applied until it is DONE).
func TestFaults(t *testing.T) {
	srv := Start(t, Options{})
	c := newClients(t, srv)
	ctx := ctxT(t)
	insertTemplate(t, c, "t1")
	insertGroup(t, c, "g", "t1", 0, false)

	var fault atomic.Pointer[Fault] // the server's goroutines read it
	srv.SetFault(func(call Call) *Fault {
		if call.Method == "compute.regionInstanceGroupManagers.resize" {
			return fault.Load()
		}
		return nil
	})
	fault.Store(RateLimited())
	_, err := resize(t, c, "g", 1, "")
	if code(err) != 429 || reason(err) != "rateLimitExceeded" {
		t.Errorf("429 fault: %v, want 429 rateLimitExceeded", err)
	}
	fault.Store(BackendError())
	if _, err := resize(t, c, "g", 1, ""); code(err) != 503 || reason(err) != "backendError" {
		t.Errorf("503 fault: %v, want 503 backendError", err)
	}
	if g := srv.GroupResource(region, "g"); getInt(g, "targetSize") != 0 {
		t.Errorf("faulted resizes acted: targetSize %v", g["targetSize"])
	}

	fault.Store(&Fault{Delay: 300 * time.Millisecond})
	start := time.Now()
	if _, err := resize(t, c, "g", 0, ""); err != nil || time.Since(start) < 300*time.Millisecond {
		t.Errorf("delayed resize: %v after %v, want success after 300ms", err, time.Since(start))
	}

	fault.Store(&Fault{OperationRunning: 500 * time.Millisecond})
	op, err := resize(t, c, "g", 2, "")
	if err != nil {
		t.Fatal(err)
	}
	if op.Done() {
		t.Error("slow operation answered DONE")
	}
	if g := srv.GroupResource(region, "g"); getInt(g, "targetSize") != 0 {
		t.Errorf("slow resize acted before its operation ended: targetSize %v", g["targetSize"])
	}
	got, err := c.regionOps.Get(ctx, &computepb.GetRegionOperationRequest{Project: project, Region: region, Operation: op.Name()})
	if err != nil || got.GetStatus() != computepb.Operation_RUNNING {
		t.Errorf("regionOperations.get of the slow operation: %v %v, want RUNNING", got.GetStatus(), err)
	}
	if err := op.Wait(ctx); err != nil || !op.Done() {
		t.Fatalf("waiting for the slow operation: %v", err)
	}
	if g := srv.GroupResource(region, "g"); getInt(g, "targetSize") != 2 {
		t.Errorf("after the slow operation: targetSize %v, want 2", g["targetSize"])
	}
	w, err := c.regionOps.Wait(ctx, &computepb.WaitRegionOperationRequest{Project: project, Region: region, Operation: op.Name()})
	if err != nil || w.GetStatus() != computepb.Operation_DONE {
		t.Errorf("regionOperations.wait: %v %v", w.GetStatus(), err)
	}
	fault.Store(&Fault{Hang: true})
	hctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	start = time.Now()
	if _, err := c.groups.Resize(hctx, &computepb.ResizeRegionInstanceGroupManagerRequest{
		Project: project, Region: region, InstanceGroupManager: "g", Size: 5}); err == nil || time.Since(start) > 5*time.Second {
		t.Errorf("hung resize: %v after %v, want the client's deadline", err, time.Since(start))
	}
	if srv.Calls("compute.regionInstanceGroupManagers.resize") != 5 {
		t.Errorf("resize calls counted: %d, want 5 (faulted ones included)", srv.Calls("compute.regionInstanceGroupManagers.resize"))
	}
	fault.Store(&Fault{Hang: true}) // left hanging at the test's end: the cleanup lets it go
	go func() { _, _ = resize(t, c, "g", 6, "") }()
	eventually(t, "the hanging call", func() bool { return srv.Calls("compute.regionInstanceGroupManagers.resize") == 6 })
}

// TestQuotaFault: while creation is over quota, the managed instance stays
// CREATING without a VM and says QUOTA_EXCEEDED in lastAttempt.errors;
// once lifted, the VM is created.
func TestQuotaFault(t *testing.T) {
	srv := Start(t, Options{})
	c := newClients(t, srv)
	insertTemplate(t, c, "t1")
	insertGroup(t, c, "g", "t1", 0, false)
	var mu sync.Mutex
	over := true
	srv.SetQuotaFault(func(group, zone string) bool { mu.Lock(); defer mu.Unlock(); return over && group == "g" })
	op, err := resize(t, c, "g", 1, "")
	wait(t, op, err)
	time.Sleep(100 * time.Millisecond)
	ms := managed(t, c, "g")
	if len(ms) != 1 || ms[0].GetCurrentAction() != "CREATING" || ms[0].GetId() != 0 || ms[0].InstanceStatus != nil {
		t.Fatalf("over quota: %v, want one CREATING without a VM", ms)
	}
	errs := ms[0].GetLastAttempt().GetErrors().GetErrors()
	if len(errs) != 1 || errs[0].GetCode() != "QUOTA_EXCEEDED" || !strings.Contains(errs[0].GetMessage(), "Quota") {
		t.Errorf("lastAttempt.errors = %v, want QUOTA_EXCEEDED", errs)
	}
	if n := len(srv.Instances("g")); n != 0 {
		t.Errorf("%d VMs over quota", n)
	}
	mu.Lock()
	over = false
	mu.Unlock()
	eventually(t, "the VM once the quota is lifted", func() bool { return allRunning(managed(t, c, "g"), 1) })
	if ms := managed(t, c, "g"); ms[0].GetLastAttempt() != nil {
		t.Errorf("lastAttempt after success: %v", ms[0].GetLastAttempt())
	}
}

// TestRepairAndRedistribution: a VM deleted behind its group's back comes
// back under its name with a new id (OnInstance sees it); with the
// default PROACTIVE redistribution a group rebalances its zones by deleting
// a VM nobody chose, with NONE it does not.
func TestRepairAndRedistribution(t *testing.T) {
	srv := Start(t, Options{})
	c := newClients(t, srv)
	insertTemplate(t, c, "t1")
	var mu sync.Mutex
	var events []Event
	srv.OnInstance(func(e Event) { mu.Lock(); events = append(events, e); mu.Unlock() })
	insertGroup(t, c, "none", "t1", 6, false)
	op, err := c.groups.Insert(ctxT(t), &computepb.InsertRegionInstanceGroupManagerRequest{
		Project: project, Region: region, InstanceGroupManagerResource: &computepb.InstanceGroupManager{
			Name: proto.String("proactive"), InstanceTemplate: proto.String("global/instanceTemplates/t1"), TargetSize: proto.Int32(6)}})
	wait(t, op, err)
	if got := srv.GroupResource(region, "proactive")["updatePolicy"].(map[string]any)["instanceRedistributionType"]; got != "PROACTIVE" {
		t.Errorf("default instanceRedistributionType = %v, want PROACTIVE", got)
	}
	eventually(t, "12 running", func() bool { return allRunning(managed(t, c, "none"), 6) && allRunning(managed(t, c, "proactive"), 6) })

	victim := srv.Instances("none")[0]
	if err := srv.DeleteInstance(victim.Zone, victim.Name); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the killed VM back", func() bool {
		for _, in := range srv.Instances("none") {
			if in.Name == victim.Name && in.ID != victim.ID && in.Status == "RUNNING" {
				return true
			}
		}
		return false
	})
	mu.Lock()
	kinds := map[EventKind]bool{}
	for _, e := range events {
		if e.Instance.Name == victim.Name {
			kinds[e.Kind] = true
		}
	}
	mu.Unlock()
	if !kinds[EventDeleted] || !kinds[EventCreated] || !kinds[EventRunning] {
		t.Errorf("events of the killed VM: %v", kinds)
	}

	// instances.delete: a zonal operation, DONE once the VM is gone; the
	// group brings it back.
	victim = srv.Instances("none")[1]
	op, err = c.instances.Delete(ctxT(t), &computepb.DeleteInstanceRequest{Project: project, Zone: victim.Zone, Instance: victim.Name})
	wait(t, op, err)
	if _, err := c.instances.Get(ctxT(t), &computepb.GetInstanceRequest{Project: project, Zone: victim.Zone, Instance: victim.Name}); code(err) != 404 {
		in := srv.Instances("none")
		back := false
		for _, x := range in {
			back = back || (x.Name == victim.Name && x.ID != victim.ID)
		}
		if !back {
			t.Errorf("after instances.delete's operation: %v, want the VM gone (or already recreated)", err)
		}
	}
	eventually(t, "the deleted VM back", func() bool { return allRunning(managed(t, c, "none"), 6) })

	// Delete both VMs of one zone from each group.
	for _, g := range []string{"none", "proactive"} {
		var refs []string
		zone := srv.Instances(g)[0].Zone
		for _, in := range srv.Instances(g) {
			if in.Zone == zone {
				refs = append(refs, "zones/"+in.Zone+"/instances/"+in.Name)
			}
		}
		op, err := c.groups.DeleteInstances(ctxT(t), &computepb.DeleteInstancesRegionInstanceGroupManagerRequest{
			Project: project, Region: region, InstanceGroupManager: g,
			RegionInstanceGroupManagersDeleteInstancesRequestResource: &computepb.RegionInstanceGroupManagersDeleteInstancesRequest{Instances: refs}})
		wait(t, op, err)
	}
	before := map[string]bool{}
	for _, in := range srv.Instances("") {
		before[in.Name] = true
	}
	zonesOf := func(g string) map[string]int {
		z := map[string]int{}
		for _, in := range srv.Instances(g) {
			if in.Status == "RUNNING" {
				z[in.Zone]++
			}
		}
		return z
	}
	eventually(t, "the NONE group's deletions", func() bool { return allRunning(managed(t, c, "none"), 4) })
	eventually(t, "the PROACTIVE group rebalanced over 3 zones", func() bool {
		return allRunning(managed(t, c, "proactive"), 4) && len(zonesOf("proactive")) == 3
	})
	if z := zonesOf("none"); len(z) != 2 {
		t.Errorf("NONE group rebalanced: zones %v", z)
	}
	gone := 0
	for _, in := range srv.Instances("proactive") {
		if !before[in.Name] {
			gone++
		}
	}
	if gone == 0 {
		t.Error("PROACTIVE: no VM replaced by the rebalancing")
	}
}

// TestPatch: a merge patch gives the group a new template (new instances
// use it; versionTarget is reached once every instance is recreated on
// it) and a new update policy; a stale fingerprint and a change of zones
// are refused.
func TestPatch(t *testing.T) {
	srv := Start(t, Options{})
	c := newClients(t, srv)
	ctx := ctxT(t)
	insertTemplate(t, c, "t1")
	insertTemplate(t, c, "t2")
	insertGroup(t, c, "g", "t1", 1, false)
	eventually(t, "1 running", func() bool { return allRunning(managed(t, c, "g"), 1) })
	get := func() *computepb.InstanceGroupManager {
		g, err := c.groups.Get(ctx, &computepb.GetRegionInstanceGroupManagerRequest{Project: project, Region: region, InstanceGroupManager: "g"})
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	old := get()
	t2 := "https://www.googleapis.com/compute/v1/projects/" + project + "/global/instanceTemplates/t2"
	op, err := c.groups.Patch(ctx, &computepb.PatchRegionInstanceGroupManagerRequest{
		Project: project, Region: region, InstanceGroupManager: "g",
		InstanceGroupManagerResource: &computepb.InstanceGroupManager{
			InstanceTemplate: proto.String(t2),
			Versions:         []*computepb.InstanceGroupManagerVersion{{InstanceTemplate: proto.String(t2)}},
			UpdatePolicy: &computepb.InstanceGroupManagerUpdatePolicy{
				Type: proto.String("OPPORTUNISTIC"), InstanceRedistributionType: proto.String("NONE")},
			Fingerprint: old.Fingerprint,
		}})
	wait(t, op, err)
	g := get()
	if g.GetInstanceTemplate() != t2 || g.GetVersions()[0].GetInstanceTemplate() != t2 || g.GetUpdatePolicy().GetInstanceRedistributionType() != "NONE" {
		t.Errorf("after patch: template %s versions %v policy %v", g.GetInstanceTemplate(), g.GetVersions(), g.GetUpdatePolicy())
	}
	if g.GetStatus().GetVersionTarget().GetIsReached() || g.GetFingerprint() == old.GetFingerprint() {
		t.Errorf("after patch: versionTarget reached %v, fingerprint %s (was %s): want not reached, a new fingerprint",
			g.GetStatus().GetVersionTarget().GetIsReached(), g.GetFingerprint(), old.GetFingerprint())
	}
	op, err = c.groups.RecreateInstances(ctx, &computepb.RecreateInstancesRegionInstanceGroupManagerRequest{
		Project: project, Region: region, InstanceGroupManager: "g",
		RegionInstanceGroupManagersRecreateRequestResource: &computepb.RegionInstanceGroupManagersRecreateRequest{
			Instances: []string{managed(t, c, "g")[0].GetInstance()}}})
	wait(t, op, err)
	eventually(t, "the recreated instance", func() bool { return allRunning(managed(t, c, "g"), 1) })
	if g := get(); !g.GetStatus().GetVersionTarget().GetIsReached() || managed(t, c, "g")[0].GetVersion().GetInstanceTemplate() != t2 {
		t.Errorf("after recreating on t2: versionTarget %v", g.GetStatus().GetVersionTarget())
	}
	if in := srv.Instances("g"); len(in) != 1 || !strings.HasSuffix(in[0].Metadata["instance-template"], "/t2") {
		t.Errorf("recreated VM's template: %v", in)
	}

	_, err = c.groups.Patch(ctx, &computepb.PatchRegionInstanceGroupManagerRequest{
		Project: project, Region: region, InstanceGroupManager: "g",
		InstanceGroupManagerResource: &computepb.InstanceGroupManager{TargetSize: proto.Int32(2), Fingerprint: old.Fingerprint}})
	if code(err) != 412 {
		t.Errorf("patch with a stale fingerprint: %v, want 412", err)
	}
	_, err = c.groups.Patch(ctx, &computepb.PatchRegionInstanceGroupManagerRequest{
		Project: project, Region: region, InstanceGroupManager: "g",
		InstanceGroupManagerResource: &computepb.InstanceGroupManager{DistributionPolicy: &computepb.DistributionPolicy{
			Zones: []*computepb.DistributionPolicyZoneConfiguration{{Zone: proto.String("zones/us-central1-f")}}}}})
	if code(err) != 400 {
		t.Errorf("patch changing zones: %v, want 400", err)
	}
	if n := len(srv.Requests("compute.regionInstanceGroupManagers.patch")); n != 3 {
		t.Errorf("%d patch requests recorded, want 3", n)
	}
	var sent struct {
		UpdatePolicy struct{ InstanceRedistributionType string }
	}
	body := srv.Requests("compute.regionInstanceGroupManagers.patch")[0].Body
	if err := json.Unmarshal(body, &sent); err != nil || sent.UpdatePolicy.InstanceRedistributionType != "NONE" {
		t.Errorf("recorded patch body: %s %v", body, err)
	}
}

// TestNotModeledFailsTheTest: a method the discovery document has but the
// fake does not model answers 501 and fails the test, so a gap of the fake
// never passes for Compute Engine's behaviour.
func TestNotModeledFailsTheTest(t *testing.T) {
	rec := &recorder{TB: t}
	srv := Start(rec, Options{})
	st, body := raw(t, srv, "POST", "/compute/v1/projects/p1/regions/us-central1/instanceGroupManagers/g/abandonInstances", `{"instances":["zones/us-central1-a/instances/x"]}`)
	if st != 501 || len(rec.errors) != 1 || !strings.Contains(rec.errors[0], "compute.regionInstanceGroupManagers.abandonInstances") {
		t.Errorf("abandonInstances: %d %s, test errors %q: want 501 and one test failure naming the method", st, body, rec.errors)
	}
	if srv.Calls("compute.regionInstanceGroupManagers.abandonInstances") != 1 {
		t.Error("the call was not counted")
	}
}
