package archive

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// cache keeps local copies of whole archived segments, for readers that read a segment
// through or need a file (export, verify-archive, stills), up to limit bytes, the least
// recently used going first. Copies are not trusted more than the object: every reader of
// a whole segment checks its SHA-256 against the catalog row itself. The directory is
// this process's own (its pid in the name) and is removed on Close; directories of
// processes that no longer run are removed when a cache is made.
type cache struct {
	dir    string
	limit  int64
	bucket *Bucket

	mu      sync.Mutex
	used    int64
	lru     *list.List // of *cached, most recent at the front
	entries map[string]*list.Element
}

type cached struct {
	key  string
	path string
	size int64
}

const cachePrefix = ".archive-cache-"

func newCache(parent string, limit int64, b *Bucket) (*cache, error) {
	stale, _ := filepath.Glob(filepath.Join(parent, cachePrefix+"*"))
	for _, d := range stale {
		pid, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(d), cachePrefix))
		if err == nil && pid != os.Getpid() && !running(pid) {
			os.RemoveAll(d)
		}
	}
	dir := filepath.Join(parent, cachePrefix+strconv.Itoa(os.Getpid()))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("archive cache: %w", err)
	}
	return &cache{dir: dir, limit: limit, bucket: b, lru: list.New(), entries: map[string]*list.Element{}}, nil
}

func running(pid int) bool {
	_, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pid)))
	return err == nil
}

// open returns a file holding the whole object at key, fetching it on a miss. A copy
// larger than the whole cache is handed out unlinked and not kept.
func (c *cache) open(ctx context.Context, key string) (*os.File, error) {
	c.mu.Lock()
	if e, ok := c.entries[key]; ok {
		c.lru.MoveToFront(e)
		f, err := os.Open(e.Value.(*cached).path)
		c.mu.Unlock()
		return f, err
	}
	c.mu.Unlock()

	rc, err := c.bucket.Get(ctx, key, 0, -1)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	tmp, err := os.CreateTemp(c.dir, "fetch-*")
	if err != nil {
		return nil, err
	}
	n, err := io.Copy(tmp, rc)
	if err == nil {
		_, err = tmp.Seek(0, io.SeekStart)
	}
	if err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return nil, fmt.Errorf("archive: fetch %s: %w", key, err)
	}
	sum := sha256.Sum256([]byte(key))
	path := filepath.Join(c.dir, hex.EncodeToString(sum[:16]))
	c.mu.Lock()
	defer c.mu.Unlock()
	_, have := c.entries[key]
	if have || n > c.limit || os.Rename(tmp.Name(), path) != nil {
		// Another reader cached it meanwhile, it does not fit, or it cannot be kept:
		// this copy lives only as long as the caller's open file.
		if err := os.Remove(tmp.Name()); err != nil {
			tmp.Close()
			return nil, fmt.Errorf("archive: fetch %s: %w", key, err)
		}
		return tmp, nil
	}
	c.entries[key] = c.lru.PushFront(&cached{key: key, path: path, size: n})
	c.used += n
	for c.used > c.limit {
		e := c.lru.Back()
		old := e.Value.(*cached)
		// Readers holding the file open keep reading it; the name goes now.
		os.Remove(old.path)
		c.lru.Remove(e)
		delete(c.entries, old.key)
		c.used -= old.size
	}
	return tmp, nil
}

// drop forgets key's copy (its object was deleted).
func (c *cache) drop(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[key]; ok {
		old := e.Value.(*cached)
		os.Remove(old.path)
		c.lru.Remove(e)
		delete(c.entries, key)
		c.used -= old.size
	}
}

// bytes is what the cache holds now.
func (c *cache) bytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.used
}

func (c *cache) close() error {
	return os.RemoveAll(c.dir)
}
