package ext4

import (
	"encoding/binary"
	"hash/crc32"
)

const (
	superblockOffset = 1024
	superblockSize   = 1024
	superMagic       = 0xEF53
)

// Feature flags (the subset this reader looks at).
const (
	CompatHasJournal   = 0x4
	CompatExtAttr      = 0x8
	CompatResizeInode  = 0x10
	CompatDirIndex     = 0x20
	CompatSparseSuper2 = 0x200

	IncompatCompression = 0x1
	IncompatFiletype    = 0x2
	IncompatRecover     = 0x4
	IncompatJournalDev  = 0x8
	IncompatMetaBG      = 0x10
	IncompatExtents     = 0x40
	Incompat64Bit       = 0x80
	IncompatMMP         = 0x100
	IncompatFlexBG      = 0x200
	IncompatEAInode     = 0x400
	IncompatDirData     = 0x1000
	IncompatCsumSeed    = 0x2000
	IncompatLargeDir    = 0x4000
	IncompatInlineData  = 0x8000
	IncompatEncrypt     = 0x10000
	IncompatCasefold    = 0x20000

	RoCompatSparseSuper  = 0x1
	RoCompatLargeFile    = 0x2
	RoCompatHugeFile     = 0x8
	RoCompatGdtCsum      = 0x10
	RoCompatExtraIsize   = 0x40
	RoCompatBigalloc     = 0x200
	RoCompatMetadataCsum = 0x400
)

// Superblock is the decoded primary superblock. Raw keeps all 1024 bytes
// so callers can record fields this type does not decode.
type Superblock struct {
	InodesCount       uint32
	BlocksCount       uint64
	FreeBlocksCount   uint64
	FreeInodesCount   uint32
	FirstDataBlock    uint32
	BlockSize         uint32
	BlocksPerGroup    uint32
	InodesPerGroup    uint32
	State             uint16
	RevLevel          uint32
	FirstIno          uint32
	InodeSize         uint16
	FeatureCompat     uint32
	FeatureIncompat   uint32
	FeatureRoCompat   uint32
	UUID              [16]byte
	VolumeName        []byte // up to 16 bytes, NUL padding removed
	ReservedGdtBlocks uint16
	HashSeed          [4]uint32
	DefHashVersion    uint8
	DescSize          uint16 // group descriptor size in use (32 or s_desc_size)
	FirstMetaBG       uint32
	MinExtraIsize     uint16
	LogGroupsPerFlex  uint8
	BackupBGs         [2]uint32 // sparse_super2 backup groups
	ChecksumSeed      uint32    // crc32c seed for metadata checksums
	Raw               [1024]byte
}

func (s *Superblock) Has64Bit() bool        { return s.FeatureIncompat&Incompat64Bit != 0 }
func (s *Superblock) HasMetadataCsum() bool { return s.FeatureRoCompat&RoCompatMetadataCsum != 0 }
func (s *Superblock) HasExtents() bool      { return s.FeatureIncompat&IncompatExtents != 0 }
func (s *Superblock) HasFiletype() bool     { return s.FeatureIncompat&IncompatFiletype != 0 }
func (s *Superblock) HasMetaBG() bool       { return s.FeatureIncompat&IncompatMetaBG != 0 }
func (s *Superblock) HasFlexBG() bool       { return s.FeatureIncompat&IncompatFlexBG != 0 }
func (s *Superblock) HasInlineData() bool   { return s.FeatureIncompat&IncompatInlineData != 0 }
func (s *Superblock) HasJournal() bool      { return s.FeatureCompat&CompatHasJournal != 0 }
func (s *Superblock) HasSparseSuper() bool  { return s.FeatureRoCompat&RoCompatSparseSuper != 0 }
func (s *Superblock) HasSparseSuper2() bool { return s.FeatureCompat&CompatSparseSuper2 != 0 }
func (s *Superblock) HasHugeFile() bool     { return s.FeatureRoCompat&RoCompatHugeFile != 0 }
func (s *Superblock) HasBigalloc() bool     { return s.FeatureRoCompat&RoCompatBigalloc != 0 }
func (s *Superblock) NeedsRecovery() bool   { return s.FeatureIncompat&IncompatRecover != 0 }

