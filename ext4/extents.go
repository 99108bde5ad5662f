package ext4

import (
	"encoding/binary"
	"sort"
)

// Extent maps Len file blocks starting at file block Logical to filesystem
// blocks starting at Physical. Uninit extents are allocated but read as zeros.
type Extent struct {
	Logical  uint64
	Physical uint64
	Len      uint64
	Uninit   bool
}

const (
	extentMagic    = 0xF30A
	maxExtentDepth = 5
	maxLogical     = 1 << 32 // file block numbers are 32-bit
)

// blockMap is the result of walking an inode's mapping: data extents and
// the metadata blocks (tree nodes, indirect blocks) that hold the mapping.
type blockMap struct {
	fs      *FS
	ino     uint32
	extents []Extent
	meta    []uint64
	seen    map[uint64]bool
}

// Extents returns the data extents of inode ino sorted by Logical; gaps are
// holes. It handles extent trees of any depth and ext2/3 block maps.
// Inline-data inodes, fast symlinks and device inodes have no extents.
func (fs *FS) Extents(ino uint32) ([]Extent, error) {
	in, err := fs.Inode(ino)
	if err != nil {
		return nil, err
	}
	m, err := fs.mapInode(in)
	if err != nil {
		return nil, err
	}
	return m.extents, nil
}

// MetaBlocks returns the blocks holding inode ino's block mapping (extent
// tree index/leaf blocks, indirect blocks) plus its external xattr block,
// sorted. These are in use but are not file content.
func (fs *FS) MetaBlocks(ino uint32) ([]uint64, error) {
	in, err := fs.Inode(ino)
	if err != nil {
		return nil, err
	}
	m, err := fs.mapInode(in)
	if err != nil {
		return nil, err
	}
	meta := m.meta
	if in.FileACL != 0 {
		meta = append(meta, in.FileACL)
	}
	sort.Slice(meta, func(i, j int) bool { return meta[i] < meta[j] })
	return meta, nil
}

// hasBlockMapping reports whether i_block holds a block mapping at all.
func (fs *FS) hasBlockMapping(in *Inode) bool {
	switch {
	case in.HasInlineData():
		return false
	case in.IsCharDev() || in.IsBlockDev() || in.IsFIFO() || in.IsSocket():
		return false
	case in.IsSymlink():
		return !fs.isFastSymlink(in)
	}
	return true
}

func (fs *FS) mapInode(in *Inode) (*blockMap, error) {
	m := &blockMap{fs: fs, ino: in.Ino, seen: map[uint64]bool{}}
	if !fs.hasBlockMapping(in) {
		return m, nil
	}
	var err error
	if in.HasExtents() {
		err = m.walkExtentNode(in.Block[:], 0, -1)
	} else {
		err = m.walkBlockMap(in)
	}
	if err != nil {
		return nil, err
	}
	return m, m.finish()
}

// markMeta records a mapping block, refusing blocks seen twice (loops).
func (m *blockMap) markMeta(blk uint64, what string) error {
	if blk < uint64(m.fs.sb.FirstDataBlock) || blk >= m.fs.sb.BlocksCount {
		return corrupt(what, m.ino, blk, "points outside the filesystem (%d blocks)", m.fs.sb.BlocksCount)
	}
	if m.seen[blk] {
		return corrupt(what, m.ino, blk, "block referenced twice (loop in the mapping)")
	}
	m.seen[blk] = true
	m.meta = append(m.meta, blk)
	return nil
}

func (m *blockMap) addExtent(e Extent) error {
	if e.Logical+e.Len > maxLogical {
		return corrupt("extent", m.ino, e.Physical, "logical range %d+%d beyond 2^32 blocks", e.Logical, e.Len)
	}
	if e.Physical < uint64(m.fs.sb.FirstDataBlock) || e.Physical+e.Len > m.fs.sb.BlocksCount || e.Physical+e.Len < e.Physical {
		return corrupt("extent", m.ino, e.Physical, "physical range %d+%d blocks outside the filesystem (%d blocks)", e.Physical, e.Len, m.fs.sb.BlocksCount)
	}
	if n := len(m.extents); n > 0 {
		last := &m.extents[n-1]
		if last.Logical+last.Len == e.Logical && last.Physical+last.Len == e.Physical && last.Uninit == e.Uninit {
			last.Len += e.Len
			return nil
		}
	}
	m.extents = append(m.extents, e)
	return nil
}

