package benchkit

import (
	"strings"
	"testing"
)

// MediaMTX side by side records every camera as fMP4, pulling it over TCP as townwatch
// does, with nothing else of it listening (only RTSP, on loopback).
func TestMediaMTXConfigRecordsEveryCameraAndServesNothingElse(t *testing.T) {
	urls := []string{"rtsp://127.0.0.1:5554/cam1", "rtsp://127.0.0.1:5554/cam2"}
	got := MediaMTXConfigYAML(MediaMTXSetup{RecordDir: "/tmp/work/mediamtx"}, 7554, urls)
	for _, want := range []string{
		"rtspAddress: 127.0.0.1:7554\n", "rtspTransports: [tcp]\n",
		"rtmp: false\n", "hls: false\n", "webrtc: false\n", "srt: false\n", "moq: false\n", "api: false\n",
		"  record: yes\n", "  recordFormat: fmp4\n", "  rtspTransport: tcp\n",
		`  recordPath: "/tmp/work/mediamtx/%path/%Y-%m-%d_%H-%M-%S-%f"` + "\n",
		"  cam1:\n    source: \"rtsp://127.0.0.1:5554/cam1\"\n", "  cam2:\n    source: \"rtsp://127.0.0.1:5554/cam2\"\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("MediaMTX configuration lacks %q:\n%s", want, got)
		}
	}
}

// MediaMTX serving viewers side by side serves WHEP on loopback, with its ICE on one
// loopback UDP port, records nothing, and still serves nothing else.
func TestMediaMTXConfigServesWHEPOnLoopbackAndRecordsNothing(t *testing.T) {
	got := MediaMTXConfigYAML(MediaMTXSetup{WebRTCPort: 8889, WebRTCUDPPort: 8189}, 7554, []string{"rtsp://127.0.0.1:5554/cam1"})
	for _, want := range []string{
		"webrtc: true\n", "webrtcAddress: 127.0.0.1:8889\n", "webrtcLocalUDPAddress: 127.0.0.1:8189\n",
		"webrtcLocalTCPAddress: \"\"\n", "webrtcIPsFromInterfaces: false\n", "webrtcAdditionalHosts: [127.0.0.1]\n",
		"  record: no\n", "rtmp: false\n", "hls: false\n", "api: false\n",
		"  cam1:\n    source: \"rtsp://127.0.0.1:5554/cam1\"\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("MediaMTX configuration lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "webrtc: false") || strings.Contains(got, "recordPath") {
		t.Errorf("MediaMTX configuration turns WebRTC off or records:\n%s", got)
	}
}
