package image

import (
	"bytes"
	"fmt"
	"io"
	"sort"

	"mis/chunker"
	"mis/manifest"
	"mis/repo"
)

// importResidual stores every byte of the disk that is not file content:
// the complement of im.spans, split into zero runs (free) and data runs (one
// chunked stream, in disk order). Each disk-aligned zeroBlock piece of a
// gap is zero or not as a whole, so the same block classifies alike in
// every image. With a parent and an Unchanged hint, stretches of the stream
// the parent already holds are taken from its chunks unread.
func (im *importer) importResidual(m *manifest.Manifest) error {
	sort.Slice(im.spans, func(i, j int) bool { return im.spans[i].DiskOff < im.spans[j].DiskOff })
	for i := 1; i < len(im.spans); i++ {
		prev, cur := im.spans[i-1], im.spans[i]
		if prev.DiskOff+prev.Len > cur.DiskOff {
			return fmt.Errorf("two files claim disk bytes at offset %d: the filesystem is corrupt (run e2fsck)", cur.DiskOff)
		}
	}
	src := im.newResidualSource(im.gaps())
	refs, err := im.w.WriteChunks(src.next, nil)
	if err != nil {
		return err
	}
	data, err := src.assemble(refs)
	if err != nil {
		return err
	}
	m.Residual = src.rb.runs
	m.ResidualData = data
	return nil
}

// gaps returns the disk ranges not covered by file content, in order.
func (im *importer) gaps() []segment {
	var out []segment
	var pos int64
	for _, s := range im.spans {
		if s.DiskOff > pos {
			out = append(out, segment{pos, s.DiskOff - pos})
		}
		pos = s.DiskOff + s.Len
	}
	if pos < im.size {
		out = append(out, segment{pos, im.size - pos})
	}
	return out
}

// residualSource produces the residual stream's chunks for WriteChunks,
// walking the plan's stretches in disk order. At every chunk boundary it
// first tries to take the parent's chunk starting at the same disk offset
// (see reusable); otherwise it reads and cuts like a chunker would, so the
// cut points, and so the chunks, are those of reading everything.
type residualSource struct {
	im     *importer
	plan   []stretch
	si     int   // plan[si] holds the cursor
	cursor int64 // disk bytes before it are taken (read, skipped or reused)
	parent *parentStream

	buf        []byte
	start, end int       // buf[start:end]: stream bytes read but not yet cut
	pend       []segment // their disk placement, in order
	maxChunk   int
	step       int64 // bytes read at once
	lastData   int64 // end of the last stretch that may hold stream bytes
	refused    int64 // disk offset of the last boundary found not reusable

	rb  runBuilder
	out []outChunk
}

// outChunk is one chunk of the residual stream: the parent's, or the next
// one WriteChunks stored.
type outChunk struct {
	ref    manifest.Ref
	reused bool
}

func (im *importer) newResidualSource(gaps []segment) *residualSource {
	s := &residualSource{im: im, maxChunk: im.params.Max, step: 4 << 20}
	s.parent = im.parentStream()
	if s.parent != nil {
		s.plan = im.residualPlan(gaps)
		// Reading far ahead would read bytes a later boundary reuses.
		s.step = int64(max(s.maxChunk, zeroBlock))
	} else {
		for _, g := range gaps {
			s.plan = append(s.plan, stretch{g.DiskOff, g.Len, unknownBytes})
		}
	}
	for _, st := range s.plan {
		if st.Kind != knownZero {
			s.lastData = st.Off + st.Len
		}
	}
	if len(s.plan) > 0 {
		s.cursor = s.plan[0].Off
	}
	s.refused = -1
	s.buf = make([]byte, int64(s.maxChunk)+s.step)
	return s
}

// assemble merges the reused chunks with the refs WriteChunks returned for
// the others, in stream order.
func (s *residualSource) assemble(stored []repo.Ref) ([]manifest.Ref, error) {
	out := make([]manifest.Ref, len(s.out))
	k := 0
	for i, o := range s.out {
		if o.reused {
			out[i] = o.ref
			continue
		}
		if k >= len(stored) {
			return nil, fmt.Errorf("internal error: %d residual chunks produced, %d stored", len(s.out), len(stored))
		}
		out[i] = manifest.Ref{ID: stored[k].ID, Size: stored[k].Size}
		k++
	}
	if k != len(stored) {
		return nil, fmt.Errorf("internal error: %d residual chunks stored, %d produced", len(stored), k)
	}
	return out, nil
}

