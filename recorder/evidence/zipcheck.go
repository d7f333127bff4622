package evidence

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// ErrDamaged: the ZIP's own structures (headers, directory) are not the consistent whole
// Write makes. Match it with errors.Is.
var ErrDamaged = errors.New("the ZIP file is damaged")

// ZIP record signatures and sizes (APPNOTE.TXT 4.3).
const (
	localSig      = 0x04034b50
	descriptorSig = 0x08074b50
	centralSig    = 0x02014b50
	end64Sig      = 0x06064b50
	locator64Sig  = 0x07064b50
	endSig        = 0x06054b50

	localLen    = 30
	centralLen  = 46
	endLen      = 22
	locatorLen  = 20
	end64Len    = 56
	zip64Extra  = 0x0001
	max16       = 0xffff
	max32       = 0xffffffff
	madeByUnix  = 3<<8 | 20 // what archive/zip records after SetMode: Unix, ZIP 2.0
	version20   = 20        // version needed: stored or deflated files
	version45   = 45        // version needed: ZIP64 sizes
	flagDataDes = 0x8       // sizes and CRC follow the data, in a data descriptor

	// maxCentral bounds the central directory read into memory: a bundle has a handful
	// of entries per camera, so a larger one is damage, not a bundle.
	maxCentral = 1 << 20
)

// bundleAttrs is the external attributes of a file of mode bundleFileMode.
var bundleAttrs = func() uint32 {
	var h zip.FileHeader
	h.SetMode(bundleFileMode)
	return h.ExternalAttrs
}()

// entry is one central-directory record.
type entry struct {
	name                 string
	needed, flags        uint16
	method, mtime, mdate uint16
	crc                  uint32
	csize, usize, offset uint64
	localExtra           []byte // the central extra field without its ZIP64 block
}

// zip64 reports whether the entry's sizes need 64 bits, as archive/zip decides it.
func (e *entry) zip64() bool { return e.csize >= max32 || e.usize >= max32 }

// checkZip checks every byte of a ZIP outside the files' data: the end records, each
// central-directory record, each local header and data descriptor, all in the one layout
// archive/zip writes, with nothing before, between or after them. ZIP readers trust the
// central directory and skip most of the rest, so without this a changed byte in a local
// header (a file name, a time) or in an unused field would go unnoticed; with it, a
// changed byte anywhere is either here or in some file's data, which its CRC-32 and
// SHA-256 catch.
func checkZip(r io.ReaderAt, size int64) error {
	cdOff, cdSize, count, err := readEnd(r, size)
	if err != nil {
		return err
	}
	if cdSize > maxCentral {
		return damaged("the central directory claims %d bytes, more than a bundle's", cdSize)
	}
	cd := make([]byte, cdSize)
	if _, err := r.ReadAt(cd, int64(cdOff)); err != nil {
		return damaged("reading the central directory: %v", err)
	}
	entries, err := readCentral(cd, count)
	if err != nil {
		return err
	}
	var pos uint64
	for i := range entries {
		if pos, err = checkLocal(r, &entries[i], pos); err != nil {
			return err
		}
	}
	if pos != cdOff {
		return damaged("%d unaccounted bytes before the central directory", int64(cdOff)-int64(pos))
	}
	return nil
}

func damaged(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrDamaged}, a...)...)
}

// readAt reads n bytes at off, or says what could not be read.
func readAt(r io.ReaderAt, off uint64, n int, what string) ([]byte, error) {
	b := make([]byte, n)
	if off > 1<<62 {
		return nil, damaged("%s at offset %d is beyond the file", what, off)
	}
	if _, err := r.ReadAt(b, int64(off)); err != nil {
		return nil, damaged("%s at offset %d: %v", what, off, err)
	}
	return b, nil
}

// le reads little-endian fields in order.
type le []byte

func (b *le) u16() uint16 { v := binary.LittleEndian.Uint16(*b); *b = (*b)[2:]; return v }
func (b *le) u32() uint32 { v := binary.LittleEndian.Uint32(*b); *b = (*b)[4:]; return v }
func (b *le) u64() uint64 { v := binary.LittleEndian.Uint64(*b); *b = (*b)[8:]; return v }
func (b *le) bytes(n int) []byte {
	v := (*b)[:n]
	*b = (*b)[n:]
	return v
}

