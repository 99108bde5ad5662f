package mountfs

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"sort"

	"mis/manifest"
)

// piece maps bytes [Off, Off+Len) of a linear space to bytes
// [ChunkOff, ChunkOff+Len) of chunk Chunk (an index into the chunk table).
type piece struct {
	Off      int64
	Len      int64
	Chunk    int32
	ChunkOff uint32
}

// View is a read-only linear space (a disk, or one file) assembled from
// chunk pieces. Bytes no piece covers (zero runs, holes) read as zeros.
// It is safe for concurrent use. A writable clone can overlay copy-on-write
// blocks on a View and fall through to ReadAt for the rest.
type View struct {
	size   int64
	pieces []piece // sorted by Off, non-overlapping
	chunks *chunkStore
}

// Size is the length of the space in bytes.
func (v *View) Size() int64 { return v.size }

// ReadAt implements io.ReaderAt. A chunk that cannot be read or fails
// verification ends the read with a *ChunkError; bytes before it are valid.
func (v *View) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read at negative offset %d", off)
	}
	if off >= v.size {
		return 0, io.EOF
	}
	var atEOF error
	if rem := v.size - off; int64(len(p)) > rem {
		p, atEOF = p[:rem], io.EOF
	}
	end := off + int64(len(p))
	pos := off
	for i := v.first(off); pos < end; i++ {
		if i >= len(v.pieces) || v.pieces[i].Off >= end {
			clear(p[pos-off:])
			break
		}
		pc := v.pieces[i]
		if pc.Off > pos {
			clear(p[pos-off : pc.Off-off])
			pos = pc.Off
		}
		data, err := v.chunks.get(pc.Chunk)
		if err != nil {
			return int(pos - off), err
		}
		skip := pos - pc.Off
		n := min(pc.Len-skip, end-pos)
		from := int64(pc.ChunkOff) + skip
		copy(p[pos-off:pos-off+n], data[from:from+n])
		pos += n
	}
	return len(p), atEOF
}

// first returns the index of the first piece ending after off.
func (v *View) first(off int64) int {
	return sort.Search(len(v.pieces), func(i int) bool { return v.pieces[i].Off+v.pieces[i].Len > off })
}

// chunksIn returns the chunks holding bytes of [from, to), in order,
// without immediate repeats: what a reader of that range will need next.
func (v *View) chunksIn(from, to int64) []int32 {
	var out []int32
	for i := v.first(from); i < len(v.pieces) && v.pieces[i].Off < to; i++ {
		c := v.pieces[i].Chunk
		if len(out) == 0 || out[len(out)-1] != c {
			out = append(out, c)
		}
	}
	return out
}

// newDiskView builds the view of the whole disk: every piece
// manifest.LayDisk lays (the residual stream over the non-zero runs, every
// file's content over its extents), the same pieces export writes.
func newDiskView(m *manifest.Manifest, chunks *chunkStore) (*View, error) {
	pieces := make([]piece, 0, pieceBound(m))
	var c int32
	err := m.LayDisk(func(stream []manifest.Ref, p manifest.Piece) {
		if p.ChunkOff == 0 { // a new chunk; later pieces of it follow at once
			c = chunks.index(stream[p.Chunk])
		}
		pieces = append(pieces, piece{Off: p.Off, Len: p.Len, Chunk: c, ChunkOff: uint32(p.ChunkOff)})
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(pieces, func(a, b piece) int { return cmp.Compare(a.Off, b.Off) })
	if err := checkPieces(pieces, m.DiskSize); err != nil {
		return nil, fmt.Errorf("disk: %w", err)
	}
	return &View{size: m.DiskSize, pieces: pieces, chunks: chunks}, nil
}

// pieceBound is at least the number of pieces LayDisk lays: a stream has
// at most one piece per chunk plus one per range it fills.
func pieceBound(m *manifest.Manifest) int {
	n := len(m.ResidualData) + len(m.Residual)
	for i := range m.Filesystems {
		for j := range m.Filesystems[i].Files {
			if f := &m.Filesystems[i].Files[j]; len(f.Extents) > 0 {
				n += len(f.Content) + len(f.Extents)
			}
		}
	}
	return n
}

// newFileView builds the view of one regular file: its content laid over
// the file (manifest.Entry.LayFile).
func newFileView(e *manifest.Entry, chunks *chunkStore) (*View, error) {
	pieces := make([]piece, 0, len(e.Content)+len(e.Extents))
	var c int32
	err := e.LayFile(func(p manifest.Piece) {
		if p.ChunkOff == 0 {
			c = chunks.index(e.Content[p.Chunk])
		}
		pieces = append(pieces, piece{Off: p.Off, Len: p.Len, Chunk: c, ChunkOff: uint32(p.ChunkOff)})
	})
	if err != nil {
		return nil, fmt.Errorf("inode %d: %w", e.Ino, err)
	}
	slices.SortFunc(pieces, func(a, b piece) int { return cmp.Compare(a.Off, b.Off) })
	if err := checkPieces(pieces, int64(e.Size)); err != nil {
		return nil, fmt.Errorf("inode %d: %w", e.Ino, err)
	}
	return &View{size: int64(e.Size), pieces: pieces, chunks: chunks}, nil
}

// checkPieces refuses overlapping pieces or pieces beyond size, which would
// make a read depend on search order.
func checkPieces(pieces []piece, size int64) error {
	var end int64
	for _, p := range pieces {
		if p.Off < end {
			return fmt.Errorf("bytes at %d are described twice", p.Off)
		}
		end = p.Off + p.Len
	}
	if end > size {
		return fmt.Errorf("content reaches byte %d, beyond the size %d", end, size)
	}
	return nil
}

// NextData returns the first offset at or after off that a piece covers
// (SEEK_DATA), or false if only zeros follow.
func (v *View) NextData(off int64) (int64, bool) {
	i := v.first(off)
	if i >= len(v.pieces) || off >= v.size {
		return 0, false
	}
	return max(off, v.pieces[i].Off), true
}

// NextHole returns the first offset at or after off that no piece covers
// (SEEK_HOLE); the end of the space counts as a hole.
func (v *View) NextHole(off int64) int64 {
	for i := v.first(off); i < len(v.pieces) && v.pieces[i].Off <= off; i++ {
		off = v.pieces[i].Off + v.pieces[i].Len
	}
	return min(off, v.size)
}
