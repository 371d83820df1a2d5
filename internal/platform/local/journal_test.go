package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/autarky/terraform-provider-autarky/internal/platform"
	"github.com/autarky/terraform-provider-autarky/internal/testenv"
)

// testJournal is a journal shaped like the agent's: a list of entries.
type testJournal struct {
	Entries []string `json:"entries"`
}

// journalCluster is a cluster directory with nothing but the store: the
// journal needs no dockerd.
func journalCluster(t *testing.T) *Cluster {
	t.Helper()
	p, err := New(testenv.StateDir(t), nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(p.clusterDir("j"), 0o700); err != nil {
		t.Fatal(err)
	}
	return p.Cluster("j")
}

func TestJournalRevisions(t *testing.T) {
	ctx := context.Background()
	c := journalCluster(t)
	j := testJournal{Entries: []string{"untouched"}}
	rev, err := c.LoadJournal(ctx, &j)
	if err != nil || rev != "" || len(j.Entries) != 1 {
		t.Fatalf("no journal: rev %q, %+v, %v", rev, j, err)
	}
	rev1, err := c.SaveJournal(ctx, testJournal{Entries: []string{"a"}}, "")
	if err != nil || rev1 == "" {
		t.Fatalf("first save: %q, %v", rev1, err)
	}
	got, err := c.LoadJournal(ctx, &j)
	if err != nil || got != rev1 || strings.Join(j.Entries, ",") != "a" {
		t.Fatalf("load: rev %q (saved %q), %+v, %v", got, rev1, j, err)
	}
	// Revision "" means "there must be no journal yet".
	if _, err := c.SaveJournal(ctx, testJournal{Entries: []string{"x"}}, ""); !errors.Is(err, platform.ErrConflict) {
		t.Fatalf("save with revision \"\" over a journal: %v", err)
	}
	rev2, err := c.SaveJournal(ctx, testJournal{Entries: []string{"a", "b"}}, rev1)
	if err != nil || rev2 == rev1 {
		t.Fatalf("second save: %q, %v", rev2, err)
	}
	// The first revision is stale now.
	_, err = c.SaveJournal(ctx, testJournal{Entries: []string{"stale"}}, rev1)
	if !errors.Is(err, platform.ErrConflict) {
		t.Fatalf("save with a stale revision: %v", err)
	}
	if !strings.Contains(err.Error(), "cluster j") {
		t.Errorf("conflict message does not name the cluster: %v", err)
	}
	if got, err := c.LoadJournal(ctx, &j); err != nil || got != rev2 || strings.Join(j.Entries, ",") != "a,b" {
		t.Fatalf("after the refused save: rev %q (want %q), %+v, %v", got, rev2, j, err)
	}
	// No temporary files are left behind.
	entries, _ := os.ReadDir(c.p.clusterDir("j"))
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp") {
			t.Errorf("left behind: %s", e.Name())
		}
	}
}

// TestJournalConcurrentWriters races writers and readers on one journal:
// every writer loads, appends its own entry and saves with the revision it
// loaded, retrying on conflict. No reader ever sees a torn or corrupt
// journal and no entry is lost.
func TestJournalConcurrentWriters(t *testing.T) {
	ctx := context.Background()
	c := journalCluster(t)
	const writers, appends = 8, 15
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for range 4 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				var j testJournal
				if _, err := c.LoadJournal(ctx, &j); err != nil {
					t.Errorf("a reader: %v", err)
					return
				}
			}
		}()
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	conflicts := 0
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range appends {
				for {
					var j testJournal
					rev, err := c.LoadJournal(ctx, &j)
					if err != nil {
						t.Errorf("writer %d: %v", w, err)
						return
					}
					j.Entries = append(j.Entries, fmt.Sprintf("w%d-%d", w, i))
					_, err = c.SaveJournal(ctx, j, rev)
					if errors.Is(err, platform.ErrConflict) {
						mu.Lock()
						conflicts++
						mu.Unlock()
						continue
					}
					if err != nil {
						t.Errorf("writer %d: %v", w, err)
						return
					}
					break
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	readers.Wait()
	var j testJournal
	if _, err := c.LoadJournal(ctx, &j); err != nil {
		t.Fatal(err)
	}
	if len(j.Entries) != writers*appends {
		t.Fatalf("%d entries, want %d: updates were lost", len(j.Entries), writers*appends)
	}
	seen := map[string]bool{}
	for _, e := range j.Entries {
		if seen[e] {
			t.Errorf("entry %s twice", e)
		}
		seen[e] = true
	}
	t.Logf("%d conflicts refused", conflicts)
}

// TestJournalSameRevisionOneWins lets many writers holding the same
// revision save at once: exactly one lands, every other gets ErrConflict.
func TestJournalSameRevisionOneWins(t *testing.T) {
	ctx := context.Background()
	c := journalCluster(t)
	for round, start := range []string{"", "existing"} {
		rev := ""
		if start != "" {
			var err error
			var j testJournal
			if rev, err = c.LoadJournal(ctx, &j); err != nil {
				t.Fatal(err)
			}
		}
		const n = 16
		var wg sync.WaitGroup
		results := make([]error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, results[i] = c.SaveJournal(ctx, testJournal{Entries: []string{fmt.Sprintf("r%d-w%d", round, i)}}, rev)
			}()
		}
		wg.Wait()
		won := -1
		for i, err := range results {
			switch {
			case err == nil && won >= 0:
				t.Fatalf("round %d: writers %d and %d both saved over %s", round, won, i, describeRevision(rev))
			case err == nil:
				won = i
			case !errors.Is(err, platform.ErrConflict):
				t.Fatalf("round %d: writer %d: %v", round, i, err)
			}
		}
		if won < 0 {
			t.Fatalf("round %d: no writer saved", round)
		}
		var j testJournal
		if _, err := c.LoadJournal(ctx, &j); err != nil || len(j.Entries) != 1 || j.Entries[0] != fmt.Sprintf("r%d-w%d", round, won) {
			t.Fatalf("round %d: journal %+v, %v; the winner was %d", round, j, err, won)
		}
	}
}

