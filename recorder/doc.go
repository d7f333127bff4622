// Package recorder owns footage on disk: the segment Writer (one per recorded camera, main
// stream), crash recovery at start-up, Retention, and Export (the range reader behind
// `townwatch export`, later HTTP playback and evidence export). The SQLite index lives in
// recorder/catalog.
//
// # Files
//
// Segments are fragmented MP4 under <storage.path>/recordings/<camera>/<YYYY>/<MM>/<DD>/
// <start-UTC>.mp4, opened only through an os.Root on the storage path. Each fragment
// (moof+mdat) is written in one write and fdatasync'ed before the next one starts, so a
// crash or power loss loses at most the fragment in flight; Recover truncates a torn tail
// and indexes what is complete.
//
// Beside each segment, <start>.thumbs holds its scrub-preview thumbnails
// (Storage.AppendThumbnail); every removal of a segment file removes them first.
//
// A fragment is written when it spans fragmentTarget (1 s) of camera time, or when its
// first sample has waited fragmentTarget on the wall clock, or when it holds
// fragmentMaxBytes (8 MiB) or fragmentMaxSamples: a camera whose timestamps crawl (a
// wrong clock, a tick per frame) cannot keep footage in memory only, and what a crash
// loses stays about a second however the camera counts time. A sample's duration is known
// when the next one arrives, so the newest sample always waits for the next fragment;
// the decode times written always advance, so each fragment starts exactly where the
// previous one ended wherever the cut falls. Bookkeeping per sample is constant time.
//
// # Cameras that stop sending keyframes
//
// A segment starts at a keyframe and a camera that sends none can never be joined again.
// When no keyframe has come for four times the longest group of pictures seen in the
// session, at least 10 s and at most 60 s (60 s before a second keyframe gives a
// measure), measured on the units' capture times, the segment is closed and the Writer
// reports state no_keyframes with a reason (in /api/cameras); units are dropped, since
// they cannot be decoded without their keyframe, until the next keyframe opens a new
// segment after a counted gap.
//
// # What blocks and what is dropped
//
// The Writer reads the Hub through a deep queue (recorderQueue units, and at most
// ingest's per-Reader byte bound) so that a slow disk flush never makes it fall behind. If it does fall behind, the Hub drops units for it and
// it resumes at the next keyframe in a new segment marked GapBefore (counted in
// recording_gaps_total). When the disk is full the current segment is closed at its last
// complete fragment, recording pauses (state paused_disk_full) and Retention is asked to
// free space; recording resumes, in a new segment marked GapBefore, once space is back.
// Every such loss is logged, counted and visible in Status.
//
// A failing catalog (a damaged file, I/O errors; anything but a full disk) does not stop
// recording: the Writer records the segment without a row, keeps the state recording
// (with the trouble as its Reason), counts the failure (WriterStats.CatalogFailures) and
// logs it as an error. A segment that opened without a row is indexed when it closes if
// the catalog works again; otherwise the next start's Recover adopts the file.
//
// # Motion mode
//
// With record.mode motion the Writer reads the Hub as always but, while no event is going
// on, keeps a pre-roll in memory instead of writing (state waiting_motion): whole groups
// of pictures covering record.pre_roll plus detectionMargin plus one GOP (the detector's
// latency on keyframes), at most preRollMaxBytes. When that bound bites the oldest GOPs
// are dropped (counted in PreRollDrops), so the pre-roll gets shorter, never the camera's
// memory larger. MotionStarted and MotionEnded, called
// by the motion wiring, never block. An event's recording starts at the keyframe at or
// before its start minus pre_roll, with the footage's own times, and stops at the first
// keyframe at or after its end plus record.post_roll; overlapping events and one that
// starts during a post-roll make one recording. The time between events is not
// recorded by design: the next segment is marked GapBefore, but it is not counted as a
// recording gap.
package recorder
