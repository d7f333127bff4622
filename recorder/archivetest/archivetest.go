// Package archivetest builds recorded archives for tests and benchmarks: a catalog and a
// recordings folder as the recorder leaves them, hours of many cameras in seconds. One
// template segment is encoded with ffmpeg; every segment of the archive is a hard link to
// it (no disk cost) with a catalog row written from DescribeSegmentFile, so the player
// reads real fMP4 through the real playback API. Only tests and benchmarks import it.
package archivetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4/seekablebuffer"

	"github.com/townwatch/townwatch/recorder"
	"github.com/townwatch/townwatch/recorder/catalog"
)

// templateArgs encode the template: 1080p25 at 4 Mbit/s, GOP 2 s (no scene cuts, so every
// segment starts with a keyframe and keyframes fall every 50 frames), no B-frames (camera
// streams have none, and they would add an edit list), fragments of about 1 s. With
// frag_keyframe ffmpeg also cuts at every keyframe, so half the fragments start with one
// and half have none, as in the recorder's time-cut fragments.
var templateArgs = []string{"-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=25",
	"-c:v", "libx264", "-preset", "superfast", "-profile:v", "high", "-pix_fmt", "yuv420p",
	"-bf", "0", "-g", "50", "-keyint_min", "50", "-sc_threshold", "0",
	"-b:v", "4M", "-maxrate", "4M", "-bufsize", "4M",
	"-movflags", "+frag_keyframe+empty_moov+default_base_moof", "-frag_duration", "1000000", "-an"}

// Template is one encoded segment file every segment of an archive links to.
type Template struct {
	Path string
	File recorder.SegmentFile
}

// MakeTemplate returns a template segment of length (a whole number of GOPs, e.g. 60 s),
// encoding it with ffmpeg the first time. It is kept under os.TempDir by its encoding
// arguments, so later runs (and `go test -count=N`) reuse it; archives must be built on the
// same filesystem to hard-link it. The file is cut after its last fragment (ffmpeg's
// trailing mfra is not part of a recorded segment).
func MakeTemplate(ctx context.Context, length time.Duration) (Template, error) {
	args := append(append([]string{}, templateArgs...), "-t", fmt.Sprintf("%.3f", length.Seconds()))
	sum := sha256.Sum256([]byte(strings.Join(args, "\x00")))
	dir := filepath.Join(os.TempDir(), "townwatch-archivetest")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Template{}, err
	}
	path := filepath.Join(dir, hex.EncodeToString(sum[:8])+".mp4")
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		if err := encode(ctx, args, path); err != nil {
			return Template{}, err
		}
	}
	f, err := os.Open(path)
	if err != nil {
		return Template{}, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return Template{}, err
	}
	desc, err := recorder.DescribeSegmentFile(f, info.Size())
	if err != nil {
		return Template{}, fmt.Errorf("template %s: %w", path, err)
	}
	if desc.Bytes != info.Size() {
		return Template{}, fmt.Errorf("template %s: %d bytes after the last fragment", path, info.Size()-desc.Bytes)
	}
	return Template{Path: path, File: desc}, nil
}

