package configs

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"

	"gopkg.in/yaml.v3"
)

// CameraStore creates, replaces and removes the cameras kept in cameras.d beside the
// main configuration file, for the camera API and `townwatch camera`. Every change:
//
//  1. takes the directory's lock (cameras.d/.lock, flock), so the server and a command
//     line never interleave, and checks the caller's revision (If-Match) against the files;
//  2. decodes the camera (the same keys as in YAML), writes a new password file if a
//     password came with it (0600, a new name each time, so the camera's configuration
//     changes and a reload restarts it with the new password);
//  3. validates the whole union as it would be: nothing is written when anything is wrong;
//  4. writes the camera's file atomically (WriteFileAtomic) or removes it, then the
//     password files nothing refers to any more (and, before step 2's checks, what an
//     earlier change killed half-way left behind);
//  5. hands the union to Apply (the server's reload path) without waiting for a watcher.
type CameraStore struct {
	Main string // the hand-written configuration file; never written
	// Apply makes a written configuration the running one; nil when nothing runs (the
	// command line: the server's watcher sees the files).
	Apply func(*Config) error
}

// Errors of CameraStore's changes.
var (
	// ErrRevision: the files changed since the caller read them (HTTP 412).
	ErrRevision = errors.New("the configuration changed since you read it; read it again and retry with its revision")
	// ErrUnknownCamera: no camera has this id (HTTP 404).
	ErrUnknownCamera = errors.New("unknown camera")
	// ErrHandWritten: the camera is defined in the hand-written file, which only its
	// editor changes (HTTP 409).
	ErrHandWritten = errors.New("the camera is defined in the hand-written configuration file; edit it there")
	// ErrNoConfigFile: townwatch runs without a configuration file (the demo), so there
	// is nowhere to keep cameras (HTTP 409).
	ErrNoConfigFile = errors.New("townwatch was not started with a configuration file; cameras cannot be kept")
)

// read reads the files once (see snapshot).
func (s *CameraStore) read() (*snapshot, error) {
	if s.Main == "" {
		return nil, ErrNoConfigFile
	}
	return readSnapshot(s.Main)
}

// CameraEntry is one camera as the API shows it.
type CameraEntry struct {
	// Doc has the keys of the camera in YAML, defaults filled in; passwords never: a URL
	// is redacted, and a password kept by the store shows as password_set.
	Doc map[string]any
	// File is where the camera is defined: the main file or its file in cameras.d.
	File string
	// HandWritten: defined in the main file, read-only through the API.
	HandWritten bool
}

// Change is what a change did.
type Change struct {
	Before, After map[string]any // the camera's Doc before and after; nil for none
	Revision      string         // the configuration's revision after it
	// Applied is Apply's error: the files are written, and the running system reports
	// the rest in its reload status.
	Applied error
}

// Audit is called with a change's before and after, once the change is known to be valid
// and before anything is written; an error aborts the change.
type ChangeAudit func(before, after map[string]any) error

// ChangeDetails is what an audit row of a change holds: the camera it is about, and the
// operation with the camera before and after (Docs: no password in them).
func ChangeDetails(op string, before, after map[string]any) (camera string, details json.RawMessage) {
	for _, d := range []map[string]any{before, after} {
		if d != nil {
			camera, _ = d["id"].(string)
		}
	}
	details, _ = json.Marshal(map[string]any{"op": op, "before": before, "after": after})
	return camera, details
}

// List returns every camera of the union and the configuration's revision.
func (s *CameraStore) List() ([]CameraEntry, string, error) {
	snap, err := s.read()
	if err != nil {
		return nil, "", err
	}
	c, err := snap.union()
	if err != nil {
		return nil, "", err
	}
	out := make([]CameraEntry, len(c.Cameras))
	for i, cam := range c.Cameras {
		out[i] = s.entry(cam)
	}
	return out, snap.revision(), nil
}

