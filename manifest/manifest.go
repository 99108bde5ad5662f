// Package manifest defines what mis records about one disk image: its
// geometry and partition table, the files of every filesystem in it with all
// their metadata, where each file's content lies on the disk, and the
// "residual" bytes (everything that is not file content) as a run list.
//
// A Manifest is plain data. It is serialised with Encode (a versioned,
// compact binary form; the JSON of format version 1 is still read) and
// stored by the caller as a chunk stream in the repository, so manifests are
// deduplicated and verified like any other data. A Layer is the difference
// between two manifests (Diff, Apply): versions store layers against their
// parent. The package knows nothing about the repository beyond chunk IDs.
package manifest

import (
	"mis/chunker"
)

// FormatVersion is the version of the serialised manifest Encode writes:
// 2 is the binary form. Decode also reads jsonFormatVersion (1, JSON) and
// refuses any other version instead of guessing. A decoded manifest
// carries FormatVersion whatever it was read from: in memory there is one
// model.
const (
	FormatVersion     = 2
	jsonFormatVersion = 1
)

// Ref is one chunk of a content stream: the chunk's ID and its raw length.
type Ref struct {
	ID   chunker.ID `json:"id"`
	Size uint32     `json:"n"`
}

// Manifest describes one disk image completely enough to rebuild it byte for
// byte (when Exact) and to serve its files.
type Manifest struct {
	FormatVersion int   `json:"format_version"`
	DiskSize      int64 `json:"disk_size"`
	// Exact is true when the residual holds every byte that is not file
	// content, so Export reproduces the imported image exactly. It is false
	// after --discard-free, which drops the content of free blocks.
	Exact  bool   `json:"exact"`
	Layout Layout `json:"layout"`

	// Residual lists the disk in order as runs of either zeros (stored as
	// nothing) or bytes taken from ResidualData, except where file content
	// lies (see File.Extents). Runs and file extents together tile the disk.
	Residual     []Run `json:"residual"`
	ResidualData []Ref `json:"residual_data"`

	Filesystems []Filesystem `json:"filesystems"`
}

// Run is a stretch of residual disk bytes. Zero runs carry no data; other
// runs take their bytes, in order, from the residual data stream.
type Run struct {
	Off  int64 `json:"off"`
	Len  int64 `json:"len"`
	Zero bool  `json:"zero,omitempty"`
}

// Layout records the partition table. The table's bytes themselves are in
// the residual; this is the parsed form for humans, mounts and fresh exports.
type Layout struct {
	Kind       string      `json:"kind"` // "gpt", "mbr" or "none"
	SectorSize int         `json:"sector_size"`
	DiskGUID   string      `json:"disk_guid,omitempty"`
	Signature  uint32      `json:"mbr_signature,omitempty"`
	Partitions []Partition `json:"partitions"`
	// Detail is the partition reader's full record of the table (every
	// field), kept verbatim for info and fresh export.
	Detail []byte `json:"detail,omitempty"`
}

// Partition is one entry of the partition table (or the whole disk for a
// bare filesystem, Index 0).
type Partition struct {
	Index      int    `json:"index"`
	Start      int64  `json:"start"`
	Size       int64  `json:"size"`
	Type       string `json:"type,omitempty"`
	GUID       string `json:"guid,omitempty"`
	Name       string `json:"name,omitempty"`
	Attributes uint64 `json:"attributes,omitempty"`
	Bootable   bool   `json:"bootable,omitempty"`
	Logical    bool   `json:"logical,omitempty"`
	Filesystem string `json:"filesystem,omitempty"` // what the probe found
}

// Filesystem is one filesystem mis walked, inside partition PartIndex.
type Filesystem struct {
	PartIndex int    `json:"part"`
	Type      string `json:"type"` // "ext2", "ext3", "ext4"
	Offset    int64  `json:"offset"`
	Size      int64  `json:"size"`
	UUID      string `json:"uuid,omitempty"`
	Label     []byte `json:"label,omitempty"`
	BlockSize uint32 `json:"block_size"`
	InodeSize uint16 `json:"inode_size,omitempty"`
	// Features are the compat, incompat and ro_compat words.
	Features [3]uint32 `json:"features"`
	// Super is the raw 1024-byte superblock, so a fresh export can rebuild
	// the filesystem's identity (hash seed, feature flags, limits).
	Super []byte  `json:"super,omitempty"`
	Files []Entry `json:"files"`
}

