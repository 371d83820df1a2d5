package agent

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/autarky/terraform-provider-autarky/internal/decide"
)

// UnmarshalJSON decodes a journal all or nothing. The journal comes from
// the store, where anything may have happened to it (a truncated write, a
// hand edit, a bit flip, a newer or older agent), and the agent acts on
// it: it terminates instances it names. So a journal is taken only when
// the whole document decodes and every entry is one the agent could have
// written; otherwise j is left exactly as it was and the error makes the
// store report platform.ErrJournalCorrupt, which sets the journal aside
// for a person and rebuilds it from Swarm and the platform (readJournal).
// encoding/json alone would fill j field by field and leave half a
// journal behind a type error.
//
// Unknown fields are accepted: an agent of another version may have
// written them, and refusing them would set aside a sound journal in the
// middle of a rolling upgrade.
func (j *Journal) UnmarshalJSON(b []byte) error {
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		// Never written by an agent (an empty journal is an object), and
		// decoding it would silently forget every action in flight.
		return fmt.Errorf("the journal is null, not an object")
	}
	// journalFields has Journal's fields and not this method.
	type journalFields Journal
	var v journalFields
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	if err := Journal(v).check(); err != nil {
		return err
	}
	*j = Journal(v)
	return nil
}

// check refuses a journal no agent writes: an entry of an unknown kind
// (the executor would treat it as a removal and terminate its instance),
// without a key or pool, with a key used twice (one of the two would never
// finish), or with negative counts.
func (j Journal) check() error {
	seen := make(map[string]int, len(j.Entries))
	for i, e := range j.Entries {
		switch e.Action.Kind {
		case decide.ReplaceNode, decide.RemoveNode, decide.TerminateInstance:
		default:
			return fmt.Errorf("entries[%d].action.Kind: %q is not an action the agent takes (%s, %s or %s)",
				i, e.Action.Kind, decide.ReplaceNode, decide.RemoveNode, decide.TerminateInstance)
		}
		if e.Action.Key == "" {
			return fmt.Errorf("entries[%d].action.Key: empty", i)
		}
		if k, dup := seen[e.Action.Key]; dup {
			return fmt.Errorf("entries[%d].action.Key: %q is also entries[%d]'s", i, e.Action.Key, k)
		}
		seen[e.Action.Key] = i
		if e.Action.PoolID == "" {
			return fmt.Errorf("entries[%d].action.PoolID: empty", i)
		}
		if e.Attempts < 0 {
			return fmt.Errorf("entries[%d].attempts: %d is negative", i, e.Attempts)
		}
		if e.DrainTimeout < 0 {
			return fmt.Errorf("entries[%d].drain_timeout: %d is negative", i, e.DrainTimeout)
		}
	}
	for pool, b := range j.Backoff {
		if b.Failures < 0 {
			return fmt.Errorf("backoff[%q].Failures: %d is negative", pool, b.Failures)
		}
	}
	return nil
}
