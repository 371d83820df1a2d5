package aws

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	awsv2 "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/autarky/terraform-provider-autarky/internal/platform"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

// Join tokens as Swarm makes them (made up, never a real swarm's).
const (
	testWorkerToken  = "SWMTKN-1-3pu6hszjas19xyp7ghgosyx9k8atbfcr8p2is99znpy26u2lkl-1awxwuwd3z9j1z3puu7rcgdbx"
	testManagerToken = "SWMTKN-1-3pu6hszjas19xyp7ghgosyx9k8atbfcr8p2is99znpy26u2lkl-7p73s1dx5in4tatdymyhg9hu2"
)

// TestStoreRoundTrip writes everything the provider writes and reads it
// back the way the agent does, from moto's Parameter Store.
func TestStoreRoundTrip(t *testing.T) {
	c, proxy := testClients(t, nil)
	ctx := context.Background()
	s, err := NewStore(c.SSM, "prod")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Descriptor(ctx); !errors.Is(err, platform.ErrNotFound) {
		t.Fatalf("descriptor of an empty store: %v", err)
	}
	var journal map[string]any
	if _, err := s.LoadJournal(ctx, &journal); err != nil || journal != nil {
		t.Fatalf("no journal: %v, %v", err, journal)
	}

	created := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	desc := policy.Cluster{Name: "prod", Platform: policy.PlatformAWS, ManagerCount: 3, HeartbeatPeriod: "5s",
		Labels: map[string]string{"team": "ops"}, Agent: &policy.Agent{Enabled: true, EvaluationInterval: "10s"}, CreatedAt: created}
	if err := s.PutDescriptor(ctx, desc); err != nil {
		t.Fatal(err)
	}
	got, err := s.Descriptor(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "prod" || got.ManagerCount != 3 || got.Labels["team"] != "ops" || !got.Agent.Enabled || !got.CreatedAt.Equal(created) {
		t.Fatalf("descriptor round trip: %+v", got)
	}
	if err := s.PutDescriptor(ctx, policy.Cluster{Name: "other"}); err == nil {
		t.Error("another cluster's descriptor was accepted")
	}

	// 12 pools: more than one page of GetParametersByPath (10 a page).
	for i := 11; i >= 0; i-- {
		p := policy.Pool{Cluster: "prod", Name: fmt.Sprintf("pool-%02d", i), Role: policy.RoleWorker, MinSize: 0, MaxSize: 5, DesiredSize: 1,
			WaitForCapacityTimeout: "5m", SizeOwner: policy.SizeOwnerTerraform, CreatedAt: created}
		if err := s.PutPool(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	proxy.Reset()
	pools, err := s.Pools(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(pools) != 12 || pools[0].Name != "pool-00" || pools[11].Name != "pool-11" {
		t.Fatalf("pools: %d, first %q", len(pools), pools[0].Name)
	}
	if n := proxy.Calls("GetParametersByPath"); n != 2 {
		t.Errorf("listing 12 pools took %d pages, want 2", n)
	}

	h := policy.DefaultHealing("prod/pool-03")
	h.UnhealthyAfter = "45s"
	if err := s.PutHealingPolicy(ctx, h); err != nil {
		t.Fatal(err)
	}
	if err := s.PutHealingPolicy(ctx, policy.DefaultHealing("prod/managers")); err != nil {
		t.Fatal(err)
	}
	if err := s.PutHealingPolicy(ctx, policy.DefaultHealing("prod/nosuch")); !errors.Is(err, platform.ErrNotFound) {
		t.Errorf("healing policy for a pool that does not exist: %v", err)
	}
	if err := s.PutHealingPolicy(ctx, policy.DefaultHealing("other/pool-03")); err == nil {
		t.Error("another cluster's healing policy was accepted")
	}
	hs, err := s.HealingPolicies(ctx)
	if err != nil || len(hs) != 2 {
		t.Fatalf("healing policies: %v, %+v", err, hs)
	}
	if gh, err := s.GetHealingPolicy(ctx, "prod/pool-03"); err != nil || gh.UnhealthyAfter != "45s" {
		t.Fatalf("healing policy: %v, %+v", err, gh)
	}

	sp := policy.DefaultScaling("prod/pool-04")
	sp.PendingTasks = &policy.PendingTasksCheck{}
	if err := s.PutScalingPolicy(ctx, sp); err != nil {
		t.Fatal(err)
	}
	mgr := policy.DefaultScaling("prod/managers")
	mgr.PendingTasks = &policy.PendingTasksCheck{}
	if err := s.PutScalingPolicy(ctx, mgr); err == nil || !strings.Contains(err.Error(), "never autoscaled") {
		t.Errorf("scaling policy for managers: %v", err)
	}
	if p, _ := s.GetPool(ctx, "pool-04"); p.SizeOwner != policy.SizeOwnerAgent {
		t.Errorf("a scaling policy did not hand the size to the agent: %q", p.SizeOwner)
	}
	if ss, err := s.ScalingPolicies(ctx); err != nil || len(ss) != 1 || ss[0].PoolID != "prod/pool-04" {
		t.Fatalf("scaling policies: %v, %+v", err, ss)
	}
	if err := s.DeleteScalingPolicy(ctx, "prod/pool-04"); err != nil {
		t.Fatal(err)
	}
	if p, _ := s.GetPool(ctx, "pool-04"); p.SizeOwner != policy.SizeOwnerTerraform {
		t.Errorf("deleting the scaling policy did not hand the size back: %q", p.SizeOwner)
	}
	if _, err := s.GetScalingPolicy(ctx, "prod/pool-04"); !errors.Is(err, platform.ErrNotFound) {
		t.Errorf("deleted scaling policy: %v", err)
	}

	type entry struct {
		ID     string `json:"id"`
		Action string `json:"action"`
	}
	rev, err := s.SaveJournal(ctx, []entry{{"a1", "replace i-1"}}, "")
	if err != nil {
		t.Fatal(err)
	}
	rev, err = s.SaveJournal(ctx, []entry{{"a1", "replace i-1"}, {"a2", "scale in i-2"}}, rev)
	if err != nil {
		t.Fatal(err)
	}
	var j []entry
	if got, err := s.LoadJournal(ctx, &j); err != nil || got != rev || len(j) != 2 || j[1].Action != "scale in i-2" {
		t.Fatalf("journal: rev %q (saved %q), %v, %+v", got, rev, err, j)
	}
	if _, err := s.SaveJournal(ctx, strings.Repeat("x", MaxParameterSize), rev); err == nil {
		t.Error("a journal larger than a parameter was accepted")
	}

	if err := s.DeletePool(ctx, "pool-03"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetHealingPolicy(ctx, "prod/pool-03"); !errors.Is(err, platform.ErrNotFound) {
		t.Errorf("a deleted pool's healing policy: %v", err)
	}
	if err := s.DeletePool(ctx, "pool-03"); err != nil {
		t.Errorf("deleting a pool twice: %v", err)
	}

	// Another cluster's store sees none of it.
	other, _ := NewStore(c.SSM, "prod2")
	if ps, err := other.Pools(ctx); err != nil || len(ps) != 0 {
		t.Errorf("prod2 sees %d pools of prod: %v", len(ps), err)
	}

	if err := s.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	left, err := c.SSM.GetParametersByPath(ctx, &ssm.GetParametersByPathInput{Path: awsv2.String(s.Path()), Recursive: awsv2.Bool(true)})
	if err != nil || len(left.Parameters) != 0 {
		t.Fatalf("after Delete: %v, %d parameters left", err, len(left.Parameters))
	}
}

// TestTokens stores the join tokens as SecureString in moto and reads
// them back decrypted; nothing prints them.
func TestTokens(t *testing.T) {
	c, proxy := testClients(t, nil)
	ctx := context.Background()
	s, _ := NewStore(c.SSM, "tok")
	if _, err := s.GetTokens(ctx); !errors.Is(err, platform.ErrNotFound) {
		t.Fatalf("tokens of an empty store: %v", err)
	}
	want := Tokens{Worker: testWorkerToken, Manager: testManagerToken}
	if err := s.PutTokens(ctx, want); err != nil {
		t.Fatal(err)
	}
	proxy.Reset()
	got, err := s.GetTokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatal("tokens did not round trip")
	}
	if n := proxy.Calls("GetParameters"); n != 1 {
		t.Errorf("reading both tokens took %d calls", n)
	}
	for _, role := range []string{policy.RoleWorker, policy.RoleManager} {
		out, err := c.SSM.GetParameter(ctx, &ssm.GetParameterInput{Name: awsv2.String(TokenParameter("tok", role))})
		if err != nil {
			t.Fatal(err)
		}
		if out.Parameter.Type != ssmtypes.ParameterTypeSecureString {
			t.Errorf("%s token is a %s parameter", role, out.Parameter.Type)
		}
		if v := awsv2.ToString(out.Parameter.Value); v == testWorkerToken || v == testManagerToken {
			t.Errorf("%s token reads back in clear without decryption", role)
		}
	}
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		if out := fmt.Sprintf(format, got); strings.Contains(out, "SWMTKN") {
			t.Errorf("Tokens printed with %s shows a token: %s", format, out)
		}
	}
	// The store's listings never hand out a token, not even encrypted:
	// the agent reading policies does not handle tokens. (moto's
	// "encryption" keeps the plain text inside, so this would catch it.)
	params, err := s.list(ctx, s.Path(), true)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range params {
		if strings.Contains(awsv2.ToString(p.Value), "SWMTKN") {
			t.Errorf("listing %s shows the token", awsv2.ToString(p.Name))
		}
	}

	// An error that echoes the value (AWS's validation messages can) is
	// scrubbed before anyone sees it.
	proxy.SetFault(func(cl call) *fault {
		if cl.Action == "PutParameter" {
			return apiError(cl, "ValidationException", "1 validation error detected: Value '"+testWorkerToken+"' at 'value' failed to satisfy constraint")
		}
		return nil
	})
	err = s.PutTokens(ctx, want)
	if err == nil {
		t.Fatal("a failed put succeeded")
	}
	if strings.Contains(err.Error(), "SWMTKN") || !strings.Contains(err.Error(), redacted) || !strings.Contains(err.Error(), "ValidationException") {
		t.Errorf("error: %v", err)
	}
	var unwrapped = errors.Unwrap(err)
	if unwrapped != nil {
		t.Errorf("a scrubbed error still unwraps to %v", unwrapped)
	}
	if err := s.PutTokens(ctx, Tokens{Worker: testWorkerToken}); err == nil || strings.Contains(err.Error(), "SWMTKN") {
		t.Errorf("a missing manager token: %v", err)
	}
}

// TestInitLockExactlyOne races managers for the swarm init lock in moto:
// PutParameter with Overwrite=false lets exactly one win.
func TestInitLockExactlyOne(t *testing.T) {
	c, _ := testClients(t, nil)
	s, _ := NewStore(c.SSM, "race")
	var wg sync.WaitGroup
	var mu sync.Mutex
	var winners []string
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("i-%017x", i)
			ok, err := s.AcquireInitLock(context.Background(), id)
			if err != nil {
				t.Error(err)
				return
			}
			if ok {
				mu.Lock()
				winners = append(winners, id)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(winners) != 1 {
		t.Fatalf("%d managers won the init lock: %v", len(winners), winners)
	}
	out, err := c.SSM.GetParameter(context.Background(), &ssm.GetParameterInput{Name: awsv2.String(InitLockParameter("race"))})
	if err != nil || awsv2.ToString(out.Parameter.Value) != winners[0] {
		t.Fatalf("the lock holds %v (%v), want the winner %s", out, err, winners[0])
	}
	if ok, err := s.AcquireInitLock(context.Background(), "i-late"); ok || err != nil {
		t.Errorf("a late manager: %t, %v", ok, err)
	}
}

// journalTestStore is a store in moto for the journal tests.
func journalTestStore(t *testing.T, cluster string) (*Store, *Clients) {
	t.Helper()
	c, _ := testClients(t, nil)
	s, err := NewStore(c.SSM, cluster)
	if err != nil {
		t.Fatal(err)
	}
	return s, c
}

type testJournal struct {
	Entries []string `json:"entries"`
}

// TestStoreJournalRevisions round-trips the journal's revision (the
// parameter's Version) through moto and refuses stale writers.
func TestStoreJournalRevisions(t *testing.T) {
	ctx := context.Background()
	s, c := journalTestStore(t, "jrev")
	j := testJournal{Entries: []string{"untouched"}}
	if rev, err := s.LoadJournal(ctx, &j); err != nil || rev != "" || len(j.Entries) != 1 {
		t.Fatalf("no journal: rev %q, %+v, %v", rev, j, err)
	}
	rev1, err := s.SaveJournal(ctx, testJournal{Entries: []string{"a"}}, "")
	if err != nil || rev1 != "1" {
		t.Fatalf("first save: rev %q, %v", rev1, err)
	}
	if got, err := s.LoadJournal(ctx, &j); err != nil || got != rev1 || strings.Join(j.Entries, ",") != "a" {
		t.Fatalf("load: rev %q, %+v, %v", got, j, err)
	}
	// "" means "there must be no journal yet".
	if _, err := s.SaveJournal(ctx, testJournal{Entries: []string{"x"}}, ""); !errors.Is(err, platform.ErrConflict) {
		t.Fatalf("save with revision \"\" over a journal: %v", err)
	}
	rev2, err := s.SaveJournal(ctx, testJournal{Entries: []string{"a", "b"}}, rev1)
	if err != nil || rev2 != "2" {
		t.Fatalf("second save: rev %q, %v", rev2, err)
	}

	// Someone else writes between this writer's load and its save.
	var mine testJournal
	rev, err := s.LoadJournal(ctx, &mine)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := NewStore(c.SSM, "jrev")
	var theirs testJournal
	theirRev, err := other.LoadJournal(ctx, &theirs)
	if err != nil || theirRev != rev {
		t.Fatalf("the other writer loads rev %q, %v", theirRev, err)
	}
	if _, err := other.SaveJournal(ctx, testJournal{Entries: append(theirs.Entries, "theirs")}, theirRev); err != nil {
		t.Fatal(err)
	}
	_, err = s.SaveJournal(ctx, testJournal{Entries: append(mine.Entries, "mine")}, rev)
	if !errors.Is(err, platform.ErrConflict) {
		t.Fatalf("save over another writer's journal: %v", err)
	}
	if !strings.Contains(err.Error(), JournalParameter("jrev")) {
		t.Errorf("the conflict does not name the parameter: %v", err)
	}
	if _, err := s.LoadJournal(ctx, &j); err != nil || strings.Join(j.Entries, ",") != "a,b,theirs" {
		t.Fatalf("the refused save landed: %+v, %v", j, err)
	}
}

// TestStoreJournalConflictAfterPut: a writer whose put lands right after
// another's (both passed the version check) learns it from the version
// its put made.
func TestStoreJournalConflictAfterPut(t *testing.T) {
	ctx := context.Background()
	c, proxy := testClients(t, nil)
	s, _ := NewStore(c.SSM, "jrace")
	rev, err := s.SaveJournal(ctx, testJournal{Entries: []string{"a"}}, "")
	if err != nil {
		t.Fatal(err)
	}
	// Another agent's put slips in between this writer's check
	// (GetParameter) and its put: the proxy sends it to moto first.
	var raced atomic.Bool
	proxy.SetFault(func(cl call) *fault {
		if cl.Action == "PutParameter" && raced.CompareAndSwap(false, true) {
			if _, err := c.SSM.PutParameter(ctx, &ssm.PutParameterInput{
				Name: awsv2.String(JournalParameter("jrace")), Value: awsv2.String(`{"entries":["a","theirs"]}`),
				Type: ssmtypes.ParameterTypeString, Overwrite: awsv2.Bool(true),
			}); err != nil {
				t.Errorf("the other writer's put: %v", err)
			}
		}
		return nil
	})
	_, err = s.SaveJournal(ctx, testJournal{Entries: []string{"a", "mine"}}, rev)
	if !errors.Is(err, platform.ErrConflict) || !strings.Contains(err.Error(), "between") {
		t.Fatalf("a put that raced another writer's: %v", err)
	}
}

// TestStoreJournalCorrupt: a journal parameter that is not the agent's
// JSON is ErrJournalCorrupt; a store that cannot be read is not.
func TestStoreJournalCorrupt(t *testing.T) {
	ctx := context.Background()
	c, proxy := testClients(t, nil)
	s, _ := NewStore(c.SSM, "jbad")
	for name, value := range map[string]string{
		"truncated": `{"entries": ["a", "b`,
		"garbage":   "not json at all",
		"wrong":     `{"entries": 7}`,
	} {
		if _, err := c.SSM.PutParameter(ctx, &ssm.PutParameterInput{
			Name: awsv2.String(JournalParameter("jbad")), Value: awsv2.String(value),
			Type: ssmtypes.ParameterTypeString, Overwrite: awsv2.Bool(true),
		}); err != nil {
			t.Fatal(err)
		}
		j := testJournal{Entries: []string{"kept"}}
		rev, err := s.LoadJournal(ctx, &j)
		if !errors.Is(err, platform.ErrJournalCorrupt) || rev != "" {
			t.Errorf("%s: rev %q, %v; want ErrJournalCorrupt", name, rev, err)
		} else if !strings.Contains(err.Error(), JournalParameter("jbad")) {
			t.Errorf("%s: the error does not name the parameter: %v", name, err)
		}
	}
	proxy.SetFault(func(cl call) *fault {
		if cl.Action == "GetParameter" {
			return apiError(cl, "AccessDeniedException", "not allowed")
		}
		return nil
	})
	if _, err := s.LoadJournal(ctx, &testJournal{}); err == nil || errors.Is(err, platform.ErrJournalCorrupt) {
		t.Errorf("a journal that cannot be read: %v", err)
	}
}

// TestStoreJournalSetAside keeps an unreadable journal's value under a
// new parameter and leaves no journal.
func TestStoreJournalSetAside(t *testing.T) {
	ctx := context.Background()
	s, c := journalTestStore(t, "jaside")
	if _, err := s.SetAsideJournal(ctx); !errors.Is(err, platform.ErrNotFound) {
		t.Fatalf("set aside without a journal: %v", err)
	}
	var names []string
	for i := range 2 {
		bad := fmt.Sprintf(`{"entries": ["half %d`, i)
		if _, err := c.SSM.PutParameter(ctx, &ssm.PutParameterInput{
			Name: awsv2.String(JournalParameter("jaside")), Value: awsv2.String(bad),
			Type: ssmtypes.ParameterTypeString, Overwrite: awsv2.Bool(true),
		}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.LoadJournal(ctx, &testJournal{}); !errors.Is(err, platform.ErrJournalCorrupt) {
			t.Fatalf("load: %v", err)
		}
		name, err := s.SetAsideJournal(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(name, s.Path()+"/journal-set-aside-") {
			t.Errorf("set aside as %s", name)
		}
		out, err := c.SSM.GetParameter(ctx, &ssm.GetParameterInput{Name: awsv2.String(name)})
		if err != nil || awsv2.ToString(out.Parameter.Value) != bad || out.Parameter.Type != ssmtypes.ParameterTypeString {
			t.Errorf("set-aside parameter %s: %+v, %v", name, out, err)
		}
		if _, err := c.SSM.GetParameter(ctx, &ssm.GetParameterInput{Name: awsv2.String(JournalParameter("jaside"))}); err == nil {
			t.Error("the journal is still there")
		}
		if rev, err := s.LoadJournal(ctx, &testJournal{}); rev != "" || err != nil {
			t.Errorf("after set-aside: rev %q, %v", rev, err)
		}
		names = append(names, name)
	}
	if names[0] == names[1] {
		t.Errorf("both journals set aside as %s", names[0])
	}
	// A fresh journal starts from revision "".
	if rev, err := s.SaveJournal(ctx, testJournal{}, ""); err != nil || rev == "" {
		t.Fatalf("a new journal after set-aside: %q, %v", rev, err)
	}
	// The set-aside copies are the cluster's: destroy removes them too.
	if err := s.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if _, err := c.SSM.GetParameter(ctx, &ssm.GetParameterInput{Name: awsv2.String(name)}); err == nil {
			t.Errorf("%s survived the cluster's deletion", name)
		}
	}
}
