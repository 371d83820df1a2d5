package gcp

import (
	"errors"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"cloud.google.com/go/compute/apiv1/computepb"
	"google.golang.org/api/googleapi"
	"google.golang.org/protobuf/proto"

	"github.com/autarky/terraform-provider-autarky/internal/platform"
	"github.com/autarky/terraform-provider-autarky/internal/platform/group"
)

func TestGroupNameRules(t *testing.T) {
	g := &Groups{}
	if name, err := g.checkName("prod", "web"); err != nil || name != "prod-web" {
		t.Fatalf("prod/web: %q, %v", name, err)
	}
	for _, c := range []struct{ cluster, pool string }{
		{"1prod", "web"}, // a DNS label may start with a digit, a GCE name not
		{"prod", strings.Repeat("w", 48)},
	} {
		_, err := g.checkName(c.cluster, c.pool)
		if err == nil || !strings.Contains(err.Error(), "node pool "+c.cluster+"/"+c.pool) || !strings.Contains(err.Error(), "Compute Engine refuses") {
			t.Errorf("%s/%s: got %v, want a refusal naming the pool", c.cluster, c.pool, err)
		}
	}
}

func TestNameFilters(t *testing.T) {
	got := nameFilters([]string{"prod-managers", "prod-web"}, "-[a-z0-9]{4}")
	if len(got) != 1 || got[0] != `name eq "(prod-managers|prod-web)-[a-z0-9]{4}"` {
		t.Fatalf("filters: %q", got)
	}
	re := regexp.MustCompile(`^(?:(prod-managers|prod-web)-[a-z0-9]{4})$`)
	if !re.MatchString("prod-web-x1z9") || re.MatchString("prod-web2-x1z9") || re.MatchString("xprod-web-x1z9") {
		t.Error("the filter's expression does not match exactly the groups' instance names")
	}
	var many []string
	for i := 0; i < 300; i++ {
		many = append(many, "cluster-pool-number-"+strings.Repeat("x", i%10))
	}
	fs := nameFilters(many, "")
	if len(fs) < 2 || len(fs) > 5 {
		t.Errorf("300 names of ~25 characters: %d filters, want a few", len(fs))
	}
	n := 0
	for _, f := range fs {
		if len(f) > maxFilter+30 {
			t.Errorf("filter of %d characters", len(f))
		}
		n += strings.Count(f, "|") + 1
	}
	if n != 300 {
		t.Errorf("filters name %d names, want 300", n)
	}
}

func mi(id uint64, action, status string) *computepb.ManagedInstance {
	return &computepb.ManagedInstance{Id: proto.Uint64(id), Name: proto.String("prod-web-abcd"), CurrentAction: proto.String(action), InstanceStatus: proto.String(status),
		Instance: proto.String("https://www.googleapis.com/compute/v1/projects/p/zones/europe-west1-b/instances/prod-web-abcd")}
}

func TestRunning(t *testing.T) {
	for _, c := range []struct {
		action, status string
		want           bool
	}{
		{"NONE", "RUNNING", true},
		{"CREATING", "", true},
		{"CREATING", "PROVISIONING", true},
		{"VERIFYING", "STAGING", true},
		{"REFRESHING", "RUNNING", true},
		{"STARTING", "STOPPED", true},
		{"NONE", "REPAIRING", true},
		{"SOMETHING_NEW", "RUNNING", true},
		{"DELETING", "RUNNING", false},
		{"ABANDONING", "RUNNING", false},
		{"RECREATING", "RUNNING", false},
		{"STOPPING", "RUNNING", false},
		{"NONE", "TERMINATED", false},
		{"NONE", "STOPPED", false},
		{"NONE", "SUSPENDED", false},
	} {
		if got := running(mi(1, c.action, c.status)); got != c.want {
			t.Errorf("%s/%s: running %t, want %t", c.action, c.status, got, c.want)
		}
	}
	failed := mi(0, "CREATING", "")
	failed.LastAttempt = &computepb.ManagedInstanceLastAttempt{Errors: &computepb.ManagedInstanceLastAttemptErrors{Errors: []*computepb.Errors{{Code: proto.String("QUOTA_EXCEEDED")}}}}
	if running(failed) {
		t.Error("a member whose launch failed, without a VM, counts as running: TrimDesired could never give it up")
	}
}

func steady() *computepb.InstanceGroupManager {
	return &computepb.InstanceGroupManager{Name: proto.String("prod-web"), TargetSize: proto.Int32(2),
		CurrentActions: &computepb.InstanceGroupManagerActionsSummary{None: proto.Int32(2)},
		Status: &computepb.InstanceGroupManagerStatus{IsStable: proto.Bool(true),
			VersionTarget: &computepb.InstanceGroupManagerStatusVersionTarget{IsReached: proto.Bool(true)}}}
}

