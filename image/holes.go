package image

import (
	"os"

	"golang.org/x/sys/unix"
)

// holeFinder tells where the data of a sparse source lies; everything else
// reads as zeros and need not be read. mountfs.View implements it, and so
// does fileHoles for image files.
type holeFinder interface {
	// NextData returns the first offset at or after off holding data, or
	// false if only zeros follow.
	NextData(off int64) (int64, bool)
	// NextHole returns the first offset at or after off that is a hole
	// (the end of the source counts as one).
	NextHole(off int64) int64
}

// fileHoles asks an image file with SEEK_DATA/SEEK_HOLE. A file that cannot
// tell (a block device, a filesystem without support) is all data.
type fileHoles struct {
	f      *os.File
	size   int64
	cannot bool
}

func (h *fileHoles) NextData(off int64) (int64, bool) {
	if h.cannot {
		return off, off < h.size
	}
	next, err := unix.Seek(int(h.f.Fd()), off, unix.SEEK_DATA)
	switch {
	case err == unix.ENXIO: // no data after off
		return 0, false
	case err != nil:
		h.cannot = true
		return off, off < h.size
	}
	return next, true
}

func (h *fileHoles) NextHole(off int64) int64 {
	if h.cannot {
		return h.size
	}
	end, err := unix.Seek(int(h.f.Fd()), off, unix.SEEK_HOLE)
	if err != nil || end < off {
		h.cannot = true
		return h.size
	}
	return min(end, h.size)
}

// holeAt returns the length of the hole starting at off, or else the length
// of the data starting there, both clipped to limit bytes; (0, limit) when
// the source cannot tell. Hole edges are moved inwards to zeroBlock
// boundaries (or the range ends) so that a block is never split between a
// hole and a read: the same block classifies alike whatever the source.
func (im *importer) holeAt(off, limit int64) (hole, data int64) {
	if im.holes == nil {
		return 0, limit
	}
	end := off + limit
	start, dataEnd, ok := im.nextData(off)
	if !ok {
		start = end
	}
	if next := min(start, end); next > off {
		if next < end {
			next = alignDown(next)
		}
		if next > off {
			return next - off, 0
		}
	}
	// Data at off, or within its block: it lasts until the next hole that
	// starts past a block boundary.
	h := min(dataEnd, end)
	if h < end {
		h = min(alignUp(h), end)
	}
	if h <= off {
		return 0, min(zeroBlock, limit)
	}
	return 0, h - off
}

// holeCache remembers the source's answer about one data range: from q
// on, data starts at start and ends at end (ok false: no data after q).
// The residual pass asks about increasing offsets, mostly within the same
// range, so this saves two system calls per gap between files.
type holeCache struct {
	q, start, end int64
	ok, valid     bool
}

// nextData returns the data range holding off or the first one after it.
func (im *importer) nextData(off int64) (start, end int64, ok bool) {
	c := &im.holeCache
	if !c.valid || off < c.q || (c.ok && off >= c.end) {
		start, ok = im.holes.NextData(off)
		if ok {
			end = im.holes.NextHole(start)
		}
		*c = holeCache{q: off, start: start, end: end, ok: ok, valid: true}
	}
	return max(off, c.start), c.end, c.ok
}

func alignDown(off int64) int64 { return off / zeroBlock * zeroBlock }
func alignUp(off int64) int64   { return (off + zeroBlock - 1) / zeroBlock * zeroBlock }
