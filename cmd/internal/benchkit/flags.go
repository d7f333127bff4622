package benchkit

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseCounts parses a benchmark's -n flag, "1,4,16": the load levels to run, each a
// count of what (streams, viewers) at least 1.
func ParseCounts(s, what string) ([]int, error) {
	var ns []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-n %q: want comma-separated %s counts >= 1", s, what)
		}
		ns = append(ns, n)
	}
	return ns, nil
}
