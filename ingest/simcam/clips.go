package simcam

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/bits"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
)

// Clip names one of the bundled H.264 clips a simulated camera loops.
type Clip string

// The bundled clips. clips/README.md documents how they were made.
const (
	// ClipMotion is a street scene in which a car drives only during
	// MotionIntervals and is parked otherwise.
	ClipMotion Clip = "motion"
	// ClipStatic is a courtyard in which nothing moves; it carries only mild
	// temporal sensor noise.
	ClipStatic Clip = "static"
)

// FrameRate is the frame rate of every bundled clip, in frames per second,
// and the default rate of a clip file (CameraSpec.FPS).
const FrameRate = 25

// MaxFPS bounds CameraSpec.FPS: above what surveillance cameras send, and
// low enough that a frame still spans hundreds of RTP ticks.
const MaxFPS = 120

// Timing of the bundled clips; a camera computes its own from its FPS
// (camera.frameTime, camera.rtpOffset), which agrees at FrameRate.
const (
	// frameInterval is the wall-clock spacing of access units.
	frameInterval = time.Second / FrameRate
	// rtpClockRate is the RTP clock of H.264 (RFC 6184).
	rtpClockRate = 90000
	// rtpTicksPerFrame is exact (3600) because 90000 is a multiple of FrameRate.
	rtpTicksPerFrame = rtpClockRate / FrameRate
)

// Interval is a half-open span of time within one loop of a clip,
// [Start, End).
type Interval struct{ Start, End time.Duration }

// MotionIntervals is the ground truth for ClipMotion, as offsets from the
// start of each loop: the frame at offset t (frame k is at k/25 s) differs
// from the frame before it exactly when Start <= t < End for one of these.
// The car is parked at all other times, and the loop point shows no motion
// because the car ends each loop where it started. The second interval is
// deliberately slow (1 px per frame). Keep in step with MOTION_X in
// clips/generate.sh; TestClipMotionGroundTruth checks them.
var MotionIntervals = []Interval{
	{10 * time.Second, 18 * time.Second},
	{30 * time.Second, 35 * time.Second},
	{48 * time.Second, 55 * time.Second},
}

// ClipDuration is the length of one loop of c, or 0 if c is not a bundled clip.
func ClipDuration(c Clip) time.Duration {
	load, ok := clipLoaders[c]
	if !ok {
		return 0
	}
	cd, err := load()
	if err != nil {
		// Only a broken build can get here (the clips are embedded and
		// checked by TestClipsParse); New reports the same error.
		return 0
	}
	return time.Duration(len(cd.frames)) * frameInterval
}

//go:embed clips/*.h264
var clipFiles embed.FS

// clipLoaders parses each embedded clip once per process, on first use, so
// importing the package costs nothing and every camera shares the frames.
var clipLoaders = map[Clip]func() (*clipData, error){
	ClipMotion: sync.OnceValues(func() (*clipData, error) { return loadClip("clips/motion.h264") }),
	ClipStatic: sync.OnceValues(func() (*clipData, error) { return loadClip("clips/static.h264") }),
}

// clipData is a parsed clip. It is shared by all cameras and never mutated.
type clipData struct {
	sps, pps []byte
	frames   []accessUnit
}

// accessUnit is one coded picture with the parameter sets that precede it.
type accessUnit struct {
	nalus    [][]byte
	keyframe bool // contains an IDR slice, so decoding can start here
}

func loadClip(name string) (*clipData, error) {
	raw, err := clipFiles.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("simcam: read clip %s: %w", name, err)
	}
	cd, err := parseAnnexB(raw)
	if err != nil {
		return nil, fmt.Errorf("simcam: parse clip %s: %w", name, err)
	}
	return cd, nil
}

// loadFile reads and parses a clip file (CameraSpec.File).
func loadFile(path string) (*clipData, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("simcam: read file: %w", err) // *PathError names the file
	}
	cd, err := parseAnnexB(raw)
	if err != nil {
		return nil, fmt.Errorf("simcam: parse file %s: %w", path, err)
	}
	return cd, nil
}

