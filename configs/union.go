package configs

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// The configuration is a union: the hand-written file (townwatch.yaml) and, in the
// directory cameras.d beside it, one file per camera created or edited through the API
// or `townwatch camera add` (<id>.yaml, holding one camera's keys at the top level). The
// API never touches the hand-written file, so an administrator's comments and layout
// survive, and a camera's file is replaced whole and atomically.

// CamerasDirName is the directory of per-camera files beside the main configuration.
const CamerasDirName = "cameras.d"

// CamerasDir is the cameras.d directory of the configuration file main.
func CamerasDir(main string) string { return filepath.Join(filepath.Dir(main), CamerasDirName) }

// LoadUnion reads the configuration file at path and every camera file in cameras.d
// beside it, and validates the whole (see Parse). A missing cameras.d means none. Camera
// files are read in name order, after the hand-written cameras.
func LoadUnion(path string) (*Config, error) {
	snap, err := readSnapshot(path)
	if err != nil {
		return nil, err
	}
	c, err := snap.union()
	if err != nil {
		return nil, err
	}
	if ps := c.problems(); len(ps) > 0 {
		return nil, &sourceError{source: path, err: &ValidationError{Problems: ps}}
	}
	return c, nil
}

// snapshot is the configuration's files as read once: the union and its revision are
// computed from the same bytes.
type snapshot struct {
	main    string
	mainRaw []byte
	files   []cameraFile // cameras.d/*.yaml, by name
}

type cameraFile struct {
	path string
	raw  []byte
}

// readSnapshot reads the main file and cameras.d/*.yaml. Names starting with a dot (a
// writer's temporary file) and other suffixes (password files) are not camera files.
func readSnapshot(main string) (*snapshot, error) {
	raw, err := os.ReadFile(main)
	if err != nil {
		return nil, err
	}
	s := &snapshot{main: main, mainRaw: raw}
	dir := CamerasDir(main)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, err
	}
	for _, e := range entries { // ReadDir sorts by name
		if !isCameraFileName(e.Name()) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		s.files = append(s.files, cameraFile{path: p, raw: data})
	}
	return s, nil
}

func isCameraFileName(name string) bool {
	return !strings.HasPrefix(name, ".") && strings.HasSuffix(name, ".yaml")
}

// revision names this state of the configuration: a SHA-256 over the main file and the
// camera files with their names. Any edit, by the API, the command line or an editor,
// gives a new one.
func (s *snapshot) revision() string {
	h := sha256.New()
	fmt.Fprintf(h, "%d\x00", len(s.mainRaw))
	h.Write(s.mainRaw)
	for _, f := range s.files {
		fmt.Fprintf(h, "\x00%s\x00%d\x00", filepath.Base(f.path), len(f.raw))
		h.Write(f.raw)
	}
	return hex.EncodeToString(h.Sum(nil))[:32]
}

// union decodes the main file and the camera files into one Config, not yet validated.
// Every decoding problem of every file is reported at once.
func (s *snapshot) union() (*Config, error) {
	c, err := decode(s.mainRaw, s.main)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, f := range s.files {
		cam, err := ParseCamera(f.raw, f.path)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if want := strings.TrimSuffix(filepath.Base(f.path), ".yaml"); cam.ID != want {
			errs = append(errs, fmt.Errorf("%s: id %q does not match the file name (want %s.yaml, or id: %s)", f.path, cam.ID, cam.ID, want))
			continue
		}
		c.Cameras = append(c.Cameras, cam)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	c.finish()
	return c, nil
}

// DecodeError is a camera document that could not be decoded: Error gives every problem
// with its line, Problems the same by path within the camera ("main.transport").
type DecodeError struct {
	Problems []Problem
	err      error
}

func (e *DecodeError) Error() string { return e.err.Error() }

// ParseCamera decodes one camera (the keys of one entry of cameras, at the top level of
// the document) strictly, with defaults applied, not validated. source names the input
// in messages. Errors are *DecodeError.
func ParseCamera(data []byte, source string) (Camera, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if err == io.EOF {
			err = fmt.Errorf("%s: empty camera (want id, main and the other keys of a camera)", source)
		} else {
			err = syntaxError(source, err)
		}
		return Camera{}, &DecodeError{Problems: []Problem{{Message: err.Error()}}, err: err}
	}
	return decodeCamera(doc.Content[0], source)
}

// decodeCamera decodes a camera from its mapping node.
func decodeCamera(n *yaml.Node, source string) (Camera, error) {
	var cam Camera
	cam.setDefaults()
	w := walker{source: source}
	if isNull(n) {
		w.errorf(n, "", "empty camera (want id, main and the other keys of a camera)")
	} else {
		w.value(n, reflect.ValueOf(&cam).Elem(), "")
	}
	if len(w.errs) > 0 {
		return Camera{}, &DecodeError{Problems: w.problems, err: errors.Join(w.errs...)}
	}
	return cam, nil
}

// cameraIndex is the index of camera id in c, -1 if none.
func (c *Config) cameraIndex(id string) int {
	return slices.IndexFunc(c.Cameras, func(cam Camera) bool { return cam.ID == id })
}
