package mountfs

import (
	"github.com/hanwen/go-fuse/v2/fuse"

	"mis/manifest"
)

// fillAttr sets a from entry idx of t: every attribute the manifest keeps.
func (t *fsTree) fillAttr(idx int32, a *fuse.Attr) {
	e := t.entry(idx)
	a.Ino = t.ino(idx)
	a.Mode = e.Mode
	a.Size = e.Size
	a.Nlink = e.Nlink
	a.Owner = fuse.Owner{Uid: e.UID, Gid: e.GID}
	if m := e.Mode & manifest.ModeType; m == manifest.ModeChar || m == manifest.ModeBlock {
		a.Rdev = encodeDev(e.RdevMajor, e.RdevMinor)
	}
	a.Atime, a.Atimensec = splitNanos(e.Atime)
	a.Mtime, a.Mtimensec = splitNanos(e.Mtime)
	a.Ctime, a.Ctimensec = splitNanos(e.Ctime)
	a.Blksize = t.fs.BlockSize
	a.Blocks = allocatedSectors(e, int64(t.fs.BlockSize))
}

// splitNanos splits nanoseconds since the epoch into seconds (as the
// kernel's signed 64-bit value) and a non-negative nanosecond part, so
// times before 1970 come out right.
func splitNanos(ns int64) (uint64, uint32) {
	sec, nsec := ns/1e9, ns%1e9
	if nsec < 0 {
		sec--
		nsec += 1e9
	}
	return uint64(sec), uint32(nsec)
}

// encodeDev packs a device number the way the kernel's new_decode_dev
// unpacks FUSE's 32-bit rdev: minor low byte, major, then minor's high bits.
func encodeDev(major, minor uint32) uint32 {
	return minor&0xff | (major&0xfff)<<8 | (minor&^0xff)<<12
}

// allocatedSectors estimates st_blocks: whole filesystem blocks under the
// file's extents (holes take none), in 512-byte units; directories count
// their size. Metadata blocks (extent tree, xattr block) are not known.
func allocatedSectors(e *manifest.Entry, blockSize int64) uint64 {
	if blockSize <= 0 {
		blockSize = 4096
	}
	var n int64
	if e.IsDir() {
		n = int64(e.Size)
	}
	for _, x := range e.Extents {
		n += (x.Len + blockSize - 1) / blockSize * blockSize
	}
	return uint64(n / 512)
}
