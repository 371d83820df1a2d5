package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/decide"
	"github.com/autarky/terraform-provider-autarky/internal/platform"
	"github.com/autarky/terraform-provider-autarky/internal/platform/local"
)

// FuzzJournalDecode puts arbitrary bytes where the local platform keeps a
// cluster's journal and loads it as the agent does. Whatever the bytes,
// nothing panics, and either the load fails with platform.ErrJournalCorrupt
// (the agent's set-aside path) leaving the journal it was loaded into
// exactly as it was — never half a journal — or it gives a journal whose
// every entry the agent could have written and that saves and loads back
// unchanged.
func FuzzJournalDecode(f *testing.F) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	good := Journal{
		Entries: []Entry{
			{Action: decide.Action{Kind: decide.ReplaceNode, Key: decide.ActionKey(decide.ReplaceNode, "c/web", "n1", "i-1"), PoolID: "c/web", Role: "worker", NodeID: "n1", InstanceID: "i-1", Replacement: "i-2"}, StartedAt: start, By: "m1"},
			{Action: decide.Action{Kind: decide.RemoveNode, Key: "remove_node/c/web/n3", PoolID: "c/web", NodeID: "n3", InstanceID: "i-3", Drain: true}, StartedAt: start, By: "m1", Batch: "b1", DrainTimeout: time.Minute, DrainStartedAt: start.Add(time.Second), Attempts: 2, NextAttempt: start.Add(time.Minute), LastError: "engine busy"},
			{Action: decide.Action{Kind: decide.TerminateInstance, Key: "terminate_instance/c/web/i-9", PoolID: "c/web", InstanceID: "i-9"}, StartedAt: start, By: rebuiltBy, Terminated: true},
		},
		Backoff:       map[string]decide.Backoff{"c/web": {Failures: 2, LastFailure: start}},
		LastScaleUp:   map[string]time.Time{"c/web": start},
		LastScaleDown: map[string]time.Time{"c/web": start},
	}
	b, err := json.Marshal(good)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add(b[:len(b)/2]) // a truncated write
	f.Add([]byte(`{"entries":[]}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
	f.Add([]byte(``))
	f.Add([]byte(`{"entries":[{"action":{"Kind":"remove_node","Key":"k","PoolID":"p"}}],"backoff":5}`))
	f.Add([]byte(`{"entries":[{"action":{"Kind":"remove_nodf","Key":"k","PoolID":"p","InstanceID":"i-1"}}]}`))
	f.Add([]byte(`{"entries":[{"action":{"Kind":"remove_node","Key":"k","PoolID":"p"}},{"action":{"Kind":"remove_node","Key":"k","PoolID":"p"}}]}`))
	f.Add([]byte(`{"entries":[{"action":{"Kind":"remove_node","Key":"k","PoolID":"p"},"attempts":-1}],"future_field":{"x":1}}`))
	f.Add([]byte(`{"last_scale_up":{"c/web":"yesterday"}}`))

	dir, err := os.MkdirTemp("", "autarky-fuzz-journal")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { os.RemoveAll(dir) })
	p, err := local.New(dir, nil, local.Options{})
	if err != nil {
		f.Fatal(err)
	}
	c := p.Cluster("fz")
	path := filepath.Join(dir, "clusters", "fz", "journal.json")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		f.Fatal(err)
	}
	// Where the local platform keeps the journal: a journal written there
	// is the one it loads.
	if err := os.WriteFile(path, b, 0o600); err != nil {
		f.Fatal(err)
	}
	var probe Journal
	if _, err := c.LoadJournal(context.Background(), &probe); err != nil || !reflect.DeepEqual(probe, good) {
		f.Fatalf("the local platform keeps the journal elsewhere: %v, %+v", err, probe)
	}

	f.Fuzz(func(t *testing.T, raw []byte) {
		if err := os.WriteFile(path, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		// The journal is loaded over one that is not empty, so that a
		// half-applied load would show.
		j := good.clone()
		rev, err := c.LoadJournal(context.Background(), &j)
		if err != nil {
			if !errors.Is(err, platform.ErrJournalCorrupt) {
				t.Fatalf("a journal that cannot be used is not reported as corrupt (no set-aside): %v", err)
			}
			if !reflect.DeepEqual(j, good) {
				t.Fatalf("a corrupt journal was half applied: %+v", j)
			}
			return
		}
		if rev == "" {
			t.Fatalf("a journal was loaded with no revision")
		}
		if err := j.check(); err != nil {
			t.Fatalf("a journal the agent never writes was taken: %v", err)
		}
		// What the agent took saves and loads back the same.
		out, err := json.Marshal(j)
		if err != nil {
			t.Fatalf("the loaded journal does not encode: %v", err)
		}
		var back Journal
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("the loaded journal, saved, does not load: %v\n%s", err, out)
		}
		again, err := json.Marshal(back)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out, again) {
			t.Fatalf("the journal changes when saved and loaded:\n%s\n%s", out, again)
		}
	})
}
