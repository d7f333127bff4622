#include <stdio.h>
#include <string.h>

#include <libavcodec/avcodec.h>
#include <libavutil/log.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>

#include "avdec.h"

struct tw_decoder {
	const AVCodec *codec;
	AVCodecContext *ctx; // NULL only if reopening it failed
	AVPacket *pkt;
	AVFrame *frame; // receive target
	AVFrame *last;  // the last good picture, kept for scaling and snapshots
	struct SwsContext *gray;
	struct SwsContext *bgr;
	int logged;     // messages at AV_LOG_ERROR or worse during the current tw_decode
	char msg[160];  // the last of them
};

// The decoder running tw_decode on this thread. A cgo call stays on one OS thread, so the log
// callback can attribute libavcodec's messages to the decoder that caused them without trusting
// the log context pointer (another library in the process, such as OpenCV, may use libavcodec too).
static _Thread_local tw_decoder *tw_current;

// tw_log counts our decoders' error messages instead of printing them: the h264/hevc decoders
// report many concealed errors only through the log, and a corrupt stream would otherwise
// write a line per packet to stderr. Messages from elsewhere keep libav's default handling.
static void tw_log(void *avcl, int level, const char *fmt, va_list vl) {
	tw_decoder *d = tw_current;
	if (!d) {
		av_log_default_callback(avcl, level, fmt, vl);
		return;
	}
	if (level <= AV_LOG_ERROR) {
		d->logged++;
		vsnprintf(d->msg, sizeof d->msg, fmt, vl);
		size_t n = strlen(d->msg);
		while (n > 0 && (d->msg[n - 1] == '\n' || d->msg[n - 1] == ' ')) d->msg[--n] = 0;
	}
}

void tw_init_log(void) { av_log_set_callback(tw_log); }

void tw_close(tw_decoder *d) {
	if (!d) return;
	avcodec_free_context(&d->ctx);
	av_packet_free(&d->pkt);
	av_frame_free(&d->frame);
	av_frame_free(&d->last);
	sws_freeContext(d->gray);
	sws_freeContext(d->bgr);
	av_free(d);
}

// open_codec (re)creates the codec context.
static int open_codec(tw_decoder *d) {
	avcodec_free_context(&d->ctx);
	d->ctx = avcodec_alloc_context3(d->codec);
	if (!d->ctx) return AVERROR(ENOMEM);
	// One thread per decoder: many cameras share few cores, and frame threads would add a
	// frame of latency per thread.
	d->ctx->thread_count = 1;
	// Output each picture as soon as it is decoded: cameras send no B-frames, and the
	// decoder still reorders if a stream has them.
	d->ctx->flags |= AV_CODEC_FLAG_LOW_DELAY;
	// A picture size beyond 8K UHD is refused by the decoder itself (ingest refuses such
	// streams first): an SPS claiming 16384x16384 would otherwise have it allocate ~400 MB
	// per reference frame.
	d->ctx->max_pixels = 7680 * 4320;
	tw_current = d;
	int err = avcodec_open2(d->ctx, d->codec, NULL);
	tw_current = NULL;
	if (err < 0) avcodec_free_context(&d->ctx);
	return err;
}

int tw_open(int h265, tw_decoder **out) {
	*out = NULL;
	const AVCodec *codec = avcodec_find_decoder(h265 ? AV_CODEC_ID_HEVC : AV_CODEC_ID_H264);
	if (!codec) return AVERROR_DECODER_NOT_FOUND;
	tw_decoder *d = av_mallocz(sizeof *d);
	if (!d) return AVERROR(ENOMEM);
	d->codec = codec;
	d->pkt = av_packet_alloc();
	d->frame = av_frame_alloc();
	d->last = av_frame_alloc();
	int err = d->pkt && d->frame && d->last ? open_codec(d) : AVERROR(ENOMEM);
	if (err < 0) {
		tw_close(d);
		return err;
	}
	*out = d;
	return 0;
}

uint8_t *tw_packet(tw_decoder *d, int size) {
	av_packet_unref(d->pkt);
	// av_new_packet zeroes the AV_INPUT_BUFFER_PADDING_SIZE bytes the bitstream readers
	// may read past the end.
	if (av_new_packet(d->pkt, size) < 0) return NULL;
	return d->pkt->data;
}

int tw_logged(tw_decoder *d) { return d->logged; }

const char *tw_last_log(tw_decoder *d) { return d->msg; }

// receive collects every picture the decoder has ready, counting good ones (the last is kept)
// and corrupt ones (dropped). It returns what avcodec_receive_frame last returned.
static int receive(tw_decoder *d, int *pictures, int *corrupt) {
	for (;;) {
		int err = avcodec_receive_frame(d->ctx, d->frame);
		if (err < 0) return err;
		if ((d->frame->flags & AV_FRAME_FLAG_CORRUPT) || d->frame->decode_error_flags) {
			(*corrupt)++;
			av_frame_unref(d->frame);
			continue;
		}
		(*pictures)++;
		av_frame_unref(d->last);
		av_frame_move_ref(d->last, d->frame);
	}
}