func TestJournalCorrupt(t *testing.T) {
	ctx := context.Background()
	c := journalCluster(t)
	if _, err := c.SaveJournal(ctx, testJournal{Entries: []string{"a", "b", "c"}}, ""); err != nil {
		t.Fatal(err)
	}
	whole, err := os.ReadFile(c.journalFile())
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string][]byte{
		"truncated": whole[:len(whole)/2],
		"empty":     {},
		"garbage":   []byte("\x00\x01not json at all"),
		"wrong":     []byte(`{"entries": 7}`),
	} {
		if err := os.WriteFile(c.journalFile(), content, 0o600); err != nil {
			t.Fatal(err)
		}
		j := testJournal{Entries: []string{"kept"}}
		rev, err := c.LoadJournal(ctx, &j)
		if !errors.Is(err, platform.ErrJournalCorrupt) || rev != "" {
			t.Errorf("%s: rev %q, %v; want ErrJournalCorrupt", name, rev, err)
			continue
		}
		if !strings.Contains(err.Error(), c.journalFile()) {
			t.Errorf("%s: the error does not name the file: %v", name, err)
		}
	}
	// An unreadable journal (not a missing one) is neither corrupt nor absent.
	if err := os.Remove(c.journalFile()); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(c.journalFile(), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := c.LoadJournal(ctx, &testJournal{}); err == nil || errors.Is(err, platform.ErrJournalCorrupt) {
		t.Errorf("a journal that cannot be read: %v", err)
	}
}

func TestJournalSetAside(t *testing.T) {
	ctx := context.Background()
	c := journalCluster(t)
	if _, err := c.SetAsideJournal(ctx); !errors.Is(err, platform.ErrNotFound) {
		t.Fatalf("set aside without a journal: %v", err)
	}
	var paths []string
	for i := range 2 {
		bad := []byte(fmt.Sprintf(`{"entries": ["half %d`, i))
		if err := os.WriteFile(c.journalFile(), bad, 0o600); err != nil {
			t.Fatal(err)
		}
		path, err := c.SetAsideJournal(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if filepath.Dir(path) != c.p.clusterDir("j") || !strings.HasPrefix(filepath.Base(path), "journal.json.set-aside-") {
			t.Errorf("set aside as %s", path)
		}
		if got, err := os.ReadFile(path); err != nil || string(got) != string(bad) {
			t.Errorf("set-aside file %s holds %q (%v), want %q", path, got, err, bad)
		}
		if _, err := os.Stat(c.journalFile()); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a journal is left after set-aside: %v", err)
		}
		if rev, err := c.LoadJournal(ctx, &testJournal{}); rev != "" || err != nil {
			t.Errorf("after set-aside: rev %q, %v", rev, err)
		}
		paths = append(paths, path)
	}
	// Twice within a second: two names, both kept.
	if paths[0] == paths[1] {
		t.Errorf("both journals set aside as %s", paths[0])
	}
	// A fresh journal starts from revision "".
	if _, err := c.SaveJournal(ctx, testJournal{}, ""); err != nil {
		t.Fatal(err)
	}
}

func TestJournalMissingCluster(t *testing.T) {
	p, err := New(testenv.StateDir(t), nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := p.Cluster("gone")
	if _, err := c.SaveJournal(context.Background(), testJournal{}, ""); !errors.Is(err, platform.ErrNotFound) {
		t.Fatalf("save into a cluster that does not exist: %v", err)
	}
	if _, err := os.Stat(p.clusterDir("gone")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("saving recreated the cluster directory: %v", err)
	}
}

// TestWriteJSONConcurrent writes one store file from many goroutines while
// others read it: every read is one whole document.
func TestWriteJSONConcurrent(t *testing.T) {
	dir := testenv.StateDir(t)
	path := filepath.Join(dir, "f.json")
	big := strings.Repeat("x", 64<<10)
	if err := writeJSON(path, map[string]string{"w": "init", "pad": big}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var readers sync.WaitGroup
	readers.Add(1)
	go func() {
		defer readers.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			var m map[string]string
			if err := readJSON(path, &m); err != nil || m["pad"] != big {
				t.Errorf("torn read: %v", err)
				return
			}
		}
	}()
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				if err := writeJSON(path, map[string]string{"w": fmt.Sprintf("%d-%d", w, i), "pad": big}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	readers.Wait()
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("files left: %v", names)
	}
}