// readEnd reads the end-of-central-directory record, which must end the file with no
// comment, and its ZIP64 counterpart when the archive needs one.
func readEnd(r io.ReaderAt, size int64) (cdOff, cdSize, count uint64, err error) {
	if size < endLen {
		return 0, 0, 0, damaged("%d bytes is too short for a ZIP", size)
	}
	end := uint64(size) - endLen
	raw, err := readAt(r, end, endLen, "the end record")
	if err != nil {
		return 0, 0, 0, err
	}
	b := le(raw)
	if b.u32() != endSig {
		return 0, 0, 0, damaged("no end-of-central-directory record at the end of the file (cut short, or bytes added)")
	}
	disk, cdDisk, here, total := b.u16(), b.u16(), b.u16(), b.u16()
	size32, off32, comment := b.u32(), b.u32(), b.u16()
	if disk != 0 || cdDisk != 0 || here != total || comment != 0 {
		return 0, 0, 0, damaged("the end record's disk numbers, entry counts or comment length are not a single-file bundle's")
	}
	cdEnd := end
	cdOff, cdSize, count = uint64(off32), uint64(size32), uint64(total)
	// archive/zip writes all three as their maximum when any needs the ZIP64 record.
	if total == max16 || size32 == max32 || off32 == max32 {
		if total != max16 || size32 != max32 || off32 != max32 || end < locatorLen+end64Len {
			return 0, 0, 0, damaged("the end record's ZIP64 markers are inconsistent")
		}
		if cdEnd, cdOff, cdSize, count, err = readEnd64(r, end-locatorLen); err != nil {
			return 0, 0, 0, err
		}
	}
	if cdOff > cdEnd || cdEnd-cdOff != cdSize {
		return 0, 0, 0, damaged("the central directory (%d bytes at %d) does not end where the end records begin (%d)", cdSize, cdOff, cdEnd)
	}
	return cdOff, cdSize, count, nil
}

// readEnd64 reads the ZIP64 end locator at loc and the record it points at, which must
// lie right before it; cdEnd is where that record starts.
func readEnd64(r io.ReaderAt, loc uint64) (cdEnd, cdOff, cdSize, count uint64, err error) {
	raw, err := readAt(r, loc, locatorLen, "the ZIP64 end locator")
	if err != nil {
		return 0, 0, 0, 0, err
	}
	b := le(raw)
	if b.u32() != locator64Sig || b.u32() != 0 || b.u64() != loc-end64Len || b.u32() != 1 {
		return 0, 0, 0, 0, damaged("the ZIP64 end locator is not right before the end record, or does not point right before itself")
	}
	raw, err = readAt(r, loc-end64Len, end64Len, "the ZIP64 end record")
	if err != nil {
		return 0, 0, 0, 0, err
	}
	b = le(raw)
	if b.u32() != end64Sig || b.u64() != end64Len-12 || b.u16() != version45 || b.u16() != version45 || b.u32() != 0 || b.u32() != 0 {
		return 0, 0, 0, 0, damaged("the ZIP64 end record's header is not a single-file bundle's")
	}
	here, total := b.u64(), b.u64()
	cdSize, cdOff = b.u64(), b.u64()
	if here != total {
		return 0, 0, 0, 0, damaged("the ZIP64 end record's entry counts differ")
	}
	return loc - end64Len, cdOff, cdSize, total, nil
}

// readCentral parses exactly count records filling cd.
func readCentral(cd []byte, count uint64) ([]entry, error) {
	var out []entry
	b := le(cd)
	for i := uint64(0); i < count; i++ {
		if len(b) < centralLen {
			return nil, damaged("the central directory ends after %d of its %d records", i, count)
		}
		if b.u32() != centralSig {
			return nil, damaged("central directory record %d has no signature", i+1)
		}
		var e entry
		madeBy := b.u16()
		e.needed, e.flags, e.method, e.mtime, e.mdate = b.u16(), b.u16(), b.u16(), b.u16(), b.u16()
		e.crc = b.u32()
		csize, usize := b.u32(), b.u32()
		nameLen, extraLen, commentLen := int(b.u16()), int(b.u16()), b.u16()
		disk, internal, external := b.u16(), b.u16(), b.u32()
		off := b.u32()
		if len(b) < nameLen+extraLen {
			return nil, damaged("central directory record %d runs past the directory", i+1)
		}
		e.name = string(b.bytes(nameLen))
		extra := b.bytes(extraLen)
		what := fmt.Sprintf("central directory record %d (%q)", i+1, e.name)
		if madeBy != madeByUnix || commentLen != 0 || disk != 0 || internal != 0 || external != bundleAttrs || e.flags != flagDataDes {
			return nil, damaged("%s: its version, flags, attributes, disk or comment fields are not a bundle's", what)
		}
		var err error
		if e.csize, e.usize, e.offset, e.localExtra, err = sizes(extra, csize, usize, off); err != nil {
			return nil, damaged("%s: %v", what, err)
		}
		want := uint16(version20)
		if e.zip64() {
			want = version45
		}
		if e.needed != want {
			return nil, damaged("%s: version needed to extract is %d", what, e.needed)
		}
		out = append(out, e)
	}
	if len(b) != 0 {
		return nil, damaged("%d bytes follow the central directory's %d records", len(b), count)
	}
	return out, nil
}