// finish sorts extents and rejects overlapping logical or physical ranges
// (a block mapped twice would let corrupt images amplify reads).
func (m *blockMap) finish() error {
	byPhys := append([]Extent(nil), m.extents...)
	sort.Slice(byPhys, func(i, j int) bool { return byPhys[i].Physical < byPhys[j].Physical })
	for i := 1; i < len(byPhys); i++ {
		p, e := byPhys[i-1], byPhys[i]
		if p.Physical+p.Len > e.Physical {
			return corrupt("extent", m.ino, e.Physical, "physical blocks %d..%d mapped twice (file blocks %d and %d)", e.Physical, min(p.Physical+p.Len, e.Physical+e.Len)-1, p.Logical, e.Logical)
		}
	}
	sort.Slice(m.extents, func(i, j int) bool { return m.extents[i].Logical < m.extents[j].Logical })
	for i := 1; i < len(m.extents); i++ {
		p, e := m.extents[i-1], m.extents[i]
		if p.Logical+p.Len > e.Logical {
			return corrupt("extent", m.ino, e.Physical, "logical blocks %d..%d overlap the previous extent %d..%d", e.Logical, e.Logical+e.Len-1, p.Logical, p.Logical+p.Len-1)
		}
	}
	return nil
}

// walkExtentNode decodes one extent tree node. wantDepth is the depth the
// parent index expects (-1 at the root), which guarantees termination.
func (m *blockMap) walkExtentNode(node []byte, blk uint64, wantDepth int) error {
	le := binary.LittleEndian
	if le.Uint16(node[0:]) != extentMagic {
		return corrupt("extent tree", m.ino, blk, "bad extent header magic 0x%04x", le.Uint16(node[0:]))
	}
	entries := int(le.Uint16(node[2:]))
	max := int(le.Uint16(node[4:]))
	depth := int(le.Uint16(node[6:]))
	if 12+12*max > len(node) || entries > max {
		return corrupt("extent tree", m.ino, blk, "header claims %d of max %d entries in a %d-byte node", entries, max, len(node))
	}
	if depth > maxExtentDepth || (wantDepth >= 0 && depth != wantDepth) {
		return corrupt("extent tree", m.ino, blk, "node depth %d (expected %d, max %d)", depth, wantDepth, maxExtentDepth)
	}
	for i := 0; i < entries; i++ {
		e := node[12+12*i : 24+12*i]
		logical := uint64(le.Uint32(e[0:]))
		if depth == 0 {
			n := uint64(le.Uint16(e[4:]))
			uninit := false
			if n > 32768 {
				n -= 32768
				uninit = true
			}
			if n == 0 {
				continue // zero-length extents are ignored, as by the kernel
			}
			phys := uint64(le.Uint16(e[6:]))<<32 | uint64(le.Uint32(e[8:]))
			if err := m.addExtent(Extent{Logical: logical, Physical: phys, Len: n, Uninit: uninit}); err != nil {
				return err
			}
			continue
		}
		child := uint64(le.Uint16(e[8:]))<<32 | uint64(le.Uint32(e[4:]))
		if err := m.markMeta(child, "extent tree"); err != nil {
			return err
		}
		buf := make([]byte, m.fs.bs)
		if err := m.fs.readBlockInto(buf, child); err != nil {
			return &Error{Op: "extent tree", Ino: m.ino, Block: child, Err: err}
		}
		if err := m.walkExtentNode(buf, child, depth-1); err != nil {
			return err
		}
	}
	return nil
}

// walkBlockMap decodes an ext2/3 direct/indirect block map.
func (m *blockMap) walkBlockMap(in *Inode) error {
	le := binary.LittleEndian
	per := m.fs.bs / 4
	for i := 0; i < 12; i++ {
		if err := m.addPtr(uint64(i), uint64(le.Uint32(in.Block[4*i:]))); err != nil {
			return err
		}
	}
	start := uint64(12)
	span := uint64(1)
	for level := 1; level <= 3; level++ {
		span *= per
		ptr := uint64(le.Uint32(in.Block[4*(11+level):]))
		if ptr != 0 {
			if err := m.walkIndirect(ptr, level, start); err != nil {
				return err
			}
		}
		start += span
	}
	return nil
}

func (m *blockMap) addPtr(logical, phys uint64) error {
	if phys == 0 {
		return nil // hole
	}
	return m.addExtent(Extent{Logical: logical, Physical: phys, Len: 1})
}

// walkIndirect reads an indirect block of the given level (1 = single)
// mapping file blocks from start onward.
func (m *blockMap) walkIndirect(blk uint64, level int, start uint64) error {
	if start >= maxLogical {
		return corrupt("block map", m.ino, blk, "indirect block maps file blocks beyond 2^32")
	}
	if err := m.markMeta(blk, "block map"); err != nil {
		return err
	}
	buf := make([]byte, m.fs.bs)
	if err := m.fs.readBlockInto(buf, blk); err != nil {
		return &Error{Op: "block map", Ino: m.ino, Block: blk, Err: err}
	}
	le := binary.LittleEndian
	per := m.fs.bs / 4
	span := uint64(1)
	for i := 1; i < level; i++ {
		span *= per
	}
	for i := uint64(0); i < per; i++ {
		p := uint64(le.Uint32(buf[4*i:]))
		if p == 0 {
			continue
		}
		var err error
		if level == 1 {
			err = m.addPtr(start+i, p)
		} else {
			err = m.walkIndirect(p, level-1, start+i*span)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