func (s *residualSource) pending() int { return s.end - s.start }

func (s *residualSource) drained() bool { return s.si >= len(s.plan) }

// next returns the next chunk to store, taking every reusable parent chunk
// on the way.
func (s *residualSource) next() ([]byte, error) {
	for {
		if err := s.im.ctx.Err(); err != nil {
			return nil, err
		}
		if s.parent != nil && s.reuse() {
			continue
		}
		if s.pending() < s.maxChunk && !s.drained() {
			if err := s.fillStep(); err != nil {
				return nil, err
			}
			continue
		}
		break
	}
	if s.pending() == 0 {
		return nil, io.EOF
	}
	n := chunker.Boundary(s.buf[s.start:s.end], s.im.params)
	chunk := s.buf[s.start : s.start+n]
	s.consume(int64(n))
	s.out = append(s.out, outChunk{})
	return chunk, nil
}

// consume drops n bytes from the front of the pending stream bytes.
func (s *residualSource) consume(n int64) {
	s.start += int(n)
	for n > 0 {
		p := &s.pend[0]
		if p.Len > n {
			p.DiskOff += n
			p.Len -= n
			return
		}
		n -= p.Len
		s.pend = s.pend[1:]
	}
	if s.start == s.end {
		s.start, s.end = 0, 0
		s.pend = s.pend[:0]
	}
}

// advance moves the cursor to off within the current stretch, or to the
// next stretch when off is its end.
func (s *residualSource) advance(off int64) {
	s.im.progress(off - s.cursor)
	s.cursor = off
	if st := s.plan[s.si]; off == st.Off+st.Len {
		s.si++
		if s.si < len(s.plan) {
			s.cursor = s.plan[s.si].Off
		}
	}
}

// fillStep takes the next piece of the plan at the cursor: zeros become a
// run, bytes are read and their non-zero blocks appended to the pending
// stream.
func (s *residualSource) fillStep() error {
	st := s.plan[s.si]
	stEnd := st.Off + st.Len
	switch st.Kind {
	case knownZero:
		s.rb.add(s.cursor, stEnd-s.cursor, true)
		s.advance(stEnd)
		return nil
	case knownData:
		// The parent said non-zero; the bytes are the same, so is the
		// classification (no need to look).
		n := min(stEnd-s.cursor, s.step)
		buf, err := s.read(s.cursor, n)
		if err != nil {
			return err
		}
		s.push(buf, s.cursor)
		s.rb.add(s.cursor, n, false)
		s.advance(s.cursor + n)
		return nil
	}
	hole, data := s.im.holeAt(s.cursor, stEnd-s.cursor)
	if hole > 0 {
		s.rb.add(s.cursor, hole, true)
		s.advance(s.cursor + hole)
		return nil
	}
	end := s.cursor + min(data, s.step)
	if end < stEnd {
		// Stop on a block boundary so no block is classified in two parts.
		if a := alignDown(end); a > s.cursor {
			end = a
		} else {
			end = min(alignUp(s.cursor+1), stEnd)
		}
	}
	buf, err := s.read(s.cursor, end-s.cursor)
	if err != nil {
		return err
	}
	if s.im.opt.DiscardFree {
		s.im.zeroFree(buf, s.cursor)
	}
	// Classify in disk-aligned pieces; move the non-zero ones down to
	// the end of the pending bytes (in place: they never move up).
	for p := int64(0); p < int64(len(buf)); {
		off := s.cursor + p
		q := min(int64(len(buf)), alignDown(off)+zeroBlock-s.cursor)
		piece := buf[p:q]
		zero := isZero(piece)
		s.rb.add(off, q-p, zero)
		if !zero {
			s.push(piece, off)
		}
		p = q
	}
	s.advance(end)
	return nil
}

