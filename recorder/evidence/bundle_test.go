package evidence

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/townwatch/townwatch/recorder"
	"github.com/townwatch/townwatch/recorder/archivetest"
	"github.com/townwatch/townwatch/recorder/catalog"
)

var day = time.Date(2026, 12, 5, 21, 0, 0, 0, time.UTC)

type fixture struct {
	dir  string
	cat  *catalog.Catalog
	st   *recorder.Storage
	key  []byte
	segs map[string][]catalog.Segment
}

// newFixture is an archive of two cameras × 4 minutes of the 1080p25 template.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	tpl, err := archivetest.MakeTemplate(t.Context(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	// The archive's files are hard links to the template: on its filesystem.
	dir, err := os.MkdirTemp(filepath.Dir(tpl.Path), "evidence-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	cat, err := catalog.Open(t.Context(), filepath.Join(dir, "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat.Close() })
	segs, err := archivetest.Build(t.Context(), archivetest.Spec{Dir: dir, Catalog: cat, Template: tpl,
		Cameras: []string{"namesti", "most"}, From: day, Duration: 4 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	st, err := recorder.OpenStorage(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	key, err := LoadOrCreateSigningKey(filepath.Join(t.TempDir(), "export-signing.key"))
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{dir: dir, cat: cat, st: st, key: key, segs: segs}
}

func request(from, to time.Time, cams ...string) Request {
	return Request{Cameras: cams, From: from, To: to, Reason: "vloupání do trafiky", Case: "KRPP-88/2026",
		Recipient: "Policie ČR, KŘ Plzeňského kraje", Requester: "novak", AuditRowID: 42, Version: "test"}
}

func (f *fixture) write(t *testing.T, req Request) (string, Result) {
	t.Helper()
	path := filepath.Join(t.TempDir(), FileName(req))
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Write(context.Background(), out, f.st, f.cat, f.key, req, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return path, res
}

func run(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

// The bundle as a court's expert checks it, without townwatch: it unzips, sha256sum -c
// passes, the openssl command of the README verifies the signature, each MP4 plays for
// the range asked; the manifest names every source segment with its digest and chain
// link; Verify agrees.
func TestBundleVerifiesWithoutTownwatch(t *testing.T) {
	f := newFixture(t)
	from, to := day.Add(70*time.Second), day.Add(190*time.Second) // 2 min across 3 segments
	path, res := f.write(t, request(from, to, "namesti", "most"))
	out := t.TempDir()
	run(t, out, "unzip", "-q", path)
	if got := run(t, out, "sha256sum", "-c", SumsName); strings.Count(got, ": OK") != 5 {
		t.Errorf("sha256sum -c: %s (want 5 files OK)", got)
	}
	readme, err := os.ReadFile(filepath.Join(out, ReadmeName))
	if err != nil || !strings.Contains(string(readme), "openssl pkeyutl -verify -pubin -inkey "+PublicKeyName+" -rawin -in manifest.json -sigfile manifest.json.sig") ||
		!strings.Contains(string(readme), "sha256sum -c SHA256SUMS") {
		t.Errorf("README does not say how to verify:\n%s", readme)
	}
	if got := run(t, out, "openssl", "pkeyutl", "-verify", "-pubin", "-inkey", PublicKeyName, "-rawin", "-in", ManifestName, "-sigfile", SignatureName); !strings.Contains(got, "Signature Verified Successfully") {
		t.Errorf("openssl: %s", got)
	}
	for _, c := range res.Manifest.Cameras {
		probe := run(t, out, "ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", c.File)
		dur, err := strconv.ParseFloat(strings.TrimSpace(probe), 64)
		// It starts at the keyframe at or before from (GOP 2 s): up to 2 s more.
		if err != nil || dur < 119.96 || dur > 122.04 {
			t.Errorf("%s plays %s s, want the 120 s asked for (plus up to one GOP before)", c.File, probe)
		}
		if len(c.Sources) != 3 || len(c.Gaps) != 0 {
			t.Errorf("%s: %d sources, gaps %v; want 3 segments, no gap", c.Camera, len(c.Sources), c.Gaps)
		}
		for i, s := range c.Sources {
			want, err := f.cat.Segment(context.Background(), f.segs[c.Camera][1+i].ID)
			if err != nil {
				t.Fatal(err)
			}
			if s.ID != want.ID || s.SHA256 != want.SHA256 || s.PrevSHA256 == nil || *s.PrevSHA256 != want.PrevSHA256 {
				t.Errorf("%s source %d: %+v, want segment %d with its digest and chain link", c.Camera, i, s, want.ID)
			}
		}
	}
	m := res.Manifest
	if m.Case != "KRPP-88/2026" || m.Requester != "novak" || m.AuditRowID != 42 || m.TimeZone != "Europe/Prague" || m.Recipient == "" {
		t.Errorf("manifest lacks who, why, for which case, to whom: %+v", m)
	}
	rep, err := VerifyFile(path, m.SigningKey.Fingerprint)
	if err != nil || rep.Files != 5 || rep.Fingerprint != m.SigningKey.Fingerprint {
		t.Errorf("Verify: %+v, %v", rep, err)
	}
	if _, err := VerifyFile(path, strings.Repeat("ab", 32)); err == nil || !strings.Contains(err.Error(), "not by the trusted key") {
		t.Errorf("a foreign trusted fingerprint: %v", err)
	}
}

// One flipped byte anywhere makes Verify fail, naming the file it is in or the ZIP's
// damage.
func TestOneFlippedByteAnywhereFailsVerification(t *testing.T) {
	f := newFixture(t)
	path, _ := f.write(t, request(day.Add(10*time.Second), day.Add(20*time.Second), "namesti"))
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Where each file's data lies, to say which file a position belongs to.
	for _, name := range []string{ManifestName, SignatureName, SumsName, ReadmeName, PublicKeyName, ".mp4"} {
		i := dataOffset(t, orig, name)
		for _, at := range []int{i, i + 7} {
			b := bytes.Clone(orig)
			b[at] ^= 0x01
			_, err := Verify(bytes.NewReader(b), int64(len(b)), "")
			if err == nil {
				t.Errorf("byte %d (in %s) flipped: Verify passed", at, name)
				continue
			}
			if !strings.Contains(err.Error(), strings.TrimPrefix(name, ".")) && !errors.Is(err, ErrDamaged) {
				t.Errorf("byte %d (in %s) flipped: %v — want the file named", at, name, err)
			}
		}
	}
	// Every byte after the clip's data (the small files, every header, the directory)
	// and 10 bytes spread over the clip (each of those costs hashing the whole clip).
	clipEnd := dataOffset(t, orig, ReadmeName) - 30 // the clip's data and descriptor end before the next header
	positions := []int{}
	for at := clipEnd - 64; at < len(orig); at++ {
		positions = append(positions, at)
	}
	for k := range 10 {
		positions = append(positions, k*clipEnd/10)
	}
	// Flipped in place and back: a copy of the bundle per position would be gigabytes.
	b := bytes.Clone(orig)
	for _, at := range positions {
		b[at] ^= 0x20
		if _, err := Verify(bytes.NewReader(b), int64(len(b)), ""); err == nil {
			t.Errorf("byte %d of %d flipped: Verify passed", at, len(orig))
		}
		b[at] ^= 0x20
	}
}

// dataOffset is where the stored data of the entry whose name ends with suffix begins:
// after its local header (30 bytes, the name, the extra field).
func dataOffset(t *testing.T, zipBytes []byte, suffix string) int {
	t.Helper()
	for i := 0; i+30 < len(zipBytes); i++ {
		if string(zipBytes[i:i+4]) != "PK\x03\x04" {
			continue
		}
		n := int(zipBytes[i+26]) | int(zipBytes[i+27])<<8
		x := int(zipBytes[i+28]) | int(zipBytes[i+29])<<8
		if strings.HasSuffix(string(zipBytes[i+30:i+30+n]), suffix) {
			return i + 30 + n + x
		}
	}
	t.Fatalf("no entry %s", suffix)
	return 0
}

// A source segment whose bytes changed fails the bundle, naming the segment; a camera
// without footage in the range fails it too: never a silent hole.
func TestBundleRefusesChangedSourcesAndMissingFootage(t *testing.T) {
	f := newFixture(t)
	victim := f.segs["most"][1]
	// The archive's files are links to one template: replace this one by a changed copy.
	file := filepath.Join(f.dir, filepath.FromSlash(victim.Path))
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x04
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	req := request(day.Add(30*time.Second), day.Add(100*time.Second), "namesti", "most")
	_, err = Write(context.Background(), &bytes.Buffer{}, f.st, f.cat, f.key, req, nil)
	if err == nil || !strings.Contains(err.Error(), victim.Path) {
		t.Errorf("bundle over a changed segment: %v, want an error naming %s", err, victim.Path)
	}
	_, err = Write(context.Background(), &bytes.Buffer{}, f.st, f.cat, f.key, request(day.Add(time.Hour), day.Add(2*time.Hour), "namesti"), nil)
	if !errors.Is(err, recorder.ErrNoFootage) {
		t.Errorf("bundle without footage: %v, want ErrNoFootage", err)
	}
	// Cancelling stops it.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Write(ctx, &bytes.Buffer{}, f.st, f.cat, f.key, request(day, day.Add(time.Minute), "namesti"), nil); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled bundle: %v", err)
	}
}

// BenchmarkBundleOneHour: one hour of one 1080p25 4 Mbit/s camera into a bundle (to
// io.Discard, so the figure is the export's own cost, not the disk's), with the peak of
// the Go heap while it runs: the target is at most 60 s and 128 MiB whatever the length.
func BenchmarkBundleOneHour(b *testing.B) {
	tpl, err := archivetest.MakeTemplate(b.Context(), time.Minute)
	if err != nil {
		b.Fatal(err)
	}
	dir, err := os.MkdirTemp(filepath.Dir(tpl.Path), "evidence-bench-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	cat, err := catalog.Open(b.Context(), filepath.Join(dir, "catalog.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer cat.Close()
	if _, err := archivetest.Build(b.Context(), archivetest.Spec{Dir: dir, Catalog: cat, Template: tpl,
		Cameras: []string{"namesti"}, From: day, Duration: time.Hour}); err != nil {
		b.Fatal(err)
	}
	st, err := recorder.OpenStorage(dir)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	key, err := LoadOrCreateSigningKey(filepath.Join(b.TempDir(), "k"))
	if err != nil {
		b.Fatal(err)
	}
	var peak uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapInuse)
			}
		}
	}()
	var res Result
	for b.Loop() {
		res, err = Write(b.Context(), io.Discard, st, cat, key, request(day, day.Add(time.Hour), "namesti"), nil)
		if err != nil {
			b.Fatal(err)
		}
	}
	close(stop)
	<-sampled
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/hour-of-footage")
	b.ReportMetric(float64(res.Bytes)/(1<<20)/(b.Elapsed().Seconds()/float64(b.N)), "MiB/s")
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
}
