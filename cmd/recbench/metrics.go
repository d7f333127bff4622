package main

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// sample is one line of the Prometheus text exposition format.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// metrics is one scrape of /metrics.
type metrics []sample

// parseMetrics parses the Prometheus text format (version 0.0.4) as
// townwatch's /metrics serves it: comment lines are skipped, a sample is
// name{label="value",...} value [timestamp], label values may contain
// escaped quotes, backslashes and newlines.
func parseMetrics(text string) (metrics, error) {
	var out metrics
	for n, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		s, err := parseSample(line)
		if err != nil {
			return nil, fmt.Errorf("metrics line %d: %w: %q", n+1, err, line)
		}
		out = append(out, s)
	}
	return out, nil
}

func parseSample(line string) (sample, error) {
	s := sample{labels: map[string]string{}}
	i := strings.IndexAny(line, "{ \t")
	if i <= 0 {
		return s, fmt.Errorf("no value")
	}
	s.name, line = line[:i], line[i:]
	if line[0] == '{' {
		line = line[1:]
		for {
			line = strings.TrimLeft(line, " \t")
			if strings.HasPrefix(line, "}") {
				line = line[1:]
				break
			}
			k, rest, ok := strings.Cut(line, "=")
			rest = strings.TrimLeft(rest, " \t")
			if !ok || !strings.HasPrefix(rest, `"`) {
				return s, fmt.Errorf("bad label")
			}
			v, rest, err := unquoteLabel(rest[1:])
			if err != nil {
				return s, err
			}
			s.labels[strings.TrimSpace(k)] = v
			line = strings.TrimPrefix(strings.TrimLeft(rest, " \t"), ",")
		}
	}
	f := strings.Fields(line)
	if len(f) < 1 || len(f) > 2 {
		return s, fmt.Errorf("want a value and an optional timestamp")
	}
	v, err := strconv.ParseFloat(f[0], 64) // also NaN, +Inf, -Inf
	if err != nil {
		return s, err
	}
	s.value = v
	return s, nil
}

// unquoteLabel reads a label value up to its closing quote and returns it
// unescaped with the text after the quote.
func unquoteLabel(s string) (value, rest string, err error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			return b.String(), s[i+1:], nil
		case '\\':
			if i+1 == len(s) {
				return "", "", fmt.Errorf("unterminated label value")
			}
			i++
			switch s[i] {
			case 'n':
				b.WriteByte('\n')
			default: // \\ and \"
				b.WriteByte(s[i])
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", "", fmt.Errorf("unterminated label value")
}

// sum adds the values of every sample called name; ok is false if there is
// none (the metric is not exposed).
func (m metrics) sum(name string) (total float64, ok bool) {
	for _, s := range m {
		if s.name == name {
			total += s.value
			ok = true
		}
	}
	return total, ok
}

// byCamera maps the camera label of every sample called name to its value.
func (m metrics) byCamera(name string) map[string]float64 {
	out := map[string]float64{}
	for _, s := range m {
		if s.name == name {
			out[s.labels["camera"]] += s.value
		}
	}
	return out
}

// sumMatching adds every sample whose name has prefix and suffix, e.g. the
// per-consumer townwatch_<consumer>_dropped_units_total.
func (m metrics) sumMatching(prefix, suffix string) float64 {
	var total float64
	for _, s := range m {
		if strings.HasPrefix(s.name, prefix) && strings.HasSuffix(s.name, suffix) {
			total += s.value
		}
	}
	return total
}

// bucket is one cumulative bucket of a histogram: count observations were <= le.
type bucket struct{ le, count float64 }

// histogram returns the cumulative buckets (the name_bucket samples) of histogram name,
// by le, the +Inf bucket last; nil when it is not exposed.
func (m metrics) histogram(name string) []bucket {
	var out []bucket
	for _, s := range m {
		if s.name != name+"_bucket" {
			continue
		}
		le, err := strconv.ParseFloat(s.labels["le"], 64) // "+Inf" too
		if err != nil {
			continue
		}
		out = append(out, bucket{le: le, count: s.value})
	}
	slices.SortFunc(out, func(a, b bucket) int { return cmp.Compare(a.le, b.le) })
	return out
}

// histogramDelta is the observations of histogram name made between scrapes a and b, as
// cumulative buckets.
func histogramDelta(a, b metrics, name string) []bucket {
	before := a.histogram(name)
	out := b.histogram(name)
	for i := range out {
		if i < len(before) && before[i].le == out[i].le {
			out[i].count -= before[i].count
		}
	}
	return out
}

// total is the number of observations in cumulative buckets.
func total(bs []bucket) float64 {
	if len(bs) == 0 {
		return 0
	}
	return bs[len(bs)-1].count
}

// quantile estimates the q-quantile (0 < q <= 1) of cumulative buckets as Prometheus's
// histogram_quantile does: linearly inside the bucket that holds it, from 0 for the
// first; in the +Inf bucket it is the highest finite bound. NaN without observations.
func quantile(bs []bucket, q float64) float64 {
	n := total(bs)
	if n == 0 {
		return math.NaN()
	}
	rank := q * n
	lowLE, lowCount := 0.0, 0.0
	for _, b := range bs {
		if b.count >= rank {
			if math.IsInf(b.le, 1) {
				return lowLE
			}
			return lowLE + (b.le-lowLE)*(rank-lowCount)/(b.count-lowCount)
		}
		lowLE, lowCount = b.le, b.count
	}
	return lowLE
}

// maxBound is the smallest bucket bound that holds every observation: the slowest one
// took at most that long (+Inf when one fell beyond the last finite bound). NaN without
// observations.
func maxBound(bs []bucket) float64 {
	n := total(bs)
	if n == 0 {
		return math.NaN()
	}
	for _, b := range bs {
		if b.count >= n {
			return b.le
		}
	}
	return math.Inf(1)
}