// read reads n bytes at disk offset off into the free space after the
// pending bytes (moving those to the front first if needed).
func (s *residualSource) read(off, n int64) ([]byte, error) {
	if int64(len(s.buf)-s.end) < n {
		s.end = copy(s.buf, s.buf[s.start:s.end])
		s.start = 0
	}
	buf := s.buf[s.end : int64(s.end)+n]
	if _, err := s.im.r.ReadAt(buf, off); err != nil {
		return nil, fmt.Errorf("read at offset %d: %w", off, err)
	}
	s.im.stats.ResidualReadBytes += n
	return buf, nil
}

// push appends stream bytes lying at disk offset off to the pending ones.
// b lies in s.buf at or after s.end.
func (s *residualSource) push(b []byte, off int64) {
	s.end += copy(s.buf[s.end:], b)
	n := int64(len(b))
	if k := len(s.pend) - 1; k >= 0 && s.pend[k].DiskOff+s.pend[k].Len == off {
		s.pend[k].Len += n
		return
	}
	s.pend = append(s.pend, segment{off, n})
}

// reuse takes the parent's chunk that starts where the next stream byte
// lies, if it is reusable; it first passes over zero stretches.
func (s *residualSource) reuse() bool {
	var d int64
	if s.pending() > 0 {
		d = s.pend[0].DiskOff
	} else {
		for !s.drained() && s.plan[s.si].Kind == knownZero {
			st := s.plan[s.si]
			s.rb.add(s.cursor, st.Off+st.Len-s.cursor, true)
			s.advance(st.Off + st.Len)
		}
		if s.drained() || s.plan[s.si].Kind != knownData {
			return false
		}
		d = s.cursor
	}
	if d == s.refused {
		return false // asked already; only fills follow until the next cut
	}
	k, ok := s.parent.chunkAt(d)
	if !ok || !s.reusable(k) {
		s.refused = d
		return false
	}
	ref := s.parent.refs[k]
	size := int64(ref.Size)
	fromPending := min(size, int64(s.pending()))
	s.consume(fromPending)
	if size > fromPending {
		s.skipTo(s.parent.end[k])
	}
	s.out = append(s.out, outChunk{ref: ref, reused: true})
	s.im.stats.ResidualReusedBytes += size
	return true
}

// skipTo moves the cursor to disk offset e over known stretches, recording
// their runs without reading them.
func (s *residualSource) skipTo(e int64) {
	for !s.drained() && s.cursor < e {
		st := s.plan[s.si]
		to := min(st.Off+st.Len, e)
		s.rb.add(s.cursor, to-s.cursor, st.Kind == knownZero)
		s.advance(to)
	}
}

// reusable reports whether the new stream, from the parent's chunk k's
// first byte on, holds exactly that chunk's bytes: every new stretch in the
// chunk's disk span is known unchanged, and their non-zero bytes (a subset
// of the parent's there, which are exactly the chunk) are as many as the
// chunk's. A chunk cut by content or at Max is then cut there again; the
// parent's last chunk ended with its stream, so it must end ours too.
func (s *residualSource) reusable(k int) bool {
	d, e := s.parent.start[k], s.parent.end[k]
	i := sort.Search(len(s.plan), func(i int) bool { return s.plan[i].Off+s.plan[i].Len > d })
	var data int64
	for ; i < len(s.plan) && s.plan[i].Off < e; i++ {
		st := s.plan[i]
		switch st.Kind {
		case unknownBytes:
			return false
		case knownData:
			data += min(st.Off+st.Len, e) - max(st.Off, d)
		}
	}
	if data != int64(s.parent.refs[k].Size) {
		return false
	}
	return k < len(s.parent.refs)-1 || s.lastData <= e
}

var zeroPage [zeroBlock]byte

// isZero reports whether b (at most zeroBlock bytes) is all zeros;
// bytes.Equal runs on the vectorised memequal.
func isZero(b []byte) bool { return bytes.Equal(b, zeroPage[:len(b)]) }

// runBuilder merges adjacent pieces of the same kind into runs.
type runBuilder struct{ runs []manifest.Run }

func (rb *runBuilder) add(off, n int64, zero bool) {
	if n <= 0 {
		return
	}
	if k := len(rb.runs) - 1; k >= 0 {
		last := &rb.runs[k]
		if last.Off+last.Len == off && last.Zero == zero {
			last.Len += n
			return
		}
	}
	rb.runs = append(rb.runs, manifest.Run{Off: off, Len: n, Zero: zero})
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