// Check validates the union as it would be with the camera in body (JSON) added, or
// replacing the camera of its id kept in cameras.d; with body empty, the union as it is.
// It writes nothing.
func (s *CameraStore) Check(body []byte) error {
	snap, err := s.read()
	if err != nil {
		return err
	}
	c, err := snap.union()
	if err != nil {
		return err
	}
	if len(body) == 0 {
		return c.Validate()
	}
	b, err := s.parseBody(body)
	if err != nil {
		return err
	}
	// A password stands in a temporary file for the check, as it would in its own file.
	for _, st := range b.streams(&b.cam) {
		if st.password == "" {
			continue
		}
		f, err := os.CreateTemp("", "townwatch-check-*.password")
		if err != nil {
			return err
		}
		f.WriteString("x")
		f.Close()
		defer os.Remove(f.Name())
		st.stream.PasswordFile = f.Name()
	}
	if i := c.cameraIndex(b.cam.ID); i >= 0 && s.managed(b.cam.ID) {
		c.Cameras[i] = b.cam
	} else {
		c.Cameras = append(c.Cameras, b.cam)
	}
	c.finish()
	return b.renamePaths(c.Validate())
}

// Create adds the camera in body (JSON). An id that exists is a validation problem.
func (s *CameraStore) Create(body []byte, ifMatch string, audit ChangeAudit) (Change, error) {
	return s.change("", body, ifMatch, audit)
}

// Replace replaces camera id, kept in cameras.d, with body (JSON). A stream sent without
// a password keeps the password the store holds for it.
func (s *CameraStore) Replace(id string, body []byte, ifMatch string, audit ChangeAudit) (Change, error) {
	if body == nil {
		body = []byte{}
	}
	return s.change(id, body, ifMatch, audit)
}

// Delete removes camera id, kept in cameras.d.
func (s *CameraStore) Delete(id, ifMatch string, audit ChangeAudit) (Change, error) {
	return s.change(id, nil, ifMatch, audit)
}

// change is Create (id ""), Replace (body not nil) and Delete (body nil).
func (s *CameraStore) change(id string, body []byte, ifMatch string, audit ChangeAudit) (ch Change, err error) {
	if s.Main == "" {
		return ch, ErrNoConfigFile
	}
	unlock, err := s.lock()
	if err != nil {
		return ch, err
	}
	defer unlock()
	snap, err := s.read()
	if err != nil {
		return ch, err
	}
	if ifMatch != "" && ifMatch != snap.revision() {
		return ch, ErrRevision
	}
	c, err := snap.union()
	if err != nil {
		return ch, err
	}
	s.removeLeftovers(c)
	idx := -1
	var old Camera
	if id != "" {
		if idx = c.cameraIndex(id); idx < 0 {
			return ch, ErrUnknownCamera
		}
		if !s.managed(id) {
			return ch, ErrHandWritten
		}
		old = c.Cameras[idx]
		ch.Before = s.entry(old).Doc
	}
	var b *cameraBody
	var written []string // new password files, removed again if the change fails
	defer func() {
		if err != nil {
			for _, p := range written {
				os.Remove(p)
			}
		}
	}()
	if body != nil {
		if b, err = s.parseBody(body); err != nil {
			return ch, err
		}
		if id != "" && b.cam.ID != id {
			if b.cam.ID != "" {
				return ch, &ValidationError{Problems: []Problem{{Path: "id", Message: fmt.Sprintf("is %q, the camera is %q: an id cannot change (create the camera anew and delete this one)", b.cam.ID, id)}}}
			}
			b.cam.ID = id
			b.set(b.node, "id", id)
		}
		if id != "" {
			b.keepRedactedURLs(old)
		}
		if written, err = s.keepPasswords(b, old, id != ""); err != nil {
			return ch, err
		}
	}
	switch {
	case b == nil:
		c.Cameras = append(c.Cameras[:idx], c.Cameras[idx+1:]...)
	case idx >= 0:
		c.Cameras[idx] = b.cam
	default:
		c.Cameras = append(c.Cameras, b.cam)
	}
	c.finish()
	if err = b.renamePaths(c.Validate()); err != nil {
		return ch, err
	}
	if b != nil {
		ch.After = s.entry(c.Cameras[c.cameraIndex(b.cam.ID)]).Doc
	}
	if audit != nil {
		if err = audit(ch.Before, ch.After); err != nil {
			return ch, err
		}
	}
	if b == nil {
		if err = os.Remove(s.file(id)); err != nil {
			return ch, err
		}
		err = syncDir(CamerasDir(s.Main))
	} else {
		err = b.write(s.file(b.cam.ID))
	}
	if err != nil {
		return ch, err
	}
	s.removeUnused(old, c)
	if next, rerr := readSnapshot(s.Main); rerr == nil {
		ch.Revision = next.revision()
	}
	if s.Apply != nil {
		ch.Applied = s.Apply(c)
	}
	return ch, nil
}

