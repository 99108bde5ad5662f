package ext4

import (
	"encoding/binary"
)

// Inode flags.
const (
	FlagIndex      = 0x1000     // htree directory
	FlagHugeFile   = 0x40000    // i_blocks counts fs blocks
	FlagExtents    = 0x80000    // i_block holds an extent tree
	FlagEAInode    = 0x200000   // inode holds a large xattr value
	FlagInlineData = 0x10000000 // content lives in i_block + system.data
	FlagCasefold   = 0x40000000
	FlagEncrypt    = 0x800
)

// File type bits of Mode.
const (
	ModeTypeMask = 0xF000
	ModeFIFO     = 0x1000
	ModeChar     = 0x2000
	ModeDir      = 0x4000
	ModeBlock    = 0x6000
	ModeRegular  = 0x8000
	ModeSymlink  = 0xA000
	ModeSocket   = 0xC000
)

// Timestamp is seconds and nanoseconds since the Unix epoch as the kernel
// decodes them (signed 32-bit seconds plus the extra epoch bits).
type Timestamp struct {
	Sec  int64
	Nsec uint32
}

// Inode is a decoded on-disk inode.
type Inode struct {
	Ino        uint32
	Mode       uint16 // type and permission bits, incl. setuid/setgid/sticky
	UID, GID   uint32
	Size       uint64
	Links      uint16
	Blocks     uint64 // allocated space in 512-byte units (huge_file normalised)
	Atime      Timestamp
	Mtime      Timestamp
	Ctime      Timestamp
	Crtime     Timestamp // zero unless HasCrtime
	Dtime      uint32
	HasCrtime  bool
	Flags      uint32
	Generation uint32
	FileACL    uint64 // external xattr block, 0 if none
	ExtraIsize uint16
	ProjID     uint32
	Major      uint32 // device number for char/block devices
	Minor      uint32
	Block      [60]byte // raw i_block: extent root, block map, fast symlink or inline data
	Raw        []byte   // the whole on-disk inode (InodeSize bytes)
}

func (in *Inode) FileType() uint16 { return in.Mode & ModeTypeMask }
func (in *Inode) IsDir() bool      { return in.FileType() == ModeDir }
func (in *Inode) IsReg() bool      { return in.FileType() == ModeRegular }
func (in *Inode) IsSymlink() bool  { return in.FileType() == ModeSymlink }
func (in *Inode) IsFIFO() bool     { return in.FileType() == ModeFIFO }
func (in *Inode) IsSocket() bool   { return in.FileType() == ModeSocket }
func (in *Inode) IsCharDev() bool  { return in.FileType() == ModeChar }
func (in *Inode) IsBlockDev() bool { return in.FileType() == ModeBlock }
func (in *Inode) Perm() uint16     { return in.Mode &^ ModeTypeMask }
func (in *Inode) HasExtents() bool { return in.Flags&FlagExtents != 0 }
func (in *Inode) HasInlineData() bool {
	return in.Flags&FlagInlineData != 0
}

func decodeTime(lo uint32, extra uint32, hasExtra bool) Timestamp {
	t := Timestamp{Sec: int64(int32(lo))}
	if hasExtra {
		t.Sec += int64(extra&3) << 32
		t.Nsec = extra >> 2
	}
	return t
}

// inodeLocation returns the byte offset of inode ino within the device.
func (fs *FS) inodeLocation(ino uint32) (blk uint64, off uint64, err error) {
	if ino == 0 || ino > fs.sb.InodesCount {
		return 0, 0, &Error{Op: "read inode", Ino: ino, Err: wrapf(ErrCorrupt, "inode number out of range 1..%d", fs.sb.InodesCount)}
	}
	g := (ino - 1) / fs.sb.InodesPerGroup
	idx := uint64((ino - 1) % fs.sb.InodesPerGroup)
	byteOff := idx * uint64(fs.sb.InodeSize)
	return fs.groups[g].inodeTable + byteOff/fs.bs, byteOff % fs.bs, nil
}

// Inode reads and decodes inode ino.
func (fs *FS) Inode(ino uint32) (*Inode, error) {
	blk, off, err := fs.inodeLocation(ino)
	if err != nil {
		return nil, err
	}
	b, err := fs.metaBlock(blk)
	if err != nil {
		return nil, &Error{Op: "read inode", Ino: ino, Block: blk, Err: err}
	}
	raw := b[off : off+uint64(fs.sb.InodeSize)]
	return fs.decodeInode(ino, raw)
}

