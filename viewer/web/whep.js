// A minimal WHEP (WebRTC-HTTP egress) client: one RTCPeerConnection receiving one camera
// stream. The offer is POSTed only after ICE gathering completes, so the server gets every
// candidate at once and no trickle (PATCH) is needed; DELETE on the session's Location
// frees the server's viewer slot as soon as a tile stops.

// ICE_GATHER_TIMEOUT_MS bounds the wait for gathering: host candidates take milliseconds,
// but a browser with a dead interface can hang; then the candidates found so far are sent.
const ICE_GATHER_TIMEOUT_MS = 2000;

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
    this.stream = new MediaStream();
    this.pc = new RTCPeerConnection({ bundlePolicy: "max-bundle" });
    // Audio is offered too: the server answers it only for cameras with live audio on.
    this.pc.addTransceiver("video", { direction: "recvonly" });
    this.pc.addTransceiver("audio", { direction: "recvonly" });
    this.pc.addEventListener("track", (e) => this.stream.addTrack(e.track));
    this.closed = false;
  }

  // start negotiates the session; it resolves once the answer is applied (media follows).
  // postedAt is the performance.now() of the POST, the start of the first-frame clock.
  async start() {
    await this.pc.setLocalDescription(await this.pc.createOffer());
    await gathered(this.pc);
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

function gathered(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", check);
      resolve();
    };
    const check = () => pc.iceGatheringState === "complete" && done();
    const timer = setTimeout(done, ICE_GATHER_TIMEOUT_MS);
    pc.addEventListener("icegatheringstatechange", check);
  });
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
