package simcam

import (
	"testing"
	"time"
)

func TestNewValidates(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{
			name: "bad listen",
			cfg:  Config{Listen: "8554"},
			want: "simcam: listen: address 8554: missing port in address",
		},
		{
			name: "every camera problem at once",
			cfg: Config{Listen: "127.0.0.1:0", Cameras: []CameraSpec{
				{Path: "", Clip: ClipMotion},
				{Path: "/motion", Clip: ClipMotion},
				{Path: "a b", Clip: ClipMotion},
				{Path: "ok", Clip: "dashcam"},
				{Path: "ok", Clip: ClipStatic},
				{Path: "auth", Clip: ClipStatic, Username: "admin"},
			}},
			want: "simcam: cameras[0].path: must not be empty\n" +
				`cameras[1].path: "/motion": empty segment or leading/trailing slash` + "\n" +
				`cameras[2].path: "a b": character ' ' not allowed` + "\n" +
				`cameras[3].clip: unknown clip "dashcam" (want "motion" or "static")` + "\n" +
				`cameras[4].path: duplicate "ok"` + "\n" +
				"cameras[5]: username and password must be set together",
		},
		{
			name: "clip or file, and fps only with a file",
			cfg: Config{Listen: "127.0.0.1:0", Cameras: []CameraSpec{
				{Path: "both", Clip: ClipMotion, File: "clip.h264"},
				{Path: "neither"},
				{Path: "slow", File: "clip.h264", FPS: -1},
				{Path: "fast", File: "clip.h264", FPS: MaxFPS + 1},
				{Path: "bundled", Clip: ClipMotion, FPS: 30},
				{Path: "fine", File: "not read: the config is invalid", FPS: MaxFPS},
			}},
			want: "simcam: cameras[0]: clip and file are exclusive; set one\n" +
				"cameras[1]: clip or file is required\n" +
				"cameras[2].fps: -1 out of range 1..120 (0 means 25)\n" +
				"cameras[3].fps: 121 out of range 1..120 (0 means 25)\n" +
				"cameras[4].fps: only with file (the bundled clips are 25 fps)",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(tc.cfg)
			if err == nil || err.Error() != tc.want {
				t.Errorf("New() error:\n%v\nwant:\n%s", err, tc.want)
			}
			if s != nil {
				t.Error("New returned a server with an error")
			}
		})
	}
}

// New refuses a LoopStart the clip cannot start at, naming the camera and why.
func TestNewChecksLoopStart(t *testing.T) {
	for _, tc := range []struct {
		loopStart time.Duration
		want      string // "" accepted
	}{
		{8 * time.Second, ""},
		{-2 * time.Second, "simcam: camera cam: loop start: -2s is negative"},
		{10 * time.Minute, "simcam: camera cam: loop start: 10m0s is past the end of the 1500-frame loop"},
		{2*time.Second + time.Millisecond, "simcam: camera cam: loop start: 2.001s is not the time of a frame at 25 fps"},
		{2*time.Second + 40*time.Millisecond, "simcam: camera cam: loop start: 2.04s (frame 51) is not a keyframe"},
	} {
		s, err := New(Config{Listen: "127.0.0.1:0", Cameras: []CameraSpec{{Path: "cam", Clip: ClipMotion, LoopStart: tc.loopStart}}})
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("LoopStart %v: %v, want it accepted", tc.loopStart, err)
		case tc.want == "" && s.cameras["cam"].first != uint64(tc.loopStart/frameInterval):
			t.Errorf("LoopStart %v: first loop frame %d, want %d", tc.loopStart, s.cameras["cam"].first, tc.loopStart/frameInterval)
		case tc.want != "" && (err == nil || err.Error() != tc.want):
			t.Errorf("LoopStart %v: error %v, want %q", tc.loopStart, err, tc.want)
		}
	}
}

func TestNewDefaults(t *testing.T) {
	s, err := New(Config{Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range DefaultCameras() {
		c, ok := s.cameras[want.Path]
		if !ok || c.spec.Clip != want.Clip {
			t.Errorf("camera %q: %+v, want clip %q", want.Path, c, want.Clip)
		}
	}
	if len(s.cameras) != 2 {
		t.Errorf("%d cameras, want the 2 defaults", len(s.cameras))
	}
	if s.Addr() != "" || s.URL("motion") != "" {
		t.Error("Addr/URL before Run should be empty")
	}
	select {
	case <-s.Ready():
		t.Error("Ready closed before Run")
	default:
	}
}

func TestValidatePath(t *testing.T) {
	for _, p := range []string{"motion", "cam-1/sub_stream", "a.b~c"} {
		if err := validatePath(p); err != nil {
			t.Errorf("validatePath(%q) = %v, want nil", p, err)
		}
	}
	for _, p := range []string{"cam/", "a//b", "cam?x=1", "trackID=0", "č"} {
		if err := validatePath(p); err == nil {
			t.Errorf("validatePath(%q) = nil, want an error", p)
		}
	}
}
