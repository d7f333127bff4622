package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/townwatch/townwatch/ingest"
)

// ingestCollector exposes every running camera's ingest state at scrape time, read from
// the Sources' atomic counters and the Hub's drop counters. The only label is camera. The
// cameras are the registry's at the scrape, so a removed camera's series are gone.
type ingestCollector struct {
	cams *cameraRegistry
	hub  *ingest.Hub
}

var (
	descUp = prometheus.NewDesc("townwatch_camera_up",
		"1 when the camera's main stream is streaming, 0 otherwise.", []string{"camera"}, nil)
	descSubUp = prometheus.NewDesc("townwatch_camera_sub_up",
		"1 when the camera's sub stream is streaming, 0 otherwise (only cameras with a sub stream).", []string{"camera"}, nil)
	descReconnects = prometheus.NewDesc("townwatch_camera_reconnects_total",
		"RTSP sessions started after the first, main and sub stream together.", []string{"camera"}, nil)
	descBytes = prometheus.NewDesc("townwatch_camera_received_bytes_total",
		"Media payload bytes received and published, main and sub stream together.", []string{"camera"}, nil)
	descFrames = prometheus.NewDesc("townwatch_camera_received_frames_total",
		"Video access units received and published, main and sub stream together.", []string{"camera"}, nil)
	descLost = prometheus.NewDesc("townwatch_camera_lost_packets_total",
		"RTP packets lost between camera and townwatch.", []string{"camera"}, nil)
	descDecodeErrors = prometheus.NewDesc("townwatch_camera_decode_errors_total",
		"Units that could not be depacketized or timed and were not published.", []string{"camera"}, nil)
	descPanics = prometheus.NewDesc("townwatch_camera_session_panics_total",
		"Camera sessions ended by a recovered panic while reading the stream (a townwatch bug to report); the camera reconnected.", []string{"camera"}, nil)
	descLastFrame = prometheus.NewDesc("townwatch_camera_last_frame_timestamp_seconds",
		"Unix time of the last video frame received on the main stream.", []string{"camera"}, nil)
)

// Describe sends nothing: the per-consumer drop metrics are named after consumers that
// appear at run time, which makes this an unchecked collector.
func (c *ingestCollector) Describe(chan<- *prometheus.Desc) {}

func (c *ingestCollector) Collect(ch chan<- prometheus.Metric) {
	type totals struct{ reconnects, bytes, frames, lost, decodeErrs, panics uint64 }
	perCamera := map[string]*totals{}
	var order []string
	var sources []*ingest.Source
	for _, u := range c.cams.units() {
		sources = append(sources, u.sources()...)
	}
	for _, src := range sources {
		st := src.Status()
		t, ok := perCamera[st.Camera]
		if !ok {
			t = &totals{}
			perCamera[st.Camera] = t
			order = append(order, st.Camera)
		}
		t.reconnects += st.Reconnects
		t.bytes += st.ReceivedBytes
		t.frames += st.ReceivedFrames
		t.lost += st.LostPackets
		t.decodeErrs += st.DecodeErrors
		t.panics += st.Panics

		up := boolValue(st.State == ingest.StateStreaming)
		if st.Stream == ingest.StreamSub {
			ch <- prometheus.MustNewConstMetric(descSubUp, prometheus.GaugeValue, up, st.Camera)
			continue
		}
		ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, up, st.Camera)
		last := 0.0
		if !st.LastFrame.IsZero() {
			last = float64(st.LastFrame.UnixNano()) / 1e9
		}
		ch <- prometheus.MustNewConstMetric(descLastFrame, prometheus.GaugeValue, last, st.Camera)
	}
	for _, cam := range order {
		t := perCamera[cam]
		ch <- prometheus.MustNewConstMetric(descReconnects, prometheus.CounterValue, float64(t.reconnects), cam)
		ch <- prometheus.MustNewConstMetric(descBytes, prometheus.CounterValue, float64(t.bytes), cam)
		ch <- prometheus.MustNewConstMetric(descFrames, prometheus.CounterValue, float64(t.frames), cam)
		ch <- prometheus.MustNewConstMetric(descLost, prometheus.CounterValue, float64(t.lost), cam)
		ch <- prometheus.MustNewConstMetric(descDecodeErrors, prometheus.CounterValue, float64(t.decodeErrs), cam)
		ch <- prometheus.MustNewConstMetric(descPanics, prometheus.CounterValue, float64(t.panics), cam)
	}
	for _, d := range c.hub.DropCounts() {
		if perCamera[d.Camera] == nil {
			continue // a removed camera's: the Hub keeps its counters for a return
		}
		desc := prometheus.NewDesc("townwatch_"+d.Consumer+"_dropped_units_total",
			"Units the "+d.Consumer+" dropped because it fell behind (it resumes at the next keyframe).",
			[]string{"camera"}, nil)
		m, err := prometheus.NewConstMetric(desc, prometheus.CounterValue, float64(d.Units), d.Camera)
		if err != nil { // a consumer name that is not a valid metric name: show it at scrape
			m = prometheus.NewInvalidMetric(desc, err)
		}
		ch <- m
	}
}
