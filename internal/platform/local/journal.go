package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/autarky/terraform-provider-autarky/internal/platform"
)

func (c *Cluster) journalFile() string { return filepath.Join(c.p.clusterDir(c.name), "journal.json") }

// LoadJournal reads the agent's journal.
// TODO(stub): revisions and corrupt detection.
func (c *Cluster) LoadJournal(_ context.Context, v any) (string, error) {
	err := readJSON(c.journalFile(), v)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("%w: %v", platform.ErrJournalCorrupt, err)
	}
	return "", nil
}

// SaveJournal replaces the agent's journal atomically.
func (c *Cluster) SaveJournal(_ context.Context, v any, _ string) (string, error) {
	return "", writeJSON(c.journalFile(), v)
}

// SetAsideJournal keeps an unreadable journal for a person.
func (c *Cluster) SetAsideJournal(context.Context) (string, error) {
	dst := c.journalFile() + ".set-aside"
	return dst, os.Rename(c.journalFile(), dst)
}

// JournalFencing says how the local store refuses a stale writer.
func (c *Cluster) JournalFencing() string { return "none yet" }
