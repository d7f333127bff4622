package testclip

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// CacheEnv names the environment variable that overrides where Make keeps its clips.
const CacheEnv = "TOWNWATCH_TESTCLIP_CACHE"

// Make runs `ffmpeg -hide_banner -nostdin -v error -y ARGS... OUT` and returns OUT. The args
// must choose the output format, e.g. "-f", "h264" or "-f", "hevc" for Load. Clips are kept
// between runs (a 1080p encode takes long on a small machine) under $TOWNWATCH_TESTCLIP_CACHE,
// else the user cache directory (~/.cache/townwatch-testclip), else tb.TempDir(); the name is
// a hash of the args and of the content of every arg that names a file, so an edited input
// makes a new clip. A failing ffmpeg fails tb with its output.
func Make(tb testing.TB, args ...string) string {
	tb.Helper()
	dir := cacheDir(tb)
	h := sha256.New()
	for _, a := range args {
		io.WriteString(h, a)
		h.Write([]byte{0})
		if st, err := os.Stat(a); err == nil && st.Mode().IsRegular() {
			f, err := os.Open(a)
			if err != nil {
				tb.Fatalf("testclip: %v", err)
			}
			_, err = io.Copy(h, f)
			f.Close()
			if err != nil {
				tb.Fatalf("testclip: read %s: %v", a, err)
			}
		}
	}
	out := filepath.Join(dir, "clip-"+hex.EncodeToString(h.Sum(nil)[:8]))
	if _, err := os.Stat(out); err == nil {
		return out
	}
	// Write aside and rename: test binaries of several packages may make the same clip at
	// once, and an interrupted run must not leave a truncated clip that looks cached.
	tmp, err := os.CreateTemp(dir, "clip-*.part")
	if err != nil {
		tb.Fatalf("testclip: %v", err)
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	cmd := exec.Command("ffmpeg", append(append([]string{"-hide_banner", "-nostdin", "-v", "error", "-y"}, args...), tmp.Name())...)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		tb.Fatalf("testclip: ffmpeg %q: %v\n%s", args, err, stderr.Bytes())
	}
	if st, err := os.Stat(tmp.Name()); err != nil || st.Size() == 0 {
		tb.Fatalf("testclip: ffmpeg %q wrote nothing\n%s", args, stderr.Bytes())
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		tb.Fatalf("testclip: %v", err)
	}
	return out
}

func cacheDir(tb testing.TB) string {
	dir := os.Getenv(CacheEnv)
	if dir == "" {
		if d, err := os.UserCacheDir(); err == nil {
			dir = filepath.Join(d, "townwatch-testclip")
		}
	}
	if dir != "" && os.MkdirAll(dir, 0o755) == nil {
		return dir
	}
	return tb.TempDir()
}
