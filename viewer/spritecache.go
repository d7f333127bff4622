package viewer

import (
	"container/list"
	"sync"
)

// spriteCacheBytes bounds the composed sprites the server keeps: a 60 s segment's sprite
// (6 tiles) is about 21 KiB, so this holds some 6 camera-hours, enough for the officers
// looking at the same incident to share what one of them had composed.
const spriteCacheBytes = 8 << 20

// spriteCache keeps the composed sprites of closed segments, least recently used dropped
// first, within a byte budget. It sits behind the route's guard and pathSegment: it is
// only asked once the request's camera was authorized, its playback session checked and
// the segment found not deleted, so it never decides who sees what. An entry answers only
// for the exact tiles it was composed from (etag, the digest of the tiles read for this
// request): a thumbnail that still lands in a segment after it closed (the thumbnail
// sink places late ones by capture time) makes the entry miss and be replaced.
type spriteCache struct {
	mu    sync.Mutex
	limit int // bytes: sprites and their ETags
	used  int
	order *list.List // of *cachedSprite, most recently used at the front
	byID  map[int64]*list.Element
}

type cachedSprite struct {
	segment int64
	etag    string
	jpeg    []byte
}

func (c *cachedSprite) size() int { return len(c.jpeg) + len(c.etag) }

func newSpriteCache(limit int) *spriteCache {
	return &spriteCache{limit: limit, order: list.New(), byID: map[int64]*list.Element{}}
}

// get returns the sprite of segment composed from the tiles whose digest is etag.
func (c *spriteCache) get(segment int64, etag string) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.byID[segment]
	if !ok || el.Value.(*cachedSprite).etag != etag {
		return nil, false
	}
	c.order.MoveToFront(el)
	return el.Value.(*cachedSprite).jpeg, true
}

// put keeps segment's sprite (replacing one of other tiles), evicting the least recently
// used until the budget holds. A sprite larger than the whole budget (an hour-long
// segment at one tile every 2 s) is not kept: it would empty the cache for one entry.
func (c *spriteCache) put(segment int64, etag string, jpeg []byte) {
	e := &cachedSprite{segment: segment, etag: etag, jpeg: jpeg}
	if e.size() > c.limit {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.byID[segment]; ok {
		c.remove(el)
	}
	c.byID[segment] = c.order.PushFront(e)
	c.used += e.size()
	for c.used > c.limit {
		c.remove(c.order.Back())
	}
}

func (c *spriteCache) remove(el *list.Element) {
	e := c.order.Remove(el).(*cachedSprite)
	delete(c.byID, e.segment)
	c.used -= e.size()
}
