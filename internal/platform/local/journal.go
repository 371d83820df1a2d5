package local

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/platform"
)

// The agent's journal is clusters/<name>/journal.json. Its revision is the
// hex SHA-256 of the file's bytes. Every write (SaveJournal and
// SetAsideJournal) holds an exclusive flock on clusters/<name>/journal.lock
// while it compares the revision and replaces the file, so of two writers
// that read the same revision exactly one lands. The lock is the
// journal's own, not the cluster's, which is held through long operations
// such as creating a cluster. Readers take no lock: the file is only ever
// replaced by a rename, so they see one whole journal or another.

func (c *Cluster) journalFile() string { return filepath.Join(c.p.clusterDir(c.name), "journal.json") }

func (c *Cluster) journalLockFile() string {
	return filepath.Join(c.p.clusterDir(c.name), "journal.lock")
}

// journalRevision is the revision of a journal's bytes.
func journalRevision(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// describeRevision names a revision in messages.
func describeRevision(rev string) string {
	if rev == "" {
		return "no journal"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	return "revision " + rev
}

// lockJournal takes the journal's exclusive lock, waiting for it as long
// as ctx lets it.
func (c *Cluster) lockJournal(ctx context.Context) (unlock func(), err error) {
	if _, err := os.Stat(c.p.clusterDir(c.name)); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("cluster %s: %w", c.name, platform.ErrNotFound)
	}
	unlock, err = flockFile(ctx, c.journalLockFile())
	if err != nil {
		return nil, fmt.Errorf("lock the journal of cluster %s: %w", c.name, err)
	}
	return unlock, nil
}

// currentRevision reads the journal's revision now: "" when there is none.
func (c *Cluster) currentRevision() (string, error) {
	b, err := os.ReadFile(c.journalFile())
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read the journal: %w", err)
	}
	return journalRevision(b), nil
}

// LoadJournal reads the agent's journal into v and returns its revision,
// the hex SHA-256 of the file; ("", nil) with v untouched when there is
// no journal. A file that is not JSON of v's shape (truncated, garbage,
// empty) is an error wrapping platform.ErrJournalCorrupt that names it.
func (c *Cluster) LoadJournal(_ context.Context, v any) (string, error) {
	path := c.journalFile()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read the journal: %w", err)
	}
	if !json.Valid(b) {
		// Checked first so that v is untouched by half a document.
		return "", fmt.Errorf("%w: %s is not JSON (%d bytes; truncated or overwritten)", platform.ErrJournalCorrupt, path, len(b))
	}
	if err := json.Unmarshal(b, v); err != nil {
		return "", fmt.Errorf("%w: %s: %v", platform.ErrJournalCorrupt, path, err)
	}
	return journalRevision(b), nil
}

// SaveJournal replaces the agent's journal with v, atomically, only while
// its revision is still rev ("": while there is no journal), and returns
// the new revision. A journal someone else saved since is left alone and
// the error wraps platform.ErrConflict.
func (c *Cluster) SaveJournal(ctx context.Context, v any, rev string) (string, error) {
	b, err := marshalJSON(v)
	if err != nil {
		return "", fmt.Errorf("encode the journal: %w", err)
	}
	unlock, err := c.lockJournal(ctx)
	if err != nil {
		return "", err
	}
	defer unlock()
	cur, err := c.currentRevision()
	if err != nil {
		return "", err
	}
	if cur != rev {
		return "", fmt.Errorf("save the journal of cluster %s: %w: the store holds %s, this writer read %s",
			c.name, platform.ErrConflict, describeRevision(cur), describeRevision(rev))
	}
	if err := writeFileAtomic(c.journalFile(), b); err != nil {
		return "", fmt.Errorf("save the journal of cluster %s: %w", c.name, err)
	}
	return journalRevision(b), nil
}

// SetAsideJournal renames the journal to journal.json.set-aside-<UTC
// time> (with -2, -3, ... when that name is taken), keeping its bytes for
// a person, and returns the new path. No journal is an error wrapping
// platform.ErrNotFound.
func (c *Cluster) SetAsideJournal(ctx context.Context) (string, error) {
	unlock, err := c.lockJournal(ctx)
	if err != nil {
		return "", err
	}
	defer unlock()
	src := c.journalFile()
	if _, err := os.Lstat(src); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("set aside the journal of cluster %s: there is no journal: %w", c.name, platform.ErrNotFound)
		}
		return "", fmt.Errorf("set aside the journal of cluster %s: %w", c.name, err)
	}
	base := src + ".set-aside-" + time.Now().UTC().Format("20060102T150405Z")
	for n := 1; ; n++ {
		dst := base
		if n > 1 {
			dst = base + "-" + strconv.Itoa(n)
		}
		// A hard link never replaces an existing file, unlike a rename.
		err := os.Link(src, dst)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("set aside the journal of cluster %s: %w", c.name, err)
		}
		if err := os.Remove(src); err != nil {
			_ = os.Remove(dst)
			return "", fmt.Errorf("set aside the journal of cluster %s: %w", c.name, err)
		}
		if err := syncDir(filepath.Dir(src)); err != nil {
			return "", fmt.Errorf("set aside the journal of cluster %s: %w", c.name, err)
		}
		return dst, nil
	}
}
