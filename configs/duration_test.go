package configs

import (
	"encoding/json"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"0", 0},
		{"-0", 0},
		{"0s", 0},
		{"90s", 90 * time.Second},
		{"15m", 15 * time.Minute},
		{"12h", 12 * time.Hour},
		{"7d", 7 * 24 * time.Hour},
		{"1d12h", 36 * time.Hour},
		{"12h1d", 36 * time.Hour},
		{"1.5d", 36 * time.Hour},
		{".5d", 12 * time.Hour},
		{"1h30m", 90 * time.Minute},
		{"1.5s", 1500 * time.Millisecond},
		{"500ms", 500 * time.Millisecond},
		{"10us", 10 * time.Microsecond},
		{"10µs", 10 * time.Microsecond}, // U+00B5, as time.Duration.String writes it
		{"10μs", 10 * time.Microsecond}, // U+03BC
		{"3ns", 3},
		{"+2h", 2 * time.Hour},
		{"-1d", -24 * time.Hour},
		{"106751d", 106751 * 24 * time.Hour},                        // the largest whole number of days
		{"9223372036854775807ns", time.Duration(1<<63 - 1)},         // the largest duration
		{"106751d23h47m16s854775807ns", time.Duration(1<<63 - 1)},   // the same, in parts
		{"-106751d23h47m16s854775807ns", -time.Duration(1<<63 - 1)}, // and negative
		{"0.000000001s", 1},                                         // fractions as time.ParseDuration
		{"1d1d", 48 * time.Hour},                                    // repeated units add up, as in Go
		{"2562047h47m16.854775807s", time.Duration(1<<63 - 1)},      // hours as Go writes them
		{"1.000000000000000000000000000000000000001h", time.Duration(time.Hour)}, // long fractions are truncated
	}
	for _, tt := range tests {
		got, err := ParseDuration(tt.in)
		if err != nil || got.Std() != tt.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", tt.in, got.Std(), err, tt.want)
		}
	}
}

func TestParseDurationErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", `invalid duration "": empty`},
		{"-", `invalid duration "-": empty`},
		{"7", `invalid duration "7": missing unit after "7" (want d, h, m, s, ms, us or ns)`},
		{"1d7", `invalid duration "1d7": missing unit after "7" (want d, h, m, s, ms, us or ns)`},
		{"7 days", `invalid duration "7 days": unknown unit " days" (want d, h, m, s, ms, us or ns)`},
		{"7days", `invalid duration "7days": unknown unit "days" (want d, h, m, s, ms, us or ns)`},
		{"1w", `invalid duration "1w": unknown unit "w" (want d, h, m, s, ms, us or ns)`},
		{"7D", `invalid duration "7D": unknown unit "D" (want d, h, m, s, ms, us or ns)`},
		{" 7d", `invalid duration " 7d": expected a number before " "`},
		{"d", `invalid duration "d": expected a number before "d"`},
		{"--1d", `invalid duration "--1d": expected a number before "-"`},
		{"1d-2h", `invalid duration "1d-2h": unknown unit "d-" (want d, h, m, s, ms, us or ns)`},
		{"1.2.3s", `invalid duration "1.2.3s": invalid number "1.2.3"`},
		{".s", `invalid duration ".s": invalid number "."`},
		{"106752d", `invalid duration "106752d": out of range`},
		{"9223372036854775808ns", `invalid duration "9223372036854775808ns": out of range`},
		{"106751d1d", `invalid duration "106751d1d": out of range`},
		{"99999999999999999999h", `invalid duration "99999999999999999999h": out of range`},
	}
	for _, tt := range tests {
		got, err := ParseDuration(tt.in)
		if err == nil || err.Error() != tt.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want error %s", tt.in, got, err, tt.want)
		}
	}
}

func TestDurationString(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"},
		{7 * 24 * time.Hour, "7d"},
		{30 * 24 * time.Hour, "30d"},
		{36 * time.Hour, "36h"},
		{90 * time.Second, "90s"},
		{15 * time.Minute, "15m"},
		{1500 * time.Millisecond, "1500ms"},
		{10 * time.Microsecond, "10us"},
		{7, "7ns"},
		{-24 * time.Hour, "-1d"},
		{time.Duration(1<<63 - 1), "9223372036854775807ns"},
		{time.Duration(-1 << 63), "-9223372036854775808ns"},
	}
	for _, tt := range tests {
		if got := Duration(tt.d).String(); got != tt.want {
			t.Errorf("Duration(%d).String() = %q, want %q", int64(tt.d), got, tt.want)
		}
		if tt.d == -1<<63 {
			continue // one more than the largest duration ParseDuration accepts
		}
		if back, err := ParseDuration(tt.want); err != nil || back.Std() != tt.d {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", tt.want, back.Std(), err, tt.d)
		}
	}
}

// JSON output (the viewer's API) must read like the config file, not as nanoseconds.
func TestDurationText(t *testing.T) {
	in := struct{ Retention Duration }{Duration(30 * 24 * time.Hour)}
	b, err := json.Marshal(in)
	if err != nil || string(b) != `{"Retention":"30d"}` {
		t.Fatalf("json.Marshal = %s, %v", b, err)
	}
	var out struct{ Retention Duration }
	if err := json.Unmarshal(b, &out); err != nil || out != in {
		t.Fatalf("json.Unmarshal(%s) = %+v, %v", b, out, err)
	}
	if err := json.Unmarshal([]byte(`{"Retention":"7 days"}`), &out); err == nil {
		t.Fatal("json.Unmarshal accepted 7 days")
	}
}
