package ext4

import (
	"encoding/binary"
	"errors"
	"io"
	"sync"
)

// FS is an open ext2/3/4 filesystem, read-only. It is safe for concurrent use.
type FS struct {
	r      io.ReaderAt
	size   int64
	sb     *Superblock
	groups []groupDesc
	bs     uint64 // block size in bytes

	cacheMu sync.Mutex
	cache   map[uint64][]byte // small cache of metadata blocks (inode tables, dirs)

	// Warn, when set (before use), receives what Walk reports about
	// directory entries it could not take as they are (see Walk).
	Warn func(msg string)
}

// groupDesc is the part of a group descriptor this reader needs.
type groupDesc struct {
	blockBitmap uint64
	inodeBitmap uint64
	inodeTable  uint64
	flags       uint16
}

const (
	bgInodeUninit = 0x1
	bgBlockUninit = 0x2
)

// metaCacheBytes bounds the metadata block cache.
const metaCacheBytes = 8 << 20

// Open reads the superblock and group descriptors of the filesystem in r,
// which holds size bytes (the partition, offset already applied).
// It refuses filesystems whose journal needs recovery, and features that
// change the meaning of on-disk data in ways this reader does not handle.
func Open(r io.ReaderAt, size int64) (*FS, error) {
	raw := make([]byte, superblockSize)
	if size < superblockOffset+superblockSize {
		return nil, &Error{Op: "open", Err: wrapf(ErrNotExt, "device of %d bytes is too small for a superblock", size)}
	}
	if _, err := r.ReadAt(raw, superblockOffset); err != nil {
		return nil, &Error{Op: "read superblock", Err: err}
	}
	sb, err := parseSuperblock(raw, size)
	if err != nil {
		return nil, err
	}
	if sb.NeedsRecovery() {
		return nil, &Error{Op: "open", Err: ErrDirtyJournal}
	}
	const refused = IncompatCompression | IncompatJournalDev | IncompatDirData | IncompatEncrypt
	if f := sb.FeatureIncompat & refused; f != 0 {
		return nil, &Error{Op: "open", Err: wrapf(ErrUnsupported, "incompat feature flags 0x%x (compression, journal device, dirdata or encryption)", f)}
	}
	fs := &FS{r: r, size: size, sb: sb, bs: uint64(sb.BlockSize), cache: map[uint64][]byte{}}
	if err := fs.readGroupDescs(); err != nil {
		return nil, err
	}
	return fs, nil
}

// Super returns the decoded superblock. Callers must not modify it.
func (fs *FS) Super() *Superblock { return fs.sb }

// BlockSize is the filesystem block size in bytes.
func (fs *FS) BlockSize() uint32 { return fs.sb.BlockSize }

// BlockGroupCount is the number of block groups.
func (fs *FS) BlockGroupCount() uint32 { return uint32(len(fs.groups)) }

// groupHasSuper reports whether group g carries a superblock backup
// (and, without meta_bg, a copy of the group descriptor table).
func (fs *FS) groupHasSuper(g uint32) bool {
	switch {
	case g == 0:
		return true
	case fs.sb.HasSparseSuper2():
		return g == fs.sb.BackupBGs[0] || g == fs.sb.BackupBGs[1]
	case g <= 1 || !fs.sb.HasSparseSuper():
		return true
	case g&1 == 0:
		return false
	}
	for _, b := range []uint32{3, 5, 7} {
		n := b
		for n < g {
			n *= b
		}
		if n == g {
			return true
		}
	}
	return false
}

// descBlock is the location of group descriptor block number i (0-based),
// with and without meta_bg.
func (fs *FS) descBlock(i uint64) uint64 {
	first := uint64(fs.sb.FirstDataBlock)
	if !fs.sb.HasMetaBG() || i < uint64(fs.sb.FirstMetaBG) {
		return first + 1 + i
	}
	perBlock := fs.bs / uint64(fs.sb.DescSize)
	g := i * perBlock
	b := first + g*uint64(fs.sb.BlocksPerGroup)
	if fs.groupHasSuper(uint32(g)) {
		b++
	}
	return b
}

