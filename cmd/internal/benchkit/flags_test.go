package benchkit

import (
	"slices"
	"strings"
	"testing"
)

func TestParseCounts(t *testing.T) {
	if ns, err := ParseCounts("1, 4,16", "stream"); err != nil || !slices.Equal(ns, []int{1, 4, 16}) {
		t.Errorf("ParseCounts = %v, %v", ns, err)
	}
	for _, bad := range []string{"", "0", "1,,4", "x", "-2"} {
		if _, err := ParseCounts(bad, "viewer"); err == nil || !strings.Contains(err.Error(), "viewer counts") {
			t.Errorf("ParseCounts(%q) = %v, want an error naming the flag", bad, err)
		}
	}
}
