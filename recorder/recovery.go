package recorder

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"

	"github.com/townwatch/townwatch/ingest"
	"github.com/townwatch/townwatch/recorder/catalog"
)

// RecoveryReport says what Recover found and did.
type RecoveryReport struct {
	Completed  []string // open segments truncated to their last complete fragment and indexed
	Adopted    []string // files the catalog did not know, now indexed
	Finished   []string // files of recorded deletions, or local copies of archived segments, that a crash left behind, now removed
	Dropped    []string // open segments without one complete fragment: no footage, removed
	Mismatched []string // indexed files whose size differs from the catalog: reported, untouched
	Failed     []string // open segments that could not be recovered (unreadable): reported, untouched
}

// Recover makes the catalog and the recordings folder agree after a crash, power loss or
// unclean stop. With several recorder nodes it looks only at this node's segments
// (catalog.Segment.Node): the others are on other disks. It runs once at start-up, before any Writer. Nothing with footage in it is
// deleted: an interrupted segment is cut back to its last complete fragment and indexed,
// and a file the catalog does not know is adopted.
func Recover(ctx context.Context, st *Storage, cat *catalog.Catalog, log *slog.Logger) (RecoveryReport, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var rep RecoveryReport
	open, err := cat.OpenSegments(ctx)
	if err != nil {
		return rep, fmt.Errorf("recover: %w", err)
	}
	for _, seg := range open {
		if seg.Node != cat.Node() {
			// Another node's segment, on its disk: only that node can complete it, and
			// while it runs the segment is legitimately open.
			continue
		}
		if err := completeOpen(ctx, st, cat, seg, &rep, log); err != nil {
			if ctx.Err() != nil {
				return rep, err
			}
			// One damaged file must not keep every camera from recording: report it and
			// leave its row open for a person (and the next start) to look at.
			rep.Failed = append(rep.Failed, seg.Path)
			log.Error("interrupted segment could not be recovered; left as it is", "path", seg.Path, "err", err)
		}
	}
	sizes := map[string]int64{}
	if err := st.walkSegments(func(rel string, size int64) error {
		sizes[rel] = size
		return nil
	}); err != nil {
		return rep, fmt.Errorf("recover: list recordings: %w", err)
	}
	all, err := cat.AllSegments(ctx)
	if err != nil {
		return rep, fmt.Errorf("recover: %w", err)
	}
	known := make(map[string]bool, len(all))
	for _, seg := range all {
		known[seg.Path] = true
		if seg.Node != cat.Node() {
			continue // on another node's disk
		}
		size, ok := sizes[seg.Path]
		if !seg.Archived.IsZero() {
			// The archive job marks a row only after reading its object back intact; a
			// local file still there is a copy a crash kept from being removed.
			if ok {
				rep.Finished = append(rep.Finished, seg.Path)
				log.Info("finishing an interrupted archive move: removing the local copy", "path", seg.Path)
				if err := st.RemoveLocalCopy(seg.Path); err != nil {
					return rep, fmt.Errorf("recover: %w", err)
				}
			}
			continue
		}
		if !ok || size != seg.Bytes {
			rep.Mismatched = append(rep.Mismatched, seg.Path)
			log.Error("recording does not match the catalog", "path", seg.Path, "catalog_bytes", seg.Bytes, "file_bytes", size, "file_exists", ok)
		}
	}
	for rel := range sizes {
		if known[rel] {
			continue
		}
		if err := adoptOrFinish(ctx, st, cat, rel, &rep, log); err != nil {
			// One unreadable stray file must not keep the cameras from recording.
			log.Error("unknown file in recordings could not be adopted; left in place", "path", rel, "err", err)
		}
	}
	for _, p := range rep.Completed {
		log.Warn("interrupted segment recovered", "path", p)
	}
	for _, p := range rep.Adopted {
		log.Warn("unindexed segment adopted", "path", p)
	}
	for _, p := range rep.Dropped {
		log.Warn("interrupted segment had no footage to keep (no file, or no complete fragment): its row was discarded", "path", p)
	}
	return rep, nil
}