// lock takes cameras.d/.lock exclusively, creating the directory; the lock goes with the
// process, so a writer killed mid-change blocks nobody.
func (s *CameraStore) lock() (func(), error) {
	dir := CamerasDir(s.Main)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", f.Name(), err)
	}
	return func() { f.Close() }, nil // closing releases the lock
}

func (s *CameraStore) file(id string) string {
	return filepath.Join(CamerasDir(s.Main), id+".yaml")
}

// managed tells whether camera id has its file in cameras.d.
func (s *CameraStore) managed(id string) bool {
	if !cameraID.MatchString(id) {
		return false
	}
	_, err := os.Stat(s.file(id))
	return err == nil
}

// ownPassword tells whether a password file is one the store wrote (in cameras.d).
func (s *CameraStore) ownPassword(path string) bool {
	dir, err := filepath.Abs(CamerasDir(s.Main))
	return err == nil && path != "" && filepath.Dir(path) == dir && strings.HasSuffix(path, ".password")
}

// entry is cam as the API shows it.
func (s *CameraStore) entry(cam Camera) CameraEntry {
	e := CameraEntry{Doc: map[string]any{}, File: s.file(cam.ID), HandWritten: !s.managed(cam.ID)}
	if e.HandWritten {
		e.File = s.Main
	}
	raw, err := yaml.Marshal(cam)
	if err == nil {
		err = yaml.Unmarshal(raw, &e.Doc)
	}
	if err != nil { // a Camera always marshals; this would be a bug, shown rather than hidden
		e.Doc = map[string]any{"id": cam.ID, "error": err.Error()}
		return e
	}
	for key, st := range map[string]*Stream{"main": &cam.Main, "sub": cam.Sub} {
		doc, ok := e.Doc[key].(map[string]any)
		if !ok || st == nil {
			continue
		}
		doc["url"] = st.RedactedURL()
		if s.ownPassword(st.PasswordFile) {
			delete(doc, "password_file")
			doc["password_set"] = true
		}
	}
	return e
}

// cameraBody is a camera sent to the API: its decoded form, its YAML node (written to
// the camera's file, in the order the keys came), and the passwords taken out of it.
type cameraBody struct {
	cam  Camera
	node *yaml.Node
	// passwords by stream key ("main", "sub"); they never reach the YAML.
	passwords map[string]string
}

type bodyStream struct {
	key      string
	stream   *Stream
	password string
}

func (b *cameraBody) streams(cam *Camera) []bodyStream {
	out := []bodyStream{{key: "main", stream: &cam.Main, password: b.passwords["main"]}}
	if cam.Sub != nil {
		out = append(out, bodyStream{key: "sub", stream: cam.Sub, password: b.passwords["sub"]})
	}
	return out
}

