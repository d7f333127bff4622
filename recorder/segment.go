package recorder

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"math"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/g711"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4/seekablebuffer"

	"github.com/townwatch/townwatch/ingest"
	"github.com/townwatch/townwatch/recorder/catalog"
)

// videoTimescale is the MP4 timescale of video tracks: RTP's 90 kHz video clock, so that
// camera timestamps convert without rounding.
const videoTimescale = 90000

// segment is one open segment file: what has been written and fsynced, the SHA-256 of it,
// and the fragment being assembled.
type segment struct {
	id       int64           // catalog row; 0 while recorded without one (the catalog failed)
	row      catalog.Segment // the row as created, for indexing it late
	path     string
	file     *os.File
	sum      hash.Hash
	bytes    int64 // bytes written and synced; the file is never longer than this for long
	start    time.Time
	startDTS time.Duration // decode time of the first video unit
	params   *ingest.VideoParams
	seq      uint32
	frames   int64 // video samples written
	// initBytes is the size of the file's header (the MP4 init); cataloged is the size
	// the catalog row had at its last successful write. Both say what to set aside when
	// the camera's lease is lost (recording.setAside).
	initBytes, cataloged int64
	// index lists the fragments written, for the catalog row when the segment closes and,
	// while it is open, for playback (Writer.OpenSegment). Entries are never changed once
	// appended, so a published prefix can be read while the writer appends.
	index []catalog.Fragment

	video *trackWriter
	audio *trackWriter // nil when audio is not recorded

	wallDrift    bool // the camera's wall mapping moved; cut at the next keyframe
	lastProgress time.Time
	fragSince    time.Time // wall clock when the current fragment's first sample arrived; zero when empty
}

// fragmentBuffers are the buffers fragments are assembled in, shared by every camera's
// segments. A buffer is in use only from assembly to the end of its write and fdatasync,
// a few milliseconds a second per camera, so a handful serve any number of cameras; one
// kept per segment, as before, was 8 MB of the heap at 16 cameras of 4 Mbit/s (half a
// second of video each), and with Go's default GC setting twice that of resident memory.
// Reused rather than allocated per fragment, so steady state allocates nothing here.
var fragmentBuffers = sync.Pool{New: func() any { return new([]byte) }}

// initFor builds the MP4 init for a video unit's parameters and, optionally, an audio
// track. It reports whether the audio track can be stored.
func initFor(u *ingest.Unit, audio *ingest.Track) (*fmp4.Init, bool, error) {
	var codec fmp4.Codec
	switch u.Track.Codec {
	case ingest.CodecH264:
		codec = &fmp4.CodecH264{SPS: u.Params.SPS, PPS: u.Params.PPS}
	case ingest.CodecH265:
		codec = &fmp4.CodecH265{VPS: u.Params.VPS, SPS: u.Params.SPS, PPS: u.Params.PPS}
	default:
		return nil, false, fmt.Errorf("cannot record video codec %s", u.Track.Codec)
	}
	init := &fmp4.Init{Tracks: []*fmp4.InitTrack{{ID: 1, TimeScale: videoTimescale, Codec: codec}}}
	if audio == nil {
		return init, false, nil
	}
	var ac fmp4.Codec
	switch f := audio.Format.(type) {
	case *format.MPEG4Audio:
		ac = &fmp4.CodecMPEG4Audio{Config: *f.Config}
	case *format.Opus:
		ac = &fmp4.CodecOpus{ChannelCount: f.ChannelCount}
	case *format.G711:
		// MP4 has no G.711 sample entry that browsers play; store it as the 16-bit PCM it
		// decodes to, which every player understands.
		ac = &fmp4.CodecLPCM{LittleEndian: false, BitDepth: 16, SampleRate: f.SampleRate, ChannelCount: f.ChannelCount}
	default:
		return init, false, nil
	}
	init.Tracks = append(init.Tracks, &fmp4.InitTrack{ID: 2, TimeScale: uint32(audio.ClockRate), Codec: ac})
	return init, true, nil
}

// writeInit writes the init and syncs it.
func (s *segment) writeInit(init *fmp4.Init) error {
	var buf seekablebuffer.Buffer
	if err := init.Marshal(&buf); err != nil {
		return fmt.Errorf("marshal init: %w", err)
	}
	return s.write(buf.Bytes())
}

// write appends b to the file, makes it durable and adds it to the hash. On error the file
// is cut back to what was durable before, so that it ends on a complete fragment.
func (s *segment) write(b []byte) error {
	if _, err := s.file.Write(b); err != nil {
		s.rollback()
		return err
	}
	if err := syscall.Fdatasync(int(s.file.Fd())); err != nil {
		s.rollback()
		return fmt.Errorf("fdatasync: %w", err)
	}
	s.sum.Write(b)
	s.bytes += int64(len(b))
	return nil
}

// rollback drops a partly written fragment. If even that fails, Recover truncates the
// torn tail at the next start.
func (s *segment) rollback() {
	if s.file.Truncate(s.bytes) == nil {
		s.file.Seek(s.bytes, 0)
	}
}

// addVideo adds a video unit; its NAL units are referenced, not copied, until the
// fragment is written.
func (s *segment) addVideo(u *ingest.Unit) {
	// Both times are converted from the same origin so that rounding cannot make a
	// composition offset negative.
	dts := ticks(u.DTS-s.startDTS, videoTimescale)
	ptsOffset := int32(min(max(int64(ticks(u.PTS-s.startDTS, videoTimescale))-int64(dts), math.MinInt32), math.MaxInt32))
	s.video.push(&sample{ptsOffset: ptsOffset, nonSync: !u.Key, nalus: u.Payload}, dts)
}

