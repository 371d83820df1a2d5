package gcp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"

	"github.com/autarky/terraform-provider-autarky/internal/platform"
	"github.com/autarky/terraform-provider-autarky/internal/platform/group"
	"github.com/autarky/terraform-provider-autarky/internal/testenv"
)

const storeTestBucket = "autarky-test"

// storeTestGCS starts a fake-gcs-server with storeTestBucket and returns
// its URL.
func storeTestGCS(t *testing.T) string {
	t.Helper()
	endpoint := testenv.StartGCS(t)
	if err := storeClient(t, endpoint).Bucket(storeTestBucket).Create(context.Background(), "test-project", nil); err != nil {
		t.Fatalf("create bucket in fake-gcs-server: %v", err)
	}
	return endpoint
}

// storeClient is a Cloud Storage client of the server at endpoint.
func storeClient(t *testing.T, endpoint string) *storage.Client {
	t.Helper()
	client, err := storage.NewClient(context.Background(),
		option.WithEndpoint(endpoint+"/storage/v1/"), option.WithoutAuthentication())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	return client
}

// storeTestClient starts a fake-gcs-server with storeTestBucket and
// returns a client of it.
func storeTestClient(t *testing.T) *storage.Client { return storeClient(t, storeTestGCS(t)) }

func storeForTest(t *testing.T, client *storage.Client, cluster string) *Store {
	t.Helper()
	s, err := NewStore(client, storeTestBucket, cluster)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// storeTestObjects lists every object name in the bucket under prefix.
func storeTestObjects(t *testing.T, client *storage.Client, prefix string) []string {
	t.Helper()
	var names []string
	it := client.Bucket(storeTestBucket).Objects(context.Background(), &storage.Query{Prefix: prefix})
	for {
		a, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, a.Name)
	}
}

