package archivetest

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/townwatch/townwatch/recorder"
	"github.com/townwatch/townwatch/recorder/catalog"
)

// The fixture is what the recorder would have left: 60 s segments of 1 s fragments with a
// keyframe every 2 s, rows the playback API can serve, files that are links to one
// template, and the outage where it was asked for.
func TestBuildArchiveWithOutage(t *testing.T) {
	tpl, err := MakeTemplate(t.Context(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	tf := tpl.File
	if tf.Duration != time.Minute || tf.Frames != 1500 || tf.Width != 1920 || tf.Height != 1080 ||
		tf.Codec != "H264" || tf.MIMECodecs != "avc1.640028" || tf.Audio {
		t.Fatalf("template: %+v", tf)
	}
	if len(tf.Fragments) < 55 || len(tf.Fragments) > 65 {
		t.Fatalf("template has %d fragments, want about 60 of 1 s", len(tf.Fragments))
	}
	keyframes := 0
	for i, f := range tf.Fragments {
		if i == 0 && f.Keyframe != 0 {
			t.Fatalf("the first fragment does not start with a keyframe: %+v", f)
		}
		if f.Keyframe >= 0 {
			keyframes++
			if f.Keyframe%(2*time.Second) != 0 {
				t.Errorf("fragment %d: keyframe at %s, not on the 2 s GOP", i, f.Keyframe)
			}
		}
	}
	if keyframes != 30 {
		t.Errorf("%d fragments with a keyframe, want 30 (GOP 2 s)", keyframes)
	}

	dir := t.TempDir()
	cat, err := catalog.Open(t.Context(), filepath.Join(dir, "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	from := time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)
	outage := from.Add(10 * time.Minute)
	segs, err := Build(t.Context(), Spec{Dir: dir, Catalog: cat, Template: tpl, Cameras: []string{"namesti", "most"},
		From: from, Duration: 20 * time.Minute, Outages: []Outage{{Camera: "most", At: outage, Length: 37 * time.Second}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(segs["namesti"]) != 20 || len(segs["most"]) != 20 {
		t.Fatalf("segments: namesti %d, most %d; want 20 each", len(segs["namesti"]), len(segs["most"]))
	}
	tplInfo, _ := os.Stat(tpl.Path)
	for _, s := range segs["most"] {
		info, err := os.Stat(filepath.Join(dir, filepath.FromSlash(s.Path)))
		if err != nil {
			t.Fatal(err)
		}
		if !os.SameFile(info, tplInfo) {
			t.Fatalf("%s is not a hard link to the template", s.Path)
		}
		if cam, start, err := recorder.ParseSegmentPath(s.Path); err != nil || cam != "most" || !start.Equal(s.Start) {
			t.Fatalf("%s: %s %s %v", s.Path, cam, start, err)
		}
	}
	if s := segs["most"][10]; !s.Start.Equal(outage.Add(37*time.Second)) || !s.GapBefore {
		t.Fatalf("segment after the outage: start %s gap_before %v", s.Start, s.GapBefore)
	}
	cov, err := cat.Coverage(t.Context(), []string{"most"}, from, from.Add(time.Hour), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var gaps []catalog.Span
	for _, sp := range cov[0].Spans {
		if !sp.Recorded && sp.End.Before(from.Add(20*time.Minute)) {
			gaps = append(gaps, sp)
		}
	}
	if len(gaps) != 1 || !gaps[0].Start.Equal(outage) || gaps[0].End.Sub(gaps[0].Start) != 37*time.Second {
		t.Fatalf("gaps of most: %+v; want one of 37 s at %s", gaps, outage)
	}
	idx, err := cat.Fragments(t.Context(), []int64{segs["namesti"][3].ID})
	if err != nil || len(idx[segs["namesti"][3].ID]) != len(tf.Fragments) {
		t.Fatalf("fragment index in the catalog: %d entries, %v", len(idx[segs["namesti"][3].ID]), err)
	}
}

// With Copy every segment is a file of its own (a benchmark reading it reads the disk,
// not one cached file), byte for byte the template.
func TestBuildArchiveCopies(t *testing.T) {
	tpl, err := MakeTemplate(t.Context(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cat, err := catalog.Open(t.Context(), filepath.Join(dir, "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	segs, err := Build(t.Context(), Spec{Dir: dir, Catalog: cat, Template: tpl, Cameras: []string{"namesti"},
		From: time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC), Duration: 3 * time.Minute, Copy: true})
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(tpl.Path)
	if err != nil {
		t.Fatal(err)
	}
	tplInfo, _ := os.Stat(tpl.Path)
	if len(segs["namesti"]) != 3 {
		t.Fatalf("%d segments, want 3", len(segs["namesti"]))
	}
	for _, s := range segs["namesti"] {
		path := filepath.Join(dir, filepath.FromSlash(s.Path))
		info, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if os.SameFile(info, tplInfo) {
			t.Errorf("%s is a link to the template, want a copy", s.Path)
		}
		if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: %d bytes (%v), want the template's %d", s.Path, len(got), err, len(want))
		}
	}
}