// parseBody decodes a camera sent as JSON with the keys of YAML. main.password and
// sub.password are taken out (write-only); password_file and password_env are refused:
// through the API a password is sent, never a path to a file on the server, which would
// let an administrator's session read any file townwatch can and send it to a camera.
func (s *CameraStore) parseBody(body []byte) (*cameraBody, error) {
	if !json.Valid(body) {
		return nil, &ValidationError{Problems: []Problem{{Message: "the body is not JSON"}}}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(body, &doc); err != nil || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, &ValidationError{Problems: []Problem{{Message: "want a JSON object with the keys of a camera (id, name, main, sub, record, motion, live)"}}}
	}
	b := &cameraBody{node: doc.Content[0], passwords: map[string]string{}}
	var ps []Problem
	for _, key := range []string{"main", "sub"} {
		st := mappingValue(b.node, key)
		if st == nil || st.Kind != yaml.MappingNode {
			continue
		}
		for _, refused := range []string{"password_file", "password_env"} {
			if mappingValue(st, refused) != nil {
				ps = append(ps, Problem{Path: key + "." + refused, Message: "not accepted through the API: send the password in " + key + ".password (it is kept in a 0600 file)"})
			}
		}
		if pw := mappingValue(st, "password"); pw != nil {
			if pw.Kind != yaml.ScalarNode || pw.Tag != "!!str" || pw.Value == "" {
				ps = append(ps, Problem{Path: key + ".password", Message: "want a non-empty string"})
			} else {
				b.passwords[key] = pw.Value
			}
			removeKey(st, "password")
		}
		if u := mappingValue(st, "url"); u != nil {
			if pu, err := parseURL(u.Value); err == nil {
				if _, has := pu.User.Password(); has {
					ps = append(ps, Problem{Path: key + ".url", Message: "holds a password: send it in " + key + ".password instead (the file keeps no password in a URL)"})
				}
			}
		}
	}
	if len(ps) > 0 {
		return nil, &ValidationError{Problems: ps}
	}
	blockStyle(b.node)
	cam, err := decodeCamera(b.node, "request")
	if err != nil {
		var de *DecodeError
		if errors.As(err, &de) {
			return nil, &ValidationError{Problems: de.Problems}
		}
		return nil, err
	}
	for key := range b.passwords {
		if key == "sub" && cam.Sub == nil {
			return nil, &ValidationError{Problems: []Problem{{Path: "sub.password", Message: "there is no sub stream"}}}
		}
	}
	b.cam = cam
	return b, nil
}

// keepPasswords writes a new password file for each stream sent with a password, and on
// a replace keeps the file the store holds for a stream sent without one. It returns the
// files written.
func (s *CameraStore) keepPasswords(b *cameraBody, old Camera, replace bool) ([]string, error) {
	var written []string
	for _, st := range b.streams(&b.cam) {
		switch {
		case st.password != "":
			path, err := s.writePassword(b.cam.ID, st.key, st.password)
			if err != nil {
				return written, err
			}
			written = append(written, path)
			st.stream.PasswordFile = path
		case replace:
			var prev *Stream
			if st.key == "main" {
				prev = &old.Main
			} else {
				prev = old.Sub
			}
			if prev == nil || !s.ownPassword(prev.PasswordFile) {
				continue
			}
			st.stream.PasswordFile = prev.PasswordFile
		default:
			continue
		}
		b.set(mappingValue(b.node, st.key), "password_file", st.stream.PasswordFile)
	}
	return written, nil
}

// keepRedactedURLs puts back the stored URL of a stream sent with exactly the redacted URL
// the API showed for it: a camera taking its password in the query (?password=) is shown
// as ?password=***, and an edit that leaves the URL alone must not save the marker as the
// password. Any other URL is the caller's new one.
func (b *cameraBody) keepRedactedURLs(old Camera) {
	for _, st := range b.streams(&b.cam) {
		prev := &old.Main
		if st.key == "sub" {
			prev = old.Sub
		}
		if prev != nil && st.stream.URL != prev.URL && st.stream.URL == prev.RedactedURL() {
			st.stream.URL = prev.URL
			b.set(mappingValue(b.node, st.key), "url", prev.URL)
		}
	}
}

// writePassword keeps a password in a new 0600 file cameras.d/<id>.<stream>.<random>.password.
func (s *CameraStore) writePassword(id, stream, password string) (string, error) {
	dir, err := filepath.Abs(CamerasDir(s.Main))
	if err != nil {
		return "", err
	}
	var r [6]byte
	rand.Read(r[:])
	path := filepath.Join(dir, id+"."+stream+"."+hex.EncodeToString(r[:])+".password")
	return path, CreateKeyFile(path, []byte(password+"\n"))
}