func TestBusy(t *testing.T) {
	members := []*computepb.ManagedInstance{mi(11, "NONE", "RUNNING"), mi(12, "DELETING", "STOPPING")}
	if err := busy(steady(), members[:1])(group.Grow, ""); err != nil {
		t.Fatalf("a steady group is busy: %v", err)
	}
	if err := busy(steady(), members)(group.ScaleIn, "11"); err != nil {
		t.Fatalf("scale in of a running member of a steady group: %v", err)
	}
	wantBusy := func(name string, err error, words ...string) {
		t.Helper()
		var be *BusyError
		if !errors.As(err, &be) || !platform.IsTransient(err) {
			t.Fatalf("%s: got %v, want a transient *BusyError", name, err)
		}
		for _, w := range words {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q does not say %q", name, err, w)
			}
		}
	}
	wantBusy("scale in of a deleting member", busy(steady(), members)(group.ScaleIn, "12"), "instance 12 is DELETING")

	m := steady()
	m.Status.IsStable = proto.Bool(false)
	m.CurrentActions.Creating = proto.Int32(1)
	wantBusy("creating", busy(m, members[:1])(group.Grow, ""), "not stable", "1 creating")

	m = steady()
	m.Status.VersionTarget.IsReached = proto.Bool(false)
	m.UpdatePolicy = &computepb.InstanceGroupManagerUpdatePolicy{Type: proto.String("OPPORTUNISTIC")}
	if err := busy(m, members[:1])(group.Grow, ""); err != nil {
		t.Errorf("VMs on an older template under OPPORTUNISTIC (nothing replaces them): %v", err)
	}
	m.UpdatePolicy.Type = proto.String("PROACTIVE")
	wantBusy("rolling update", busy(m, members[:1])(group.Grow, ""), "rolling update")

	m = steady()
	m.Status.Autoscaler = proto.String("https://www.googleapis.com/compute/v1/projects/p/regions/europe-west1/autoscalers/prod-web-as")
	wantBusy("autoscaler", busy(m, members[:1])(group.Grow, ""), "autoscaler prod-web-as is attached")

	m = steady()
	m.Status.IsStable = proto.Bool(false)
	m.CurrentActions.Creating = proto.Int32(1)
	quota := mi(13, "CREATING", "")
	quota.LastAttempt = &computepb.ManagedInstanceLastAttempt{Errors: &computepb.ManagedInstanceLastAttemptErrors{Errors: []*computepb.Errors{{
		Code: proto.String("QUOTA_EXCEEDED"), Message: proto.String("Quota 'CPUS' exceeded. Limit: 8.0 in region europe-west1.")}}}}
	err := busy(m, append(members[:1:1], quota))(group.Grow, "")
	wantBusy("quota", err, "the last launch failed", "QUOTA_EXCEEDED", "Quota 'CPUS' exceeded")
	var be *BusyError
	if errors.As(err, &be); be.FailedLaunch == "" {
		t.Error("FailedLaunch is empty on a quota error")
	}

	if err := busy(steady(), members)(group.ScaleIn, "99"); !errors.Is(err, platform.ErrNotFound) || platform.IsTransient(err) {
		t.Errorf("scale in of a member not in the group: %v, want platform.ErrNotFound", err)
	}
}

func TestAPIErrorKinds(t *testing.T) {
	for _, c := range []struct {
		err                       error
		notFound, exists, transnt bool
		code                      string
	}{
		{&googleapi.Error{Code: http.StatusNotFound}, true, false, false, ""},
		{&googleapi.Error{Code: http.StatusConflict}, false, true, false, ""},
		{&googleapi.Error{Code: http.StatusTooManyRequests}, false, false, true, "429"},
		{&googleapi.Error{Code: http.StatusServiceUnavailable}, false, false, true, "503"},
		{&googleapi.Error{Code: http.StatusForbidden, Errors: []googleapi.ErrorItem{{Reason: "rateLimitExceeded"}}}, false, false, true, "rateLimitExceeded"},
		{&googleapi.Error{Code: http.StatusForbidden, Errors: []googleapi.ErrorItem{{Reason: "forbidden"}}}, false, false, false, ""},
		{&googleapi.Error{Code: http.StatusBadRequest}, false, false, false, ""},
	} {
		e := &APIError{Op: "x", Err: c.err}
		if errors.Is(e, platform.ErrNotFound) != c.notFound || errors.Is(e, platform.ErrExists) != c.exists || platform.IsTransient(e) != c.transnt || retryCode(c.err) != c.code {
			t.Errorf("%v: notFound %t exists %t transient %t code %q", c.err, errors.Is(e, platform.ErrNotFound), errors.Is(e, platform.ErrExists), platform.IsTransient(e), retryCode(c.err))
		}
	}
}

func TestRequestID(t *testing.T) {
	re := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	a, b := *requestID(), *requestID()
	if !re.MatchString(a) || a == b {
		t.Errorf("request ids %q, %q: want two different version 4 UUIDs", a, b)
	}
}