// Entry is one inode with every path that names it. Times are nanoseconds
// since the epoch, signed (before 1970 is negative).
type Entry struct {
	Ino        uint32   `json:"ino"`
	Paths      [][]byte `json:"paths"` // raw bytes, "/"-separated, relative to the filesystem root ("" is the root)
	Mode       uint32   `json:"mode"`  // type bits and permissions incl. setuid/setgid/sticky (S_IF* | 07777)
	UID        uint32   `json:"uid"`
	GID        uint32   `json:"gid"`
	Nlink      uint32   `json:"nlink"`
	Size       uint64   `json:"size"`
	Atime      int64    `json:"atime"`
	Mtime      int64    `json:"mtime"`
	Ctime      int64    `json:"ctime"`
	Crtime     int64    `json:"crtime,omitempty"`
	Flags      uint32   `json:"flags,omitempty"`
	Generation uint32   `json:"gen,omitempty"`
	RdevMajor  uint32   `json:"rdev_major,omitempty"`
	RdevMinor  uint32   `json:"rdev_minor,omitempty"`
	Symlink    []byte   `json:"symlink,omitempty"`
	Xattrs     []Xattr  `json:"xattrs,omitempty"`

	// Content is the file's data bytes (holes excluded) as chunks; Extents
	// says where those bytes belong in the file and on the disk. Regular
	// files only; inline-data files have Content and no Extents.
	Content []Ref    `json:"content,omitempty"`
	Extents []Extent `json:"extents,omitempty"`
}

// Xattr is one extended attribute in the form the kernel's getxattr returns
// (POSIX ACLs in the VFS xattr format).
type Xattr struct {
	Name  string `json:"name"`
	Value []byte `json:"value"`
}

// Extent places DataLen bytes of the file's content stream: file offset
// FileOff holds them, and on the disk they lie at DiskOff (absolute disk
// offset). Bytes of the file not covered by an extent are holes.
type Extent struct {
	FileOff int64 `json:"file_off"`
	DiskOff int64 `json:"disk_off"`
	Len     int64 `json:"len"`
}

// File type bits of Mode, as in stat(2).
const (
	ModeType    = 0o170000
	ModeDir     = 0o040000
	ModeRegular = 0o100000
	ModeSymlink = 0o120000
	ModeChar    = 0o020000
	ModeBlock   = 0o060000
	ModeFIFO    = 0o010000
	ModeSocket  = 0o140000
)

// IsDir, IsRegular and IsSymlink test the entry's file type.
func (e *Entry) IsDir() bool     { return e.Mode&ModeType == ModeDir }
func (e *Entry) IsRegular() bool { return e.Mode&ModeType == ModeRegular }
func (e *Entry) IsSymlink() bool { return e.Mode&ModeType == ModeSymlink }

// FlagInlineData is the ext4 inode flag (EXT4_INLINE_DATA_FL) of a file
// whose content lives in the inode: its Content has no Extents.
const FlagInlineData = 0x10000000

// HasInlineData reports whether the file's content lives in its inode.
func (e *Entry) HasInlineData() bool { return e.Flags&FlagInlineData != 0 }

// StreamSize is the total raw length of a chunk list.
func StreamSize(refs []Ref) int64 {
	var n int64
	for _, r := range refs {
		n += int64(r.Size)
	}
	return n
}

// ForEachRef calls fn for every chunk the manifest references: residual data
// and file content. It is how verify and gc learn what a version uses.
func (m *Manifest) ForEachRef(fn func(Ref) error) error {
	for _, r := range m.ResidualData {
		if err := fn(r); err != nil {
			return err
		}
	}
	for i := range m.Filesystems {
		for j := range m.Filesystems[i].Files {
			for _, r := range m.Filesystems[i].Files[j].Content {
				if err := fn(r); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// FileCount is the number of inodes recorded across all filesystems.
// ResidualBytes splits the residual into bytes stored as data and zero
// runs, which cost nothing.
func (m *Manifest) ResidualBytes() (data, zero int64) {
	for _, run := range m.Residual {
		if run.Zero {
			zero += run.Len
		} else {
			data += run.Len
		}
	}
	return data, zero
}

// ContentBytes is the size of every file's content in fs.
func (fs *Filesystem) ContentBytes() int64 {
	var n int64
	for i := range fs.Files {
		n += StreamSize(fs.Files[i].Content)
	}
	return n
}

func (m *Manifest) FileCount() int {
	n := 0
	for i := range m.Filesystems {
		n += len(m.Filesystems[i].Files)
	}
	return n
}
