package configs

import (
	"fmt"
	"strconv"
	"strings"
)

// FreeSpace is an amount of disk space given either in bytes ("50GiB") or as a share of
// the filesystem ("10%"). storage.min_free uses it: a share follows the disk when it is
// replaced by a bigger one, an absolute size suits a disk shared with other data.
type FreeSpace struct {
	Bytes   ByteSize // used when Percent is 0
	Percent float64  // 0 < Percent < 100
}

// ParseFreeSpace parses "10%", "12.5%" or a size as ParseByteSize does.
func ParseFreeSpace(s string) (FreeSpace, error) {
	t := strings.TrimSpace(s)
	if p, ok := strings.CutSuffix(t, "%"); ok {
		v, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil || v <= 0 || v >= 100 {
			return FreeSpace{}, fmt.Errorf("invalid share %q (want a percentage above 0%% and below 100%%, such as 10%%)", s)
		}
		return FreeSpace{Percent: v}, nil
	}
	b, err := ParseByteSize(t)
	if err != nil {
		return FreeSpace{}, fmt.Errorf("invalid free space %q (want a size such as 50GiB or a share such as 10%%)", s)
	}
	return FreeSpace{Bytes: b}, nil
}

// Of returns the space in bytes on a filesystem of total bytes.
func (f FreeSpace) Of(total uint64) uint64 {
	if f.Percent > 0 {
		return uint64(float64(total) * f.Percent / 100)
	}
	return uint64(f.Bytes)
}

// String writes f as the config file would.
func (f FreeSpace) String() string {
	if f.Percent > 0 {
		return strconv.FormatFloat(f.Percent, 'f', -1, 64) + "%"
	}
	return f.Bytes.String()
}

// MarshalText writes f as String does.
func (f FreeSpace) MarshalText() ([]byte, error) { return []byte(f.String()), nil }

// UnmarshalText parses f as ParseFreeSpace does.
func (f *FreeSpace) UnmarshalText(text []byte) error {
	v, err := ParseFreeSpace(string(text))
	if err != nil {
		return err
	}
	*f = v
	return nil
}
