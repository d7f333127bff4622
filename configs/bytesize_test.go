package configs

import (
	"encoding/json"
	"testing"
)

func TestParseByteSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
	}{
		{"0", 0},
		{"0B", 0},
		{"1024", 1024},
		{"1024B", 1024},
		{"1kB", 1000},
		{"1KiB", 1024},
		{"500MiB", 500 << 20},
		{"10GB", 10e9},
		{"2TiB", 2 << 40},
		{"3TB", 3e12},
		{"007MB", 7e6},
		{"9223372036854775807", 1<<63 - 1},
		{"8388607TiB", 8388607 << 40}, // the largest number of TiB
		{"9223372TB", 9223372e12},
	}
	for _, tt := range tests {
		got, err := ParseByteSize(tt.in)
		if err != nil || int64(got) != tt.want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
}

func TestParseByteSizeErrors(t *testing.T) {
	const units = "(want B, kB, MB, GB, TB, KiB, MiB, GiB or TiB)"
	tests := []struct{ in, want string }{
		{"", `invalid size "": empty`},
		{"-1", `invalid size "-1": must not be negative`},
		{"-5GiB", `invalid size "-5GiB": must not be negative`},
		{"+5GiB", `invalid size "+5GiB": expected a number before "+5GiB"`},
		{"GiB", `invalid size "GiB": expected a number before "GiB"`},
		{"1.5GB", `invalid size "1.5GB": fractions are not supported (use a smaller unit)`},
		{"500 MiB", `invalid size "500 MiB": unknown unit " MiB" ` + units},
		{"10gb", `invalid size "10gb": unknown unit "gb" ` + units},
		{"10KB", `invalid size "10KB": unknown unit "KB" ` + units},
		{"1PiB", `invalid size "1PiB": unknown unit "PiB" ` + units},
		{"1e9", `invalid size "1e9": unknown unit "e9" ` + units},
		{"9223372036854775808", `invalid size "9223372036854775808": out of range`},
		{"8388608TiB", `invalid size "8388608TiB": out of range`},
		{"9223373TB", `invalid size "9223373TB": out of range`},
		{"99999999999999999999999GB", `invalid size "99999999999999999999999GB": out of range`},
	}
	for _, tt := range tests {
		got, err := ParseByteSize(tt.in)
		if err == nil || err.Error() != tt.want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want error %s", tt.in, got, err, tt.want)
		}
	}
}

func TestByteSizeString(t *testing.T) {
	tests := []struct {
		b    int64
		want string
	}{
		{0, "0B"},
		{1, "1B"},
		{1023, "1023B"},
		{1000, "1kB"},
		{1024, "1KiB"},
		{1024000, "1000KiB"}, // 1000KiB is also 1024kB: the larger unit wins
		{500 << 20, "500MiB"},
		{10e9, "10GB"},
		{2 << 40, "2TiB"},
		{1 << 50, "1024TiB"},
		{1<<63 - 1, "9223372036854775807B"},
		{-2048, "-2KiB"},
		{-1 << 63, "-8388608TiB"},
	}
	for _, tt := range tests {
		if got := ByteSize(tt.b).String(); got != tt.want {
			t.Errorf("ByteSize(%d).String() = %q, want %q", tt.b, got, tt.want)
		}
		if tt.b < 0 {
			continue // ParseByteSize rejects negative sizes
		}
		if back, err := ParseByteSize(tt.want); err != nil || int64(back) != tt.b {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", tt.want, back, err, tt.b)
		}
	}
}

func TestByteSizeText(t *testing.T) {
	in := struct{ Quota ByteSize }{500 << 20}
	b, err := json.Marshal(in)
	if err != nil || string(b) != `{"Quota":"500MiB"}` {
		t.Fatalf("json.Marshal = %s, %v", b, err)
	}
	var out struct{ Quota ByteSize }
	if err := json.Unmarshal(b, &out); err != nil || out != in {
		t.Fatalf("json.Unmarshal(%s) = %+v, %v", b, out, err)
	}
}
