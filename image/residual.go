package image

import (
	"bytes"
	"fmt"
	"io"
	"sort"

	"golang.org/x/sys/unix"

	"mis/manifest"
)

// importResidual stores every byte of the disk that is not file content:
// the complement of im.spans, split into zero runs (free) and data runs (one
// chunked stream, read in disk order).
func (im *importer) importResidual(m *manifest.Manifest) error {
	sort.Slice(im.spans, func(i, j int) bool { return im.spans[i].DiskOff < im.spans[j].DiskOff })
	for i := 1; i < len(im.spans); i++ {
		prev, cur := im.spans[i-1], im.spans[i]
		if prev.DiskOff+prev.Len > cur.DiskOff {
			return fmt.Errorf("two files claim disk bytes at offset %d: the filesystem is corrupt (run e2fsck)", cur.DiskOff)
		}
	}

	pr, pw := io.Pipe()
	type result struct {
		refs []manifest.Ref
		err  error
	}
	done := make(chan result, 1)
	go func() {
		refs, err := im.w.WriteStream(pr, nil)
		pr.CloseWithError(err) // unblock the producer if the store failed
		out := make([]manifest.Ref, len(refs))
		for i, r := range refs {
			out[i] = manifest.Ref{ID: r.ID, Size: r.Size}
		}
		done <- result{out, err}
	}()

	rb := &runBuilder{}
	err := im.eachGap(func(off, n int64) error { return im.residualRange(pw, rb, off, n) })
	pw.CloseWithError(err)
	res := <-done
	if err != nil {
		return err
	}
	if res.err != nil {
		return res.err
	}
	m.Residual = rb.runs
	m.ResidualData = res.refs
	return nil
}

// eachGap calls fn for each disk range not covered by file content.
func (im *importer) eachGap(fn func(off, n int64) error) error {
	var pos int64
	for _, s := range im.spans {
		if s.DiskOff > pos {
			if err := fn(pos, s.DiskOff-pos); err != nil {
				return err
			}
		}
		pos = s.DiskOff + s.Len
	}
	if pos < im.size {
		return fn(pos, im.size-pos)
	}
	return nil
}

// residualRange reads one gap, classifies it in zeroBlock pieces aligned to
// the disk, and sends the non-zero pieces down the residual stream.
func (im *importer) residualRange(w io.Writer, rb *runBuilder, off, n int64) error {
	const readSize = 4 << 20
	if cap(im.buf) < readSize {
		im.buf = make([]byte, max(readSize, smallFile))
	}
	for n > 0 {
		if err := im.ctx.Err(); err != nil {
			return err
		}
		step := min(n, readSize)
		// Holes of a sparse image file are zeros nobody needs to read.
		if hole, data := im.holeAt(off); hole > 0 {
			h := min(hole, n)
			rb.add(off, h, true)
			im.progress(h)
			off += h
			n -= h
			continue
		} else if data > 0 {
			step = min(step, data)
		}
		buf := im.buf[:step]
		if _, err := im.f.ReadAt(buf, off); err != nil {
			return fmt.Errorf("read at offset %d: %w", off, err)
		}
		if im.opt.DiscardFree {
			im.zeroFree(buf, off)
		}
		for p := int64(0); p < step; {
			// Pieces end on absolute zeroBlock boundaries so the same
			// block of two images classifies the same way.
			end := min(step, (off+p)/zeroBlock*zeroBlock+zeroBlock-off)
			piece := buf[p:end]
			zero := isZero(piece)
			rb.add(off+p, int64(len(piece)), zero)
			if !zero {
				if _, err := w.Write(piece); err != nil {
					return err
				}
			}
			p = end
		}
		im.progress(step)
		off += step
		n -= step
	}
	return nil
}

// zeroFree clears the bytes of buf (read at disk offset off) that lie in
// blocks a filesystem marks free.
func (im *importer) zeroFree(buf []byte, off int64) {
	end := off + int64(len(buf))
	for _, fm := range im.free {
		fsEnd := fm.off + int64(fm.blocks)*fm.blockSize
		if end <= fm.off || off >= fsEnd {
			continue
		}
		first := (max(off, fm.off) - fm.off) / fm.blockSize
		for b := first; ; b++ {
			bStart := fm.off + b*fm.blockSize
			if bStart >= end || bStart >= fsEnd {
				break
			}
			if fm.used.Test(uint64(b)) {
				continue
			}
			lo, hi := max(bStart, off), min(bStart+fm.blockSize, end)
			clear(buf[lo-off : hi-off])
		}
	}
}

var zeroPage [zeroBlock]byte

// isZero reports whether b (at most zeroBlock bytes) is all zeros;
// bytes.Equal runs on the vectorised memequal.
func isZero(b []byte) bool { return bytes.Equal(b, zeroPage[:len(b)]) }

// runBuilder merges adjacent pieces of the same kind into runs.
type runBuilder struct{ runs []manifest.Run }

func (rb *runBuilder) add(off, n int64, zero bool) {
	if k := len(rb.runs) - 1; k >= 0 {
		last := &rb.runs[k]
		if last.Off+last.Len == off && last.Zero == zero {
			last.Len += n
			return
		}
	}
	rb.runs = append(rb.runs, manifest.Run{Off: off, Len: n, Zero: zero})
}

// holeAt asks the image file (SEEK_DATA/SEEK_HOLE) about offset off: it
// returns the length of the hole starting there, or else the length of the
// data run starting there (0, 0 when the file cannot tell).
func (im *importer) holeAt(off int64) (hole, data int64) {
	if im.noSeekHole {
		return 0, 0
	}
	fd := int(im.f.Fd())
	next, err := unix.Seek(fd, off, unix.SEEK_DATA)
	switch {
	case err == unix.ENXIO: // no data after off: a hole to the end
		return im.size - off, 0
	case err != nil:
		im.noSeekHole = true // e.g. a block device
		return 0, 0
	case next > off:
		return next - off, 0
	}
	end, err := unix.Seek(fd, off, unix.SEEK_HOLE)
	if err != nil || end <= off {
		return 0, 0
	}
	return 0, end - off
}
