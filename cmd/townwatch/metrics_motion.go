package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/townwatch/townwatch/motion/report"
)

// motionCollector exposes every analysed camera's motion detection at scrape time.
type motionCollector struct {
	cams  *cameraRegistry
	stats func(camera string) report.Stats
}

var (
	descDecodedFrames = prometheus.NewDesc("townwatch_motion_decoded_frames_total",
		"Frames decoded for motion detection (analysed or needed as references).", []string{"camera"}, nil)
	descAnalyzedFrames = prometheus.NewDesc("townwatch_motion_analyzed_frames_total",
		"Frames motion detection looked at.", []string{"camera"}, nil)
	descMotionDecodeErrors = prometheus.NewDesc("townwatch_motion_decode_errors_total",
		"Access units the motion decoder rejected (corrupt or truncated) and skipped.", []string{"camera"}, nil)
	descMotionEvents = prometheus.NewDesc("townwatch_motion_events_total",
		"Motion events started.", []string{"camera"}, nil)
	descMotionActive = prometheus.NewDesc("townwatch_motion_active",
		"1 while a motion event is going on.", []string{"camera"}, nil)
)

func (c *motionCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descDecodedFrames, descAnalyzedFrames, descMotionDecodeErrors, descMotionEvents, descMotionActive} {
		ch <- d
	}
}

func (c *motionCollector) Collect(ch chan<- prometheus.Metric) {
	for _, u := range c.cams.units() {
		if !u.config().Motion.Enabled {
			continue
		}
		cam := u.id
		st := c.stats(cam)
		ch <- prometheus.MustNewConstMetric(descDecodedFrames, prometheus.CounterValue, float64(st.DecodedFrames), cam)
		ch <- prometheus.MustNewConstMetric(descAnalyzedFrames, prometheus.CounterValue, float64(st.AnalyzedFrames), cam)
		ch <- prometheus.MustNewConstMetric(descMotionDecodeErrors, prometheus.CounterValue, float64(st.DecodeErrors), cam)
		ch <- prometheus.MustNewConstMetric(descMotionEvents, prometheus.CounterValue, float64(st.Events), cam)
		ch <- prometheus.MustNewConstMetric(descMotionActive, prometheus.GaugeValue, boolValue(st.Active), cam)
	}
}
