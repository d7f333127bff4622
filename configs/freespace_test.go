package configs

import (
	"strings"
	"testing"
)

func TestParseFreeSpace(t *testing.T) {
	for _, tt := range []struct {
		in      string
		want    FreeSpace
		of1TiB  uint64
		wantErr string
	}{
		{in: "10%", want: FreeSpace{Percent: 10}, of1TiB: 1 << 40 / 10},
		{in: " 12.5% ", want: FreeSpace{Percent: 12.5}, of1TiB: 1 << 40 / 8},
		{in: "50GiB", want: FreeSpace{Bytes: 50 << 30}, of1TiB: 50 << 30},
		{in: "0%", wantErr: `invalid share "0%"`},
		{in: "100%", wantErr: `invalid share "100%"`},
		{in: "ten%", wantErr: `invalid share "ten%"`},
		{in: "lots", wantErr: `invalid free space "lots" (want a size such as 50GiB or a share such as 10%)`},
	} {
		got, err := ParseFreeSpace(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
				t.Errorf("ParseFreeSpace(%q) error = %v, want prefix %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseFreeSpace(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			continue
		}
		if of := got.Of(1 << 40); of != tt.of1TiB {
			t.Errorf("%q of 1TiB = %d, want %d", tt.in, of, tt.of1TiB)
		}
		if back, err := ParseFreeSpace(got.String()); err != nil || back != got {
			t.Errorf("round trip of %q via %q = %+v, %v", tt.in, got.String(), back, err)
		}
	}
}

func TestRecorderKeys(t *testing.T) {
	c, err := Parse([]byte(`
storage: {path: ./d, quota: 2TiB, min_free: 50GiB}
cameras:
  - id: cam
    main: {url: rtsp://h/}
    record: {segment: 5m, quota: 500GiB, audio: true}
  - id: cam2
    main: {url: rtsp://h/2}
`), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Storage.Quota != 2<<40 || c.Storage.MinFree != (FreeSpace{Bytes: 50 << 30}) {
		t.Errorf("storage = %+v", c.Storage)
	}
	r := c.Cameras[0].Record
	if r.Segment.Std().Minutes() != 5 || r.Quota != 500<<30 || !r.Audio {
		t.Errorf("record = %+v", r)
	}
	d := c.Cameras[1].Record
	if d.Segment != DefaultSegment || d.Quota != 0 || d.Audio {
		t.Errorf("defaults: record = %+v, want 60s segments, no quota, no audio", d)
	}

	_, err = Parse([]byte(`
storage: {min_free: 150%}
cameras:
  - id: cam
    main: {url: rtsp://h/}
    record: {segment: 2s}
`), "t.yaml")
	for _, want := range []string{
		`t.yaml:2: storage.min_free: invalid share "150%"`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
	_, err = Parse([]byte("cameras:\n  - id: cam\n    main: {url: rtsp://h/}\n    record: {segment: 2h}\n"), "t.yaml")
	if err == nil || !strings.Contains(err.Error(), "cameras[cam].record.segment: must be between 10s and 1h") {
		t.Errorf("segment 2h: error = %v", err)
	}
}
