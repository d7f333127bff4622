package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/townwatch/townwatch/configs"
	"github.com/townwatch/townwatch/recorder"
)

// recorderCollector exposes the running cameras' recorders and retention at scrape time.
// Retention's series (stored, locked, deleted bytes) name every camera with footage, a
// removed one too: its footage stays until retention deletes it.
type recorderCollector struct {
	cams      *cameraRegistry
	retention *recorder.Retention
}

var (
	descRecordedBytes = prometheus.NewDesc("townwatch_recorded_bytes_total",
		"Bytes written to recording segments and made durable (fdatasync).", []string{"camera"}, nil)
	descRecordedFrames = prometheus.NewDesc("townwatch_recorded_frames_total",
		"Video frames written to recording segments and made durable.", []string{"camera"}, nil)
	descSegments = prometheus.NewDesc("townwatch_segments_total",
		"Recording segments started.", []string{"camera"}, nil)
	descGaps = prometheus.NewDesc("townwatch_recording_gaps_total",
		"Breaks in recording while running: reconnects, resyncs after dropped units, a full disk.", []string{"camera"}, nil)
	descLostSeconds = prometheus.NewDesc("townwatch_recording_lost_seconds_total",
		"Seconds the recorder should have recorded and did not (camera away, disk full, write errors, no keyframes); rises while it lasts.", []string{"camera"}, nil)
	descRecording = prometheus.NewDesc("townwatch_recorder_recording",
		"1 while the camera's recorder is writing, 0 otherwise (waiting for the camera, paused, off).", []string{"camera"}, nil)
	descPaused = prometheus.NewDesc("townwatch_recorder_paused",
		"1 while recording is paused because the disk is full or writes fail.", []string{"camera"}, nil)
	descStored = prometheus.NewDesc("townwatch_stored_bytes",
		"Bytes of the camera's footage on disk, as of the last retention sweep.", []string{"camera"}, nil)
	descLocked = prometheus.NewDesc("townwatch_locked_bytes",
		"Bytes of the camera's footage under an evidence lock.", []string{"camera"}, nil)
	descDeleted = prometheus.NewDesc("townwatch_retention_deleted_bytes_total",
		"Bytes deleted by retention, by reason (age, camera_quota, storage_quota, min_free).", []string{"camera", "reason"}, nil)
	descShortfall = prometheus.NewDesc("townwatch_retention_shortfall_seconds",
		"Seconds of record.retention the camera does not keep because footage inside it was deleted for space (storage.quota share, min_free, record.quota); 0 when it keeps its whole retention.", []string{"camera"}, nil)
	descPreRoll = prometheus.NewDesc("townwatch_recorder_preroll_bytes",
		"Bytes of pre-roll a motion-mode recorder holds in memory while waiting for motion.", []string{"camera"}, nil)
	descPreRollDrops = prometheus.NewDesc("townwatch_recorder_preroll_drops_total",
		"Times a motion-mode recorder's pre-roll hit its memory bound and lost its oldest footage.", []string{"camera"}, nil)
	descDiskFree = prometheus.NewDesc("townwatch_disk_free_bytes",
		"Free bytes on the filesystem holding storage.path.", nil, nil)
	descDiskTotal = prometheus.NewDesc("townwatch_disk_total_bytes",
		"Size of the filesystem holding storage.path.", nil, nil)
	descMinFree = prometheus.NewDesc("townwatch_disk_min_free_bytes",
		"storage.min_free in bytes on the filesystem holding storage.path: below it retention deletes the oldest footage, before its retention ends.", nil, nil)
	descHold = prometheus.NewDesc("townwatch_retention_hold",
		"1 while the mass-deletion guard holds deletions until `townwatch retention confirm`.", nil, nil)
)

func (c *recorderCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRecordedBytes, descRecordedFrames, descSegments, descGaps, descLostSeconds, descRecording,
		descPaused, descPreRoll, descPreRollDrops, descStored, descLocked, descDeleted, descShortfall, descDiskFree, descDiskTotal, descMinFree, descHold} {
		ch <- d
	}
}

func (c *recorderCollector) Collect(ch chan<- prometheus.Metric) {
	for _, u := range c.cams.units() {
		cam := u.id
		st := u.writer.Stats()
		ch <- prometheus.MustNewConstMetric(descRecordedBytes, prometheus.CounterValue, float64(st.RecordedBytes), cam)
		ch <- prometheus.MustNewConstMetric(descRecordedFrames, prometheus.CounterValue, float64(st.RecordedFrames), cam)
		ch <- prometheus.MustNewConstMetric(descSegments, prometheus.CounterValue, float64(st.Segments), cam)
		ch <- prometheus.MustNewConstMetric(descGaps, prometheus.CounterValue, float64(st.Gaps), cam)
		ch <- prometheus.MustNewConstMetric(descLostSeconds, prometheus.CounterValue, st.Lost.Seconds(), cam)
		ch <- prometheus.MustNewConstMetric(descRecording, prometheus.GaugeValue, boolValue(st.State == recorder.StateRecording), cam)
		paused := st.State == recorder.StatePaused || st.State == recorder.StateError
		ch <- prometheus.MustNewConstMetric(descPaused, prometheus.GaugeValue, boolValue(paused), cam)
		if u.config().Record.Mode == configs.RecordMotion {
			ch <- prometheus.MustNewConstMetric(descPreRoll, prometheus.GaugeValue, float64(st.PreRollBytes), cam)
			ch <- prometheus.MustNewConstMetric(descPreRollDrops, prometheus.CounterValue, float64(st.PreRollDrops), cam)
		}
	}
	rs := c.retention.Status()
	for cam, b := range rs.BytesByCamera {
		ch <- prometheus.MustNewConstMetric(descStored, prometheus.GaugeValue, float64(b), cam)
	}
	for cam, b := range rs.LockedBytes {
		ch <- prometheus.MustNewConstMetric(descLocked, prometheus.GaugeValue, float64(b), cam)
	}
	for k, b := range rs.DeletedBytes {
		ch <- prometheus.MustNewConstMetric(descDeleted, prometheus.CounterValue, float64(b), k.Camera, k.Reason)
	}
	for cam, sf := range rs.Shortfall {
		ch <- prometheus.MustNewConstMetric(descShortfall, prometheus.GaugeValue, sf.Short().Seconds(), cam)
	}
	ch <- prometheus.MustNewConstMetric(descDiskFree, prometheus.GaugeValue, float64(rs.DiskFree))
	ch <- prometheus.MustNewConstMetric(descDiskTotal, prometheus.GaugeValue, float64(rs.DiskTotal))
	ch <- prometheus.MustNewConstMetric(descMinFree, prometheus.GaugeValue, float64(rs.MinFree))
	ch <- prometheus.MustNewConstMetric(descHold, prometheus.GaugeValue, boolValue(rs.Hold))
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
