package recorder

import (
	"errors"
	"fmt"
	"os"
	"path"
	"regexp"
)

// SnapshotsDir is the folder under the storage path that holds event snapshots.
const SnapshotsDir = "snapshots"

// snapshotID is what an event id may look like in a file name: the detector's UUIDv7
// (lowercase hex and hyphens). Anything else is refused rather than sanitised, so a
// snapshot's name always is its event's id.
var snapshotID = regexp.MustCompile(`^[0-9a-f][0-9a-f-]{0,63}$`)

// SnapshotPath returns the storage path of an event's snapshot:
// snapshots/<camera>/<event-id>.jpg (slash-separated, relative).
func SnapshotPath(camera, eventID string) string {
	return path.Join(SnapshotsDir, camera, eventID+".jpg")
}

// WriteSnapshot stores an event's JPEG snapshot and returns its storage path. The file
// is written under a temporary name, synced and renamed, so a crash never leaves a
// truncated picture under the event's name; an existing snapshot of the event (a better
// peak found later) is replaced.
func (s *Storage) WriteSnapshot(camera, eventID string, jpeg []byte) (string, error) {
	if !snapshotID.MatchString(eventID) {
		return "", fmt.Errorf("snapshot of camera %s: invalid event id %q", camera, eventID)
	}
	if len(jpeg) == 0 {
		return "", fmt.Errorf("snapshot of event %s: empty picture", eventID)
	}
	rel := SnapshotPath(camera, eventID)
	dir := path.Dir(rel)
	if err := s.root.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("snapshot of event %s: %w", eventID, err)
	}
	tmp := rel + ".tmp"
	err := s.writeSynced(tmp, jpeg)
	if err == nil {
		err = s.root.Rename(tmp, rel)
	}
	if err == nil {
		err = s.syncDir(dir)
	}
	if err != nil {
		s.remove(tmp) // best effort: the error below is what matters
		return "", fmt.Errorf("snapshot of event %s: %w", eventID, err)
	}
	return rel, nil
}

func (s *Storage) writeSynced(rel string, data []byte) error {
	f, err := s.root.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}

// RemoveSnapshot deletes a snapshot by its storage path; one already gone is not an error.
func (s *Storage) RemoveSnapshot(rel string) error {
	if rel == "" {
		return nil
	}
	if err := s.remove(rel); err != nil {
		return fmt.Errorf("remove snapshot %s: %w", rel, err)
	}
	return nil
}
