package benchkit

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// MediaMTXSetup is what MediaMTX does beside townwatch on the benchmark's cameras, which it
// pulls over RTSP/TCP as townwatch does. Whatever is not asked for is off (its API,
// metrics, HLS, RTMP, SRT, MoQ, playback), so it does no work townwatch does not.
type MediaMTXSetup struct {
	// RecordDir: record every camera as fMP4 under it; "" records nothing.
	RecordDir string
	// WebRTCPort: serve WHEP on 127.0.0.1:WebRTCPort (http://…/camN/whep), with its ICE on
	// UDP port WebRTCUDPPort of 127.0.0.1 only; 0 leaves WebRTC off.
	WebRTCPort, WebRTCUDPPort int
}

// MediaMTXConfigYAML is MediaMTX's configuration for pulling urls as cam1..camN, its RTSP
// server on 127.0.0.1:rtspPort (TCP only).
func MediaMTXConfigYAML(s MediaMTXSetup, rtspPort int, urls []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# written by a townwatch benchmark: MediaMTX on the benchmark's cameras beside townwatch\n"+
		"logLevel: warn\napi: false\nmetrics: false\npprof: false\nplayback: false\n"+
		"rtsp: true\nrtspAddress: 127.0.0.1:%d\nrtspTransports: [tcp]\n"+
		"rtmp: false\nhls: false\nsrt: false\nmoq: false\n", rtspPort)
	if s.WebRTCPort == 0 {
		b.WriteString("webrtc: false\n")
	} else {
		// Loopback only: the host candidate is 127.0.0.1, as townwatch's are in the benchmark.
		fmt.Fprintf(&b, "webrtc: true\nwebrtcAddress: 127.0.0.1:%d\nwebrtcLocalUDPAddress: 127.0.0.1:%d\n"+
			"webrtcLocalTCPAddress: \"\"\nwebrtcIPsFromInterfaces: false\nwebrtcAdditionalHosts: [127.0.0.1]\nwebrtcICEServers2: []\n",
			s.WebRTCPort, s.WebRTCUDPPort)
	}
	b.WriteString("pathDefaults:\n  rtspTransport: tcp\n")
	if s.RecordDir != "" {
		fmt.Fprintf(&b, "  record: yes\n  recordFormat: fmp4\n  recordPath: %s\n",
			strconv.Quote(filepath.Join(s.RecordDir, "%path", "%Y-%m-%d_%H-%M-%S-%f")))
	} else {
		b.WriteString("  record: no\n")
	}
	b.WriteString("paths:\n")
	for i, u := range urls {
		// Pulled at start, not on demand: townwatch pulls its cameras all the time too.
		fmt.Fprintf(&b, "  cam%d:\n    source: %s\n", i+1, strconv.Quote(u))
	}
	return b.String()
}

// StartMediaMTX writes MediaMTX's configuration into work and starts bin on it, its output
// in work/mediamtx.out and .log.
func StartMediaMTX(bin, work string, s MediaMTXSetup, urls []string) (*Child, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(work, "mediamtx.yml")
	if err := os.WriteFile(cfgPath, []byte(MediaMTXConfigYAML(s, port, urls)), 0o644); err != nil {
		return nil, err
	}
	return StartChild("mediamtx", bin, []string{cfgPath}, filepath.Join(work, "mediamtx.out"), filepath.Join(work, "mediamtx.log"))
}
