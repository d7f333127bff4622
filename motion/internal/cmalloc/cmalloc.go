// Package cmalloc reports how much C heap the process has in use, for motion's leak tests:
// the analyser's decoder (libavcodec) and its gocv Mats (OpenCV) live in C memory, which
// neither the Go heap statistics nor the Mat profile see all of. Test files cannot use cgo
// themselves, hence this package; only tests import it.
package cmalloc

// #include <malloc.h>
import "C"

// InUse returns the bytes glibc's malloc has handed out and not had back: the small
// blocks of every arena (mallinfo2 walks them all) plus the large ones it mmapped. Unlike
// the resident set it does not count memory malloc keeps after a free, nor the Go heap,
// so it moves only when C code allocates without freeing.
func InUse() uint64 {
	mi := C.mallinfo2()
	return uint64(mi.uordblks) + uint64(mi.hblkhd)
}
