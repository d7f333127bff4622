// Package decode turns a camera's H.264/H.265 access units (ingest.Unit) into small gray
// pictures for motion analysis, and the last picture into a colour snapshot: a thin cgo wrapper
// over Debian's libavcodec and libswscale (FFmpeg 5.1).
//
// # What it owns, what blocks, what is dropped
//
// A Decoder owns one single-threaded libavcodec decoder and its swscale contexts, all C memory
// that Close frees (there is no finalizer). It starts no goroutine. Decode and Snapshot block
// their caller for the CPU time they take (on the 2-core test machine about 0.6 ms for a
// 640×360 picture and 9–12 ms for a 1080p keyframe) and keep nothing queued, so nothing is
// dropped here: the caller, motion's analyser on its own Reader, decides what to feed.
//
// # Pictures
//
// Analysis pictures are the luma plane as coded, area-scaled to the analysis width (320 px by
// default, height from the aspect ratio, rounded to even) straight into the gocv Mat's memory.
// Luma is not range-expanded: most cameras code 16–235, and thresholds must allow for that.
// Pictures come out in display order as soon as they are decoded (AV_CODEC_FLAG_LOW_DELAY;
// a stream with B-frames delays them by its reordering depth).
//
// Cheaper decoding: a unit fed with analyse false skips non-reference pictures, which no later
// picture needs, so analysed pictures stay bit-exact with a full decode. Skipping the loop
// filter as well was measured and rejected for analysis: on the 15 fps sub stream analysed at
// 5 fps it saved about 7 % of decode time but drifted analysed pictures by 0.18 gray levels on
// average (0.36 at worst) through each GOP. A still decoder (NewStill: keyframes decoded each
// on its own for a thumbnail) does skip it, since nothing is predicted from its pictures: it
// saves about a tenth of a 1080p keyframe's decoding and moves the 240 px thumbnail by 0.01
// levels. A still decoder is also meant to be reused across keyframes, and cameras: a fresh
// one per keyframe spent about as much CPU allocating and zeroing its tables and picture
// pools (page faults included) as decoding the keyframe. Measured cost (BenchmarkDecodeSub, BenchmarkDecodeMainKeyframes, decode and
// scaling, on a 2-core machine with a load of 4–6): 0.8–1.1 % of a core for a 640×360 15 fps
// sub stream analysed at 5 fps, 0.47–0.60 % for the keyframes of a 1080p 4 Mbit/s stream
// with a 2 s GOP, where ffmpeg's own command line spends the same per keyframe.
//
// # Bad input
//
// A unit that is empty, of another codec, larger than 32 MiB, contains a start code inside a
// NAL unit, makes libavcodec report an error (returned code or logged message, which this
// package captures instead of printing) or yields a concealed picture is an error: counted in
// Stats, and the decoder then skips units until the next keyframe, where it starts on a fresh
// codec context, because pictures predicted from a damaged one show smeared blocks that would
// read as motion. A keyframe also starts a fresh context when its parameter sets differ from
// the previous ones (a resolution change) or the decoder's reordering delay grew, which
// libavcodec never undoes by itself. Units before the first keyframe are skipped, counted but
// not errors.
package decode
