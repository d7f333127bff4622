package main

import (
	"fmt"
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
