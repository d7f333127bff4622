// C side of package decode: one libavcodec decoder plus the swscale contexts that read its
// pictures. Go never hands a Go pointer to these functions; packet bytes are copied by Go into
// the buffer tw_packet allocates, and scaling writes into OpenCV-allocated (C) memory.
#include <stdint.h>

typedef struct tw_decoder tw_decoder;

// Options for tw_decode: how much of the decoder's work a picture may skip.
enum {
	TW_SKIP_NONREF = 1,     // drop pictures no other picture references (skip_frame NONREF)
	// A keyframe decoded on its own to be shown small: no loop filter (deblocking, H.265's
	// SAO), and its picture comes out now whatever the stream's reordering delay (if the
	// decoder holds it back, it is drained and flushed).
	TW_STILL = 2,
};

void tw_init_log(void);
int tw_open(int h265, tw_decoder **out);
void tw_close(tw_decoder *d);
uint8_t *tw_packet(tw_decoder *d, int size);
int tw_decode(tw_decoder *d, int64_t pts, int skip, int *pictures, int *corrupt);
int tw_logged(tw_decoder *d);
const char *tw_last_log(tw_decoder *d);
int tw_reset(tw_decoder *d);
int tw_delay(tw_decoder *d);
int tw_picture_size(tw_decoder *d, int *w, int *h);
int tw_gray(tw_decoder *d, uint8_t *dst, int dw, int dh, int dstride, int flags);
int tw_bgr(tw_decoder *d, uint8_t *dst, int dw, int dh, int dstride, int flags);
