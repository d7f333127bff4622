package recorder

import (
	"encoding/binary"
	"slices"
)

// sample is one media sample of a fragment. Video samples keep the unit's NAL units as
// they are (shared, immutable) and are written length-prefixed straight into the fragment
// buffer: converting each access unit to AVCC first, and letting the MP4 library copy the
// samples into an mdat of its own, were half of the recorder's allocations and most of its
// GC cost at 16 cameras.
type sample struct {
	duration  uint32
	ptsOffset int32
	nonSync   bool
	nalus     [][]byte // video: written as 4-byte length + NAL unit each
	data      []byte   // audio: written as is
}

// size is the sample's size in the mdat.
func (s *sample) size() int {
	if s.nalus == nil {
		return len(s.data)
	}
	n := 0
	for _, nalu := range s.nalus {
		n += 4 + len(nalu)
	}
	return n
}

// fragmentTrack is one track's run of samples in a fragment.
type fragmentTrack struct {
	id       uint32
	baseTime uint64 // decode time of samples[0], in the track's timescale
	samples  []*sample
}

// Box sizes of the fixed parts of a fragment (ISO/IEC 14496-12).
const (
	boxHeader  = 8
	mfhdSize   = boxHeader + 4 + 4 // full box header, sequence number
	tfhdSize   = boxHeader + 4 + 4 // full box header, track id
	tfdtSize   = boxHeader + 4 + 8 // full box header, 64-bit base media decode time
	trunHeader = boxHeader + 4 + 4 + 4
)

// trun flags, as mediacommon writes them.
const (
	trunDataOffset      = 0x000001
	trunSampleDuration  = 0x000100
	trunSampleSize      = 0x000200
	trunSampleFlags     = 0x000400
	trunSampleCTSOffset = 0x000800
	tfhdDefaultBaseMoof = 0x020000
	sampleNonSync       = 1 << 16
)

// appendFragment appends one fragment (moof + mdat) to dst. The layout is byte for byte
// what mediacommon's fmp4.Part.Marshal produces (a test checks it), which the segment
// scanner, export and every player read.
func appendFragment(dst []byte, seq uint32, tracks []fragmentTrack) []byte {
	moofSize := boxHeader + mfhdSize
	mdatSize := boxHeader
	for _, t := range tracks {
		moofSize += boxHeader + tfhdSize + tfdtSize + trunHeader + len(t.samples)*4*entryFields(t.samples)
		for _, s := range t.samples {
			mdatSize += s.size()
		}
	}
	// One allocation at most, of the fragment's size: growing dst by appending would
	// allocate it several times over (the buffers are shared and dropped by the GC's pool).
	dst = slices.Grow(dst, moofSize+mdatSize)
	dst = appendBoxHeader(dst, moofSize, "moof")
	dst = appendBoxHeader(dst, mfhdSize, "mfhd")
	dst = binary.BigEndian.AppendUint32(dst, 0)
	dst = binary.BigEndian.AppendUint32(dst, seq)

	dataOffset := moofSize + boxHeader // first payload byte, relative to the moof
	for _, t := range tracks {
		fields := entryFields(t.samples)
		flags := trunFlags(t.samples)
		dst = appendBoxHeader(dst, boxHeader+tfhdSize+tfdtSize+trunHeader+len(t.samples)*4*fields, "traf")
		dst = appendBoxHeader(dst, tfhdSize, "tfhd")
		dst = binary.BigEndian.AppendUint32(dst, tfhdDefaultBaseMoof)
		dst = binary.BigEndian.AppendUint32(dst, t.id)
		dst = appendBoxHeader(dst, tfdtSize, "tfdt")
		dst = binary.BigEndian.AppendUint32(dst, 1<<24) // version 1: 64-bit time
		dst = binary.BigEndian.AppendUint64(dst, t.baseTime)
		dst = appendBoxHeader(dst, trunHeader+len(t.samples)*4*fields, "trun")
		dst = binary.BigEndian.AppendUint32(dst, 1<<24|flags) // version 1: signed offsets
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(t.samples)))
		dst = binary.BigEndian.AppendUint32(dst, uint32(dataOffset))
		for _, s := range t.samples {
			size := s.size()
			dataOffset += size
			dst = binary.BigEndian.AppendUint32(dst, s.duration)
			dst = binary.BigEndian.AppendUint32(dst, uint32(size))
			if flags&trunSampleFlags != 0 {
				var f uint32
				if s.nonSync {
					f = sampleNonSync
				}
				dst = binary.BigEndian.AppendUint32(dst, f)
			}
			if flags&trunSampleCTSOffset != 0 {
				dst = binary.BigEndian.AppendUint32(dst, uint32(s.ptsOffset))
			}
		}
	}
	dst = appendBoxHeader(dst, mdatSize, "mdat") // = dataOffset - moofSize: header + payloads
	for _, t := range tracks {
		for _, s := range t.samples {
			if s.nalus == nil {
				dst = append(dst, s.data...)
				continue
			}
			for _, nalu := range s.nalus {
				dst = binary.BigEndian.AppendUint32(dst, uint32(len(nalu)))
				dst = append(dst, nalu...)
			}
		}
	}
	return dst
}

// trunFlags are the trun flags for a run: sample flags only when a sample is not a sync
// sample, composition offsets only when one is not zero (as mediacommon decides).
func trunFlags(samples []*sample) uint32 {
	flags := uint32(trunDataOffset | trunSampleDuration | trunSampleSize)
	for _, s := range samples {
		if s.nonSync {
			flags |= trunSampleFlags
		}
		if s.ptsOffset != 0 {
			flags |= trunSampleCTSOffset
		}
	}
	return flags
}

// entryFields is the number of 32-bit fields per trun entry.
func entryFields(samples []*sample) int {
	flags := trunFlags(samples)
	n := 2
	if flags&trunSampleFlags != 0 {
		n++
	}
	if flags&trunSampleCTSOffset != 0 {
		n++
	}
	return n
}

func appendBoxHeader(dst []byte, size int, typ string) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(size))
	return append(dst, typ...)
}
