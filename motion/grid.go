package motion

import (
	"time"

	"github.com/townwatch/townwatch/motion/report"
)

// gridMinutes accumulates an analyser's grids into minutes and hands each minute on when
// a frame of a later minute arrives (or the stream ends).
type gridMinutes struct {
	camera string
	emit   func(report.GridMinute)
	cur    report.GridMinute
	any    bool
}

// add ORs the grid of a frame analysed at t into its second.
func (gm *gridMinutes) add(t time.Time, g *report.Grid) {
	minute := t.Truncate(time.Minute)
	if !minute.Equal(gm.cur.Start) {
		gm.flush()
		gm.cur = report.GridMinute{Camera: gm.camera, Start: minute}
	}
	if g.Empty() {
		return
	}
	gm.cur.Seconds[int(t.Sub(minute)/time.Second)].Or(g)
	gm.any = true
}

// flush hands on the current minute if anything moved in it.
func (gm *gridMinutes) flush() {
	if gm.any && gm.emit != nil {
		gm.emit(gm.cur)
	}
	gm.any = false
	gm.cur = report.GridMinute{}
}
