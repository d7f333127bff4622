package configs

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ByteSize is a number of bytes written in YAML with an optional unit: "1024" or "1024B"
// (bytes), "10GB" (decimal, powers of 1000: kB, MB, GB, TB) or "500MiB" (binary, powers of
// 1024: KiB, MiB, GiB, TiB). Disks are sold in decimal units and filesystems report binary
// ones, so both are accepted and never confused: "GB" always means 10^9.
type ByteSize int64

// byteUnits are the accepted units, largest multiplier first so String finds the shortest
// spelling.
var byteUnits = []struct {
	name string
	size int64
}{
	{"TiB", 1 << 40},
	{"TB", 1e12},
	{"GiB", 1 << 30},
	{"GB", 1e9},
	{"MiB", 1 << 20},
	{"MB", 1e6},
	{"KiB", 1 << 10},
	{"kB", 1e3},
	{"B", 1},
}

// String prints b with the largest unit that divides it exactly ("500MiB", "10GB", "1023B"),
// so it round-trips through ParseByteSize.
func (b ByteSize) String() string {
	sign, mag := "", uint64(b)
	if b < 0 {
		sign, mag = "-", -mag // two's complement: also right for math.MinInt64
	}
	if mag == 0 {
		return "0B"
	}
	for _, u := range byteUnits {
		if mag%uint64(u.size) == 0 {
			return sign + strconv.FormatUint(mag/uint64(u.size), 10) + u.name
		}
	}
	panic("unreachable: the unit B divides every size")
}

// MarshalText writes b as String does, so JSON and YAML output read like the config file.
func (b ByteSize) MarshalText() ([]byte, error) { return []byte(b.String()), nil }

// UnmarshalText parses a size as ParseByteSize does.
func (b *ByteSize) UnmarshalText(text []byte) error {
	v, err := ParseByteSize(string(text))
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// ParseByteSize parses a whole, non-negative number with an optional unit (see ByteSize).
// Fractions are rejected rather than rounded: "1.5GB" is spelt "1500MB", so the value used
// is always exactly the value written.
func ParseByteSize(s string) (ByteSize, error) {
	b, err := parseByteSize(s)
	if err != nil {
		return 0, fmt.Errorf("invalid size %q: %w", s, err)
	}
	return b, nil
}

const byteUnitList = "B, kB, MB, GB, TB, KiB, MiB, GiB or TiB"

func parseByteSize(s string) (ByteSize, error) {
	i := strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	if i < 0 {
		i = len(s)
	}
	num, unit := s[:i], s[i:]
	if num == "" {
		switch {
		case s == "":
			return 0, errors.New("empty")
		case s[0] == '-':
			return 0, errors.New("must not be negative")
		}
		return 0, fmt.Errorf("expected a number before %q", unit)
	}
	if strings.HasPrefix(unit, ".") {
		return 0, errors.New("fractions are not supported (use a smaller unit)")
	}
	mult := int64(-1)
	if unit == "" {
		mult = 1
	}
	for _, u := range byteUnits {
		if u.name == unit {
			mult = u.size
		}
	}
	if mult < 0 {
		return 0, fmt.Errorf("unknown unit %q (want %s)", unit, byteUnitList)
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n > math.MaxInt64/mult {
		return 0, errors.New("out of range")
	}
	return ByteSize(n * mult), nil
}
