// The player page's media request slots: the tiles' fragment requests (pbtile.js) and the
// scrub preview's sprites (scrub.js) share one budget of MAX_IN_FLIGHT requests in
// flight, so that neither a seek nor the previews of a freshly shown hour can put a dozen
// requests on the link at once. Video comes first: a seek's first frame is what the
// officer waits for, a preview only fills in where the pointer is.

// MAX_IN_FLIGHT bounds the media requests of the whole page: 4 tiles at 1× need one
// fragment each per second, and a seek must not queue behind a dozen prefetches.
const MAX_IN_FLIGHT = 4;
// MAX_SPRITES of those may be sprites: the other two are free for video whatever the
// previews do, and a sprite is a small answer, so two keep the pointer's surroundings
// filling in quickly.
export const MAX_SPRITES = 2;

// Kinds of request, in the order slots go to them: what a seek needs for its first frame,
// other video (the buffer ahead), then sprites.
export const URGENT = 0;
export const VIDEO = 1;
export const SPRITE = 2;

let inFlight = 0;
let sprites = 0;
const waiting = []; // {kind, grant}, in the order they are served

function take(kind) {
  inFlight++;
  if (kind === SPRITE) sprites++;
  let released = false;
  return () => {
    if (released) return;
    released = true;
    inFlight--;
    if (kind === SPRITE) sprites--;
    serve();
  };
}

// serve hands free slots to the waiting requests in order, passing over sprites while
// MAX_SPRITES are in flight (a video request behind them is not held up).
function serve() {
  for (let i = 0; i < waiting.length && inFlight < MAX_IN_FLIGHT; ) {
    if (waiting[i].kind === SPRITE && sprites >= MAX_SPRITES) {
      i++;
      continue;
    }
    const [entry] = waiting.splice(i, 1);
    entry.grant();
  }
}

// busy reports whether any media request of the page is in flight.
export function busy() {
  return inFlight > 0;
}

// acquire waits for a slot for a request of kind; it resolves to the function that gives
// the slot back (call it once the answer is read or abandoned). A request goes after the
// waiting ones of its kind and before those of later kinds; aborting signal while it waits
// rejects with the signal's reason, and so does a signal aborted already (a tile that moved
// on before asking must not take a slot from the next request).
export function acquire(kind, signal) {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason);
      return;
    }
    const abandon = () => {
      const i = waiting.indexOf(entry);
      // Always found while this listener is on (grant removes it first); splice(-1) would
      // drop another request.
      if (i >= 0) waiting.splice(i, 1);
      reject(signal.reason);
    };
    // Once granted the listener goes: the scrub preview passes one signal for the page's
    // life, and its holder releases the slot anyway.
    const grant = () => {
      signal.removeEventListener("abort", abandon);
      resolve(take(kind));
    };
    const entry = { kind, grant };
    const at = waiting.findIndex((e) => e.kind > kind);
    waiting.splice(at < 0 ? waiting.length : at, 0, entry);
    signal.addEventListener("abort", abandon);
    serve();
  });
}
