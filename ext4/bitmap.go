package ext4

import (
	"math/bits"
)

// Bitmap has one bit per filesystem block; set means in use.
type Bitmap struct {
	words []uint64
	n     uint64
}

func newBitmap(n uint64) *Bitmap { return &Bitmap{words: make([]uint64, (n+63)/64), n: n} }

// Len is the number of blocks covered.
func (b *Bitmap) Len() uint64 { return b.n }

// Test reports whether block i is in use (false beyond Len).
func (b *Bitmap) Test(i uint64) bool { return i < b.n && b.words[i/64]&(1<<(i%64)) != 0 }

func (b *Bitmap) set(i uint64) {
	if i < b.n {
		b.words[i/64] |= 1 << (i % 64)
	}
}

// Count is the number of blocks in use.
func (b *Bitmap) Count() uint64 {
	var c int
	for _, w := range b.words {
		c += bits.OnesCount64(w)
	}
	return uint64(c)
}

// UsedBlocks returns the in-use blocks according to the block bitmaps.
// Groups flagged BLOCK_UNINIT have no bitmap on disk; for them the group's
// superblock/descriptor copies and any bitmaps and inode tables located in
// the group count as used, everything else as free. Blocks before the
// first data block (the 1 KiB boot block of 1 KiB-block filesystems) count
// as used.
func (fs *FS) UsedBlocks() (*Bitmap, error) {
	if fs.sb.HasBigalloc() {
		return nil, &Error{Op: "used blocks", Err: wrapf(ErrUnsupported, "bigalloc (bitmaps count clusters)")}
	}
	used := newBitmap(fs.sb.BlocksCount)
	for i := uint64(0); i < uint64(fs.sb.FirstDataBlock); i++ {
		used.set(i)
	}
	bpg := uint64(fs.sb.BlocksPerGroup)
	buf := make([]byte, fs.bs)
	for g := range fs.groups {
		first := uint64(fs.sb.FirstDataBlock) + uint64(g)*bpg
		n := min(bpg, fs.sb.BlocksCount-first)
		if fs.groups[g].flags&bgBlockUninit != 0 {
			fs.markGroupSuper(used, uint32(g))
			continue
		}
		if err := fs.readBlockInto(buf, fs.groups[g].blockBitmap); err != nil {
			return nil, &Error{Op: "read block bitmap", Block: fs.groups[g].blockBitmap, Err: err}
		}
		for i := uint64(0); i < n; i++ {
			if buf[i/8]&(1<<(i%8)) != 0 {
				used.set(first + i)
			}
		}
	}
	// Bitmaps and inode tables are always in use, wherever flex_bg put them
	// (this matters for BLOCK_UNINIT groups hosting them).
	itBlocks := (uint64(fs.sb.InodesPerGroup)*uint64(fs.sb.InodeSize) + fs.bs - 1) / fs.bs
	for _, gd := range fs.groups {
		used.set(gd.blockBitmap)
		used.set(gd.inodeBitmap)
		for i := uint64(0); i < itBlocks; i++ {
			used.set(gd.inodeTable + i)
		}
	}
	return used, nil
}

// markGroupSuper marks the superblock and group descriptor copies (and
// reserved GDT blocks) that group g carries.
func (fs *FS) markGroupSuper(used *Bitmap, g uint32) {
	first := uint64(fs.sb.FirstDataBlock) + uint64(g)*uint64(fs.sb.BlocksPerGroup)
	perBlock := fs.bs / uint64(fs.sb.DescSize)
	descBlocks := (uint64(len(fs.groups)) + perBlock - 1) / perBlock
	hasSuper := fs.groupHasSuper(g)
	if hasSuper {
		used.set(first)
	}
	if !fs.sb.HasMetaBG() {
		if hasSuper {
			for i := uint64(0); i < descBlocks+uint64(fs.sb.ReservedGdtBlocks); i++ {
				used.set(first + 1 + i)
			}
		}
		return
	}
	// meta_bg: the non-meta part of the table behaves as above; each meta
	// group keeps its descriptor block in its first, second and last group.
	if hasSuper {
		for i := uint64(0); i < min(descBlocks, uint64(fs.sb.FirstMetaBG))+uint64(fs.sb.ReservedGdtBlocks); i++ {
			used.set(first + 1 + i)
		}
	}
	metaGroup := uint64(g) / perBlock
	if metaGroup < uint64(fs.sb.FirstMetaBG) {
		return
	}
	idx := uint64(g) % perBlock
	if idx == 0 || idx == 1 || idx == perBlock-1 {
		b := first
		if hasSuper {
			b++
		}
		used.set(b)
	}
}
