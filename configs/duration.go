package configs

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration written in YAML as a Go duration that may also use days:
// "90s", "15m", "7d", "1d12h". Retention is naturally counted in days, and time.Duration
// stops at hours, so "7d" saves operators from writing "168h".
type Duration time.Duration

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// day is the "d" unit. It is always 24 hours: retention is about the age of footage, so
// daylight-saving days are not special.
const day = 24 * time.Hour

// durationUnits are the units String picks from, largest first. Every one parses back.
var durationUnits = []struct {
	name string
	size time.Duration
}{
	{"d", day},
	{"h", time.Hour},
	{"m", time.Minute},
	{"s", time.Second},
	{"ms", time.Millisecond},
	{"us", time.Microsecond},
	{"ns", time.Nanosecond},
}

// String prints d in the largest single unit that divides it exactly ("7d", "36h", "90s",
// "1500ms"), so a value always reads back as written in a sample file and round-trips
// through ParseDuration.
func (d Duration) String() string {
	if d == 0 {
		return "0s"
	}
	sign, mag := "", uint64(d)
	if d < 0 {
		sign, mag = "-", -mag // two's complement: also right for math.MinInt64
	}
	for _, u := range durationUnits {
		if mag%uint64(u.size) == 0 {
			return sign + strconv.FormatUint(mag/uint64(u.size), 10) + u.name
		}
	}
	panic("unreachable: every duration is a whole number of nanoseconds")
}

// MarshalText writes d as String does, so JSON and YAML output read like the config file.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText parses a duration as ParseDuration does.
func (d *Duration) UnmarshalText(text []byte) error {
	v, err := ParseDuration(string(text))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// ParseDuration parses a Go duration (time.ParseDuration) that may also use the unit "d"
// (24 hours), in any position: "7d", "1d12h", "1.5d", "-2h". A bare "0" is zero; any other
// number needs a unit.
func ParseDuration(s string) (Duration, error) {
	d, err := parseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q: %w", s, err)
	}
	return d, nil
}

func parseDuration(s string) (Duration, error) {
	neg := false
	if s != "" && (s[0] == '-' || s[0] == '+') {
		neg, s = s[0] == '-', s[1:]
	}
	if s == "0" {
		return 0, nil
	}
	if s == "" {
		return 0, errors.New("empty")
	}
	var total time.Duration
	for s != "" {
		num, unit, rest := splitDurationTerm(s)
		s = rest
		part, err := durationTerm(num, unit)
		if err != nil {
			return 0, err
		}
		if total > math.MaxInt64-part {
			return 0, errors.New("out of range")
		}
		total += part
	}
	if neg {
		total = -total
	}
	return Duration(total), nil
}

// splitDurationTerm splits off the first number+unit term of s, e.g. "1.5d12h" -> "1.5",
// "d", "12h". The unit is everything up to the next digit or dot, so a misspelt unit is
// reported whole ("7 days" -> unit " days").
func splitDurationTerm(s string) (num, unit, rest string) {
	i := strings.IndexFunc(s, func(r rune) bool { return !isNumberRune(r) })
	if i < 0 {
		return s, "", ""
	}
	j := strings.IndexFunc(s[i:], isNumberRune)
	if j < 0 {
		return s[:i], s[i:], ""
	}
	return s[:i], s[i : i+j], s[i+j:]
}

func isNumberRune(r rune) bool { return r >= '0' && r <= '9' || r == '.' }

// durationTerm converts one term. time.ParseDuration does the arithmetic (fractions,
// rounding, overflow) so the two parsers cannot disagree on the units they share; days are
// parsed as hours and multiplied.
func durationTerm(num, unit string) (time.Duration, error) {
	if num == "" {
		return 0, fmt.Errorf("expected a number before %q", unit)
	}
	if strings.Count(num, ".") > 1 || num == "." {
		return 0, fmt.Errorf("invalid number %q", num)
	}
	switch unit {
	case "":
		return 0, fmt.Errorf("missing unit after %q (want d, h, m, s, ms, us or ns)", num)
	case "ns", "us", "µs", "μs", "ms", "s", "m", "h":
		d, err := time.ParseDuration(num + unit)
		if err != nil {
			// The number and unit are known to be well formed, so only the size can be wrong.
			return 0, errors.New("out of range")
		}
		return d, nil
	case "d":
		h, err := time.ParseDuration(num + "h")
		if err != nil || h > math.MaxInt64/24 {
			return 0, errors.New("out of range")
		}
		return h * 24, nil
	}
	return 0, fmt.Errorf("unknown unit %q (want d, h, m, s, ms, us or ns)", unit)
}