// sizes takes the sizes and offset from the 32-bit fields or, when archive/zip has put
// the maximum there, from the ZIP64 extra block (which it writes with all three values),
// and returns the extra field without that block: what the local header repeats.
func sizes(extra []byte, csize, usize, off uint32) (c, u, o uint64, local []byte, err error) {
	c, u, o = uint64(csize), uint64(usize), uint64(off)
	local = []byte{}
	found := false
	for b := le(extra); len(b) > 0; {
		if len(b) < 4 {
			return 0, 0, 0, nil, errors.New("truncated extra field")
		}
		start := b
		id, n := b.u16(), int(b.u16())
		if len(b) < n {
			return 0, 0, 0, nil, errors.New("extra block runs past the extra field")
		}
		data := le(b.bytes(n))
		if id != zip64Extra {
			local = append(local, start[:4+n]...)
			continue
		}
		if found || n != 24 || csize != max32 || usize != max32 {
			return 0, 0, 0, nil, errors.New("unexpected ZIP64 extra block")
		}
		found = true
		u, c = data.u64(), data.u64()
		if o64 := data.u64(); off == max32 {
			o = o64
		} else if o64 != o {
			return 0, 0, 0, nil, errors.New("the ZIP64 block's offset differs from the record's")
		}
	}
	if !found && (csize == max32 || usize == max32 || off == max32) {
		return 0, 0, 0, nil, errors.New("ZIP64 markers without a ZIP64 extra block")
	}
	return c, u, o, local, nil
}

// checkLocal checks e's local header at pos against e, skips its data and checks its
// data descriptor; it returns where the next entry must start.
func checkLocal(r io.ReaderAt, e *entry, pos uint64) (uint64, error) {
	what := fmt.Sprintf("the local header of %q", e.name)
	if e.offset != pos {
		return 0, damaged("%s is listed at offset %d but the previous entry ends at %d", what, e.offset, pos)
	}
	raw, err := readAt(r, pos, localLen, what)
	if err != nil {
		return 0, err
	}
	b := le(raw)
	sig, needed, flags, method, mtime, mdate := b.u32(), b.u16(), b.u16(), b.u16(), b.u16(), b.u16()
	crc, csize, usize := b.u32(), b.u32(), b.u32()
	nameLen, extraLen := int(b.u16()), int(b.u16())
	// archive/zip writes version 2.0 and zero CRC and sizes here (they follow in the
	// descriptor), and the other fields as in the central directory.
	if sig != localSig || needed != version20 || flags != e.flags || method != e.method || mtime != e.mtime || mdate != e.mdate ||
		crc != 0 || csize != 0 || usize != 0 || nameLen != len(e.name) || extraLen != len(e.localExtra) {
		return 0, damaged("%s differs from its central directory record", what)
	}
	tail, err := readAt(r, pos+localLen, nameLen+extraLen, what)
	if err != nil {
		return 0, err
	}
	if string(tail[:nameLen]) != e.name || !bytes.Equal(tail[nameLen:], e.localExtra) {
		return 0, damaged("%s differs from its central directory record (name or extra field)", what)
	}
	pos += localLen + uint64(nameLen+extraLen) + e.csize
	n := 16
	if e.zip64() {
		n = 24
	}
	raw, err = readAt(r, pos, n, fmt.Sprintf("the data descriptor of %q", e.name))
	if err != nil {
		return 0, err
	}
	b = le(raw)
	dsig, dcrc := b.u32(), b.u32()
	var dc, du uint64
	if e.zip64() {
		dc, du = b.u64(), b.u64()
	} else {
		dc, du = uint64(b.u32()), uint64(b.u32())
	}
	if dsig != descriptorSig || dcrc != e.crc || dc != e.csize || du != e.usize {
		return 0, damaged("the data descriptor of %q differs from its central directory record", e.name)
	}
	return pos + uint64(n), nil
}
