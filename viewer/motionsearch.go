package viewer

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/townwatch/townwatch/recorder/catalog"
	"github.com/townwatch/townwatch/viewer/access"
)

// MotionSearcher is the catalog's motion search.
type MotionSearcher interface {
	SearchMotion(ctx context.Context, cameras []string, from, to time.Time, want catalog.GridCells, minCells int) ([]catalog.MotionHit, error)
}

// gridSide is the motion search grid's side (motion.GridSize).
const gridSide = 16

// parseCells reads cells=: comma-separated cells "x.y" or rectangles "x0.y0-x1.y1" of the
// 16×16 grid, columns and rows from 0 at the top left.
func parseCells(raw string) (catalog.GridCells, string) {
	var g catalog.GridCells
	if strings.TrimSpace(raw) == "" {
		return g, "cells: required: cells of the 16×16 grid as x.y or x0.y0-x1.y1, comma-separated"
	}
	point := func(s string) (int, int, bool) {
		xs, ys, ok := strings.Cut(strings.TrimSpace(s), ".")
		x, errX := strconv.Atoi(xs)
		y, errY := strconv.Atoi(ys)
		return x, y, ok && errX == nil && errY == nil && x >= 0 && x < gridSide && y >= 0 && y < gridSide
	}
	for item := range strings.SplitSeq(raw, ",") {
		a, b, isRect := strings.Cut(item, "-")
		if !isRect {
			b = a
		}
		x0, y0, ok0 := point(a)
		x1, y1, ok1 := point(b)
		if !ok0 || !ok1 || x1 < x0 || y1 < y0 {
			return g, "cells: " + quote(item) + " is not a cell x.y or a rectangle x0.y0-x1.y1 with x, y from 0 to 15"
		}
		for y := y0; y <= y1; y++ {
			for x := x0; x <= x1; x++ {
				i := y*gridSide + x
				g[i/8] |= 1 << (i % 8)
			}
		}
	}
	return g, ""
}

type motionHitJSON struct {
	Camera string    `json:"camera"`
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
	Cells  int       `json:"cells"`
}

// handleMotionSearch answers GET /api/search/motion?cameras=&from=&to=&cells=&min=: when
// something moved in the drawn cells, from the stored grid alone. Searching is audited.
func (s *Server) handleMotionSearch(w http.ResponseWriter, r *http.Request) {
	pb := s.opt.Playback
	q := r.URL.Query()
	from, to, problem := timeRangeParams(q, maxTimelineRange)
	if problem != "" {
		writeError(w, http.StatusBadRequest, problem)
		return
	}
	want, problem := parseCells(q.Get("cells"))
	if problem != "" {
		writeError(w, http.StatusBadRequest, problem)
		return
	}
	minCells := 1
	if raw := q.Get("min"); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 || n > gridSide*gridSide {
			writeError(w, http.StatusBadRequest, "min: "+quote(raw)+" is not a number of cells from 1 to 256")
			return
		}
		minCells = n
	}
	cams, code, problem := pb.cameraListParam(r)
	if problem != "" {
		writeError(w, code, problem)
		return
	}
	if !pb.playbackAllowed(w, r, cams...) {
		return
	}
	p := principalFrom(r.Context())
	for _, c := range cams {
		details, _ := json.Marshal(map[string]string{"cells": q.Get("cells"), "min": strconv.Itoa(minCells)})
		if err := s.appendAudit(r, p, catalog.AuditEntry{Action: access.AuditMotionSearch, Camera: c, From: from, To: to, Details: details}); err != nil {
			s.log.Error("audit: recording a motion search", "err", err)
			writeError(w, http.StatusServiceUnavailable, "the access log cannot be written; the search is refused")
			return
		}
	}
	hits, err := pb.Store.SearchMotion(r.Context(), cams, from, to, want, minCells)
	if err != nil {
		pb.fail(w, "motion search", err)
		return
	}
	out := make([]motionHitJSON, len(hits))
	for i, h := range hits {
		out[i] = motionHitJSON{h.Camera, h.Start.UTC(), h.End.UTC(), h.Cells}
	}
	writeJSON(w, http.StatusOK, map[string]any{"from": from, "to": to, "hits": out, "count": len(out),
		"note": fmt.Sprintf("seconds in which at least %d of the cells moved, merged across up to 1 s of stillness", minCells)})
}
