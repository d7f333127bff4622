// One camera of the player: a <video> fed through Media Source Extensions from the
// segment files' byte ranges. The video's currentTime is seconds since the viewed day's
// local midnight (each segment's fragments are appended with timestampOffset = its start),
// so a hole in the recording stays a hole in the buffer and every tile shares one time axis.
//
// data-state on the tile: loading | playing | gap | deleted | error.

import { t, timeText } from "./i18n.js";
import { URGENT, VIDEO, acquire, busy } from "./mediaslots.js";
import { api, toLogin } from "./session.js";

// WINDOW_MS: playlists are fetched an hour at a time (about 670 KiB of JSON for 60 s
// segments of 1 s fragments), so a seek anywhere in the day waits for one such request
// at most.
const WINDOW_MS = 3600e3;
// AHEAD_S of recorded video is kept buffered ahead of the picture (times the speed).
const AHEAD_S = 6;
// After a seek, what lies more than a second past the target is fetched only once the
// target's frame is on screen, or HOLD_MS after the seek: until then the decoder, going
// from the keyframe to the target, needs all the CPU it can get (four 1080p tiles share
// two cores), and a second past the target is more than it needs to output its frame.
const HOLD_MS = 1500;
// The buffer keeps this much behind the picture (a step back stays instant) and drops
// what lies far ahead of it (left by an earlier seek).
const KEEP_BEHIND_S = 30;
const KEEP_AHEAD_S = 120;
// Near now the recording grows while it plays: the open segment by a fragment about every
// second, then the next segment. When the clock, in the last hour before now, comes within
// LIVE_LEAD_MS of the end of what the tile knows, the playlist from the last known segment
// on is read again, at most every LIVE_REFRESH_MS.
const LIVE_LEAD_MS = 3000;
const LIVE_REFRESH_MS = 1000;
// MAX_TRACES: how many seeks' step timelines a tile keeps (see traces).
const MAX_TRACES = 500;
// Steps kept per seek trace: a cold seek of four fragments takes about 20, the rest is
// the playback that follows.
const MAX_TRACE_STEPS = 64;

// fetchRange fetches bytes [offset, offset+length) of a segment. A 410 rejects with
// {status: 410, deletion} (the segment was deleted after its playlist was read). mark
// notes the request's steps in the seek's trace.
async function fetchRange(url, offset, length, { signal, urgent, mark }) {
  const release = await acquire(urgent ? URGENT : VIDEO, signal);
  try {
    mark("sent");
    const res = await fetch(url, { headers: { Range: `bytes=${offset}-${offset + length - 1}` }, signal });
    mark("answered");
    if (res.status === 206) {
      const data = await res.arrayBuffer();
      mark("received");
      return data;
    }
    if (res.status === 401) toLogin();
    const body = await res.json().catch(() => null);
    throw Object.assign(new Error(`HTTP ${res.status}`), { status: res.status, deletion: body });
  } finally {
    release();
  }
}

// ms parses an RFC 3339 time of the API to epoch milliseconds.
const ms = (s) => (s == null ? null : Date.parse(s));

