// Package recorder owns footage on disk: the segment Writer (one per recorded camera, main
// stream), crash recovery at start-up, Retention, and Export (the range reader behind
// `townwatch export`, later HTTP playback and evidence export). The SQLite index lives in
// recorder/catalog.
//
// # Files
//
// Segments are fragmented MP4 under <storage.path>/recordings/<camera>/<YYYY>/<MM>/<DD>/
// <start-UTC>.mp4, opened only through an os.Root on the storage path. Each ~1 s fragment
// (moof+mdat) is written in one write and fdatasync'ed before the next one starts, so a
// crash or power loss loses at most the fragment in flight; Recover truncates a torn tail
// and indexes what is complete.
//
// # What blocks and what is dropped
//
// The Writer reads the Hub through a deep queue (recorderQueue units) so that a slow disk
// flush never makes it fall behind. If it does fall behind, the Hub drops units for it and
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
