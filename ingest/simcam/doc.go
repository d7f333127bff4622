// Package simcam is a simulated IP camera: an in-process RTSP server
// (gortsplib v4) that loops bundled H.264 clips, or a clip file, in real
// time. `townwatch demo` uses it as its two cameras, the integration and
// fault tests use it as the camera they break, `townwatch simcam` runs it
// alone, and the recording benchmark (cmd/recbench) serves many copies of
// one 1080p file with it.
//
// What it owns: the embedded clips (clips/, with the commands that made
// them), their ground truth (MotionIntervals, ClipDuration), the frames of
// clip files (CameraSpec.File: read and parsed once in New, shared by every
// camera serving the same file), the listening sockets, and one gortsplib
// ServerStream plus one sending goroutine per camera.
//
// Stream: each camera is one H.264 video media (payload type 96,
// packetization mode 1) whose SDP carries the clip's SPS/PPS, served at
// rtsp://host:port/<path> over TCP (interleaved) and UDP unicast. Frame n
// is sent at start+n/FPS s (FPS is 25 for the bundled clips) with RTP
// timestamp RTPTimestampStart+n*90000/FPS, so timestamps and sequence
// numbers keep increasing (and wrap mod 2^32 and 2^16) through the loop
// point; gortsplib sends RTCP sender reports from the NTP time given with
// each packet. In the bundled clips every IDR is preceded by SPS/PPS, one
// every 2 s; a clip file is sent as it is (its first SPS/PPS go in the
// SDP). A reader joining mid-GOP gets P-frames until the next IDR, as with
// a real camera.
//
// RTSPS: with Config.TLS set, the same listener speaks RTSP over TLS
// (rtsps://host:port/<path>) and nothing else. TCP-interleaved media travels
// inside the TLS connection; UDP is offered only as SRTP (gortsplib's secure
// profile, keyed by MIKEY in the SDP and SETUP), never as plain RTP.
//
// Sockets: Run binds the RTSP TCP listener itself (resolving ":0"), then an
// even/odd UDP port pair for RTP/RTCP on the same IP (taking an ephemeral
// port from the kernel and its neighbour), and hands the bound sockets to
// gortsplib, so no other process can take a port between choosing and
// binding it. Multicast is not offered.
//
// What blocks: Run blocks until its context is done and returns only after
// every goroutine it started has exited. New blocks only to read clip
// files; Ready, Addr, URL and SetFrozen never block. Nothing blocks on a
// reader: writes go to gortsplib's per-session queue.
//
// What is dropped: packets for a reader whose queue (4096 packets, over 2 s
// of a 16 Mbit/s stream) is full are dropped by gortsplib and counted
// (logged once when Run ends). If a camera's goroutine falls more than a
// second behind its schedule (host suspended or starved), it skips to the
// next keyframe due instead of bursting stale frames; a frozen camera
// (SetFrozen) skips every frame. A skip shows as a timestamp jump with no
// sequence gap and always resumes on a keyframe.
package simcam