// encode runs ffmpeg into a temporary file, cuts it after its last fragment and renames
// it into place, so a run that is killed never leaves a half template to be reused.
func encode(ctx context.Context, args []string, path string) error {
	tmp := path + fmt.Sprintf(".%d.tmp.mp4", os.Getpid())
	defer os.Remove(tmp)
	cmd := exec.CommandContext(ctx, "ffmpeg", append(append([]string{"-nostdin", "-v", "error", "-y"}, args...), tmp)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("ffmpeg: %w: %s", err, out)
	}
	raw, err := os.ReadFile(tmp)
	if err != nil {
		return err
	}
	fixed, err := flagKeyframes(raw)
	if err != nil {
		return err
	}
	desc, err := recorder.DescribeSegmentFile(bytes.NewReader(fixed), int64(len(fixed)))
	if err != nil {
		return fmt.Errorf("ffmpeg's output is not a segment townwatch records: %w", err)
	}
	// 0600 as the recorder's files: footage is personal data.
	if err := os.WriteFile(tmp, fixed[:desc.Bytes], 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// flagKeyframes rewrites ffmpeg's fragments the way the recorder writes them. ffmpeg marks
// a fragment's keyframe only in the trun's first_sample_flags, which mediacommon (and so
// the recorder's fragment index) does not read; the recorder flags every sample from its
// bitstream. The init is kept as it is, boxes after the last fragment (mfra) are dropped.
func flagKeyframes(file []byte) ([]byte, error) {
	var out seekablebuffer.Buffer
	for off := 0; off+8 <= len(file); {
		size := int(binary.BigEndian.Uint32(file[off:]))
		typ := string(file[off+4 : off+8])
		if size < 8 || off+size > len(file) {
			return nil, fmt.Errorf("box %q at %d runs past the end", typ, off)
		}
		switch typ {
		case "ftyp", "moov":
			out.Write(file[off : off+size])
		case "moof":
			mdatSize := 0
			if off+size+8 <= len(file) {
				mdatSize = int(binary.BigEndian.Uint32(file[off+size:]))
			}
			if mdatSize < 8 || off+size+mdatSize > len(file) {
				return nil, fmt.Errorf("moof at %d has no complete mdat", off)
			}
			var parts fmp4.Parts
			if err := parts.Unmarshal(file[off : off+size+mdatSize]); err != nil {
				return nil, fmt.Errorf("fragment at %d: %w", off, err)
			}
			for _, part := range parts {
				for _, t := range part.Tracks {
					for _, smp := range t.Samples {
						au, err := smp.GetH264()
						if err != nil {
							return nil, fmt.Errorf("fragment at %d: %w", off, err)
						}
						smp.IsNonSyncSample = !h264.IsRandomAccess(au)
					}
				}
				if err := part.Marshal(&out); err != nil {
					return nil, err
				}
			}
			size += mdatSize
		}
		off += size
	}
	return out.Bytes(), nil
}

// Outage is a hole in one camera's recording: the first segment starting at or after At
// (and every later one) starts Length later, marked gap_before, as after a camera that
// dropped off the network.
type Outage struct {
	Camera string
	At     time.Time
	Length time.Duration
}

// Spec describes an archive: Cameras each recorded from From for Duration in segments of
// the template's length.
type Spec struct {
	Dir      string // the storage directory (recorder.OpenStorage), on the template's filesystem
	Catalog  *catalog.Catalog
	Template Template
	Cameras  []string
	From     time.Time
	Duration time.Duration
	Outages  []Outage
	// Copy writes every segment as a copy of the template instead of a hard link, for a
	// benchmark whose reads must come from the disk: hard links are one file, read once
	// and then served from the page cache.
	Copy bool
}

// Build writes the archive: for every segment a hard link (or a copy) at
// recorder.SegmentPath and an open-then-closed catalog row with the template's fragment
// index and digest. It returns the catalog rows per camera, in time order.
func Build(ctx context.Context, s Spec) (map[string][]catalog.Segment, error) {
	st, err := recorder.OpenStorage(s.Dir) // makes the folder as the recorder has it
	if err != nil {
		return nil, err
	}
	st.Close()
	tf := s.Template.File
	if tf.Duration <= 0 {
		return nil, errors.New("archivetest: template has no duration")
	}
	out := map[string][]catalog.Segment{}
	end := s.From.Add(s.Duration)
	for _, cam := range s.Cameras {
		gap := false
		outages := camOutages(s.Outages, cam)
		for at := s.From; at.Before(end); {
			if len(outages) > 0 && !at.Before(outages[0].At) {
				at, gap, outages = at.Add(outages[0].Length), true, outages[1:]
				continue
			}
			seg := catalog.Segment{Camera: cam, Stream: "main", Start: at, Path: recorder.SegmentPath(cam, at),
				Codec: tf.Codec, MIMECodecs: tf.MIMECodecs, Width: tf.Width, Height: tf.Height, Audio: tf.Audio, GapBefore: gap}
			if err := place(s.Template.Path, filepath.Join(s.Dir, filepath.FromSlash(seg.Path)), s.Copy); err != nil {
				return nil, err
			}
			id, err := s.Catalog.CreateSegment(ctx, seg)
			if err != nil {
				return nil, err
			}
			seg.End = at.Add(tf.Duration)
			if err := s.Catalog.CloseSegment(ctx, id, seg.End, tf.Bytes, tf.Frames, tf.SHA256, tf.Fragments); err != nil {
				return nil, err
			}
			seg.ID, seg.Bytes, seg.Frames, seg.SHA256 = id, tf.Bytes, tf.Frames, tf.SHA256
			out[cam] = append(out[cam], seg)
			at, gap = seg.End, false
		}
	}
	return out, nil
}

func camOutages(all []Outage, cam string) []Outage {
	var out []Outage
	for _, o := range all {
		if o.Camera == cam {
			out = append(out, o)
		}
	}
	return out
}

// place hard-links the template to dst, or copies it when asked to; across filesystems
// (EXDEV) it copies too, which costs the disk the link saves but still works.
func place(src, dst string, copyFile bool) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	if !copyFile {
		err := os.Link(src, dst)
		if !errors.Is(err, syscall.EXDEV) {
			return err
		}
	}
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o600)
}
