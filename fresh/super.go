package fresh

import (
	"encoding/binary"
	"fmt"
)

// super reads fields of a raw ext superblock (the 1024 bytes the manifest
// keeps), by their on-disk offsets.
type super []byte

func (s super) u8(off int) uint32  { return uint32(s[off]) }
func (s super) u16(off int) uint32 { return uint32(binary.LittleEndian.Uint16(s[off:])) }
func (s super) u32(off int) uint32 { return binary.LittleEndian.Uint32(s[off:]) }

func (s super) blocksCount() uint64 {
	n := uint64(s.u32(0x04))
	if s.u32(0x60)&0x80 != 0 { // 64bit
		n |= uint64(s.u32(0x150)) << 32
	}
	return n
}

func (s super) reservedBlocks() uint64 {
	n := uint64(s.u32(0x08))
	if s.u32(0x60)&0x80 != 0 {
		n |= uint64(s.u32(0x154)) << 32
	}
	return n
}

func (s super) firstDataBlock() uint32 { return s.u32(0x14) }
func (s super) blockSize() int64       { return 1024 << s.u32(0x18) }
func (s super) clusterSize() int64     { return 1024 << s.u32(0x1C) }
func (s super) blocksPerGroup() uint32 { return s.u32(0x20) }
func (s super) inodesPerGroup() uint32 { return s.u32(0x28) }
func (s super) revLevel() uint32       { return s.u32(0x4C) }
func (s super) inodeSize() uint32 {
	if s.revLevel() == 0 {
		return 128
	}
	return s.u16(0x58)
}
func (s super) features() [3]uint32 { return [3]uint32{s.u32(0x5C), s.u32(0x60), s.u32(0x64)} }
func (s super) hashSeed() string    { return uuidString(s[0xEC:0xFC]) }
func (s super) logGroupsPerFlex() uint32 {
	return s.u8(0x174)
}
func (s super) mkfsTime() uint32 { return s.u32(0x108) }

// journalBytes is the journal inode's size as backed up in s_jnl_blocks,
// or 0 when there is no backup.
func (s super) journalBytes() uint64 {
	if s.u8(0xFD) != 1 { // EXT3_JNL_BACKUP_BLOCKS
		return 0
	}
	return uint64(s.u32(0x10C+15*4))<<32 | uint64(s.u32(0x10C+16*4))
}

func (s super) mountOpts() []byte {
	b := s[0x200:0x240]
	for i, c := range b {
		if c == 0 {
			return b[:i]
		}
	}
	return b
}

func uuidString(b []byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