// addAudio adds an audio unit. Audio before the segment's first video frame is dropped:
// the segment starts at its keyframe.
func (s *segment) addAudio(u *ingest.Unit) {
	if s.audio == nil || u.PTS < s.startDTS {
		return
	}
	dts := ticks(u.PTS-s.startDTS, s.audio.timescale)
	switch f := u.Track.Format.(type) {
	case *format.MPEG4Audio:
		// One RTP packet may carry several AAC frames of 1024 samples each.
		for i, au := range u.Payload {
			s.audio.push(&sample{data: au}, dts+uint64(i)*1024)
		}
	case *format.G711:
		for _, p := range u.Payload {
			var pcm []byte
			if f.MULaw {
				pcm = g711.DecodeMulaw(p)
			} else {
				pcm = g711.DecodeAlaw(p)
			}
			s.audio.push(&sample{data: pcm}, dts)
			dts += uint64(len(p) / max(f.ChannelCount, 1))
		}
	default:
		for _, p := range u.Payload {
			s.audio.push(&sample{data: p}, dts)
		}
	}
}

// fragmentDue reports whether the current fragment is to be written now. now is the wall
// clock. The camera's timestamps alone cannot decide it: a camera whose clock runs slow
// (or advances a tick per frame) would keep a fragment open, and footage in memory only,
// for as long as it liked. So a fragment is also written once its first sample has waited
// fragmentTarget on the wall clock, or once it holds fragmentMaxBytes or
// fragmentMaxSamples, whatever the camera's timestamps say.
func (s *segment) fragmentDue(now time.Time) bool {
	if s.video.fragmentDuration() >= fragmentTarget || s.fragmentBytes() >= fragmentMaxBytes ||
		len(s.video.samples) >= fragmentMaxSamples {
		return true
	}
	if s.audio != nil && len(s.audio.samples) >= fragmentMaxSamples {
		return true
	}
	return !s.fragSince.IsZero() && now.Sub(s.fragSince) >= fragmentTarget
}

// fragmentBytes is the size of the completed samples of the current fragment.
func (s *segment) fragmentBytes() int {
	n := s.video.bytes
	if s.audio != nil {
		n += s.audio.bytes
	}
	return n
}

// received notes that a sample was added at now: the fragment's age counts from its first.
func (s *segment) received(now time.Time) {
	if s.fragSince.IsZero() && (s.video.pending != nil || s.audio != nil && s.audio.pending != nil) {
		s.fragSince = now
	}
}

// flush writes the current fragment (all tracks' completed samples) and syncs it. now is
// the wall clock: the samples still pending (their durations unknown until the next one
// arrives) start the next fragment's age. Their decode times are where the written
// fragment's durations end, so the file's timeline has no hole or overlap wherever the
// cut falls.
func (s *segment) flush(now time.Time) (frames int, err error) {
	var tracks []fragmentTrack
	v, videoEnd, withVideo := s.video.take()
	if withVideo {
		tracks = append(tracks, v)
		frames = len(v.samples)
	}
	var audioEnd uint64
	if s.audio != nil {
		var a fragmentTrack
		var ok bool
		if a, audioEnd, ok = s.audio.take(); ok {
			tracks = append(tracks, a)
		}
	}
	if len(tracks) == 0 {
		return 0, nil
	}
	s.fragSince = time.Time{}
	if s.video.pending != nil || (s.audio != nil && s.audio.pending != nil) {
		s.fragSince = now
	}
	s.seq++
	buf := fragmentBuffers.Get().(*[]byte)
	frag := appendFragment((*buf)[:0], s.seq, tracks)
	offset := s.bytes
	err = s.write(frag) // write neither keeps frag nor hands it on: it can go back at once
	*buf = frag[:0]
	fragmentBuffers.Put(buf)
	if err != nil {
		return 0, err // written ends stay where the file ends: the catalog must not claim more
	}
	entry := catalog.Fragment{Offset: offset, Length: int64(len(frag)), Keyframe: -1,
		Start: mediaDuration(s.video.written, videoTimescale)}
	if withVideo {
		entry.Start = mediaDuration(v.baseTime, videoTimescale)
		entry.Duration = mediaDuration(videoEnd, videoTimescale) - entry.Start
		entry.Keyframe = firstKeyframe(v)
		s.video.written = videoEnd
	}
	s.index = append(s.index, entry)
	if s.audio != nil && audioEnd > 0 {
		s.audio.written = audioEnd
	}
	s.frames += int64(frames)
	return frames, nil
}

// firstKeyframe is the decode time of a video fragment track's first sync sample, -1 if it
// has none.
func firstKeyframe(t fragmentTrack) time.Duration {
	dts := t.baseTime
	for _, smp := range t.samples {
		if !smp.nonSync {
			return mediaDuration(dts, videoTimescale)
		}
		dts += uint64(smp.duration)
	}
	return -1
}

// end is the wall-clock end of what has been written.
func (s *segment) end() time.Time {
	return s.start.Add(time.Duration(s.video.written * uint64(time.Second) / videoTimescale))
}

// sha256 is the hex digest of the bytes written.
func (s *segment) sha256() string { return hex.EncodeToString(s.sum.Sum(nil)) }

func newSegment() *segment {
	return &segment{sum: sha256.New(), video: &trackWriter{id: 1, timescale: videoTimescale}}
}
