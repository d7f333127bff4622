package motion

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

var uuidV7Pattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// uuidMillis decodes the timestamp of a UUIDv7 string.
func uuidMillis(t *testing.T, id string) int64 {
	t.Helper()
	hexTS := strings.ReplaceAll(id, "-", "")[:12]
	ms, err := strconv.ParseInt(hexTS, 16, 64)
	if err != nil {
		t.Fatalf("timestamp of %q: %v", id, err)
	}
	return ms
}

func TestUUIDv7(t *testing.T) {
	start := time.Date(2026, 3, 14, 15, 9, 26, 535_000_000, time.UTC)
	seen := make(map[string]bool)
	prev := ""
	for i := range 2000 {
		at := start.Add(time.Duration(i/2) * time.Millisecond) // two ids per millisecond
		id := newUUIDv7(at)
		if !uuidV7Pattern.MatchString(id) {
			t.Fatalf("id %q is not a UUIDv7 (version 7, variant 10, lowercase hex)", id)
		}
		if got := uuidMillis(t, id); got != at.UnixMilli() {
			t.Fatalf("id %q carries %d ms, want %d", id, got, at.UnixMilli())
		}
		if seen[id] {
			t.Fatalf("id %q generated twice", id)
		}
		seen[id] = true
		// Ids of later milliseconds sort after earlier ones as strings, which the catalog
		// relies on for its newest-first listing.
		if i%2 == 0 && prev != "" && id <= prev {
			t.Fatalf("id %q of a later millisecond sorts before %q", id, prev)
		}
		prev = id
	}
}

func TestUUIDv7RandomBitsDiffer(t *testing.T) {
	at := time.Unix(1_700_000_000, 0)
	a, b := newUUIDv7(at), newUUIDv7(at)
	if a[:13] != b[:13] {
		t.Fatalf("same millisecond, different timestamp fields: %q %q", a, b)
	}
	if a == b {
		t.Fatalf("two ids of the same millisecond are equal: %q", a)
	}
}
