// A minimal WHEP (WebRTC-HTTP egress) client: one RTCPeerConnection receiving one camera
// stream. The offer is POSTed as soon as it is made, without waiting for ICE gathering
// and without trickling candidates (PATCH) afterwards: the server needs none of the
// browser's. Its answer carries the server's own candidates, the browser's connectivity
// checks go to them, and the server learns the browser's address from those checks (a
// peer-reflexive candidate), as it must anyway for a browser behind NAT or one that names
// its host candidates with mDNS, which the server does not resolve. The server never
// dials out (it answers, and takes ICE-TCP only passively). DELETE on the session's
// Location frees the server's viewer slot as soon as a tile stops.
//
// The browser still sends its checks only once it has gathered its own candidates, which
// takes 100 ms and more on a busy PC. prepare() therefore starts the page's first peer
// connection (offer made, candidates gathering) while the page is still asking who is
// logged in and which cameras there are; the first session takes it over.

let prepared = null; // {pc, stream, offered} made by prepare(), not yet taken

// prepare makes a peer connection ready for the page's first session.
export function prepare() {
  prepared ??= peer();
}

// unprepare closes the prepared peer connection if no session took it (the page will show
// no live video, or is being left).
export function unprepare() {
  prepared?.pc.close();
  prepared = null;
}

// peer creates a receive-only peer connection and its offer (offered settles when the
// offer is the local description, which starts ICE gathering).
function peer() {
  const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle" });
  // Audio is offered too: the server answers it only for cameras with live audio on.
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.addTransceiver("audio", { direction: "recvonly" });
  const stream = new MediaStream();
  pc.addEventListener("track", (e) => stream.addTrack(e.track));
  const offered = pc.createOffer().then((offer) => pc.setLocalDescription(offer));
  offered.catch(() => {
    // Reported by the session's start(), which awaits the same promise.
  });
  return { pc, stream, offered };
}

// WhepError is a refused offer; status is the HTTP status (0 when the server was not
// reached), message the server's own explanation when it gave one.
export class WhepError extends Error {
  constructor(status, message, retryAfterMs = 0) {
    super(message);
    this.status = status;
    this.retryAfterMs = retryAfterMs;
  }
}

export class WhepSession {
  constructor(url) {
    this.url = url;
    this.location = null;
    ({ pc: this.pc, stream: this.stream, offered: this.offered } = prepared ?? peer());
    prepared = null;
    this.closed = false;
  }

  // start negotiates the session; it resolves once the answer is applied (media follows).
  // postedAt is the performance.now() of the POST, the start of the first-frame clock.
  async start() {
    await this.offered;
    if (this.closed) throw new WhepError(0, "closed");
    this.postedAt = performance.now();
    let res;
    try {
      res = await fetch(this.url, {
        method: "POST",
        headers: { "Content-Type": "application/sdp" },
        body: this.pc.localDescription.sdp,
      });
    } catch (err) {
      throw new WhepError(0, err.message);
    }
    if (res.status !== 201) {
      const retry = Number(res.headers.get("Retry-After")) * 1000 || 0;
      throw new WhepError(res.status, await errorText(res), retry);
    }
    const location = res.headers.get("Location");
    if (location) this.location = new URL(location, res.url).href;
    const sdp = await res.text();
    if (this.closed) {
      // Closed while the POST was in flight (it is never aborted, so the server's session
      // is always known and can be ended here instead of lingering until it times out).
      this.#delete();
      throw new WhepError(0, "closed");
    }
    await this.pc.setRemoteDescription({ type: "answer", sdp });
  }

  // videoStats returns the inbound video counters of getStats, or null before media flows.
  async videoStats() {
    if (this.closed) return null;
    const report = await this.pc.getStats();
    for (const s of report.values()) {
      if (s.type === "inbound-rtp" && s.kind === "video") return s;
    }
    return null;
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    this.pc.close();
    this.#delete();
  }

  #delete() {
    if (!this.location) return;
    // keepalive lets the DELETE outlive the page when the tab is closed.
    fetch(this.location, { method: "DELETE", keepalive: true }).catch(() => {
      // The server ends silent sessions itself; nothing else to do.
    });
    this.location = null;
  }
}

// errorText extracts the server's message: townwatch answers {"error": "..."} or text.
async function errorText(res) {
  const body = (await res.text().catch(() => "")).trim();
  try {
    const parsed = JSON.parse(body);
    if (typeof parsed.error === "string") return parsed.error;
  } catch {
    // Plain text.
  }
  return body || `HTTP ${res.status}`;
}
