package motion

import (
	"crypto/rand"
	"encoding/hex"
	"time"
)

// newUUIDv7 returns a version 7 UUID (RFC 9562, section 5.7) for an event that started at
// t: a 48-bit Unix millisecond timestamp, then 74 random bits around the version (7) and
// variant (10) bits. Ids made this way sort by event start, which keeps the catalog's
// index on them append-mostly, and 74 random bits make a collision within one millisecond
// negligible without any shared counter.
func newUUIDv7(t time.Time) string {
	var b [16]byte
	rand.Read(b[6:]) // never fails (crypto/rand.Read crashes the program instead)
	ms := uint64(t.UnixMilli())
	for i := range 6 {
		b[i] = byte(ms >> (40 - 8*i))
	}
	b[6] = b[6]&0x0f | 0x70 // version 7
	b[8] = b[8]&0x3f | 0x80 // variant 10
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:36], b[10:16])
	return string(s[:])
}
