package disk

import (
	"bytes"
	"encoding/binary"
	"io"
)

// Filesystem names reported by Probe, as blkid spells them.
const (
	FSExt      = "ext4" // ext2, ext3 and ext4 alike
	FSVFAT     = "vfat"
	FSISO9660  = "iso9660"
	FSSquashfs = "squashfs"
	FSSwap     = "swap"
	FSXFS      = "xfs"
	FSBtrfs    = "btrfs"
	FSLVM      = "LVM2_member"
	FSLUKS     = "crypto_LUKS"
)

// Probe identifies the filesystem in the region [off, off+size) of r by its
// magic numbers, or returns "" when none is recognised. Read errors count as
// "no match".
func Probe(r io.ReaderAt, off, size int64) string {
	at := func(pos int64, n int) []byte {
		if pos < 0 || size < int64(n) || pos > size-int64(n) {
			return nil
		}
		b := make([]byte, n)
		if got, _ := r.ReadAt(b, off+pos); got != n {
			return nil
		}
		return b
	}
	is := func(pos int64, magic string) bool {
		b := at(pos, len(magic))
		return b != nil && string(b) == magic
	}
	switch {
	case is(0, "LUKS\xba\xbe"):
		return FSLUKS
	case is(0, "XFSB"):
		return FSXFS
	case is(0, "hsqs"):
		return FSSquashfs
	case is(0x10040, "_BHRfS_M"):
		return FSBtrfs
	case is(1024+56, "\x53\xef"):
		return FSExt
	case is(32769, "CD001"):
		return FSISO9660
	case isFAT(at(0, 512)):
		return FSVFAT
	}
	for _, page := range []int64{4096, 8192, 16384, 65536} {
		if is(page-10, "SWAPSPACE2") || is(page-10, "SWAP-SPACE") {
			return FSSwap
		}
	}
	for s := int64(0); s < 4; s++ {
		if is(s*512, "LABELONE") && is(s*512+24, "LVM2 001") {
			return FSLVM
		}
	}
	return ""
}

// isFAT checks a FAT boot sector: 55 aa, a jump instruction, a sane BPB and
// the FAT type string (which mkfs.vfat always writes).
func isFAT(b []byte) bool {
	if b == nil || b[510] != 0x55 || b[511] != 0xaa || (b[0] != 0xeb && b[0] != 0xe9) {
		return false
	}
	bps := binary.LittleEndian.Uint16(b[11:])
	spc := b[13]
	if bps < 512 || bps > 4096 || bps&(bps-1) != 0 || spc == 0 || spc&(spc-1) != 0 || b[16] == 0 {
		return false
	}
	return bytes.HasPrefix(b[54:], []byte("FAT1")) || bytes.HasPrefix(b[82:], []byte("FAT32"))
}
