package evidence

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestBundleRequestChecked: a request without what the manifest and the access log need
// is refused before anything is written (the storage is not even looked at).
func TestBundleRequestChecked(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Request)
		want string
	}{
		{"no cameras", func(r *Request) { r.Cameras = nil }, "no camera"},
		{"twice", func(r *Request) { r.Cameras = []string{"namesti", "namesti"} }, "camera namesti is listed twice"},
		{"bad id", func(r *Request) { r.Cameras = []string{"../x"} }, `camera "../x" is not a camera id`},
		{"empty range", func(r *Request) { r.To = r.From }, "is empty or unset"},
		{"no case", func(r *Request) { r.Case = " " }, "case is required"},
		{"no audit row", func(r *Request) { r.AuditRowID = 0 }, "no audit row"},
	} {
		req := request(day, day.Add(time.Minute), "namesti")
		tc.edit(&req)
		var out bytes.Buffer
		if _, err := Write(context.Background(), &out, nil, nil, nil, req, nil); err == nil || !strings.Contains(err.Error(), tc.want) || out.Len() != 0 {
			t.Errorf("%s: %v (wrote %d bytes), want %q", tc.name, err, out.Len(), tc.want)
		}
	}
}

func TestBundleFileName(t *testing.T) {
	req := request(time.Date(2026, 12, 5, 22, 10, 0, 0, time.UTC), time.Date(2026, 12, 5, 22, 30, 0, 0, time.UTC), "namesti", "most")
	if got := FileName(req); got != "evidence_namesti+most_20261205T221000Z_20261205T223000Z.zip" {
		t.Errorf("FileName %s", got)
	}
	req.Cameras = []string{"a", "b", "c", "d"}
	if got := FileName(req); got != "evidence_4-cameras_20261205T221000Z_20261205T223000Z.zip" {
		t.Errorf("FileName of four cameras %s", got)
	}
}