// parseAnnexB splits a raw H.264 elementary stream into access units.
// A picture may span several slices (a slice with first_mb_in_slice 0
// starts the next one). B-frames are rejected, so decoding order is
// presentation order and every access unit is one frame interval long.
func parseAnnexB(raw []byte) (*clipData, error) {
	nalus, err := splitAnnexB(raw)
	if err != nil {
		return nil, err
	}

	cd := &clipData{}
	var cur accessUnit
	curHasPicture := false

	for _, nalu := range nalus {
		if len(nalu) == 0 {
			continue
		}
		typ := h264.NALUType(nalu[0] & 0x1f)

		// H.264 7.4.1.2.3: parameter sets, SEI and delimiters after a picture,
		// or a slice whose first_mb_in_slice is 0 (ue(v) 0 is the single bit
		// 1), start a new access unit.
		startsAU := false
		switch typ {
		case h264.NALUTypeAccessUnitDelimiter, h264.NALUTypeSPS, h264.NALUTypePPS, h264.NALUTypeSEI:
			startsAU = curHasPicture
		case h264.NALUTypeNonIDR, h264.NALUTypeIDR:
			startsAU = curHasPicture && len(nalu) > 1 && nalu[1]&0x80 != 0
		}
		if startsAU {
			cd.frames = append(cd.frames, cur)
			cur, curHasPicture = accessUnit{}, false
		}

		switch typ {
		case h264.NALUTypeAccessUnitDelimiter:
			// Dropped: RFC 6184 receivers do not need it and rtph264 frames
			// access units by the RTP marker bit.
			continue
		case h264.NALUTypeSPS:
			if cd.sps == nil {
				cd.sps = nalu
			}
		case h264.NALUTypePPS:
			if cd.pps == nil {
				cd.pps = nalu
			}
		case h264.NALUTypeIDR:
			cur.keyframe = true
			curHasPicture = true
		case h264.NALUTypeNonIDR:
			// Frames are sent in decoding order with linearly increasing
			// timestamps, which is presentation order only without B-frames.
			if isBSlice(nalu) {
				return nil, fmt.Errorf("B-frame at access unit %d: not supported (encode with -bf 0)", len(cd.frames))
			}
			curHasPicture = true
		}
		cur.nalus = append(cur.nalus, nalu)
	}
	if curHasPicture {
		cd.frames = append(cd.frames, cur)
	}

	switch {
	case cd.sps == nil || cd.pps == nil:
		return nil, errors.New("no SPS/PPS")
	case len(cd.frames) == 0:
		return nil, errors.New("no pictures")
	case !cd.frames[0].keyframe:
		// The loop restarts at frame 0; it must be decodable on its own.
		return nil, errors.New("first access unit is not an IDR")
	}
	var sps h264.SPS
	if err := sps.Unmarshal(cd.sps); err != nil {
		return nil, fmt.Errorf("SPS: %w", err)
	}
	return cd, nil
}

// splitAnnexB returns the NAL units of an Annex-B byte stream (H.264
// Annex B), without start codes or trailing zero bytes, as sub-slices of
// raw. Unlike h264.AnnexB.Unmarshal, meant for one access unit, it does not
// cap the total size (8 MiB), which a 1080p clip file exceeds.
func splitAnnexB(raw []byte) ([][]byte, error) {
	lead := len(raw) - len(bytes.TrimLeft(raw, "\x00"))
	switch {
	case lead == len(raw):
		return nil, h264.ErrAnnexBNoNALUs
	case lead < 2 || raw[lead] != 1:
		return nil, h264.ErrAnnexBNoInitialDelimiter
	}
	startCode := []byte{0, 0, 1}
	var nalus [][]byte
	for rest := raw[lead+1:]; ; {
		end := bytes.Index(rest, startCode)
		nalu := rest
		if end >= 0 {
			nalu = rest[:end]
		}
		// A NAL unit never ends in a zero byte (its RBSP ends in a stop
		// bit); zeros there belong to the stream: the zero_byte of a 4-byte
		// start code or trailing_zero_8bits.
		if nalu = bytes.TrimRight(nalu, "\x00"); len(nalu) > 0 {
			nalus = append(nalus, nalu)
		}
		if end < 0 {
			break
		}
		rest = rest[end+len(startCode):]
	}
	if len(nalus) == 0 {
		return nil, h264.ErrAnnexBNoNALUs
	}
	return nalus, nil
}

// isBSlice reports whether a coded slice NAL unit is a B slice: slice_type
// (H.264 7.3.3, the second ue(v) of the header) is 1 or 6. A header too
// short to tell is left for the decoder to judge, as the rest of the slice.
func isBSlice(nalu []byte) bool {
	// Both fields fit in the first bytes after the NAL header (slice_type
	// <= 9, first_mb_in_slice < 2^16 for any real picture); remove
	// emulation prevention from those only.
	hdr := h264.EmulationPreventionRemove(nalu[1:min(len(nalu), 16)])
	pos := 0
	if _, err := bits.ReadGolombUnsigned(hdr, &pos); err != nil { // first_mb_in_slice
		return false
	}
	typ, err := bits.ReadGolombUnsigned(hdr, &pos)
	return err == nil && typ%5 == 1
}