func TestStoreRoundTrip(t *testing.T) {
	ctx := context.Background()
	client := storeTestClient(t)
	s := storeForTest(t, client, "prod")
	if got, want := s.Where(), "gs://autarky-test/autarky/prod/"; got != want {
		t.Fatalf("Where() = %q, want %q", got, want)
	}
	if _, _, err := s.Get(ctx, "cluster"); !errors.Is(err, platform.ErrNotFound) || !strings.Contains(err.Error(), "gs://autarky-test/autarky/prod/cluster") {
		t.Fatalf("Get of a missing key = %v, want ErrNotFound naming the object", err)
	}
	r1, err := s.Put(ctx, "cluster", []byte(`{"name":"prod"}`), group.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	data, rev, err := s.Get(ctx, "cluster")
	if err != nil || string(data) != `{"name":"prod"}` || rev != r1 {
		t.Fatalf("Get = %q, %q, %v; want the data put at revision %q", data, rev, err, r1)
	}
	// The object is where the layout says, and the revision is its generation.
	attrs, err := client.Bucket(storeTestBucket).Object("autarky/prod/cluster").Attrs(ctx)
	if err != nil || fmt.Sprint(attrs.Generation) != r1 {
		t.Fatalf("object autarky/prod/cluster: %v, %v; want generation %s", attrs, err, r1)
	}
	r2, err := s.Put(ctx, "cluster", []byte(`{"name":"prod","v":2}`), group.PutOptions{})
	if err != nil || r2 == r1 {
		t.Fatalf("second Put = %q, %v; want a new revision (first %q)", r2, err, r1)
	}
	if err := s.Delete(ctx, "cluster"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "cluster"); err != nil {
		t.Fatalf("Delete of a key already gone = %v, want nil", err)
	}
	if _, _, err := s.Get(ctx, "cluster"); !errors.Is(err, platform.ErrNotFound) {
		t.Fatalf("Get after Delete = %v, want ErrNotFound", err)
	}
	for _, key := range []string{"", "/abs", "pools/", "a//b", "../other/cluster", "pools/../../x"} {
		if _, err := s.Put(ctx, key, nil, group.PutOptions{}); err == nil || !strings.Contains(err.Error(), "store key") {
			t.Errorf("Put of key %q = %v, want a refusal naming the key", key, err)
		}
	}
}

func TestStorePutIfAbsentTwice(t *testing.T) {
	ctx := context.Background()
	s := storeForTest(t, storeTestClient(t), "prod")
	if _, err := s.Put(ctx, group.KeyInitLock, []byte("first"), group.PutOptions{IfAbsent: true}); err != nil {
		t.Fatal(err)
	}
	_, err := s.Put(ctx, group.KeyInitLock, []byte("second"), group.PutOptions{IfAbsent: true})
	if !errors.Is(err, platform.ErrExists) || !strings.Contains(err.Error(), "gs://autarky-test/autarky/prod/swarm/init-lock") {
		t.Fatalf("second IfAbsent Put = %v, want ErrExists naming the object", err)
	}
	if data, _, _ := s.Get(ctx, group.KeyInitLock); string(data) != "first" {
		t.Fatalf("the lock holds %q after a refused create, want %q", data, "first")
	}
}

// TestStorePutIfRevStale: a write at a stale generation is refused, for
// a small value (one multipart upload) and for one past the writer's
// chunk size (a resumable upload, whose condition the server checks when
// the upload ends).
func TestStorePutIfRevStale(t *testing.T) {
	ctx := context.Background()
	s := storeForTest(t, storeTestClient(t), "prod")
	var r2 string
	for _, size := range []int{3, 600 << 10} {
		one, two := bytes.Repeat([]byte("1"), size), bytes.Repeat([]byte("2"), size)
		r1, err := s.Put(ctx, "k", one, group.PutOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if r2, err = s.Put(ctx, "k", two, group.PutOptions{IfRev: r1}); err != nil {
			t.Fatalf("%d bytes: IfRev Put at the current revision = %v", size, err)
		}
		if _, err := s.Put(ctx, "k", one, group.PutOptions{IfRev: r1}); !errors.Is(err, platform.ErrConflict) {
			t.Fatalf("%d bytes: IfRev Put with a stale revision = %v, want ErrConflict", size, err)
		}
		if data, rev, _ := s.Get(ctx, "k"); !bytes.Equal(data, two) || rev != r2 {
			t.Fatalf("%d bytes: after a refused write the key is at %q, want the accepted write's %q", size, rev, r2)
		}
		if _, err := s.Put(ctx, "k", one, group.PutOptions{IfAbsent: true}); !errors.Is(err, platform.ErrExists) {
			t.Fatalf("%d bytes: IfAbsent Put over a key = %v, want ErrExists", size, err)
		}
	}
	if _, err := s.Put(ctx, "gone", []byte("x"), group.PutOptions{IfRev: r2}); !errors.Is(err, platform.ErrConflict) {
		t.Fatalf("IfRev Put of a missing key = %v, want ErrConflict", err)
	}
	if _, err := s.Put(ctx, "k", []byte("x"), group.PutOptions{IfRev: "v7"}); err == nil || !strings.Contains(err.Error(), "generation") {
		t.Fatalf("IfRev Put with a revision that is no generation = %v, want a refusal", err)
	}
}

// TestKVJournalConcurrentSave: two agents that read the same revision
// save at once; Cloud Storage's ifGenerationMatch lets exactly one land.
// Round 0 starts from no journal (both create: ifGenerationMatch=0).
func TestKVJournalConcurrentSave(t *testing.T) {
	ctx := context.Background()
	client := storeTestClient(t)
	// Two writers, as two agents are: each its own store over the bucket.
	writers := []group.Journal{
		group.KVJournal(storeForTest(t, client, "prod")),
		group.KVJournal(storeForTest(t, client, "prod")),
	}
	type journal struct {
		Writer int `json:"writer"`
		Round  int `json:"round"`
	}
	rev := ""
	for round := range 20 {
		revs := make([]string, 2)
		errs := make([]error, 2)
		var start, done sync.WaitGroup
		start.Add(1)
		for w := range writers {
			done.Add(1)
			go func() {
				defer done.Done()
				start.Wait()
				revs[w], errs[w] = writers[w].SaveJournal(ctx, journal{Writer: w, Round: round}, rev)
			}()
		}
		start.Done()
		done.Wait()
		winner := -1
		for w, err := range errs {
			switch {
			case err == nil && winner < 0:
				winner = w
			case err == nil:
				t.Fatalf("round %d: both writers saved over revision %q (%q, %q)", round, rev, revs[0], revs[1])
			case !errors.Is(err, platform.ErrConflict):
				t.Fatalf("round %d: writer %d: %v, want ErrConflict", round, w, err)
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: neither writer saved: %v", round, errs)
		}
		var got journal
		now, err := writers[1-winner].LoadJournal(ctx, &got)
		if err != nil || now != revs[winner] || got != (journal{Writer: winner, Round: round}) {
			t.Fatalf("round %d: the loser reads %+v at %q (%v), want the winner's %d at %q", round, got, now, err, winner, revs[winner])
		}
		rev = now
	}
}

func TestKVJournalCorruptSetAside(t *testing.T) {
	ctx := context.Background()
	client := storeTestClient(t)
	s := storeForTest(t, client, "prod")
	j := group.KVJournal(s)

	v := map[string]int{"untouched": 1}
	if rev, err := j.LoadJournal(ctx, &v); err != nil || rev != "" || v["untouched"] != 1 || len(v) != 1 {
		t.Fatalf("LoadJournal with no journal = %q, %v, %v; want \"\", nil and v untouched", rev, err, v)
	}
	if _, err := j.SetAsideJournal(ctx); !errors.Is(err, platform.ErrNotFound) {
		t.Fatalf("SetAsideJournal with no journal = %v, want ErrNotFound", err)
	}

	corrupt := []byte(`{"entries":[{"id":"a`)
	setAside := func() string {
		t.Helper()
		if _, err := s.Put(ctx, group.KeyJournal, corrupt, group.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := j.LoadJournal(ctx, &v); !errors.Is(err, platform.ErrJournalCorrupt) {
			t.Fatalf("LoadJournal of a truncated journal = %v, want ErrJournalCorrupt", err)
		}
		kept, err := j.SetAsideJournal(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(kept, "gs://autarky-test/autarky/prod/journal-set-aside-") {
			t.Fatalf("SetAsideJournal = %q, want gs://autarky-test/autarky/prod/journal-set-aside-<unix seconds>", kept)
		}
		data, _, err := s.Get(ctx, strings.TrimPrefix(kept, s.Where()))
		if err != nil || !bytes.Equal(data, corrupt) {
			t.Fatalf("the set-aside object %s holds %q (%v), want the journal's bytes %q", kept, data, err, corrupt)
		}
		if rev, err := j.LoadJournal(ctx, &v); err != nil || rev != "" {
			t.Fatalf("LoadJournal after SetAsideJournal = %q, %v; want no journal", rev, err)
		}
		return kept
	}
	setAside()
	// A name that is taken is never replaced: with this second's name
	// (and the next two, should the clock tick) taken, the journal is
	// kept under <name>-2.
	now := time.Now().Unix()
	for sec := now; sec <= now+2; sec++ {
		if _, err := s.Put(ctx, group.KeySetAsideJournal(sec), []byte("occupied"), group.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	kept := setAside()
	if !strings.HasSuffix(kept, "-2") {
		t.Fatalf("set-aside with its name taken = %q, want the name with -2", kept)
	}
	for sec := now; sec <= now+2; sec++ {
		if data, _, _ := s.Get(ctx, group.KeySetAsideJournal(sec)); string(data) != "occupied" {
			t.Fatalf("%s was replaced by a set-aside: it holds %q", group.KeySetAsideJournal(sec), data)
		}
	}
	if _, err := j.SaveJournal(ctx, map[string]int{"rebuilt": 1}, ""); err != nil {
		t.Fatalf("SaveJournal of the rebuilt journal = %v", err)
	}
}

// TestKVJournalSetAsideMovedJournal: a journal another writer replaced
// while it was copied is not deleted (ErrConflict), and the copy stays.
// The KV here has no DeleteRev (SetAsideJournal reads the revision again
// before its delete): fake-gcs-server ignores ifGenerationMatch on a
// delete (see TestFakeGCSDeleteIgnoresGenerationMatch), so Store's
// DeleteRev, atomic on Cloud Storage, cannot be shown refusing here.
func TestKVJournalSetAsideMovedJournal(t *testing.T) {
	ctx := context.Background()
	s := storeForTest(t, storeTestClient(t), "prod")
	kv := &storeReplaceOnCopy{Store: s}
	j := group.KVJournal(kv)
	if _, err := s.Put(ctx, group.KeyJournal, []byte("not json"), group.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err := j.SetAsideJournal(ctx)
	if !errors.Is(err, platform.ErrConflict) || !strings.Contains(err.Error(), "journal-set-aside-") {
		t.Fatalf("SetAsideJournal of a journal replaced meanwhile = %v, want ErrConflict naming the copy", err)
	}
	var v map[string]int
	if rev, err := j.LoadJournal(ctx, &v); err != nil || rev == "" || v["new"] != 1 {
		t.Fatalf("the other writer's journal: %v at %q (%v); want it kept", v, rev, err)
	}
	kept := storeTestObjects(t, s.client, "autarky/prod/journal-set-aside-")
	if len(kept) != 1 {
		t.Fatalf("set-aside copies: %v, want one", kept)
	}
}

// storeReplaceOnCopy is a Store without DeleteRev that, once the journal's
// set-aside copy is written, replaces the journal as another agent would.
type storeReplaceOnCopy struct{ *Store }

func (s *storeReplaceOnCopy) DeleteRev() {} // hides Store.DeleteRev: not a revDeleter

func (s *storeReplaceOnCopy) Put(ctx context.Context, key string, data []byte, o group.PutOptions) (string, error) {
	rev, err := s.Store.Put(ctx, key, data, o)
	if err == nil && strings.HasPrefix(key, "journal-set-aside-") {
		if _, err := s.Store.Put(ctx, group.KeyJournal, []byte(`{"new":1}`), group.PutOptions{}); err != nil {
			return "", err
		}
	}
	return rev, err
}

// TestFakeGCSDeleteIgnoresGenerationMatch records where fake-gcs-server
// v1.56.1 differs from Cloud Storage: a delete with ifGenerationMatch at
// a stale generation deletes the object (Cloud Storage answers 412). If
// a newer fake enforces it, this fails: then make
// TestKVJournalSetAsideMovedJournal use Store's DeleteRev itself.
func TestFakeGCSDeleteIgnoresGenerationMatch(t *testing.T) {
	ctx := context.Background()
	s := storeForTest(t, storeTestClient(t), "prod")
	r1, err := s.Put(ctx, "k", []byte("one"), group.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "k", []byte("two"), group.PutOptions{IfRev: r1}); err != nil {
		t.Fatal(err)
	}
	err = s.DeleteRev(ctx, "k", r1)
	_, _, gerr := s.Get(ctx, "k")
	if err != nil || !errors.Is(gerr, platform.ErrNotFound) {
		t.Fatalf("DeleteRev at a stale generation on fake-gcs-server = %v, then Get = %v: the fake now enforces ifGenerationMatch on delete (Cloud Storage does)", err, gerr)
	}
	t.Log("fake-gcs-server deleted the object despite ifGenerationMatch at a stale generation; Cloud Storage refuses with 412")
}

func TestStoreListDirectlyUnder(t *testing.T) {
	ctx := context.Background()
	client := storeTestClient(t)
	s := storeForTest(t, client, "prod")
	other := storeForTest(t, client, "prod2") // a cluster whose root begins like this one's
	put := func(s *Store, key, data string, secret bool) {
		t.Helper()
		if _, err := s.Put(ctx, key, []byte(data), group.PutOptions{Secret: secret}); err != nil {
			t.Fatal(err)
		}
	}
	put(s, "pools/web", "W", false)
	put(s, "pools/api", "A", false)
	put(s, "pools/api/deeper", "D", false)
	put(s, "poolsx/x", "X", false)
	put(s, "pools", "P", false)
	put(other, "pools/other", "O", false)
	put(s, "tokens/worker", "SWMTKN-1-worker", true)
	put(s, "tokens/rotation", "2026-01-01", false)

	got, err := s.List(ctx, "pools")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, e := range got {
		keys = append(keys, e.Key+"="+string(e.Data))
		if _, rev, _ := s.Get(ctx, e.Key); rev != e.Rev {
			t.Errorf("List's revision of %s is %q, Get's %q", e.Key, e.Rev, rev)
		}
	}
	if want := "pools/api=A pools/web=W"; strings.Join(keys, " ") != want {
		t.Fatalf("List(pools) = %v, want %s", keys, want)
	}
	tokens, err := s.List(ctx, "tokens")
	if err != nil {
		t.Fatal(err)
	}
	if len(tokens) != 2 || tokens[0].Key != "tokens/rotation" || string(tokens[0].Data) != "2026-01-01" ||
		tokens[1].Key != "tokens/worker" || tokens[1].Data != nil || tokens[1].Rev == "" {
		t.Fatalf("List(tokens) = %+v, want the rotation with its data and the worker token without", tokens)
	}
	if data, _, err := s.Get(ctx, "tokens/worker"); err != nil || string(data) != "SWMTKN-1-worker" {
		t.Fatalf("Get of a secret = %q, %v", data, err)
	}
	if empty, err := s.List(ctx, "healing"); err != nil || len(empty) != 0 {
		t.Fatalf("List of an empty prefix = %v, %v", empty, err)
	}
}

func TestStoreDeleteAll(t *testing.T) {
	ctx := context.Background()
	client := storeTestClient(t)
	s := storeForTest(t, client, "prod")
	other := storeForTest(t, client, "prod2")
	for _, key := range []string{"cluster", "pools/web", "pools/web/deeper", "tokens/manager", "journal", "journal-set-aside-1"} {
		if _, err := s.Put(ctx, key, []byte(key), group.PutOptions{Secret: strings.HasPrefix(key, "tokens/")}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := other.Put(ctx, "cluster", []byte("other"), group.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteAll(ctx); err != nil {
		t.Fatal(err)
	}
	if left := storeTestObjects(t, client, "autarky/prod/"); len(left) != 0 {
		t.Fatalf("DeleteAll left %v", left)
	}
	if left := storeTestObjects(t, client, "autarky/prod2/"); len(left) != 1 {
		t.Fatalf("DeleteAll of prod touched prod2: it holds %v", left)
	}
	if err := s.DeleteAll(ctx); err != nil {
		t.Fatalf("DeleteAll of an empty root = %v", err)
	}
}

func TestNewStoreRefusesBadNames(t *testing.T) {
	client, err := storage.NewClient(context.Background(), option.WithoutAuthentication())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	for _, bucket := range []string{"", "ab", "My-Bucket", "my bucket", "-bucket", "bucket-", "gs://bucket",
		"goog-bucket", "my-google-bucket", "my-g00gle-bucket", "192.168.5.4", "a..b", "a.b.",
		strings.Repeat("a", 64), strings.Repeat("a", 64) + ".example.com"} {
		_, err := NewStore(client, bucket, "prod")
		if err == nil || !strings.HasPrefix(err.Error(), "bucket: ") {
			t.Errorf("NewStore with bucket %q = %v, want a refusal naming the bucket", bucket, err)
		}
	}
	for _, bucket := range []string{"abc", "autarky-state", "my_bucket-01", strings.Repeat("a", 63), "state.example.com"} {
		if _, err := NewStore(client, bucket, "prod"); err != nil {
			t.Errorf("NewStore with bucket %q = %v, want it accepted", bucket, err)
		}
	}
	if _, err := NewStore(client, "autarky-state", "Prod/x"); err == nil || !strings.HasPrefix(err.Error(), "cluster name: ") {
		t.Errorf("NewStore with cluster %q = %v, want a refusal naming the cluster name", "Prod/x", err)
	}
	if _, err := NewStore(nil, "autarky-state", "prod"); err == nil {
		t.Error("NewStore without a client was accepted")
	}
}

// TestStoreThrottled: in front of fake-gcs-server, a proxy answers 429
// to the first requests: every call, unconditional writes included (the
// client retries those only when told so), goes through on a retry. A
// service that stays unavailable is a platform.Transient error once the
// caller's deadline ends the retries.
func TestStoreThrottled(t *testing.T) {
	ctx := context.Background()
	target, err := url.Parse(storeTestGCS(t))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	refuse, refused := 0, 0
	status := http.StatusTooManyRequests
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		no := refuse > 0
		if no {
			refuse--
			refused++
		}
		code := status
		mu.Unlock()
		if no {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(code)
			fmt.Fprintf(w, `{"error":{"code":%d,"message":"slow down"}}`, code)
			return
		}
		r.Host = target.Host // the fake serves its XML API on its own host name
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	s := storeForTest(t, storeClient(t, srv.URL), "prod")
	steps := []struct {
		name string
		call func() error
	}{
		{"unconditional Put", func() error { _, err := s.Put(ctx, "k", []byte("one"), group.PutOptions{}); return err }},
		{"IfAbsent Put", func() error { _, err := s.Put(ctx, "lock", []byte("x"), group.PutOptions{IfAbsent: true}); return err }},
		{"Get", func() error { _, _, err := s.Get(ctx, "k"); return err }},
		{"List", func() error { _, err := s.List(ctx, "x"); return err }},
		{"Delete", func() error { return s.Delete(ctx, "k") }},
	}
	for _, step := range steps {
		mu.Lock()
		refuse, refused = 2, 0
		mu.Unlock()
		if err := step.call(); err != nil {
			t.Fatalf("%s after two 429s = %v, want it through on a retry", step.name, err)
		}
		mu.Lock()
		if refused != 2 {
			t.Fatalf("%s: the proxy refused %d requests, want 2", step.name, refused)
		}
		mu.Unlock()
	}
	mu.Lock()
	refuse, status = 1<<30, http.StatusServiceUnavailable
	mu.Unlock()
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, _, err = s.Get(short, "k")
	if !platform.IsTransient(err) || !strings.Contains(err.Error(), "gs://autarky-test/autarky/prod/k") {
		t.Fatalf("Get while the service answers 503 = %v, want a Transient error naming the object", err)
	}
}

// TestStoreMissingBucket: Check and writes name a bucket that does not
// exist; a read cannot tell it from a missing object.
func TestStoreMissingBucket(t *testing.T) {
	ctx := context.Background()
	client := storeTestClient(t)
	if err := storeForTest(t, client, "prod").Check(ctx); err != nil {
		t.Fatalf("Check of an existing bucket = %v", err)
	}
	s, err := NewStore(client, "no-such-bucket", "prod")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Check(ctx); !errors.Is(err, storage.ErrBucketNotExist) || !strings.Contains(err.Error(), "gs://no-such-bucket/autarky/prod/") {
		t.Fatalf("Check of a missing bucket = %v, want ErrBucketNotExist naming it", err)
	}
	if _, err := s.Put(ctx, "cluster", []byte("{}"), group.PutOptions{}); !errors.Is(err, storage.ErrBucketNotExist) {
		t.Fatalf("Put into a missing bucket = %v, want ErrBucketNotExist", err)
	}
	if _, _, err := s.Get(ctx, "cluster"); !errors.Is(err, platform.ErrNotFound) {
		t.Fatalf("Get from a missing bucket = %v, want ErrNotFound (a read cannot tell)", err)
	}
}
