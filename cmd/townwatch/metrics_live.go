package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/townwatch/townwatch/viewer/live"
)

// liveCollector exposes the live view's sessions per camera at scrape time.
type liveCollector struct {
	cams *cameraRegistry
	live *live.Manager
}

var (
	descWebRTCSessions = prometheus.NewDesc("townwatch_webrtc_sessions",
		"Live-view (WebRTC) sessions open now.", []string{"camera"}, nil)
	descWebRTCSessionsTotal = prometheus.NewDesc("townwatch_webrtc_sessions_total",
		"Live-view sessions accepted since start.", []string{"camera"}, nil)
	descWebRTCSent = prometheus.NewDesc("townwatch_webrtc_sent_bytes_total",
		"RTP bytes sent to live viewers (before encryption).", []string{"camera"}, nil)
	descWebRTCDropped = prometheus.NewDesc("townwatch_webrtc_dropped_packets_total",
		"RTP packets dropped for live viewers that could not keep up (only theirs).", []string{"camera"}, nil)
)

func (c *liveCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descWebRTCSessions, descWebRTCSessionsTotal, descWebRTCSent, descWebRTCDropped} {
		ch <- d
	}
}

func (c *liveCollector) Collect(ch chan<- prometheus.Metric) {
	for _, cam := range c.cams.ids() {
		st := c.live.Stats(cam)
		ch <- prometheus.MustNewConstMetric(descWebRTCSessions, prometheus.GaugeValue, float64(st.Sessions), cam)
		ch <- prometheus.MustNewConstMetric(descWebRTCSessionsTotal, prometheus.CounterValue, float64(st.SessionsTotal), cam)
		ch <- prometheus.MustNewConstMetric(descWebRTCSent, prometheus.CounterValue, float64(st.SentBytes), cam)
		ch <- prometheus.MustNewConstMetric(descWebRTCDropped, prometheus.CounterValue, float64(st.DroppedPackets), cam)
	}
}