export class PlaybackTile {
  // day: {start, end} epoch ms of the viewed day's local midnights.
  constructor(camera, day, { onChange, onLost }) {
    this.id = camera.id;
    this.name = camera.name || camera.id;
    this.day = day;
    this.onChange = onChange; // playlist or deletions changed: redraw the timeline
    // onLost: a request answered 428, the server no longer knows the reason (it
    // restarted). The page asks for it again; it may hear this from several requests.
    this.onLost = onLost;
    this.segments = []; // loaded playlist segments, by start
    this.windows = new Map(); // window index → promise of its playlist
    this.known = new Set(); // window indexes whose playlist is merged in
    this.deleted = []; // [{start, end}] of segments that answered 410
    this.gen = 0; // seek generation: work of an older seek stops at its next step
    this.feeding = -1; // generation whose feeder runs
    this.cursor = null; // {seg, i}: the next fragment to append
    this.initOf = null; // segment whose init was appended last
    this.appended = []; // [start, end] media seconds appended, for the ahead budget
    this.presented = null; // wall ms of the frame on screen
    this.pending = new Map(); // "seg:i" → fetch promise (the next fragment, prefetched)
    this.ops = Promise.resolve(); // SourceBuffer operations, one at a time
    this.rate = 1;
    this.abort = new AbortController(); // aborts the fetches of the current seek
    this.seekingTo = null; // wall ms while a seek looks up its playlist
    this.seekKind = null; // how the last seek was served: buffered | cold | gap
    this.tail = null; // {seg, i}: the last fragment appended since the seek
    this.liveAt = -Infinity; // performance.now() of the last live edge read
    // traces: the last seeks' timelines, {gen, target, kind, at, framed, from, keyframe,
    // steps: [[what, ms since at]]}: requests sent, answered and received, appends done,
    // media removed, currentTime set, 'seeked', the first frame presented at the target;
    // from is the wall ms of the frame on screen before the seek, keyframe that of the
    // keyframe the browser decodes from (its distance to the target is the decoding). The
    // seek benchmark reads them (window.townwatch.traces()) to say where a seek's time goes.
    this.traces = [];
    this.trace = null; // the current seek's; its frame ends the feeder's hold (HOLD_MS)
    this.holdTimer = 0;
    this.el = this.#build();
    this.opened = this.#open();
    this.#watchFrames();
  }