// Names of the files a change writes before its rename or its configuration refers to
// them: ".<name>-<digits>" (writeSyncedTemp's temp files) and writePassword's password files.
var (
	storeTempFile     = regexp.MustCompile(`^\.[a-z0-9-]+(\.(main|sub)\.[0-9a-f]{12}\.password|\.yaml)-[0-9]+$`)
	storePasswordFile = regexp.MustCompile(`^[a-z0-9-]+\.(main|sub)\.[0-9a-f]{12}\.password$`)
)

// removeLeftovers removes what a change killed half-way left in cameras.d: temp files
// never renamed, and password files written for a camera file that was never written (or
// unused files removeUnused did not reach). It runs under the lock, so no other change is
// half-way; c is the union on disk, whose references decide what is in use. Only the
// store's own names are matched: an editor's swap or backup files are not touched.
func (s *CameraStore) removeLeftovers(c *Config) {
	dir := CamerasDir(s.Main)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	used := c.passwordFiles()
	for _, e := range entries {
		path, err := filepath.Abs(filepath.Join(dir, e.Name()))
		if err != nil || !e.Type().IsRegular() {
			continue
		}
		if storeTempFile.MatchString(e.Name()) || storePasswordFile.MatchString(e.Name()) && !used[path] {
			os.Remove(path)
		}
	}
}

// passwordFiles is the set of password files the cameras of c refer to.
func (c *Config) passwordFiles() map[string]bool {
	used := map[string]bool{}
	for _, cam := range c.Cameras {
		used[cam.Main.PasswordFile] = true
		if cam.Sub != nil {
			used[cam.Sub.PasswordFile] = true
		}
	}
	return used
}

// removeUnused removes the password files of old the union c no longer refers to. A
// writer killed before this leaves an unused file behind, never a missing one.
func (s *CameraStore) removeUnused(old Camera, c *Config) {
	used := c.passwordFiles()
	for _, st := range []*Stream{&old.Main, old.Sub} {
		if st != nil && s.ownPassword(st.PasswordFile) && !used[st.PasswordFile] {
			os.Remove(st.PasswordFile)
		}
	}
}

// renamePaths names a problem of a password the store keeps by the key the caller sent
// (main.password), not by the password_file the caller never saw. nil stays nil.
func (b *cameraBody) renamePaths(err error) error {
	var ve *ValidationError
	if b == nil || !errors.As(err, &ve) {
		return err
	}
	for i, p := range ve.Problems {
		for key := range b.passwords {
			suffix := "]." + key + ".password_file"
			if strings.HasPrefix(p.Path, "cameras[") && strings.HasSuffix(p.Path, suffix) {
				ve.Problems[i].Path = strings.TrimSuffix(p.Path, "_file")
			}
		}
	}
	return err
}

// write replaces the camera's file with the body's YAML.
func (b *cameraBody) write(path string) error {
	out, err := yaml.Marshal(b.node)
	if err != nil {
		return err
	}
	header := "# Written by townwatch (camera API or `townwatch camera`); edit it through them, or\n# by hand with the same care as townwatch.yaml.\n"
	return WriteFileAtomic(path, append([]byte(header), out...))
}

// set sets key of mapping m to the string value, adding it when absent.
func (b *cameraBody) set(m *yaml.Node, key, value string) {
	if v := mappingValue(m, key); v != nil {
		v.Kind, v.Tag, v.Value, v.Style, v.Content = yaml.ScalarNode, "!!str", value, 0, nil
		return
	}
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key},
		&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: value})
}

func mappingValue(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func removeKey(m *yaml.Node, key string) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content = append(m.Content[:i], m.Content[i+2:]...)
			return
		}
	}
}

// blockStyle makes a JSON document read like the hand-written file: block mappings,
// plain scalars (quoted only where YAML needs it), and a zone's points as [x, y].
func blockStyle(n *yaml.Node) {
	n.Style = 0
	if n.Kind == yaml.SequenceNode && len(n.Content) > 0 && n.Content[0].Kind == yaml.ScalarNode {
		n.Style = yaml.FlowStyle
	}
	for _, c := range n.Content {
		blockStyle(c)
	}
}
