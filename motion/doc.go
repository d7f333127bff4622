// Package motion owns motion detection: one Analyzer per camera with motion.enabled reads
// the camera's analysis stream from the ingest Hub (the sub stream when configured, else the
// main stream's keyframes), decodes it with motion/decode into small gray frames, finds
// motion in them with gocv, and reports events (start and end, with peak score, bounding
// box, zones hit and a JPEG snapshot) through a callback. Storing events is the caller's.
// It also makes the scrub-preview thumbnails (thumbnail.go): 240 px JPEGs of analysed frames
// every 10 s (2 s during an event), and, with KeyframeThumbnails, of one main-stream keyframe
// every 10 s for a camera without motion detection, decoded on still decoders the cameras
// share (at most two, kept while any KeyframeThumbnails runs).
//
// # Detection
//
// Per analysed frame (at most motion.fps, default 5): Gaussian blur, absolute difference
// against a running average of past frames (time constant backgroundTau, 1.2 s) matched to
// the frame's mean and contrast first (so that slow lighting and exposure changes cancel
// out), a threshold from motion.sensitivity raised to 8 times the camera's noise level
// (the mean difference of the pixels that did not change) when the picture is noisy, a
// 3×3 opening against specks, then the moving pixels inside the zones (default the whole
// frame) and outside the masks are counted. A frame moves when they reach motion.min_area
// percent of the frame (default 0.1: a distant pedestrian is 0.25); its score is their
// share of the counted area. An event starts after 3 consecutive moving frames (2 when
// only keyframes are analysed) with the first moving frame's time as its start, and ends
// motion.cooldown after the last moving frame, with that frame's time as its end. A change
// of at least 40 % of the picture at once, or a jump of 12 gray levels in mean brightness,
// is a global change (lights, infrared switch, exposure): the background is learnt again
// and motion is ignored for a second. Detection rate and false events per test clip, and
// why: docs/motion-detection.md (TestSensitivityClips).
//
// Running-average differencing was chosen over OpenCV's MOG2 by measuring both on the
// bundled clips (BenchmarkBackgroundModels: 3 loops of the motion clip and of the static
// clip, 320 px, 5 fps, 2 shared cores): running average found 100 % of the true intervals
// with 0 false events at 316 µs of analysis per frame; MOG2 with a 100-frame history also
// 100 % and 0 false at 932 µs; MOG2 with a 25-frame history (to forget parked objects as
// fast) only 67 % (it missed the slow interval). Whole-camera figures, decoding included
// (BenchmarkAnalyzeSub, BenchmarkAnalyzeMainKeyframes): a 640×360 15 fps sub stream at
// 5 fps costs about 1.1 % of a core, a 1080p 4 Mbit/s main stream's keyframes about 0.5 %.
//
// # Blocking and load
//
// NewAnalyzer does no I/O. Run blocks until its context is done, starts no goroutine and
// survives reconnects (Hub.Wait, read until the Stream ends, wait again); it ends an ongoing
// event when its Stream ends and when it returns. OnEvent runs on Run's goroutine; while it
// blocks, units queue in the motion Reader (readerQueue, about 2 s). When that queue is
// full the Reader drops units and resumes at the next keyframe: frames are lost to analysis,
// the run of moving frames towards a new event restarts, an ongoing event continues.
// Frames beyond motion.fps are decoded without analysis (the sub stream) or, keyframes-only,
// not decoded at all. Corrupt units are counted (Stats.DecodeErrors) and skipped.
// Reconfigure, from any goroutine, hands new zones, masks and tuning to a running analyser,
// which takes them up at its next unit on Run's goroutine, keeping its background and its
// ongoing event.
package motion
