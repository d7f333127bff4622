package testclip

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMakeCaches(t *testing.T) {
	t.Setenv(CacheEnv, t.TempDir())
	input := filepath.Join(t.TempDir(), "in.h264")
	copyFile(t, motionClip, input)
	args := []string{"-i", input, "-frames:v", "5", "-c", "copy", "-f", "h264"}
	first := Make(t, args...)
	st1, err := os.Stat(first)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(first) != os.Getenv(CacheEnv) {
		t.Errorf("clip %s is not in $%s", first, CacheEnv)
	}
	if again := Make(t, args...); again != first {
		t.Errorf("same args made %s, then %s", first, again)
	}
	if st2, _ := os.Stat(first); !os.SameFile(st1, st2) || !st2.ModTime().Equal(st1.ModTime()) {
		t.Error("a cached clip was made again")
	}
	if other := Make(t, "-i", input, "-frames:v", "6", "-c", "copy", "-f", "h264"); other == first {
		t.Error("different args share a clip")
	}
	// The same args over an edited input must not return the old clip.
	f, err := os.OpenFile(input, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{0, 0, 0, 1, 0x09, 0xf0})
	f.Close()
	if edited := Make(t, args...); edited == first {
		t.Error("an edited input file returned the clip made from the old one")
	}
	if left, _ := filepath.Glob(filepath.Join(os.Getenv(CacheEnv), "*.part")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

func copyFile(t *testing.T, from, to string) {
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// fatalTB records the failure Make reports instead of failing the test.
type fatalTB struct {
	testing.TB
	msg string
}

type fatalled struct{}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic(fatalled{})
}

func TestMakeReportsFFmpegFailure(t *testing.T) {
	t.Setenv(CacheEnv, t.TempDir())
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"bad input", []string{"-i", "/nonexistent.h264", "-f", "h264"}, "/nonexistent.h264: No such file or directory"},
		{"no output", []string{"-f", "lavfi", "-i", "testsrc2", "-frames:v", "0", "-f", "h264"}, "wrote nothing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ftb := &fatalTB{TB: t}
			func() {
				defer func() {
					if r := recover(); r != nil && r != (fatalled{}) {
						panic(r)
					}
				}()
				path := Make(ftb, tc.args...)
				t.Errorf("Make returned %s", path)
			}()
			if !strings.Contains(ftb.msg, tc.want) {
				t.Errorf("failure %q, want it to mention %q", ftb.msg, tc.want)
			}
			if left, _ := os.ReadDir(os.Getenv(CacheEnv)); len(left) > 0 {
				t.Errorf("files left in the cache: %v", left)
			}
		})
	}
}
