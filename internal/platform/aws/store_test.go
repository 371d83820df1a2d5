package aws

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	awsv2 "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/autarky/terraform-provider-autarky/internal/agent"
	"github.com/autarky/terraform-provider-autarky/internal/decide"
	"github.com/autarky/terraform-provider-autarky/internal/platform"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
	"github.com/autarky/terraform-provider-autarky/internal/swarm"
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
	// A journal larger than one parameter is stored gzipped, or in parts.
	big := strings.Repeat("x", 2*MaxParameterSize)
	if rev, err = s.SaveJournal(ctx, big, rev); err != nil {
		t.Errorf("a journal larger than a parameter: %v", err)
	}
	var gotBig string
	if _, err := s.LoadJournal(ctx, &gotBig); err != nil || gotBig != big {
		t.Errorf("a journal larger than a parameter reads back %d bytes: %v", len(gotBig), err)
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
	want := swarm.Tokens{Worker: testWorkerToken, Manager: testManagerToken}
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
	// One GetParameter per token: the shared store reads keys one by one
	// (only apply and the ephemeral resource read them, never the agent's
	// evaluation).
	if n, many := proxy.Calls("GetParameter"), proxy.Calls("GetParameters"); n != 2 || many != 0 {
		t.Errorf("reading both tokens took %d GetParameter and %d GetParameters calls", n, many)
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
	if strings.Contains(err.Error(), "SWMTKN") || !strings.Contains(err.Error(), "[redacted]") || !strings.Contains(err.Error(), "ValidationException") {
		t.Errorf("error: %v", err)
	}
	var unwrapped = errors.Unwrap(err)
	if unwrapped != nil {
		t.Errorf("a scrubbed error still unwraps to %v", unwrapped)
	}
	if err := s.PutTokens(ctx, swarm.Tokens{Worker: testWorkerToken}); err == nil || strings.Contains(err.Error(), "SWMTKN") {
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

// flightEntry is shaped like the agent's journal entries, with ids as
// random as real node and instance ids (so gzip gains what it would).
type flightEntry struct {
	Action struct {
		Kind, Key, PoolID, Role, NodeID, InstanceID, Reason string
		Drain, Shrink                                       bool
	} `json:"action"`
	StartedAt      time.Time     `json:"started_at"`
	By             string        `json:"by"`
	Batch          string        `json:"batch,omitempty"`
	DrainTimeout   time.Duration `json:"drain_timeout,omitempty"`
	DrainStartedAt time.Time     `json:"drain_started_at"`
}

type flightJournal struct {
	Entries     []flightEntry        `json:"entries"`
	LastScaleUp map[string]time.Time `json:"last_scale_up,omitempty"`
}

// inFlight makes a journal of n actions in flight over 5 pools; seed
// varies the ids.
func inFlight(n int, seed int64) flightJournal {
	r := rand.New(rand.NewSource(seed))
	id := func(n int, alphabet string) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = alphabet[r.Intn(len(alphabet))]
		}
		return string(b)
	}
	now := time.Date(2026, 11, 27, 13, 0, 0, 0, time.UTC)
	j := flightJournal{LastScaleUp: map[string]time.Time{}}
	for i := range n {
		var e flightEntry
		pool := fmt.Sprintf("prod/pool-%d", i%5)
		node, inst := id(25, "abcdefghijklmnopqrstuvwxyz0123456789"), "i-"+id(17, "0123456789abcdef")
		e.Action.Kind, e.Action.PoolID, e.Action.Role, e.Action.NodeID, e.Action.InstanceID = "remove_node", pool, "worker", node, inst
		e.Action.Key = "remove_node/" + pool + "/" + node + "/" + inst
		e.Action.Drain, e.Action.Shrink = true, true
		e.Action.Reason = fmt.Sprintf("scale in: the pool's load is %d%% under the target of 60%% for 5m0s", r.Intn(60))
		e.StartedAt = now.Add(-time.Duration(r.Intn(1e9)) * time.Microsecond)
		e.By, e.Batch = id(25, "abcdefghijklmnopqrstuvwxyz0123456789"), pool+"-1732712345"
		e.DrainTimeout, e.DrainStartedAt = 5*time.Minute, e.StartedAt.Add(time.Duration(r.Intn(1e9)))
		j.Entries = append(j.Entries, e)
		j.LastScaleUp[pool] = e.StartedAt
	}
	return j
}

// ssmCalls counts the SSM calls that reached the proxy since its Reset.
func ssmCalls(p *awsProxy) (total int, by string) {
	var parts []string
	for _, a := range []string{"GetParameter", "GetParameters", "GetParametersByPath", "PutParameter", "DeleteParameter", "DeleteParameters"} {
		if n := p.Calls(a); n > 0 {
			total += n
			parts = append(parts, fmt.Sprintf("%s %d", a, n))
		}
	}
	return total, strings.Join(parts, ", ")
}

// journalParams reads every journal parameter of the cluster straight from
// moto: name -> value.
func journalParams(t *testing.T, c *Clients, cluster string) map[string]string {
	t.Helper()
	out := map[string]string{}
	pages := ssm.NewGetParametersByPathPaginator(c.SSM, &ssm.GetParametersByPathInput{Path: awsv2.String(ClusterPath(cluster)), Recursive: awsv2.Bool(true)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range page.Parameters {
			out[awsv2.ToString(p.Name)] = awsv2.ToString(p.Value)
		}
	}
	return out
}

// partsUnder lists the part names under the cluster's journal-parts path.
func partsUnder(params map[string]string, cluster string) []string {
	var names []string
	for name := range params {
		if strings.HasPrefix(name, JournalPartsPath(cluster)+"/") {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

// TestStoreJournal100InFlight saves and loads, through moto, journals of
// 1, 15 and 100 actions in flight, counting the SSM calls of each save and
// load; 8 KB (about 15 entries) was the most one parameter held. Every
// parameter written fits the standard tier, and the parts left are
// exactly the ones the head names.
func TestStoreJournal100InFlight(t *testing.T) {
	ctx := context.Background()
	c, proxy := testClients(t, nil)
	s, _ := NewStore(c.SSM, "big")
	rev := ""
	// A first save sweeps for orphaned parts (one GetParametersByPath);
	// the figures below are of the saves after it.
	rev, err := s.SaveJournal(ctx, inFlight(1, 0), rev)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 15, 100} {
		for round := range 2 { // the second round replaces a journal of the same size
			want := inFlight(n, int64(n*10+round))
			proxy.Reset()
			rev, err = s.SaveJournal(ctx, want, rev)
			if err != nil {
				t.Fatalf("%d in flight: save: %v", n, err)
			}
			saveCalls, saveBy := ssmCalls(proxy)
			proxy.Reset()
			var got flightJournal
			loaded, err := s.LoadJournal(ctx, &got)
			if err != nil || loaded != rev {
				t.Fatalf("%d in flight: load: rev %q (saved %q), %v", n, loaded, rev, err)
			}
			loadCalls, loadBy := ssmCalls(proxy)
			if len(got.Entries) != n || got.Entries[n-1].Action.Key != want.Entries[n-1].Action.Key ||
				!got.Entries[0].DrainStartedAt.Equal(want.Entries[0].DrainStartedAt) {
				t.Fatalf("%d in flight: read back %d entries", n, len(got.Entries))
			}

			params := journalParams(t, c, "big")
			raw, _ := json.Marshal(want)
			parts := partsUnder(params, "big")
			if round == 1 {
				t.Logf("%3d in flight: JSON %6d bytes, %d parts; save %d calls (%s); load %d calls (%s)",
					n, len(raw), len(parts), saveCalls, saveBy, loadCalls, loadBy)
			}
			for name, v := range params {
				if len(v) > standardParameterSize {
					t.Errorf("%d in flight: %s holds %d bytes, more than a standard parameter", n, name, len(v))
				}
			}
			// Parts left are exactly those the head names.
			var named []string
			if h, err := parseHead(params[JournalParameter("big")]); err != nil {
				t.Fatal(err)
			} else if h != nil {
				for _, id := range h.Parts {
					named = append(named, s.partName(id))
				}
			}
			sort.Strings(named)
			if strings.Join(parts, " ") != strings.Join(named, " ") {
				t.Errorf("%d in flight: parts in SSM\n%v\nthe head names\n%v", n, parts, named)
			}
			// The bounds the doc comment gives.
			p := len(parts)
			switch {
			case n == 100 && p < 2:
				t.Errorf("100 in flight in %d parts: the test journal is not the size it should be", p)
			case p == 0 && (saveCalls > 2+1 || loadCalls != 1): // +1: deleting the parts of a larger journal
				t.Errorf("%d in flight without parts: save %d calls, load %d", n, saveCalls, loadCalls)
			case p > 0 && (saveCalls > 2+p+(p+9)/10 || loadCalls != 1+(p+9)/10):
				t.Errorf("%d in flight in %d parts: save %d calls, load %d", n, p, saveCalls, loadCalls)
			}
		}
	}

	// The agent's own journal of 100 actions in flight, decoded by the
	// agent's own (all or nothing) decoder, reads back as it was written.
	fj := inFlight(100, 99)
	aj := agent.Journal{Backoff: map[string]decide.Backoff{}, LastScaleUp: fj.LastScaleUp}
	for _, e := range fj.Entries {
		a := e.Action
		aj.Entries = append(aj.Entries, agent.Entry{
			Action: decide.Action{Kind: decide.RemoveNode, Key: a.Key, PoolID: a.PoolID, Role: a.Role, NodeID: a.NodeID,
				InstanceID: a.InstanceID, Drain: true, Shrink: true, Reason: a.Reason},
			StartedAt: e.StartedAt, By: e.By, Batch: e.Batch, DrainTimeout: e.DrainTimeout, DrainStartedAt: e.DrainStartedAt,
		})
		aj.Backoff[a.PoolID] = decide.Backoff{Failures: 2, LastFailure: e.StartedAt}
	}
	if rev, err = s.SaveJournal(ctx, &aj, rev); err != nil {
		t.Fatal(err)
	}
	var back agent.Journal
	if got, err := s.LoadJournal(ctx, &back); err != nil || got != rev {
		t.Fatalf("the agent's journal of 100 in flight: rev %q (saved %q), %v", got, rev, err)
	}
	wantJSON, _ := json.Marshal(aj)
	gotJSON, _ := json.Marshal(back)
	if !bytes.Equal(gotJSON, wantJSON) || len(back.Entries) != 100 {
		t.Fatalf("the agent's journal of 100 in flight read back as %d entries, %d bytes (wrote %d)", len(back.Entries), len(gotJSON), len(wantJSON))
	}
}

// TestStoreJournalConflictWithParts: the fencing holds for a journal in
// parts. A writer that did not read the latest revision is refused and
// its save changes nothing (the other writer's parts stay); a head put
// that raced another writer's is a conflict after the fact, and what is
// left reads as one whole journal.
func TestStoreJournalConflictWithParts(t *testing.T) {
	ctx := context.Background()
	c, proxy := testClients(t, nil)
	s, _ := NewStore(c.SSM, "jparts")
	other, _ := NewStore(c.SSM, "jparts")
	rev, err := s.SaveJournal(ctx, inFlight(100, 1), "")
	if err != nil {
		t.Fatal(err)
	}
	var mine, theirs flightJournal
	if _, err := s.LoadJournal(ctx, &mine); err != nil {
		t.Fatal(err)
	}
	theirRev, err := other.LoadJournal(ctx, &theirs)
	if err != nil || theirRev != rev {
		t.Fatalf("the other writer loads rev %q, %v", theirRev, err)
	}
	theirs = inFlight(100, 2)
	if _, err := other.SaveJournal(ctx, theirs, theirRev); err != nil {
		t.Fatal(err)
	}
	proxy.Reset()
	_, err = s.SaveJournal(ctx, inFlight(100, 3), rev)
	if !errors.Is(err, platform.ErrConflict) || !strings.Contains(err.Error(), JournalParameter("jparts")) {
		t.Fatalf("save over another writer's journal: %v", err)
	}
	if n := proxy.Calls("PutParameter") + proxy.Calls("DeleteParameters"); n != 0 {
		t.Errorf("the refused save wrote or deleted %d parameters", n)
	}
	var j flightJournal
	if _, err := s.LoadJournal(ctx, &j); err != nil || j.Entries[0].Action.Key != theirs.Entries[0].Action.Key {
		t.Fatalf("after the refused save: %v", err)
	}

	// Another writer's head put slips in between this writer's check and
	// its head put: the proxy sends the other save to moto first.
	rev, err = s.LoadJournal(ctx, &j)
	if err != nil {
		t.Fatal(err)
	}
	var raced atomic.Bool
	proxy.SetFault(func(cl call) *fault {
		if cl.Action == "PutParameter" && strings.Contains(string(cl.Body), `"Name":"`+JournalParameter("jparts")+`"`) && raced.CompareAndSwap(false, true) {
			if _, err := other.SaveJournal(ctx, inFlight(100, 4), rev); err != nil {
				t.Errorf("the other writer's save: %v", err)
			}
		}
		return nil
	})
	_, err = s.SaveJournal(ctx, inFlight(100, 5), rev)
	if !raced.Load() {
		t.Fatal("the race was not staged")
	}
	if !errors.Is(err, platform.ErrConflict) || !strings.Contains(err.Error(), "between") {
		t.Fatalf("a head put that raced another writer's: %v", err)
	}
	proxy.SetFault(nil)
	if _, err := s.LoadJournal(ctx, &j); err != nil || j.Entries[0].Action.Key != inFlight(100, 5).Entries[0].Action.Key {
		t.Fatalf("after the race the last head put is the journal, whole: %v", err)
	}
}

// TestStoreJournalReadWhileReplaced: a reader that read a head whose parts
// a writer replaced and deleted before the reader got them reads again
// and gets the new journal; it is not taken for corruption.
func TestStoreJournalReadWhileReplaced(t *testing.T) {
	ctx := context.Background()
	c, proxy := testClients(t, nil)
	writer, _ := NewStore(c.SSM, "jtorn")
	reader, _ := NewStore(c.SSM, "jtorn")
	rev, err := writer.SaveJournal(ctx, inFlight(100, 1), "")
	if err != nil {
		t.Fatal(err)
	}
	var replaced atomic.Bool
	proxy.SetFault(func(cl call) *fault {
		if cl.Action == "GetParameters" && replaced.CompareAndSwap(false, true) {
			if _, err := writer.SaveJournal(ctx, inFlight(100, 2), rev); err != nil {
				t.Errorf("the writer's save: %v", err)
			}
		}
		return nil
	})
	var j flightJournal
	got, err := reader.LoadJournal(ctx, &j)
	if !replaced.Load() {
		t.Fatal("the replacement was not staged")
	}
	if err != nil || got == rev || j.Entries[0].Action.Key != inFlight(100, 2).Entries[0].Action.Key {
		t.Fatalf("a read across a replacement: rev %q (was %q), %v", got, rev, err)
	}
}

// TestStoreJournalPartsCorruptSetAside: a journal whose head names a
// missing part, a part that does not match its name, or a head that is
// not a head is ErrJournalCorrupt; the set-aside keeps the head and every
// part there is, from which a person gets the journal back, and leaves
// neither head nor parts behind.
func TestStoreJournalPartsCorruptSetAside(t *testing.T) {
	ctx := context.Background()
	c, _ := testClients(t, nil)
	s, _ := NewStore(c.SSM, "jpbad")
	want := inFlight(100, 7)
	wantJSON, _ := json.Marshal(want)
	put := func(name, value string) {
		t.Helper()
		if _, err := c.SSM.PutParameter(ctx, &ssm.PutParameterInput{Name: awsv2.String(name), Value: awsv2.String(value),
			Type: ssmtypes.ParameterTypeString, Overwrite: awsv2.Bool(true)}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name    string
		damage  func(head *journalHead)
		message string
	}{
		{"missing part", func(h *journalHead) {
			if _, err := c.SSM.DeleteParameter(ctx, &ssm.DeleteParameterInput{Name: awsv2.String(s.partName(h.Parts[1]))}); err != nil {
				t.Fatal(err)
			}
		}, "not under"},
		{"altered part", func(h *journalHead) {
			put(s.partName(h.Parts[0]), strings.Repeat("A", 4096))
		}, "does not match its name"},
		{"bad head", func(*journalHead) {
			put(JournalParameter("jpbad"), journalHeadPrefix+`{"bytes": 12, "parts": [`)
		}, "head is not JSON"},
	} {
		if _, err := s.SaveJournal(ctx, want, ""); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		before := journalParams(t, c, "jpbad")
		h, err := parseHead(before[JournalParameter("jpbad")])
		if err != nil || h == nil || len(h.Parts) < 2 {
			t.Fatalf("%s: the journal is not in parts: %v", tc.name, err)
		}
		tc.damage(h)
		j := flightJournal{Entries: []flightEntry{{By: "kept"}}}
		got, err := s.LoadJournal(ctx, &j)
		if !errors.Is(err, platform.ErrJournalCorrupt) || got != "" || !strings.Contains(err.Error(), tc.message) ||
			!strings.Contains(err.Error(), JournalParameter("jpbad")) {
			t.Fatalf("%s: rev %q, %v; want ErrJournalCorrupt saying %q", tc.name, got, err, tc.message)
		}
		if len(j.Entries) != 1 || j.Entries[0].By != "kept" {
			t.Errorf("%s: a corrupt journal changed v", tc.name)
		}

		damaged := journalParams(t, c, "jpbad")
		kept, err := s.SetAsideJournal(ctx)
		if err != nil {
			t.Fatalf("%s: set aside: %v", tc.name, err)
		}
		after := journalParams(t, c, "jpbad")
		if after[kept] != damaged[JournalParameter("jpbad")] {
			t.Errorf("%s: the head copy %s differs from the head", tc.name, kept)
		}
		if _, ok := after[JournalParameter("jpbad")]; ok {
			t.Errorf("%s: the head is still there", tc.name)
		}
		if left := partsUnder(after, "jpbad"); len(left) != 0 {
			t.Errorf("%s: parts left behind: %v", tc.name, left)
		}
		// Every part there was is kept: in the head's order, or, when the
		// head cannot be read, every part under the path in name order.
		var wantParts, gotParts []string
		for i, id := range h.Parts {
			if v, ok := damaged[s.partName(id)]; ok {
				wantParts = append(wantParts, v)
			}
			if v, ok := after[JournalSetAsidePart(kept, i+1)]; ok {
				gotParts = append(gotParts, v)
			}
		}
		if tc.name == "bad head" {
			sort.Strings(wantParts)
			sort.Strings(gotParts)
		}
		if len(wantParts) == len(h.Parts) && tc.name == "missing part" {
			t.Errorf("%s: the damage left every part", tc.name)
		}
		if strings.Join(gotParts, "|") != strings.Join(wantParts, "|") {
			t.Errorf("%s: %d parts kept, %d were there", tc.name, len(gotParts), len(wantParts))
		}
	}

	// A journal set aside whole reads back from its copies as a person
	// would: the parts' values joined, base64-decoded, gunzipped.
	if _, err := s.SaveJournal(ctx, want, ""); err != nil {
		t.Fatal(err)
	}
	h, _ := parseHead(journalParams(t, c, "jpbad")[JournalParameter("jpbad")])
	kept, err := s.SetAsideJournal(ctx)
	if err != nil {
		t.Fatal(err)
	}
	after := journalParams(t, c, "jpbad")
	var joined strings.Builder
	for i := range h.Parts {
		joined.WriteString(after[JournalSetAsidePart(kept, i+1)])
	}
	z, err := base64.StdEncoding.DecodeString(joined.String())
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(z))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil || !bytes.Equal(raw, wantJSON) {
		t.Fatalf("the journal from its set-aside parts: %d bytes, %v", len(raw), err)
	}
	out, err := c.SSM.DescribeParameters(ctx, &ssm.DescribeParametersInput{ParameterFilters: []ssmtypes.ParameterStringFilter{
		{Key: awsv2.String("Name"), Option: awsv2.String("Equals"), Values: []string{kept}}}})
	if err != nil || len(out.Parameters) != 1 || !strings.Contains(awsv2.ToString(out.Parameters[0].Description), "-part-1 to -") {
		t.Errorf("the head copy's description does not say where its parts are: %+v, %v", out, err)
	}
}

// TestStoreJournalOldSingleParameter: a journal one parameter of plain
// JSON holds, as agents before the parts wrote it (up to 8 KB, advanced
// tier), is still read, and the next save over it writes the new layout
// with the next revision.
func TestStoreJournalOldSingleParameter(t *testing.T) {
	ctx := context.Background()
	c, _ := testClients(t, nil)
	s, _ := NewStore(c.SSM, "jold")
	old := inFlight(12, 3)
	raw, _ := json.Marshal(old)
	if len(raw) <= standardParameterSize || len(raw) > MaxParameterSize {
		t.Fatalf("the old journal is %d bytes, want an advanced parameter's size", len(raw))
	}
	if _, err := c.SSM.PutParameter(ctx, &ssm.PutParameterInput{Name: awsv2.String(JournalParameter("jold")), Value: awsv2.String(string(raw)),
		Type: ssmtypes.ParameterTypeString, Tier: ssmtypes.ParameterTierIntelligentTiering}); err != nil {
		t.Fatal(err)
	}
	var j flightJournal
	rev, err := s.LoadJournal(ctx, &j)
	if err != nil || rev != "1" || len(j.Entries) != 12 || j.Entries[11].Action.Key != old.Entries[11].Action.Key {
		t.Fatalf("an old journal: rev %q, %d entries, %v", rev, len(j.Entries), err)
	}
	rev, err = s.SaveJournal(ctx, inFlight(100, 4), rev)
	if err != nil || rev != "2" {
		t.Fatalf("a save over an old journal: rev %q, %v", rev, err)
	}
	if head := journalParams(t, c, "jold")[JournalParameter("jold")]; !strings.HasPrefix(head, journalHeadPrefix) {
		t.Errorf("the save over an old journal did not write a head: %.40q", head)
	}
	if _, err := s.LoadJournal(ctx, &j); err != nil || len(j.Entries) != 100 {
		t.Fatalf("after the upgrade: %d entries, %v", len(j.Entries), err)
	}
	// And back to a small journal: plain JSON again, the parts gone.
	if _, err := s.SaveJournal(ctx, inFlight(1, 5), "2"); err != nil {
		t.Fatal(err)
	}
	params := journalParams(t, c, "jold")
	if !json.Valid([]byte(params[JournalParameter("jold")])) || len(partsUnder(params, "jold")) != 0 {
		t.Errorf("a one-entry journal: head %.40q, parts %v", params[JournalParameter("jold")], partsUnder(params, "jold"))
	}
}

// TestStoreJournalSweep: parts no head names (a crash between the parts
// and the head, a refused save) are deleted by the sweep once old enough;
// a writer's fresh parts are spared.
func TestStoreJournalSweep(t *testing.T) {
	ctx := context.Background()
	c, proxy := testClients(t, nil)
	orphan := func(s *Store, v string) string {
		t.Helper()
		name := s.partName(partID(v))
		if _, err := c.SSM.PutParameter(ctx, &ssm.PutParameterInput{Name: awsv2.String(name), Value: awsv2.String(v), Type: ssmtypes.ParameterTypeString}); err != nil {
			t.Fatal(err)
		}
		return name
	}
	fresh, _ := NewStore(c.SSM, "jsweep")
	spared := orphan(fresh, "fresh orphan")
	rev, err := fresh.SaveJournal(ctx, inFlight(100, 1), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := journalParams(t, c, "jsweep")[spared]; !ok {
		t.Fatal("a fresh part was swept")
	}
	s, _ := NewStore(c.SSM, "jsweep") // a new process: its first save sweeps
	s.partSweepAge = time.Nanosecond
	var j flightJournal
	if rev, err = s.LoadJournal(ctx, &j); err != nil {
		t.Fatal(err)
	}
	gone := orphan(s, "old orphan")
	time.Sleep(10 * time.Millisecond)
	proxy.Reset()
	if rev, err = s.SaveJournal(ctx, inFlight(100, 2), rev); err != nil {
		t.Fatal(err)
	}
	if proxy.Calls("GetParametersByPath") == 0 {
		t.Error("the first save of a store did not sweep")
	}
	params := journalParams(t, c, "jsweep")
	for _, name := range []string{gone, spared} {
		if _, ok := params[name]; ok {
			t.Errorf("orphan %s survived the sweep", name)
		}
	}
	if _, err := s.LoadJournal(ctx, &j); err != nil {
		t.Fatalf("the sweep took a live part: %v", err)
	}
	// The next saves do not sweep until sweepEvery.
	proxy.Reset()
	if _, err = s.SaveJournal(ctx, inFlight(100, 3), rev); err != nil {
		t.Fatal(err)
	}
	if n := proxy.Calls("GetParametersByPath"); n != 0 {
		t.Errorf("the second save swept (%d pages)", n)
	}
}

// TestStoreJournalTooLarge: a journal more than one head can name parts
// of is refused before any call.
func TestStoreJournalTooLarge(t *testing.T) {
	c, proxy := testClients(t, nil)
	s, _ := NewStore(c.SSM, "jhuge")
	r := rand.New(rand.NewSource(1))
	b := make([]byte, 600<<10)
	r.Read(b)
	proxy.Reset()
	_, err := s.SaveJournal(context.Background(), base64.StdEncoding.EncodeToString(b), "")
	if err == nil || !strings.Contains(err.Error(), "more than one head") {
		t.Fatalf("a journal of 800 KB of noise: %v", err)
	}
	if n, by := ssmCalls(proxy); n != 0 {
		t.Errorf("a journal refused for its size made %d calls (%s)", n, by)
	}
}