// tw_decode sends the packet tw_packet prepared and collects every picture that comes out.
// It returns a negative AVERROR, or 0 with the number of good pictures (the last one is kept)
// and of pictures the decoder marked corrupt (dropped); d->logged counts error messages.
int tw_decode(tw_decoder *d, int64_t pts, int skip, int *pictures, int *corrupt) {
	*pictures = 0;
	*corrupt = 0;
	d->logged = 0;
	d->msg[0] = 0;
	if (!d->ctx) return AVERROR(EINVAL);
	d->ctx->skip_frame = (skip & TW_SKIP_NONREF) ? AVDISCARD_NONREF : AVDISCARD_DEFAULT;
	d->ctx->skip_loop_filter = (skip & TW_STILL) ? AVDISCARD_ALL : AVDISCARD_DEFAULT;
	d->pkt->pts = d->pkt->dts = pts;
	tw_current = d;
	int err = avcodec_send_packet(d->ctx, d->pkt);
	av_packet_unref(d->pkt);
	if (err >= 0) err = receive(d, pictures, corrupt);
	if (err == AVERROR(EAGAIN) && (skip & TW_STILL) && *pictures == 0) {
		// The stream reorders, so the decoder held the picture back: draining ends the
		// stream for the codec and lets it out; flushing makes the codec ready for the next
		// one, keeping what a fresh context would allocate and zero again.
		err = avcodec_send_packet(d->ctx, NULL);
		if (err >= 0) err = receive(d, pictures, corrupt);
		avcodec_flush_buffers(d->ctx);
		if (err == AVERROR_EOF) err = 0;
	}
	tw_current = NULL;
	return err == AVERROR(EAGAIN) ? 0 : err;
}

// tw_reset replaces the codec context after an error. avcodec_flush_buffers is not enough:
// after a truncated IDR, FFmpeg 5.1's h264 decoder decoded the next IDR wrongly without any
// error (TestCorruptInput/truncated_keyframe), while a fresh context decodes it exactly.
int tw_reset(tw_decoder *d) { return open_codec(d); }

// tw_delay is how many pictures the decoder holds back for reordering.
int tw_delay(tw_decoder *d) { return d->ctx ? d->ctx->has_b_frames : 0; }

int tw_picture_size(tw_decoder *d, int *w, int *h) {
	*w = d->last->width;
	*h = d->last->height;
	return d->last->data[0] != NULL;
}

// luma_format is the gray format that reads the luma plane of a planar YUV picture in format f
// as is, so swscale neither touches chroma nor converts range; AV_PIX_FMT_NONE if there is none.
static enum AVPixelFormat luma_format(enum AVPixelFormat f) {
	const AVPixFmtDescriptor *desc = av_pix_fmt_desc_get(f);
	if (!desc || (desc->flags & (AV_PIX_FMT_FLAG_RGB | AV_PIX_FMT_FLAG_PAL | AV_PIX_FMT_FLAG_BE)) ||
	    desc->comp[0].plane != 0 || desc->comp[0].shift != 0)
		return AV_PIX_FMT_NONE;
	if (desc->comp[0].step == 1 && desc->comp[0].depth == 8) return AV_PIX_FMT_GRAY8;
	if (desc->comp[0].step != 2) return AV_PIX_FMT_NONE;
	switch (desc->comp[0].depth) {
	case 9: return AV_PIX_FMT_GRAY9LE;
	case 10: return AV_PIX_FMT_GRAY10LE;
	case 12: return AV_PIX_FMT_GRAY12LE;
	case 14: return AV_PIX_FMT_GRAY14LE;
	case 16: return AV_PIX_FMT_GRAY16LE;
	}
	return AV_PIX_FMT_NONE;
}

// tw_gray scales the luma of the last picture into an 8-bit gray image. Formats without a
// plain luma plane are converted whole.
int tw_gray(tw_decoder *d, uint8_t *dst, int dw, int dh, int dstride, int flags) {
	AVFrame *f = d->last;
	if (!f->data[0]) return AVERROR(EINVAL);
	enum AVPixelFormat src = luma_format(f->format);
	if (src == AV_PIX_FMT_NONE) src = f->format;
	d->gray = sws_getCachedContext(d->gray, f->width, f->height, src, dw, dh, AV_PIX_FMT_GRAY8,
	                               flags, NULL, NULL, NULL);
	if (!d->gray) return AVERROR(EINVAL);
	uint8_t *dsts[4] = {dst};
	int dstrides[4] = {dstride};
	return sws_scale(d->gray, (const uint8_t *const *)f->data, f->linesize, 0, f->height, dsts, dstrides);
}

// tw_bgr converts the last picture to packed BGR (OpenCV's order), honouring the stream's
// signalled range and matrix so snapshots show true colours.
int tw_bgr(tw_decoder *d, uint8_t *dst, int dw, int dh, int dstride, int flags) {
	AVFrame *f = d->last;
	if (!f->data[0]) return AVERROR(EINVAL);
	d->bgr = sws_getCachedContext(d->bgr, f->width, f->height, f->format, dw, dh, AV_PIX_FMT_BGR24,
	                              flags, NULL, NULL, NULL);
	if (!d->bgr) return AVERROR(EINVAL);
	int *inv, srcRange, *table, dstRange, bri, con, sat;
	if (sws_getColorspaceDetails(d->bgr, &inv, &srcRange, &table, &dstRange, &bri, &con, &sat) >= 0) {
		int cs = f->colorspace == AVCOL_SPC_UNSPECIFIED ? SWS_CS_DEFAULT : f->colorspace;
		if (f->color_range == AVCOL_RANGE_JPEG) srcRange = 1;
		sws_setColorspaceDetails(d->bgr, sws_getCoefficients(cs), srcRange, table, dstRange, bri, con, sat);
	}
	uint8_t *dsts[4] = {dst};
	int dstrides[4] = {dstride};
	return sws_scale(d->bgr, (const uint8_t *const *)f->data, f->linesize, 0, f->height, dsts, dstrides);
}