  #build() {
    const el = document.createElement("article");
    el.className = "tile pbtile";
    el.dataset.camera = this.id;
    el.dataset.state = "loading";
    el.innerHTML = `<video muted playsinline disablepictureinpicture></video>
      <div class="top"><span class="name"></span><span class="badge pb-time"></span></div>
      <div class="msg"><strong class="msg-title"></strong></div>`;
    el.querySelector(".name").textContent = this.name;
    this.video = el.querySelector("video");
    this.video.muted = true;
    return el;
  }

  async #open() {
    this.ms = new MediaSource();
    this.video.src = URL.createObjectURL(this.ms);
    await new Promise((resolve) => this.ms.addEventListener("sourceopen", resolve, { once: true }));
    // The whole day is the timeline: the element may be sent anywhere in it, and waits
    // where nothing is buffered instead of ending.
    this.ms.duration = (this.day.end - this.day.start) / 1000;
  }

  // #watchFrames follows the frames the compositor really shows: their media time is the
  // wall time the officer sees, which currentTime (the requested position) is not.
  #watchFrames() {
    const onFrame = (_now, meta) => {
      this.presented = this.day.start + Math.round(meta.mediaTime * 1000);
      const tr = this.trace;
      if (tr && !tr.framed && Math.abs(this.presented - tr.target) <= 1.5 * this.frameDuration(tr.target)) {
        tr.framed = true;
        this.#mark(tr.gen, "frame");
        this.pump(); // the feeder may have held for this frame
      }
      this.el.dataset.presented = String(this.presented);
      this.el.querySelector(".pb-time").textContent = timeText(new Date(this.presented), true);
      this.onFrame?.(this);
      this.video.requestVideoFrameCallback(onFrame);
    };
    this.video.requestVideoFrameCallback(onFrame);
    this.video.addEventListener("seeked", () => this.#mark(this.gen, "seeked"));
  }

  // #mark notes step what of seek generation gen in that seek's trace. Normal playback
  // keeps the generation, so the trace stops at MAX_TRACE_STEPS rather than grow for as long
  // as the tile plays. A seek's "frame" and "seeked" are noted past the cap: a slow seek
  // logs many fetches first, and without its frame a benchmark would leave out exactly the
  // slowest seeks.
  #mark(gen, what) {
    const tr = this.trace;
    const always = what === "frame" || what === "seeked";
    if (tr && tr.gen === gen && (always || tr.steps.length < MAX_TRACE_STEPS)) tr.steps.push([what, Math.round(performance.now() - tr.at)]);
  }

  render() {
    const state = this.el.dataset.state;
    const title = { gap: "noRecording", deleted: "deletedRecording", error: "playbackError", loading: "loadingVideo" }[state];
    this.el.querySelector(".msg-title").textContent = title ? t(title) : "";
  }

  setState(state) {
    if (this.el.dataset.state === state) return;
    this.el.dataset.state = state;
    this.render();
  }

  // position is the wall time of the video element's playback position.
  position() {
    return this.day.start + this.video.currentTime * 1000;
  }

  // playlist loads the hour of playlist holding wall time w (once) and merges it in. What
  // was still being recorded then is read again by #followLive.
  playlist(w) {
    const idx = this.#window(w);
    const from = this.day.start + idx * WINDOW_MS;
    if (idx < 0 || from >= this.day.end) return Promise.resolve();
    if (!this.windows.has(idx)) {
      const p = this.#read(from, Math.min(from + WINDOW_MS, this.day.end));
      // A failed read is asked again on the next need.
      p.then(() => this.known.add(idx), () => this.windows.delete(idx));
      this.windows.set(idx, p);
    }
    return this.windows.get(idx);
  }

  #window(w) {
    return Math.floor((w - this.day.start) / WINDOW_MS);
  }

  // knows is whether the playlist of w's hour is loaded: only then does "no segment at w"
  // mean a hole in the recording, not a segment not read yet.
  knows(w) {
    return this.known.has(this.#window(w));
  }

  // #locate reads what a seek to w needs of the playlist. Without w's hour it reads the
  // segment at w alone (a few KiB: the hour's ~670 KiB of fragment index takes the browser
  // tens of ms to parse, four tiles' worth on one thread), and the feeder loads the hour
  // once the seek's first fragment is in. In a hole the hour is awaited: the recording
  // after the hole is looked for in it.
  async #locate(w) {
    if (this.knows(w)) return;
    if (!this.windows.has(this.#window(w))) {
      await this.#read(w, w + 1);
      if (this.segmentAt(w)) return;
    }
    await this.playlist(w);
  }

  // #read fetches the playlist of [from, to) and merges it in.
  async #read(from, to) {
    const q = new URLSearchParams({ from: new Date(from).toISOString(), to: new Date(to).toISOString() });
    const res = await api(`api/cameras/${encodeURIComponent(this.id)}/playlist?${q}`);
    if (!res.ok) throw Object.assign(new Error(`playlist: HTTP ${res.status}`), { status: res.status });
    this.#merge((await res.json()).segments);
  }

  // #merge adds the playlist's segments. A known one is updated in place (the open
  // segment has grown, or closed), so the feeder's cursor into it stays valid.
  #merge(list) {
    const known = new Map(this.segments.map((s) => [s.id, s]));
    for (const s of list) {
      const start = ms(s.start);
      const seg = {
        id: s.id,
        url: s.url.replace(/^\//, ""),
        start,
        end: ms(s.end),
        codecs: s.codecs,
        // A segment without a fragment index is fetched whole: its one "fragment" is the
        // file, init included, and it has no separate init to fetch.
        init: s.fragments ? s.init : null,
        // A frame's duration, for the frame step: the segment's own frame rate.
        frame: s.frames > 0 ? (ms(s.end) - start) / s.frames : 40,
        deleted: false,
        frags: (s.fragments ?? [{ offset: 0, length: s.bytes, time: s.start, duration: (ms(s.end) - start) / 1000, keyframe: s.start }]).map((f) => ({
          offset: f.offset,
          length: f.length,
          time: ms(f.time),
          end: ms(f.time) + f.duration * 1000,
          keyframe: ms(f.keyframe),
        })),
      };
      const old = known.get(s.id);
      if (old) Object.assign(old, seg, { deleted: old.deleted });
      else this.segments.push(seg);
    }
    this.segments.sort((a, b) => a.start - b.start);
    this.onChange();
  }

  // segmentAt is the playable segment covering wall time w, if it is loaded.
  segmentAt(w) {
    return this.segments.find((s) => s.start <= w && w < s.end && !s.deleted) ?? null;
  }

  hasRecording(w) {
    return this.segmentAt(w) !== null;
  }

  // nextRecording is the start of the first playable segment after w among the loaded
  // ones (the feeder loads the next hour before it is needed), or null.
  nextRecording(w) {
    return this.segments.find((s) => s.start > w && !s.deleted)?.start ?? null;
  }

  frameDuration(w) {
    return (this.segmentAt(w) ?? this.segments[0])?.frame ?? 40;
  }

  // seek sends the tile to wall time w. Inside what is buffered it only moves the
  // element; otherwise it starts at the last fragment whose keyframe is at or before w,
  // appending its segment's init first, and the element waits there for the frames.
  seek(w) {
    const gen = ++this.gen;
    this.trace = { gen, target: w, kind: null, at: performance.now(), framed: false, from: this.presented, keyframe: null, steps: [] };
    this.traces.push(this.trace);
    if (this.traces.length > MAX_TRACES) this.traces.shift();
    this.#seek(gen, w).catch((err) => this.#failed(gen, err));
  }

  async #seek(gen, w) {
    // Until this seek knows where to start, nothing is appended (a tick's pump would
    // otherwise go on from the old position under the new generation).
    this.cursor = null;
    this.tail = null;
    this.seekingTo = w;
    this.abort.abort();
    this.abort = new AbortController();
    this.pending.clear();
    const s = (w - this.day.start) / 1000;
    await this.opened;
    if (gen !== this.gen) return;
    const range = this.#bufferedAround(s);
    // The ahead budget counts what plays on from the new position: only the fragments
    // of the buffered range it lands in, if any.
    this.appended = this.appended.filter(([a, b]) => range && a >= range[0] - 0.01 && b <= range[1] + 0.01);
    if (range) {
      this.seekKind = this.trace.kind = "buffered";
      const seg = this.segmentAt(w);
      if (seg) this.trace.keyframe = seg.frags[this.#keyframeFragment(seg, w)].keyframe;
      // Work of the page still under way when the browser starts decoding.
      if (this.sb?.updating) this.#mark(gen, "busy sb");
      if (busy()) this.#mark(gen, "busy fetch");
      this.video.currentTime = s;
      this.#mark(gen, "time");
      this.seekingTo = null;
      const cursor = await this.#fragmentAt(this.day.start + range[1] * 1000 + 1);
      if (gen !== this.gen) return;
      this.cursor = cursor;
      this.pump();
      return;
    }
    this.#mark(gen, "playlist");
    await this.#locate(w);
    this.#mark(gen, "playlist done");
    if (gen !== this.gen) return;
    this.seekingTo = null;
    const seg = this.segmentAt(w);
    if (!seg) {
      // In a hole: prepare the recording after it, so playback crosses it at once.
      const cursor = await this.#fragmentAt(w);
      if (gen !== this.gen) return;
      this.cursor = cursor;
      this.seekKind = this.trace.kind = "gap";
      this.setState("gap");
    } else {
      const i = this.#keyframeFragment(seg, w);
      this.cursor = { seg, i };
      this.seekKind = this.trace.kind = "cold";
      this.trace.keyframe = seg.frags[i].keyframe;
      this.video.currentTime = s;
      this.#mark(gen, "time");
      // What the first frame needs is asked for at once, all in parallel and before any
      // other tile's prefetch: the init (unless appended last), the fragment with the
      // keyframe and those after it up to the target's.
      const signal = this.abort.signal;
      if (seg.init && this.initOf !== seg) this.#prefetch(gen, seg, "init", signal, true);
      for (let j = i; j < seg.frags.length && seg.frags[j].time <= w; j++) this.#prefetch(gen, seg, j, signal, true);
    }
    this.pump(true);
  }

  // #keyframeFragment is the index of seg's last fragment whose keyframe is at or before
  // wall time w: the browser decodes from there to show the frame at w (a segment starts
  // with a keyframe).
  #keyframeFragment(seg, w) {
    let i = 0;
    seg.frags.forEach((f, j) => f.keyframe !== null && f.keyframe <= w && (i = j));
    return i;
  }

  // #bufferedAround is the buffered range holding media second s, when s is not in its
  // last frame (a seek there would wait for the next one).
  #bufferedAround(s) {
    const b = this.video.buffered;
    for (let i = 0; i < b.length; i++) if (b.start(i) <= s && s < b.end(i) - 0.05) return [b.start(i), b.end(i)];
    return null;
  }

  // #fragmentAt is the fragment holding wall time w, or the first one after it.
  async #fragmentAt(w) {
    for (let tries = 0; tries < 24 && w < this.day.end; tries++) {
      await this.playlist(w);
      for (const seg of this.segments) {
        if (seg.end <= w || seg.deleted) continue;
        const i = seg.frags.findIndex((f) => f.end > w);
        if (i >= 0) return { seg, i };
      }
      // Nothing more in this hour: look in the next one.
      w = this.day.start + (Math.floor((w - this.day.start) / WINDOW_MS) + 1) * WINDOW_MS;
    }
    return null;
  }

  // pump starts the feeder unless it runs for the current seek already.
  pump(urgent = false) {
    if (this.feeding === this.gen) return;
    this.#feed(this.gen, urgent);
  }

  // #ahead is how many seconds of recording are appended ahead of the playback position.
  #ahead() {
    const pos = this.video.currentTime;
    return this.appended.reduce((sum, [a, b]) => sum + Math.max(0, b - Math.max(a, pos)), 0);
  }

  async #feed(gen, urgent) {
    this.feeding = gen;
    const signal = this.abort.signal;
    try {
      while (gen === this.gen && this.cursor && this.#ahead() < AHEAD_S * Math.max(1, this.rate) && !this.#holds(gen, this.cursor)) {
        const { seg, i } = this.cursor;
        try {
          if (this.initOf !== seg && seg.init) {
            const init = this.#take(gen, seg, "init", signal, urgent);
            this.#prefetch(gen, seg, i, signal, urgent); // in parallel with the init
            await this.#append(gen, seg, await init, true);
            if (gen !== this.gen) return;
            this.#mark(gen, "appended init");
          }
          const data = this.#take(gen, seg, i, signal, urgent);
          // The next fragment is looked up while this one is fetched and appended: at a
          // segment's end that may mean reading the next hour of playlist, which the
          // append must not wait for.
          const later = this.#next(seg, i);
          // One more in flight, unless the seek holds it back.
          later.then((next) => next && gen === this.gen && !this.#holds(gen, next) && this.#prefetch(gen, next.seg, next.i, signal, false), () => {});
          await this.#append(gen, seg, await data, !seg.init);
          this.#mark(gen, `appended ${seg.id}:${i}`);
          // From here on the seek's frame is the browser's to decode.
          if (this.trace?.gen === gen && seg.frags[i].time <= this.trace.target && this.trace.target < seg.frags[i].end) this.#mark(gen, "target appended");
          const next = await later;
          if (gen !== this.gen) return;
          this.initOf = seg;
          this.tail = { seg, i };
          const f = seg.frags[i];
          this.appended.push([(f.time - this.day.start) / 1000, (f.end - this.day.start) / 1000]);
          this.cursor = next;
          // The seek's first fragment is in: now the rest of its hour of playlist (a
          // cold seek read only the segment at its target).
          if (urgent) this.playlist(f.time).catch(() => {});
          urgent = false;
        } catch (err) {
          if (gen !== this.gen || err.name === "AbortError") return;
          if (err.status !== 410) throw err;
          this.#markDeleted(seg, err.deletion);
          const cursor = await this.#fragmentAt(seg.end);
          if (gen !== this.gen) return;
          this.cursor = cursor;
        }
      }
    } catch (err) {
      this.#failed(gen, err);
    } finally {
      if (this.feeding === gen) this.feeding = -1;
    }
  }

  // #awaitsFrame: the browser decodes toward the frame of seek generation gen, which is
  // not on screen yet, for at most HOLD_MS after the seek. Work that can wait does (a
  // seek into a hole has no frame to wait for).
  #awaitsFrame(gen) {
    const tr = this.trace;
    return !!tr && tr.gen === gen && !tr.framed && (tr.kind === "cold" || tr.kind === "buffered") && performance.now() - tr.at < HOLD_MS;
  }

  // #holds: fragment {seg, i} waits for the frame of seek generation gen (#awaitsFrame),
  // because the seek does not need it for that frame: a cold seek needs up to a second
  // past its target, a paused in-buffer seek nothing (its frame is buffered; a fetch and
  // an append would only take CPU from the decoder). A playing element is fed the second
  // after the target as after a cold seek: at 8× it would play through a short buffered
  // range and stall before a frame counted as the target's.
  #holds(gen, { seg, i }) {
    const tr = this.trace;
    const needed = tr?.kind === "cold" || !this.video.paused;
    if (!this.#awaitsFrame(gen) || (needed && seg.frags[i].time <= tr.target + 1000)) return false;
    clearTimeout(this.holdTimer);
    this.holdTimer = setTimeout(() => this.pump(), HOLD_MS - (performance.now() - tr.at));
    return true;
  }

  // #failed takes an error of seek generation gen: a lost playback session is the page's
  // to handle; anything else shows on the tile.
  #failed(gen, err) {
    if (gen !== this.gen || err.name === "AbortError") return;
    if (err.status === 428) {
      this.onLost();
      return;
    }
    console.error(`playback ${this.id}:`, err);
    this.setState("error");
  }

  // stop ends the tile for good: its requests are aborted, nothing more is appended and
  // the element lets go of its media source.
  stop() {
    this.gen++;
    clearTimeout(this.holdTimer);
    this.cursor = null;
    this.abort.abort();
    URL.revokeObjectURL(this.video.src);
    this.video.removeAttribute("src");
    this.video.load();
  }

  // #prefetch starts fetching fragment i of seg (or its init, i = "init"), for #take to
  // pick up.
  #prefetch(gen, seg, i, signal, urgent) {
    const key = `${seg.id}:${i}`;
    if (this.pending.has(key)) return;
    const f = i === "init" ? seg.init : seg.frags[i];
    const p = fetchRange(seg.url, f.offset, f.length, { signal, urgent, mark: (step) => this.#mark(gen, `${step} ${key}`) });
    p.catch(() => {}); // a prefetch dropped by a seek must not be an unhandled rejection
    this.pending.set(key, p);
  }

  // #take is fragment i of seg (or its init): the prefetch under way, or a new request.
  #take(gen, seg, i, signal, urgent) {
    this.#prefetch(gen, seg, i, signal, urgent);
    const key = `${seg.id}:${i}`;
    const p = this.pending.get(key);
    this.pending.delete(key);
    return p;
  }

  // #next is the fragment after fragment i of seg: the next one in the file, or the first
  // of the next playable segment (loading the next hour of playlist if needed).
  async #next(seg, i) {
    if (i + 1 < seg.frags.length) return { seg, i: i + 1 };
    return this.#fragmentAt(seg.end);
  }

  #markDeleted(seg, deletion) {
    seg.deleted = true;
    this.deleted.push({ start: ms(deletion?.start) ?? seg.start, end: ms(deletion?.end) ?? seg.end });
    this.onChange();
  }

  // #append appends one init or fragment, on the SourceBuffer's queue, unless a newer
  // seek came first. Media is placed at its segment's offset in the day.
  #append(gen, seg, data, isInit) {
    return this.#op(() => {
      if (gen !== this.gen) return false;
      const type = `video/mp4; codecs="${seg.codecs}"`;
      if (!this.sb) {
        if (!MediaSource.isTypeSupported(type)) throw new Error(`codec ${seg.codecs} is not supported by this browser`);
        this.sb = this.ms.addSourceBuffer(type);
        this.codecs = seg.codecs;
      } else if (isInit && this.codecs !== seg.codecs) {
        this.sb.changeType(type);
        this.codecs = seg.codecs;
      }
      this.sb.timestampOffset = (seg.start - this.day.start) / 1000;
      this.sb.appendBuffer(data);
      return true;
    });
  }

  // #op runs fn (which starts a SourceBuffer update, or returns false) after every
  // earlier operation, and resolves when its update ends.
  #op(fn) {
    const run = () =>
      new Promise((resolve, reject) => {
        if (!fn()) return resolve();
        this.sb.addEventListener("updateend", resolve, { once: true });
        this.sb.addEventListener("error", () => reject(new Error("SourceBuffer error")), { once: true });
      });
    const p = this.ops.then(run);
    this.ops = p.catch(() => {});
    return p;
  }

  // evict drops buffered media far from the playback position, so a day of seeking does
  // not fill the browser's buffer quota.
  evict() {
    // Not while the browser decodes a seek's frame: it is left for the next round.
    if (!this.sb || this.#awaitsFrame(this.gen)) return;
    const pos = this.video.currentTime;
    const lo = pos - KEEP_BEHIND_S;
    const hi = pos + KEEP_AHEAD_S * Math.max(1, this.rate);
    this.appended = this.appended.filter(([a, b]) => b > lo && a < hi);
    const b = this.video.buffered;
    for (let i = 0; i < b.length; i++) {
      const [start, end] = [b.start(i), b.end(i)];
      if (start < lo) this.#remove(start, Math.min(end, lo));
      if (end > hi) this.#remove(Math.max(start, hi), end);
    }
  }

  // #remove drops media seconds [start, end) on the SourceBuffer's queue and notes it in
  // the current seek's trace: a removal while the browser decodes a seek's frame shares
  // the CPU with it.
  #remove(start, end) {
    const gen = this.gen;
    this.#op(() => (this.sb.remove(start, end), true)).then(() => this.#mark(gen, "removed"), () => {});
  }

  // #followLive reads the playlist again from the last known segment on when the clock w
  // nears the end of the known recording (see LIVE_LEAD_MS), then lets a feeder that
  // stopped at the old end go on from its last fragment.
  #followLive(w) {
    const last = this.segments.at(-1);
    const now = Date.now();
    if (w < now - WINDOW_MS || w > now || (last && w < last.end - LIVE_LEAD_MS)) return;
    if (performance.now() - this.liveAt < LIVE_REFRESH_MS) return;
    this.liveAt = performance.now();
    const gen = this.gen;
    const from = last?.start ?? w;
    this.#read(from, Math.min(Math.max(now, from) + LIVE_LEAD_MS, this.day.end))
      .then(async () => {
        if (gen !== this.gen || this.cursor || !this.tail) return;
        const cursor = await this.#next(this.tail.seg, this.tail.i);
        if (gen !== this.gen || this.cursor) return;
        this.cursor = cursor;
        this.pump();
      })
      // Another read follows within a second; only a lost session is worth acting on.
      .catch((err) => err.status === 428 && this.#failed(this.gen, err));
  }

  // follow keeps the tile at the shared clock's wall time w: no recording there shows the
  // hole; otherwise the element plays or stands at w, corrected when it drifts.
  follow(w, playing, rate, leader) {
    this.rate = rate;
    this.#followLive(w);
    if (!this.hasRecording(w)) {
      const deleted = this.deleted.some((d) => d.start <= w && w < d.end);
      this.setState(deleted ? "deleted" : this.knows(w) ? "gap" : "loading");
      if (!this.video.paused) this.video.pause();
      this.pump();
      return;
    }
    if (this.el.dataset.state !== "error") this.setState(this.video.readyState >= 2 ? "playing" : "loading");
    if (playing && this.video.paused) this.video.play().catch(() => {});
    if (!playing && !this.video.paused) this.video.pause();
    const drift = (this.position() - w) / 1000;
    // A seek still under way is left to finish, unless it waits where nothing will come
    // (its segment turned out deleted).
    const busy = this.seekingTo !== null || (this.video.seeking && this.hasRecording(this.position()));
    if (!leader && !busy && (Math.abs(drift) > 1 || (!playing && Math.abs(drift) > 0.02))) {
      this.seek(w);
      return;
    }
    // A follower catches up (or waits) by playing up to 10% faster or slower.
    const nudge = leader || !playing ? 0 : Math.max(-0.1, Math.min(0.1, drift));
    this.video.playbackRate = rate * (1 - nudge);
    this.pump();
  }

  // healthy: playing at its position with frames to come, so the clock may follow it.
  healthy(w) {
    const v = this.video;
    return this.hasRecording(w) && !v.seeking && !v.paused && v.readyState >= 3 && Math.abs(this.position() - w) < 1000;
  }
}
