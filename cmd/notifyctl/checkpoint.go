package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/notifyd/notifyd/query/client"
)

const checkpointVersion = 1

// checkpoint is reconcile's progress, kept in a JSON file between runs.
//
// Position (CreatedAt, ID) is the last notification handled in listing
// order; everything before it was handled. Seen holds the ids handled within
// the overlap window before the position, so that the next run, which
// starts overlap earlier to catch rows committed late, does not hand them
// to the handler again.
type checkpoint struct {
	Version int `json:"version"`
	// ReceiverID is whose notifications these are: a checkpoint must not be
	// continued with another receiver's key.
	ReceiverID string    `json:"receiver_id,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
	ID         string    `json:"id,omitempty"`
	// Seen maps id → created_at.
	Seen      map[string]time.Time `json:"seen"`
	UpdatedAt time.Time            `json:"updated_at"`
}

func newCheckpoint() *checkpoint {
	return &checkpoint{Version: checkpointVersion, Seen: map[string]time.Time{}}
}

// started reports whether any notification was handled yet.
func (c *checkpoint) started() bool { return !c.CreatedAt.IsZero() }

// advance moves the position to n if n is beyond it.
func (c *checkpoint) advance(n *client.Notification) {
	if n.CreatedAt.After(c.CreatedAt) || (n.CreatedAt.Equal(c.CreatedAt) && n.ID > c.ID) {
		c.CreatedAt, c.ID = n.CreatedAt, n.ID
	}
}

// handled records that n was handled.
func (c *checkpoint) handled(n *client.Notification) {
	c.Seen[n.ID] = n.CreatedAt
	c.advance(n)
}

// prune forgets ids older than the window the next run re-reads.
func (c *checkpoint) prune(overlap time.Duration) {
	cutoff := c.CreatedAt.Add(-overlap)
	for id, at := range c.Seen {
		if at.Before(cutoff) {
			delete(c.Seen, id)
		}
	}
}

// loadCheckpoint reads path; a missing file is a fresh checkpoint (exists
// false). A file that does not parse is an error, not a fresh start: starting
// over would hand every notification to the handler again.
func loadCheckpoint(path string) (_ *checkpoint, exists bool, _ error) {
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return newCheckpoint(), false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read checkpoint: %w", err)
	}
	c := newCheckpoint()
	if err := json.Unmarshal(raw, c); err != nil {
		return nil, false, fmt.Errorf("checkpoint %s is corrupt (%v); move it away to start over", path, err)
	}
	if c.Version != checkpointVersion {
		return nil, false, fmt.Errorf("checkpoint %s has version %d, this notifyctl writes %d", path, c.Version, checkpointVersion)
	}
	if c.Seen == nil {
		c.Seen = map[string]time.Time{}
	}
	return c, true, nil
}

// save writes the checkpoint atomically: a temporary file in the same
// directory, fsync, rename over the old one, fsync the directory. A crash at
// any point leaves either the old or the new checkpoint, never a torn one.
func (c *checkpoint) save(path string, now time.Time) error {
	c.UpdatedAt = now.UTC()
	raw, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("encode checkpoint: %w", err)
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("write checkpoint: %w", err)
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	_, err = tmp.Write(append(raw, '\n'))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("write checkpoint %s: %w", path, err)
	}
	// The rename is durable only once the directory entry is.
	if d, err := os.Open(dir); err == nil {
		err = d.Sync()
		d.Close()
		if err != nil && !strings.Contains(err.Error(), "invalid argument") {
			return fmt.Errorf("sync checkpoint directory: %w", err)
		}
	}
	return nil
}