func (fs *FS) decodeInode(ino uint32, raw []byte) (*Inode, error) {
	le := binary.LittleEndian
	in := &Inode{Ino: ino, Raw: append([]byte(nil), raw...)}
	in.Mode = le.Uint16(raw[0:])
	in.UID = uint32(le.Uint16(raw[2:])) | uint32(le.Uint16(raw[0x78:]))<<16
	in.GID = uint32(le.Uint16(raw[0x18:])) | uint32(le.Uint16(raw[0x7A:]))<<16
	in.Size = uint64(le.Uint32(raw[4:]))
	if in.IsReg() || fs.sb.FeatureIncompat&IncompatLargeDir != 0 {
		// As the kernel (ext4_isize): i_size_high was i_dir_acl in ext2.
		in.Size |= uint64(le.Uint32(raw[0x6C:])) << 32
	}
	in.Links = le.Uint16(raw[0x1A:])
	in.Dtime = le.Uint32(raw[0x14:])
	in.Flags = le.Uint32(raw[0x20:])
	if max := fs.MaxFileSize(in.HasExtents()); in.Size > max {
		mapping := "block-mapped"
		if in.HasExtents() {
			mapping = "extent-mapped"
		}
		huge := "without"
		if fs.sb.HasHugeFile() {
			huge = "with"
		}
		return nil, corrupt("read inode", ino, 0, "i_size %d is larger than %d, the most the kernel allows for %s inodes with %d-byte blocks %s huge_file (it refuses this inode too)",
			in.Size, max, mapping, fs.bs, huge)
	}
	copy(in.Block[:], raw[0x28:0x64])
	in.Generation = le.Uint32(raw[0x64:])
	in.FileACL = uint64(le.Uint32(raw[0x68:])) | uint64(le.Uint16(raw[0x76:]))<<32
	in.Blocks = uint64(le.Uint32(raw[0x1C:]))
	if fs.sb.HasHugeFile() {
		in.Blocks |= uint64(le.Uint16(raw[0x74:])) << 32
		if in.Flags&FlagHugeFile != 0 {
			in.Blocks *= fs.bs / 512
		}
	}
	var extra []byte
	if len(raw) > 128 {
		in.ExtraIsize = le.Uint16(raw[0x80:])
		if int(in.ExtraIsize) > len(raw)-128 || in.ExtraIsize&3 != 0 {
			return nil, corrupt("read inode", ino, 0, "i_extra_isize %d does not fit a %d-byte inode", in.ExtraIsize, len(raw))
		}
		extra = raw[128 : 128+int(in.ExtraIsize)]
	}
	// has reports whether the extra field ending at inode offset end exists.
	has := func(end int) bool { return len(extra) >= end-128 }
	get := func(off int) uint32 {
		if !has(off + 4) {
			return 0
		}
		return le.Uint32(raw[off:])
	}
	in.Ctime = decodeTime(le.Uint32(raw[0xC:]), get(0x84), has(0x88))
	in.Mtime = decodeTime(le.Uint32(raw[0x10:]), get(0x88), has(0x8C))
	in.Atime = decodeTime(le.Uint32(raw[0x8:]), get(0x8C), has(0x90))
	if has(0x94) {
		in.HasCrtime = true
		in.Crtime = decodeTime(get(0x90), get(0x94), has(0x98))
	}
	in.ProjID = get(0x9C)
	if in.IsCharDev() || in.IsBlockDev() {
		if old := le.Uint32(in.Block[0:]); old != 0 {
			in.Major, in.Minor = (old>>8)&0xff, old&0xff
		} else {
			n := le.Uint32(in.Block[4:])
			in.Major = (n >> 8) & 0xfff
			in.Minor = (n & 0xff) | ((n >> 12) & 0xfff00)
		}
	}
	return in, nil
}

// MaxFileSize is the largest i_size the kernel accepts for an inode of
// this filesystem (ext4_get_maxbytes: s_maxbytes for extent-mapped inodes,
// s_bitmap_maxbytes for the others). A larger i_size makes the kernel
// refuse the inode ("iget: bad i_size value", EFSCORRUPTED), so the reader
// refuses it too.
func (fs *FS) MaxFileSize(extents bool) uint64 {
	bits := uint(10 + fs.sb.Raw[0x18]) // s_log_block_size, checked <= 6 by Open
	return uint64(maxFileSize(bits, fs.sb.HasHugeFile(), extents))
}

// maxFileSize follows the kernel's ext4_max_size (extents) and
// ext4_max_bitmap_size (block maps) for block size 1<<bits. Both bound
// the logical block numbers the mapping can address; without huge_file
// also the 2^32 512-byte sectors i_blocks can count (for block maps
// including the indirect blocks a dense file needs).
func maxFileSize(bits uint, hugeFile, extents bool) int64 {
	const maxLFS = 1<<63 - 1
	if extents {
		upper := int64(maxLFS)
		if !hugeFile {
			upper = (1<<32 - 1) >> (bits - 9) << bits
		}
		// ee_block is 32 bits; one block less so ee_len can cover the last.
		return min(int64(1<<32-1)<<bits, upper)
	}
	ppb := int64(1) << (bits - 2) // block numbers per indirect block
	upper := int64(1<<48 - 1)
	if !hugeFile {
		upper = (1<<32 - 1) >> (bits - 9)
	}
	res := 12 + ppb + ppb*ppb + ppb*ppb*ppb
	meta := 1 + (1 + ppb) + (1 + ppb + ppb*ppb)
	if res+meta > upper {
		// i_blocks limits the file: as many data blocks as fit beside
		// the indirect blocks they need.
		res = upper
		upper -= 12 + ppb
		meta = 1
		if upper < ppb*ppb {
			meta += 1 + ceilDiv(upper, ppb)
		} else {
			meta += 1 + ppb
			upper -= ppb * ppb
			meta += 1 + ceilDiv(upper, ppb) + ceilDiv(upper, ppb*ppb)
		}
		res -= meta
	}
	return min(res<<bits, maxLFS)
}

func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }
