package archive

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/townwatch/townwatch/recorder"
)

// Tier is the archive as recorder.Storage reads it (recorder.ArchiveTier): whole segments
// through a byte-bounded local cache, ranges straight from the bucket.
type Tier struct {
	bucket *Bucket
	cache  *cache
}

// NewTier reads b; whole-segment copies are cached in a directory under cacheParent (the
// storage path), at most cacheBytes.
func NewTier(b *Bucket, cacheParent string, cacheBytes int64) (*Tier, error) {
	c, err := newCache(cacheParent, cacheBytes, b)
	if err != nil {
		return nil, err
	}
	return &Tier{bucket: b, cache: c}, nil
}

// Close removes the cache.
func (t *Tier) Close() error { return t.cache.close() }

// CacheBytes is what the whole-segment cache holds.
func (t *Tier) CacheBytes() int64 { return t.cache.bytes() }

// OpenWhole returns a local file holding the object at key.
func (t *Tier) OpenWhole(ctx context.Context, key string) (*os.File, error) {
	return t.cache.open(ctx, key)
}

// OpenRange returns a reader that fetches ranges of the object at key as they are read.
func (t *Tier) OpenRange(ctx context.Context, key string) (recorder.MediaReader, error) {
	size, err := t.bucket.Size(ctx, key)
	if err != nil {
		return nil, err
	}
	return &rangeReader{ctx: ctx, bucket: t.bucket, key: key, size: size}, nil
}

// RemoveObject deletes the object at key and its cached copy.
func (t *Tier) RemoveObject(ctx context.Context, key string) error {
	t.cache.drop(key)
	return t.bucket.Remove(ctx, key)
}

// readAhead is the least a range reader fetches at once: about one fragment of a 4 Mbit/s
// camera, so the 32 KiB reads of an HTTP response cost one request per fragment, not one
// each. It bounds the memory a playing viewer holds.
const readAhead = 1 << 20

// rangeReader serves ReadAt from a window of the object fetched by one ranged GET.
type rangeReader struct {
	ctx    context.Context
	bucket *Bucket
	key    string
	size   int64

	mu     sync.Mutex
	winOff int64
	win    []byte
}

func (r *rangeReader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("archive: read %s at %d: negative offset", r.key, off)
	}
	if off >= r.size {
		return 0, io.EOF
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for n < len(p) && off < r.size {
		if off < r.winOff || off >= r.winOff+int64(len(r.win)) {
			if err := r.fill(off, int64(len(p)-n)); err != nil {
				return n, err
			}
		}
		c := copy(p[n:], r.win[off-r.winOff:])
		n += c
		off += int64(c)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// fill fetches the window starting at off: want bytes, at least readAhead, at most to the
// object's end.
func (r *rangeReader) fill(off, want int64) error {
	length := min(max(want, readAhead), r.size-off)
	rc, err := r.bucket.Get(r.ctx, r.key, off, length)
	if err != nil {
		return err
	}
	defer rc.Close()
	buf := make([]byte, length)
	if _, err := io.ReadFull(rc, buf); err != nil {
		return fmt.Errorf("archive: read %s [%d, %d): %w", r.key, off, off+length, err)
	}
	r.winOff, r.win = off, buf
	return nil
}

func (r *rangeReader) Close() error { return nil }
