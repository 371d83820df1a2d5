package group

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/platform"
)

// KeyJournal is the key of the agent's journal in a KVJournal.
const KeyJournal = "journal"

// KeySetAsideJournal is the key KVJournal's SetAsideJournal keeps an
// unreadable journal under at unix time sec; "-2", "-3", ... follow it
// when that key is taken.
func KeySetAsideJournal(sec int64) string {
	return KeyJournal + "-set-aside-" + strconv.FormatInt(sec, 10)
}

// KVJournal keeps the agent's journal in one key of kv, KeyJournal, as
// the agent's JSON, its revision the key's revision.
//
// The fencing is the KV's: SaveJournal writes with PutOptions.IfAbsent
// when it read no journal (rev "") and with IfRev otherwise, so of two
// agents that read the same revision only the first save lands and the
// other's is refused with platform.ErrConflict. On a store with object
// generations (Cloud Storage: ifGenerationMatch, 0 for "absent") the
// check and the write are one atomic request, so this holds however the
// two writes interleave; on a store without a conditional write it is as
// narrow as the KV's IfRev, and the agent's leadership check before every
// write stays the main fence.
//
// An undecodable journal gives LoadJournal no revision, so no save lands
// over it (IfAbsent finds it there) until the leader sets it aside. Of
// two agents setting it aside at once, each keeps a copy under its own
// name (the copies are created IfAbsent), and the delete must remove
// only the journal that was copied, never one the other agent saved
// after its own set-aside; hence:
//
// A KV that can delete a key only at a revision (Cloud Storage's
// ifGenerationMatch on delete) lets SetAsideJournal delete exactly the
// journal it copied: it implements
//
//	DeleteRev(ctx context.Context, key, rev string) error
//
// returning an error wrapping platform.ErrConflict when the key moved.
// With any other KV, SetAsideJournal reads the revision again just before
// its delete.
func KVJournal(kv KV) Journal { return kvJournal{kv} }

type kvJournal struct{ kv KV }

// name is key's full name for a person: the KV's root and the key.
func (j kvJournal) name(key string) string {
	where := j.kv.Where()
	if strings.HasSuffix(where, "/") {
		return where + key
	}
	return where + "/" + key
}

// revDeleter is a KV with a delete conditional on the key's revision.
type revDeleter interface {
	DeleteRev(ctx context.Context, key, rev string) error
}

// LoadJournal reads the journal into v. No journal is rev "" with v
// untouched; one that is not the agent's JSON is an error wrapping
// platform.ErrJournalCorrupt.
func (j kvJournal) LoadJournal(ctx context.Context, v any) (string, error) {
	data, rev, err := j.kv.Get(ctx, KeyJournal)
	if errors.Is(err, platform.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return "", fmt.Errorf("the journal %s (revision %s, %d bytes): %w: %v",
			j.name(KeyJournal), rev, len(data), platform.ErrJournalCorrupt, err)
	}
	return rev, nil
}

// SaveJournal writes v as the journal while its revision is still rev
// ("": while there is none) and returns the new revision; an error
// wrapping platform.ErrConflict when another writer saved it since.
func (j kvJournal) SaveJournal(ctx context.Context, v any, rev string) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("encode the journal: %w", err)
	}
	if rev == "" {
		newRev, err := j.kv.Put(ctx, KeyJournal, b, PutOptions{IfAbsent: true})
		if errors.Is(err, platform.ErrExists) {
			return "", fmt.Errorf("save the journal %s: %w: it was created since it was read as absent",
				j.name(KeyJournal), platform.ErrConflict)
		}
		return newRev, err
	}
	return j.kv.Put(ctx, KeyJournal, b, PutOptions{IfRev: rev})
}

// SetAsideJournal copies the journal, byte for byte, to
// KeySetAsideJournal(now) (created with IfAbsent, so it never replaces
// another set-aside journal), deletes the journal if it is still the one
// copied, and returns the copy's full name for a person (kv.Where() and
// the key: gs://bucket/autarky/prod/journal-set-aside-1767225600). No journal is an error wrapping platform.ErrNotFound; a
// journal another writer replaced meanwhile is not deleted (an error
// wrapping platform.ErrConflict; the copy stays).
func (j kvJournal) SetAsideJournal(ctx context.Context) (string, error) {
	data, rev, err := j.kv.Get(ctx, KeyJournal)
	if errors.Is(err, platform.ErrNotFound) {
		return "", fmt.Errorf("set aside the journal %s: there is no journal: %w", j.name(KeyJournal), err)
	}
	if err != nil {
		return "", err
	}
	base := KeySetAsideJournal(time.Now().Unix())
	var kept string
	for n := 1; ; n++ {
		kept = base
		if n > 1 {
			kept = base + "-" + strconv.Itoa(n)
		}
		_, err := j.kv.Put(ctx, kept, data, PutOptions{IfAbsent: true})
		if errors.Is(err, platform.ErrExists) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("set aside the journal %s: %w", j.name(KeyJournal), err)
		}
		break
	}
	if d, ok := j.kv.(revDeleter); ok {
		err = d.DeleteRev(ctx, KeyJournal, rev)
	} else {
		_, now, gerr := j.kv.Get(ctx, KeyJournal)
		switch {
		case errors.Is(gerr, platform.ErrNotFound):
			err = nil // gone already: nothing left in its place
		case gerr != nil:
			err = gerr
		case now != rev:
			err = fmt.Errorf("%w: it went from revision %s to %s while it was copied", platform.ErrConflict, rev, now)
		default:
			err = j.kv.Delete(ctx, KeyJournal)
		}
	}
	if err != nil {
		return "", fmt.Errorf("set aside the journal %s (copied to %s, not deleted): %w",
			j.name(KeyJournal), j.name(kept), err)
	}
	return j.name(kept), nil
}
