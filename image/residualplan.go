package image

import (
	"sort"

	"mis/manifest"
)

// A stretch is part of a residual gap, in one of three states.
type stretch struct {
	Off, Len int64
	Kind     uint8
}

const (
	unknownBytes uint8 = iota // to be read and classified
	knownZero                 // unchanged, and zero in the parent: a zero run, unread
	knownData                 // unchanged, and residual data in the parent
)

// parentStream places the parent's residual chunks on the disk: chunk k's
// bytes are the parent's non-zero residual bytes in [start[k], end[k]).
type parentStream struct {
	refs       []manifest.Ref
	start, end []int64
}

// parentStream returns the parent's residual stream when residual reuse is
// possible: a parent and an Unchanged hint, an exact parent (its residual
// holds the disk's bytes), and nothing asking to read everything.
func (im *importer) parentStream() *parentStream {
	p := im.opt.Parent
	if p == nil || im.opt.Unchanged == nil || im.opt.Rehash || im.opt.DiscardFree || !p.Exact {
		return nil
	}
	for i := 1; i < len(p.Residual); i++ {
		if p.Residual[i].Off < p.Residual[i-1].Off+p.Residual[i-1].Len {
			return nil // not in order: not one we wrote
		}
	}
	ps := &parentStream{refs: p.ResidualData, start: make([]int64, len(p.ResidualData)), end: make([]int64, len(p.ResidualData))}
	for _, r := range p.ResidualData {
		if r.Size == 0 {
			return nil // a chunk with no bytes has no place
		}
	}
	err := manifest.LayStream(p.ResidualData, p.ResidualSpans(), func(pc manifest.Piece) {
		if pc.ChunkOff == 0 {
			ps.start[pc.Chunk] = pc.Off
		}
		ps.end[pc.Chunk] = pc.Off + pc.Len
	})
	if err != nil {
		return nil // the stream does not fill its runs
	}
	return ps
}

// chunkAt returns the parent chunk whose first byte lies at disk offset d.
func (ps *parentStream) chunkAt(d int64) (int, bool) {
	k := sort.Search(len(ps.start), func(k int) bool { return ps.start[k] >= d })
	return k, k < len(ps.start) && ps.start[k] == d
}

// residualPlan splits the gaps into stretches. Bytes that were residual in
// the parent too and that Unchanged vouches for take the parent's
// classification (zero or data); everything else is unknown. Only whole
// pieces (a zeroBlock-aligned block cut by its gap) that are the same piece
// in the parent are known, so the plan classifies exactly as reading would.
func (im *importer) residualPlan(gaps []segment) []stretch {
	runs := im.opt.Parent.Residual
	pgaps := parentGaps(runs)
	var plan []stretch
	emit := func(off, end int64, kind uint8) {
		if end <= off {
			return
		}
		if k := len(plan) - 1; k >= 0 && plan[k].Off+plan[k].Len == off && plan[k].Kind == kind {
			plan[k].Len += end - off
			return
		}
		plan = append(plan, stretch{off, end - off, kind})
	}
	j := 0
	for _, g := range gaps {
		gs, ge := g.DiskOff, g.DiskOff+g.Len
		for j < len(pgaps) && pgaps[j].end <= gs {
			j++
		}
		at := gs
		for jj := j; jj < len(pgaps) && pgaps[jj].off < ge; jj++ {
			pg := pgaps[jj]
			a, b := max(gs, pg.off), min(ge, pg.end)
			if a%zeroBlock != 0 && gs != pg.off {
				a = alignUp(a)
			}
			if b%zeroBlock != 0 && ge != pg.end {
				b = alignDown(b)
			}
			if a >= b {
				continue
			}
			im.unchangedParts(a, b, func(u0, u1 int64) {
				emit(at, u0, unknownBytes)
				// Copy the parent's runs over [u0, u1).
				r := sort.Search(len(runs), func(r int) bool { return runs[r].Off+runs[r].Len > u0 })
				for ; r < len(runs) && runs[r].Off < u1; r++ {
					kind := knownData
					if runs[r].Zero {
						kind = knownZero
					}
					emit(max(runs[r].Off, u0), min(runs[r].Off+runs[r].Len, u1), kind)
				}
				at = u1
			})
		}
		emit(at, ge, unknownBytes)
	}
	return plan
}

// parentGap is a stretch of the parent's disk covered by touching residual
// runs (between two files' content).
type parentGap struct{ off, end int64 }

func parentGaps(runs []manifest.Run) []parentGap {
	var out []parentGap
	for _, r := range runs {
		if k := len(out) - 1; k >= 0 && out[k].end == r.Off {
			out[k].end = r.Off + r.Len
			continue
		}
		out = append(out, parentGap{r.Off, r.Off + r.Len})
	}
	return out
}

// unchangedParts calls fn, in order, for the maximal parts of [a, b) that
// Unchanged vouches for, asking about halves (split on block boundaries)
// of whatever it does not vouch for as a whole, down to single blocks.
func (im *importer) unchangedParts(a, b int64, fn func(u0, u1 int64)) {
	var open0, open1 int64 = -1, -1 // the part being grown
	flush := func() {
		if open0 >= 0 {
			fn(open0, open1)
			open0 = -1
		}
	}
	var walk func(a, b int64)
	walk = func(a, b int64) {
		if im.opt.Unchanged(a, b-a) {
			if open0 >= 0 && open1 == a {
				open1 = b
			} else {
				flush()
				open0, open1 = a, b
			}
			return
		}
		mid := alignDown(a + (b-a)/2)
		if mid <= a {
			mid = alignUp(a + 1)
		}
		if mid >= b {
			return // within one block: changed
		}
		walk(a, mid)
		walk(mid, b)
	}
	walk(a, b)
	flush()
}