// GroupCount is the number of block groups.
func (s *Superblock) GroupCount() uint32 {
	return uint32((s.BlocksCount - uint64(s.FirstDataBlock) + uint64(s.BlocksPerGroup) - 1) / uint64(s.BlocksPerGroup))
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// crc32cRaw is the kernel's crc32c_le(seed, p): no pre/post inversion.
func crc32cRaw(seed uint32, p []byte) uint32 {
	return ^crc32.Update(^seed, castagnoli, p)
}

// parseSuperblock decodes and sanity-checks raw superblock bytes against the
// device size so later arithmetic cannot overflow or allocate absurdly.
func parseSuperblock(raw []byte, devSize int64) (*Superblock, error) {
	le := binary.LittleEndian
	s := &Superblock{}
	copy(s.Raw[:], raw)
	bad := func(format string, args ...any) error { return corrupt("superblock", 0, 0, format, args...) }
	if m := le.Uint16(raw[0x38:]); m != superMagic {
		return nil, &Error{Op: "superblock", Err: wrapf(ErrNotExt, "bad magic 0x%04x at byte offset 1080 (want 0xef53)", m)}
	}
	s.InodesCount = le.Uint32(raw[0x0:])
	s.BlocksCount = uint64(le.Uint32(raw[0x4:]))
	s.FreeBlocksCount = uint64(le.Uint32(raw[0xC:]))
	s.FreeInodesCount = le.Uint32(raw[0x10:])
	s.FirstDataBlock = le.Uint32(raw[0x14:])
	logBS := le.Uint32(raw[0x18:])
	s.BlocksPerGroup = le.Uint32(raw[0x20:])
	s.InodesPerGroup = le.Uint32(raw[0x28:])
	s.State = le.Uint16(raw[0x3A:])
	s.RevLevel = le.Uint32(raw[0x4C:])
	s.FirstIno = 11
	s.InodeSize = 128
	if s.RevLevel >= 1 {
		s.FirstIno = le.Uint32(raw[0x54:])
		s.InodeSize = le.Uint16(raw[0x58:])
		s.FeatureCompat = le.Uint32(raw[0x5C:])
		s.FeatureIncompat = le.Uint32(raw[0x60:])
		s.FeatureRoCompat = le.Uint32(raw[0x64:])
	}
	copy(s.UUID[:], raw[0x68:0x78])
	name := raw[0x78:0x88]
	for len(name) > 0 && name[len(name)-1] == 0 {
		name = name[:len(name)-1]
	}
	s.VolumeName = append([]byte(nil), name...)
	s.ReservedGdtBlocks = le.Uint16(raw[0xCE:])
	for i := range s.HashSeed {
		s.HashSeed[i] = le.Uint32(raw[0xEC+4*i:])
	}
	s.DefHashVersion = raw[0xFC]
	s.FirstMetaBG = le.Uint32(raw[0x104:])
	s.MinExtraIsize = le.Uint16(raw[0x15C:])
	s.LogGroupsPerFlex = raw[0x174]
	s.BackupBGs = [2]uint32{le.Uint32(raw[0x24C:]), le.Uint32(raw[0x250:])}
	s.DescSize = 32
	if s.Has64Bit() {
		s.BlocksCount |= uint64(le.Uint32(raw[0x150:])) << 32
		s.FreeBlocksCount |= uint64(le.Uint32(raw[0x158:])) << 32
		s.DescSize = le.Uint16(raw[0xFE:])
		if s.DescSize < 64 || s.DescSize > 1024 || s.DescSize&(s.DescSize-1) != 0 {
			return nil, bad("64bit group descriptor size %d is not a power of two in [64,1024]", s.DescSize)
		}
	}

	if logBS > 6 { // 1 KiB << 6 = 64 KiB is the largest block size
		return nil, bad("block size 1024<<%d is too large", logBS)
	}
	s.BlockSize = 1024 << logBS
	if s.HasMetadataCsum() {
		if raw[0x175] != 1 {
			return nil, bad("unknown checksum type %d", raw[0x175])
		}
		want := le.Uint32(raw[0x3FC:])
		if got := crc32cRaw(^uint32(0), raw[:0x3FC]); got != want {
			return nil, bad("superblock checksum 0x%08x does not match computed 0x%08x", want, got)
		}
		if s.FeatureIncompat&IncompatCsumSeed != 0 {
			s.ChecksumSeed = le.Uint32(raw[0x270:])
		} else {
			s.ChecksumSeed = crc32cRaw(^uint32(0), s.UUID[:])
		}
	}
	switch {
	case s.InodeSize < 128 || uint32(s.InodeSize) > s.BlockSize || s.InodeSize&(s.InodeSize-1) != 0:
		return nil, bad("inode size %d is not a power of two in [128, block size]", s.InodeSize)
	case s.BlocksPerGroup == 0 || s.BlocksPerGroup > 8*s.BlockSize:
		return nil, bad("blocks per group %d out of range (1..%d)", s.BlocksPerGroup, 8*s.BlockSize)
	case s.InodesPerGroup == 0 || s.InodesPerGroup > 8*s.BlockSize:
		return nil, bad("inodes per group %d out of range (1..%d)", s.InodesPerGroup, 8*s.BlockSize)
	case s.BlocksCount <= uint64(s.FirstDataBlock):
		return nil, bad("block count %d not above first data block %d", s.BlocksCount, s.FirstDataBlock)
	case (s.BlocksCount-uint64(s.FirstDataBlock)+uint64(s.BlocksPerGroup)-1)/uint64(s.BlocksPerGroup) > 1<<32-1:
		// as the kernel: group numbers are 32-bit (GroupCount would wrap)
		return nil, bad("%d blocks in groups of %d make more than 2^32 groups", s.BlocksCount, s.BlocksPerGroup)
	case s.FirstDataBlock != 0 && !(s.BlockSize == 1024 && s.FirstDataBlock == 1):
		return nil, bad("first data block %d impossible for block size %d", s.FirstDataBlock, s.BlockSize)
	case s.BlocksCount > uint64(devSize)/uint64(s.BlockSize):
		return nil, bad("block count %d × %d bytes exceeds the %d-byte device (truncated image?)", s.BlocksCount, s.BlockSize, devSize)
	case uint64(s.InodesCount) > uint64(s.GroupCount())*uint64(s.InodesPerGroup):
		return nil, bad("inode count %d exceeds %d groups × %d inodes", s.InodesCount, s.GroupCount(), s.InodesPerGroup)
	case s.InodesCount < 11:
		return nil, bad("inode count %d too small", s.InodesCount)
	case s.FirstIno < 11 || s.FirstIno > s.InodesCount:
		return nil, bad("first non-reserved inode %d out of range", s.FirstIno)
	}
	return s, nil
}
