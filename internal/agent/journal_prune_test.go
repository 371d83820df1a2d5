package agent

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/decide"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

// TestJournalPrune: the records of pools that are gone (and have nothing
// in flight) and the records that read as no record leave the journal;
// everything a live pool or an entry in flight may still read stays.
func TestJournalPrune(t *testing.T) {
	now := time.Date(2026, 11, 27, 13, 0, 0, 0, time.UTC)
	long := now.Add(-30 * 24 * time.Hour)
	pools := map[string]policy.Pool{}
	for _, name := range []string{policy.ManagerPoolName, "web"} {
		p := policy.Pool{Cluster: "prod", Name: name}
		pools[p.ID()] = p
	}
	j := Journal{
		Entries: []Entry{{Action: decide.Action{Kind: decide.RemoveNode, Key: "remove/prod/draining/n1", PoolID: "prod/draining"}, StartedAt: now}},
		Backoff: map[string]decide.Backoff{
			"prod/web":      {Failures: 6, LastFailure: long}, // live: its count sets the next delay
			"prod/managers": {},                               // no failures: reads as none
			"prod/gone":     {Failures: 2, LastFailure: now},
			"prod/draining": {Failures: 1, LastFailure: now}, // gone, but an entry is in flight
		},
		LastScaleUp:   map[string]time.Time{"prod/web": long, "prod/gone": now, "prod/draining": now},
		LastScaleDown: map[string]time.Time{"prod/web": {}, "prod/gone": now},
	}
	for i := range 200 { // pools that came and went over a long life
		j.LastScaleDown["prod/old-"+strings.Repeat("x", i%7)+string(rune('a'+i%26))+string(rune('a'+i/26))] = long
	}
	before, _ := json.Marshal(j)
	p := j.clone()
	dropped := p.prune(pools)

	want := Journal{
		Entries: j.Entries,
		Backoff: map[string]decide.Backoff{
			"prod/web":      {Failures: 6, LastFailure: long},
			"prod/draining": {Failures: 1, LastFailure: now},
		},
		LastScaleUp:   map[string]time.Time{"prod/web": long, "prod/draining": now},
		LastScaleDown: map[string]time.Time{},
	}
	if !reflect.DeepEqual(p.Entries, want.Entries) || !reflect.DeepEqual(p.Backoff, want.Backoff) ||
		!reflect.DeepEqual(p.LastScaleUp, want.LastScaleUp) || len(p.LastScaleDown) != 0 {
		t.Fatalf("pruned journal:\n%+v\nwant\n%+v", p, want)
	}
	if len(dropped) != 2+1+2+200 {
		t.Errorf("dropped %d records: %v", len(dropped), dropped)
	}
	for _, d := range []string{"backoff[prod/gone] (pool gone)", "backoff[prod/managers] (empty)", "last_scale_down[prod/web] (empty)", "last_scale_up[prod/gone] (pool gone)"} {
		if !strings.Contains(strings.Join(dropped, "\n"), d) {
			t.Errorf("dropped %v: %q is not among them", dropped, d)
		}
	}
	after, _ := json.Marshal(p)
	if len(after) >= len(before)/5 {
		t.Errorf("the journal went from %d to %d bytes", len(before), len(after))
	}
	// prune worked on the clone only, and a second prune drops nothing.
	if len(j.Backoff) != 4 || len(j.LastScaleDown) != 202 {
		t.Error("pruning the clone changed the original")
	}
	if again := p.prune(pools); len(again) != 0 {
		t.Errorf("a second prune dropped %v", again)
	}
}

// TestJournalMapsArePerPool: prune treats every map of the journal as a
// per-pool record by pool id, so every map must be keyed by a string and
// reach prune. A map added that is not per pool fails here first.
func TestJournalMapsArePerPool(t *testing.T) {
	typ := reflect.TypeOf(Journal{})
	for i := range typ.NumField() {
		f := typ.Field(i)
		if f.Type.Kind() != reflect.Map {
			continue
		}
		if f.Type.Key().Kind() != reflect.String {
			t.Errorf("Journal.%s is keyed by %s, not a pool id", f.Name, f.Type.Key())
			continue
		}
		// A record of a pool that is gone leaves the journal.
		j := Journal{}
		m := reflect.MakeMap(f.Type)
		v := reflect.New(f.Type.Elem()).Elem()
		nonZero(t, v)
		m.SetMapIndex(reflect.ValueOf("prod/gone"), v)
		reflect.ValueOf(&j).Elem().Field(i).Set(m)
		if dropped := j.prune(map[string]policy.Pool{}); len(dropped) != 1 || m.Len() != 0 {
			t.Errorf("Journal.%s: a gone pool's record was not pruned: %v", f.Name, dropped)
		}
	}
}

// nonZero sets some field of v (a struct, time or number) so that it is
// not its zero value.
func nonZero(t *testing.T, v reflect.Value) {
	t.Helper()
	switch {
	case v.Type() == reflect.TypeOf(time.Time{}):
		v.Set(reflect.ValueOf(time.Unix(1, 0)))
	case v.Kind() == reflect.Struct:
		for i := range v.NumField() {
			if v.Field(i).CanSet() {
				nonZero(t, v.Field(i))
				return
			}
		}
		t.Fatalf("%s has no field to set", v.Type())
	case v.CanInt():
		v.SetInt(1)
	case v.CanUint():
		v.SetUint(1)
	case v.CanFloat():
		v.SetFloat(1)
	case v.Kind() == reflect.String:
		v.SetString("x")
	case v.Kind() == reflect.Bool:
		v.SetBool(true)
	default:
		t.Fatalf("cannot make a %s non-zero", v.Type())
	}
}