func (fs *FS) readGroupDescs() error {
	le := binary.LittleEndian
	n := fs.sb.GroupCount()
	ds := uint64(fs.sb.DescSize)
	perBlock := fs.bs / ds
	// Grown as descriptors are read and checked, not sized from the
	// superblock: a crafted group count on a big (sparse) device would
	// otherwise allocate gigabytes before the first bad descriptor.
	fs.groups = make([]groupDesc, 0, min(uint64(n), 1<<16))
	buf := make([]byte, fs.bs)
	for i := uint64(0); i*perBlock < uint64(n); i++ {
		blk := fs.descBlock(i)
		if err := fs.readBlockInto(buf, blk); err != nil {
			return &Error{Op: "read group descriptors", Block: blk, Err: err}
		}
		for j := uint64(0); j < perBlock && i*perBlock+j < uint64(n); j++ {
			d := buf[j*ds : (j+1)*ds]
			fs.groups = append(fs.groups, groupDesc{})
			g := &fs.groups[len(fs.groups)-1]
			g.blockBitmap = uint64(le.Uint32(d[0:]))
			g.inodeBitmap = uint64(le.Uint32(d[4:]))
			g.inodeTable = uint64(le.Uint32(d[8:]))
			g.flags = le.Uint16(d[0x12:])
			if ds >= 64 {
				g.blockBitmap |= uint64(le.Uint32(d[0x20:])) << 32
				g.inodeBitmap |= uint64(le.Uint32(d[0x24:])) << 32
				g.inodeTable |= uint64(le.Uint32(d[0x28:])) << 32
			}
			itBlocks := (uint64(fs.sb.InodesPerGroup)*uint64(fs.sb.InodeSize) + fs.bs - 1) / fs.bs
			grp := i*perBlock + j
			if g.inodeTable == 0 || g.inodeTable+itBlocks > fs.sb.BlocksCount {
				return corrupt("group descriptor", 0, blk, "group %d inode table at block %d (+%d) outside the filesystem", grp, g.inodeTable, itBlocks)
			}
			if g.blockBitmap >= fs.sb.BlocksCount || g.inodeBitmap >= fs.sb.BlocksCount {
				return corrupt("group descriptor", 0, blk, "group %d bitmaps at blocks %d/%d outside the filesystem", grp, g.blockBitmap, g.inodeBitmap)
			}
		}
	}
	return nil
}

// readBlockInto reads block blk into buf (len(buf) <= block size).
func (fs *FS) readBlockInto(buf []byte, blk uint64) error {
	if blk >= fs.sb.BlocksCount {
		return wrapf(ErrCorrupt, "block %d past the end of the filesystem (%d blocks)", blk, fs.sb.BlocksCount)
	}
	n, err := fs.r.ReadAt(buf, int64(blk*fs.bs))
	if n == len(buf) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = wrapf(ErrCorrupt, "short read of block %d (image truncated?)", blk)
	}
	return err
}

// metaBlock returns a cached copy of a metadata block. The returned slice
// must not be modified.
func (fs *FS) metaBlock(blk uint64) ([]byte, error) {
	fs.cacheMu.Lock()
	b, ok := fs.cache[blk]
	fs.cacheMu.Unlock()
	if ok {
		return b, nil
	}
	b = make([]byte, fs.bs)
	if err := fs.readBlockInto(b, blk); err != nil {
		return nil, err
	}
	fs.cacheMu.Lock()
	if uint64(len(fs.cache))*fs.bs >= metaCacheBytes {
		clear(fs.cache) // crude but bounded; metadata access is mostly sequential
	}
	fs.cache[blk] = b
	fs.cacheMu.Unlock()
	return b, nil
}
