package manifest

import (
	"errors"
	"fmt"
)

// Span is a stretch of a linear space (the disk, or one file) that takes the
// next Len bytes of a content stream.
type Span struct {
	Off, Len int64
}

// Piece says where part of one chunk of a content stream lies: bytes
// [ChunkOff, ChunkOff+Len) of the stream's chunk number Chunk are bytes
// [Off, Off+Len) of the space the stream is laid over.
type Piece struct {
	Chunk    int // index into the stream's refs
	ChunkOff int64
	Off      int64
	Len      int64
}

var (
	errStreamLong  = errors.New("content stream is longer than the ranges it fills")
	errStreamShort = errors.New("content stream is shorter than the ranges it fills")
)

// LayStream lays the content stream refs over spans. This is what a stream
// means, for export and for every view a mount serves: the stream's bytes
// fill the spans front to back, in order; a chunk may straddle spans and a
// span may hold many chunks; the stream fills the spans exactly (a longer
// or shorter stream is an error).
//
// fn is called once per piece, in stream order: a chunk's pieces are
// consecutive and the first has ChunkOff 0 (a chunk of size 0 has none).
// On error fn may already have seen the pieces before the fault. LayStream
// allocates nothing; fn should not keep refs or spans.
func LayStream(refs []Ref, spans []Span, fn func(Piece)) error {
	si := 0
	var used int64 // bytes of spans[si] already filled
	for k, r := range refs {
		size := int64(r.Size)
		var chunkOff int64
		for chunkOff < size {
			for si < len(spans) && spans[si].Len == 0 {
				si++
			}
			if si >= len(spans) {
				return errStreamLong
			}
			s := spans[si]
			if s.Len < 0 {
				return fmt.Errorf("range at %d has negative length %d", s.Off, s.Len)
			}
			n := min(s.Len-used, size-chunkOff)
			fn(Piece{Chunk: k, ChunkOff: chunkOff, Off: s.Off + used, Len: n})
			chunkOff += n
			used += n
			if used == s.Len {
				si++
				used = 0
			}
		}
	}
	for si < len(spans) && spans[si].Len == 0 {
		si++
	}
	if si != len(spans) {
		return errStreamShort
	}
	return nil
}

// ResidualSpans returns the non-zero residual runs, in order: the disk
// ranges the residual data stream fills.
func (m *Manifest) ResidualSpans() []Span {
	buf := make([]Span, 0, len(m.Residual))
	for _, r := range m.Residual {
		if !r.Zero {
			buf = append(buf, Span{r.Off, r.Len})
		}
	}
	return buf
}

// LayDisk lays every content stream of m over the disk (LayStream): the
// residual data over the non-zero residual runs, then each file's content
// over its extents' disk ranges, in extent order. A file without extents
// (inline data, detached content of a filesystem walked but not placed, a
// tree-edited file) places nothing: its bytes, if the disk has them, are in
// the residual. Zero runs and holes get no pieces.
//
// fn is called for every piece, with the stream the piece belongs to
// (p.Chunk indexes it): the residual stream first, then the files in
// manifest order. Export writes the pieces, a mount indexes them; both go
// through here, so a stream is never interpreted two ways.
func (m *Manifest) LayDisk(fn func(stream []Ref, p Piece)) error {
	spans := m.ResidualSpans()
	if err := LayStream(m.ResidualData, spans, func(p Piece) { fn(m.ResidualData, p) }); err != nil {
		return fmt.Errorf("residual data: %w", err)
	}
	for i := range m.Filesystems {
		fs := &m.Filesystems[i]
		for j := range fs.Files {
			f := &fs.Files[j]
			if len(f.Extents) == 0 {
				continue
			}
			spans = spans[:0]
			for _, x := range f.Extents {
				spans = append(spans, Span{x.DiskOff, x.Len})
			}
			if err := LayStream(f.Content, spans, func(p Piece) { fn(f.Content, p) }); err != nil {
				return fmt.Errorf("partition %d inode %d: %w", fs.PartIndex, f.Ino, err)
			}
		}
	}
	return nil
}

// LayFile lays a regular file's content over the file itself (LayStream
// in file offsets): over its extents' file ranges, or, for a file without
// extents, from offset 0 on. Bytes no piece covers are holes.
func (e *Entry) LayFile(fn func(Piece)) error {
	var spans []Span
	if len(e.Extents) > 0 {
		spans = make([]Span, len(e.Extents))
		for i, x := range e.Extents {
			spans[i] = Span{x.FileOff, x.Len}
		}
	} else if n := StreamSize(e.Content); n > 0 {
		spans = []Span{{0, n}}
	}
	return LayStream(e.Content, spans, fn)
}
