package configs

import (
	"fmt"
	"strconv"
	"strings"
)

// Resolution is a picture size, written "7680x4320" in the file.
type Resolution struct {
	Width, Height int
}

// Pixels is Width × Height.
func (r Resolution) Pixels() int { return r.Width * r.Height }

func (r Resolution) String() string { return fmt.Sprintf("%dx%d", r.Width, r.Height) }

// MarshalText writes r as String does.
func (r Resolution) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText parses "WIDTHxHEIGHT" (x or ×), each side 16 to 16384.
func (r *Resolution) UnmarshalText(text []byte) error {
	s := strings.ReplaceAll(strings.TrimSpace(string(text)), "×", "x")
	w, h, ok := strings.Cut(strings.ToLower(s), "x")
	width, werr := strconv.Atoi(w)
	height, herr := strconv.Atoi(h)
	if !ok || werr != nil || herr != nil {
		return fmt.Errorf("want WIDTHxHEIGHT in pixels, e.g. 7680x4320")
	}
	if width < 16 || height < 16 || width > 16384 || height > 16384 {
		return fmt.Errorf("%dx%d: each side must be 16 to 16384 pixels", width, height)
	}
	*r = Resolution{Width: width, Height: height}
	return nil
}
