// Package ingest owns the camera side of townwatch: pulling each camera stream over RTSP
// (Source) and handing its media, depacketized once, to every consumer (Hub, Stream, Reader).
//
// # Data flow
//
// A Source runs one gortsplib client per camera stream. On gortsplib's reading goroutine it
// turns RTP packets into immutable access units (*Unit) and publishes each one to the
// camera's current Stream. Every consumer (recorder, motion, viewer) holds its own Reader on
// that Stream and receives the same *Unit pointers; nobody copies or mutates a published
// Unit.
//
// # What blocks and what is dropped
//
// Stream.Publish never blocks: the camera must never be slowed by a consumer. Each Reader
// has a bounded queue chosen by its owner (deep for the recorder, small for motion and live
// view), and every queue also holds at most maxReaderBytes (64 MiB) of payload, so that a
// camera sending huge frames cannot make a deep queue pin gigabytes. When a Reader's queue
// is full, in units or in bytes, the unit is dropped for that Reader alone and counted
// (Reader.Dropped, Hub.DropCounts). The Reader then resynchronises: it skips every
// unit until the next video keyframe, so a consumer never receives a broken group of
// pictures, and Reader.Read reports that keyframe with gap=true so the recorder can record
// the gap. A new Reader likewise starts at the next keyframe (without reporting a gap).
// Other readers are not affected by a slow one.
//
// Units the Source could not turn into a decodable access unit (RTP loss, corrupt
// fragments, a timestamp that went backwards) are counted in the camera's Status and never
// published; units that arrive before the first keyframe of a session are skipped.
//
// # Lifetimes
//
// The Hub outlives reconnects; a Stream does not. Every RTSP session starts a new Stream
// (codec parameters may change between sessions) and ends it when the session ends, after
// which its Readers return ErrStreamEnded once they have drained their queue. Consumers loop:
// Hub.Wait → NewReader → Read until ErrStreamEnded → Close → Wait again.
//
// A Source never gives up: it reconnects with capped exponential backoff and jitter, and a
// stall watchdog drops sessions that deliver no media. Its Status says why it is not
// streaming.
package ingest