// completeOpen finishes one segment the catalog has as open.
func completeOpen(ctx context.Context, st *Storage, cat *catalog.Catalog, seg catalog.Segment, rep *RecoveryReport, log *slog.Logger) error {
	f, err := st.open(seg.Path, true)
	if errors.Is(err, os.ErrNotExist) {
		rep.Dropped = append(rep.Dropped, seg.Path)
		return dropRow(ctx, cat, seg, "recovery: file missing after crash")
	}
	if err != nil {
		return err
	}
	defer f.Close()
	layout, err := truncateToComplete(f)
	if err != nil && !errors.Is(err, errNoInit) {
		return err
	}
	// A crash between creating the file and syncing its header leaves no init at all;
	// like a file without a complete fragment, it holds no footage.
	if errors.Is(err, errNoInit) || len(layout.Fragments) == 0 {
		f.Close()
		if err := st.remove(seg.Path); err != nil {
			return err
		}
		rep.Dropped = append(rep.Dropped, seg.Path)
		return dropRow(ctx, cat, seg, "recovery: no complete fragment")
	}
	desc, err := DescribeSegmentFile(f, layout.ValidEnd)
	if err != nil {
		return err
	}
	rep.Completed = append(rep.Completed, seg.Path)
	return closedWithoutIndex(cat.CloseSegment(ctx, seg.ID, seg.Start.Add(desc.Duration), desc.Bytes, desc.Frames, desc.SHA256, desc.Fragments), log, seg.Path)
}

// dropRow removes the open row of a segment that holds no footage, recording why.
func dropRow(ctx context.Context, cat *catalog.Catalog, seg catalog.Segment, reason string) error {
	_, err := cat.DiscardOpenSegment(ctx, seg.ID, reason, time.Now())
	return err
}

// truncateToComplete cuts a segment file after its last complete fragment and syncs it.
func truncateToComplete(f *os.File) (segmentLayout, error) {
	info, err := f.Stat()
	if err != nil {
		return segmentLayout{}, err
	}
	layout, err := scanSegment(f, info.Size())
	if err != nil {
		return layout, err
	}
	if info.Size() > layout.ValidEnd {
		if err := f.Truncate(layout.ValidEnd); err != nil {
			return layout, err
		}
		if err := f.Sync(); err != nil {
			return layout, err
		}
	}
	return layout, nil
}

// adoptOrFinish handles a file the catalog has no row for: the leftover of a recorded
// deletion is removed; anything else is indexed from its own content.
func adoptOrFinish(ctx context.Context, st *Storage, cat *catalog.Catalog, rel string, rep *RecoveryReport, log *slog.Logger) error {
	if _, err := cat.DeletionByPath(ctx, rel); err == nil {
		rep.Finished = append(rep.Finished, rel)
		log.Info("finishing an interrupted deletion", "path", rel)
		return st.remove(rel)
	} else if !errors.Is(err, catalog.ErrNotFound) {
		return err
	}
	camera, start, err := ParseSegmentPath(rel)
	if err != nil {
		return err
	}
	f, err := st.open(rel, true)
	if err != nil {
		return err
	}
	defer f.Close()
	layout, err := truncateToComplete(f)
	if err != nil {
		return err
	}
	if len(layout.Fragments) == 0 {
		return fmt.Errorf("no complete fragment; not a recording townwatch can index")
	}
	desc, err := DescribeSegmentFile(f, layout.ValidEnd)
	if err != nil {
		return err
	}
	id, err := cat.CreateSegment(ctx, catalog.Segment{Camera: camera, Stream: ingest.StreamMain, Start: start, End: start, Path: rel,
		GapBefore: true, Open: true, Audio: desc.Audio, Codec: desc.Codec, Width: desc.Width, Height: desc.Height, MIMECodecs: desc.MIMECodecs})
	if err != nil {
		return err
	}
	rep.Adopted = append(rep.Adopted, rel)
	return closedWithoutIndex(cat.CloseSegment(ctx, id, start.Add(desc.Duration), desc.Bytes, desc.Frames, desc.SHA256, desc.Fragments), log, rel)
}

// describeVideo names the video codec of an init and its picture size.
func describeVideo(init *fmp4.Init) (codec string, w, h int) {
	for _, t := range init.Tracks {
		switch c := t.Codec.(type) {
		case *fmp4.CodecH264:
			var sps h264.SPS
			if sps.Unmarshal(c.SPS) == nil {
				w, h = sps.Width(), sps.Height()
			}
			return string(ingest.CodecH264), w, h
		case *fmp4.CodecH265:
			var sps h265.SPS
			if sps.Unmarshal(c.SPS) == nil {
				w, h = sps.Width(), sps.Height()
			}
			return string(ingest.CodecH265), w, h
		}
	}
	return "", 0, 0
}
