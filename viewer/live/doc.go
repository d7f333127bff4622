// Package live owns townwatch's live view over WebRTC: the WHEP endpoints
// (POST /api/cameras/{id}/whep[?stream=main|sub], DELETE on the session's Location), one
// pion PeerConnection per viewer, the ICE sockets (one UDP port for every peer, an ICE-TCP
// fallback listener), and per camera stream one feed: a single Hub reader, opened when the
// first viewer of that stream arrives and closed when the last one leaves, whose units are
// packetized into WebRTC-sized RTP once and shared by pointer with every viewer through one
// shared local track per media.
//
// # What blocks
//
// New does no I/O. Run binds the ICE sockets, serves until its context ends, then closes
// every session and returns after every goroutine it started has exited. HandleOffer blocks
// for ICE candidate gathering (host candidates only unless ICE servers are configured, so
// milliseconds); HandleDelete, Stats and Sessions never block on a viewer or a camera.
//
// # What is dropped under load
//
// Each viewer (each binding of a shared track) has a bounded queue of frames and its own
// writer goroutine. When a viewer cannot keep up (a stalled ICE-TCP connection, a starved
// writer), frames are dropped for that viewer alone, counted as DroppedPackets, and it
// resumes only at the next keyframe so its decoder never sees a broken group of pictures.
// The feed never waits for a viewer, so other viewers and the recorder's own Hub reader are
// not affected. The feed's Hub reader itself drops (and resyncs at a keyframe, counted by
// the Hub as consumer "live") only if packetizing cannot keep up with the camera. Over UDP a
// slow network loses packets in the kernel or on the way instead; the browser asks for
// them again (NACK) from a small per-viewer history.
//
// # Instant start
//
// Each feed keeps the frames since the latest keyframe (the GOP cache, bounded). A viewer
// gets them in one burst as soon as its connection is up, then the live frames. Their RTP
// timestamps are squeezed onto a few milliseconds ending where live continues, so the
// browser decodes the burst at once and does not believe the stream runs seconds late.
//
// # Offline cameras
//
// An offer for a camera stream that has no media in the Hub gets 503 with Retry-After: the
// codec is unknown until the camera speaks, and the live wall simply asks again. A camera
// that drops out during a session keeps its sessions: the feed waits for the camera's next
// stream and carries on (timestamps continue from the wall clock), so the picture comes
// back by itself. If the camera returns with a different video codec, its sessions end and
// the browser negotiates anew.
package live
