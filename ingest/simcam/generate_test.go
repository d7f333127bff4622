package simcam

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A generated clip has the asked size, length and keyframe spacing, and simcam can load
// it to serve.
func TestGenerateClip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "clip.h264")
	if err := GenerateClip(path, NoiseClip{Width: 320, Height: 180, FPS: 25, Frames: 50, GOP: 20, Bitrate: "1M"}); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ffprobe", "-v", "error", "-select_streams", "v", "-show_entries", "frame=key_frame,width,height",
		"-of", "csv=p=0", path).Output()
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Fields(string(out))
	var keys []int
	for i, l := range lines {
		// key_frame,width,height (ffprobe 5.1 may end the line with a comma)
		l = strings.TrimSuffix(l, ",")
		if !strings.HasSuffix(l, ",320,180") {
			t.Fatalf("frame %d: %q, want 320x180", i, l)
		}
		if strings.HasPrefix(l, "1,") {
			keys = append(keys, i)
		}
	}
	if len(lines) != 50 || len(keys) != 3 || keys[1] != 20 || keys[2] != 40 {
		t.Errorf("%d frames with keyframes at %v; want 50 frames, keyframes at 0, 20, 40", len(lines), keys)
	}
	if _, err := loadFile(path); err != nil {
		t.Fatalf("simcam cannot load the clip: %v", err)
	}
	if err := GenerateClip(filepath.Join(t.TempDir(), "bad.h264"), NoiseClip{Width: 0, Height: 180, FPS: 25, Frames: 1, GOP: 1, Bitrate: "1M"}); err == nil ||
		!strings.Contains(err.Error(), "ffmpeg") {
		t.Errorf("an impossible clip gave %v, want ffmpeg's error", err)
	}
}
