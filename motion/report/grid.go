package report

import (
	"math/bits"
	"time"
)

// GridSize is the side of the motion search grid: the picture is cut into 16×16 cells,
// fine enough to draw "the crossing" or "the shop door" on a town-square camera, coarse
// enough that a camera-minute of it is at most 2 KB.
const GridSize = 16

// Grid is a set of cells of the search grid: bit y*GridSize+x is the cell in column x,
// row y (from the top left).
type Grid [GridSize * GridSize / 8]byte

// Set adds cell (x, y).
func (g *Grid) Set(x, y int) { i := y*GridSize + x; g[i/8] |= 1 << (i % 8) }

// Has reports whether cell (x, y) is in g.
func (g *Grid) Has(x, y int) bool { i := y*GridSize + x; return g[i/8]&(1<<(i%8)) != 0 }

// Or adds every cell of o.
func (g *Grid) Or(o *Grid) {
	for i := range g {
		g[i] |= o[i]
	}
}

// Empty reports whether g has no cell.
func (g *Grid) Empty() bool { return *g == Grid{} }

// Common counts the cells in both g and o.
func (g *Grid) Common(o *Grid) int {
	n := 0
	for i := range g {
		n += bits.OnesCount8(g[i] & o[i])
	}
	return n
}

// GridMinute is one camera-minute of motion for the search: per second, the cells in
// which anything moved in any analysed frame of that second (empty: nothing, or not
// analysed). Only minutes with motion are kept.
type GridMinute struct {
	Camera  string
	Start   time.Time // the minute, truncated
	Seconds [60]Grid
}
