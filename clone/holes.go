package clone

// holeFinder is what a base may tell about its zeros (mountfs.View does).
type holeFinder interface {
	NextData(off int64) (int64, bool)
	NextHole(off int64) int64
}

// presentAnywhere reports whether any layer holds block b.
func (d *Disk) presentAnywhere(b int64) bool { return d.source(b, false) >= 0 }

// NextData returns the first offset at or after off that may hold
// non-zero bytes: base data, or a block some layer holds. False means only
// zeros follow. With a base that cannot tell, everything is data.
func (d *Disk) NextData(off int64) (int64, bool) {
	if off >= d.size {
		return 0, false
	}
	hf, ok := d.base.(holeFinder)
	if !ok {
		return off, true
	}
	baseData, baseOK := hf.NextData(off)
	limit := d.size
	if baseOK {
		limit = baseData
	}
	for b := off / BlockSize; b*BlockSize < limit; b++ {
		if d.presentAnywhere(b) {
			return max(off, b*BlockSize), true
		}
	}
	return baseData, baseOK
}

// NextHole returns the first offset at or after off from which zeros
// follow in the base and in no layer's block (the end counts as a hole).
func (d *Disk) NextHole(off int64) int64 {
	hf, ok := d.base.(holeFinder)
	if !ok {
		return d.size
	}
	pos := off
	for pos < d.size {
		pos = hf.NextHole(pos)
		if pos >= d.size || !d.presentAnywhere(pos/BlockSize) {
			break
		}
		pos = (pos/BlockSize + 1) * BlockSize
	}
	return min(pos, d.size)
}
