package ext4

import (
	"encoding/binary"
	"errors"
	"io"
)

// Directory entry file types (dirent file_type byte with the filetype feature).
const (
	DTUnknown = 0
	DTReg     = 1
	DTDir     = 2
	DTChar    = 3
	DTBlock   = 4
	DTFIFO    = 5
	DTSocket  = 6
	DTSymlink = 7
)

// DirEntry is one name in a directory. Name is raw bytes (no UTF-8 check).
type DirEntry struct {
	Name     []byte
	Ino      uint32
	FileType uint8 // DT* value, DTUnknown without the filetype feature
}

// maxDirSize bounds directory sizes: largedir allows 3-level htrees, but
// 4 GiB of dirents is already far beyond any real directory.
const maxDirSize = 4 << 30

// dirList is a directory's listing: its entries in on-disk order without
// the real "." and ".." entries, and the inode numbers those two name
// (0 when absent; an inline directory stores only its parent).
type dirList struct {
	ents        []DirEntry
	dot, dotdot uint32
}

// ReadDir lists directory ino in on-disk order, without its real "." and
// ".." entries (the first two entries of its first block). Names are the
// raw bytes on disk: a corrupt or hostile directory may hold names no path
// can use (empty, "." or ".." again, containing "/" or NUL) and the same
// name twice; Walk gives such entries usable names.
//
// Htree directories are read linearly: the dx root block parses as "." and a
// ".." spanning the block, and dx node blocks as one empty entry, so all
// index blocks are skipped naturally, as the kernel's linear readdir does.
func (fs *FS) ReadDir(ino uint32) ([]DirEntry, error) {
	in, err := fs.Inode(ino)
	if err != nil {
		return nil, err
	}
	l, err := fs.readDir(in)
	if err != nil {
		return nil, err
	}
	return l.ents, nil
}

func (fs *FS) readDir(in *Inode) (*dirList, error) {
	if !in.IsDir() {
		return nil, &Error{Op: "readdir", Ino: in.Ino, Err: errors.New("not a directory")}
	}
	if in.Flags&FlagEncrypt != 0 {
		return nil, &Error{Op: "readdir", Ino: in.Ino, Err: wrapf(ErrUnsupported, "encrypted directory")}
	}
	if in.Size > maxDirSize {
		return nil, corrupt("readdir", in.Ino, 0, "directory size %d is absurd", in.Size)
	}
	l := &dirList{}
	if in.HasInlineData() {
		data, err := fs.inlineData(in)
		if err != nil {
			return nil, err
		}
		if len(data) < 4 || in.Size > uint64(len(data)) {
			return nil, corrupt("readdir", in.Ino, 0, "inline directory of size %d has %d bytes of inline data", in.Size, len(data))
		}
		// First 4 bytes: parent inode; then entries in the rest of i_block
		// and, separately, in the system.data value. There are no "." and
		// ".." entries: any entry so named is not a real one.
		l.dotdot = binary.LittleEndian.Uint32(data)
		first := data[4:min(len(data), inlineBlockSize)]
		if err = fs.parseDirBlock(in.Ino, 0, first, false, l); err != nil {
			return nil, err
		}
		if len(data) > inlineBlockSize {
			if err = fs.parseDirBlock(in.Ino, 0, data[inlineBlockSize:], false, l); err != nil {
				return nil, err
			}
		}
		return l, nil
	}
	m, err := fs.mapInode(in)
	if err != nil {
		return nil, err
	}
	nblocks := (in.Size + fs.bs - 1) / fs.bs
	for _, e := range m.extents {
		if e.Uninit {
			continue
		}
		for i := uint64(0); i < e.Len && e.Logical+i < nblocks; i++ {
			blk := e.Physical + i
			b, err := fs.metaBlock(blk)
			if err != nil {
				return nil, &Error{Op: "readdir", Ino: in.Ino, Block: blk, Err: err}
			}
			if err = fs.parseDirBlock(in.Ino, blk, b, e.Logical+i == 0, l); err != nil {
				return nil, err
			}
		}
	}
	return l, nil
}

// recLen decodes a dirent rec_len (64 KiB blocks encode 65536 specially).
func (fs *FS) recLen(v uint16) int {
	if fs.bs < 65536 {
		return int(v)
	}
	if v == 65535 || v == 0 {
		return 65536
	}
	return int(v&65532) | int(v&3)<<16
}

// parseDirBlock appends the live entries of one directory block (or inline
// area) to l. In the directory's first block (first), an entry "." at
// offset 0 and an entry ".." right after it are the real dot entries:
// recorded in l.dot and l.dotdot, not listed.
func (fs *FS) parseDirBlock(ino uint32, blk uint64, b []byte, first bool, l *dirList) error {
	le := binary.LittleEndian
	filetype := fs.sb.HasFiletype()
	for p, k := 0, 0; p < len(b); k++ {
		if p+8 > len(b) {
			return corrupt("readdir", ino, blk, "entry at offset %d truncated", p)
		}
		child := le.Uint32(b[p:])
		rl := fs.recLen(le.Uint16(b[p+4:]))
		// name_len is one byte, as in the kernel and e2fsprogs; the next
		// byte is the file type with the filetype feature, else ignored
		// (old ext2 documents a 16-bit name_len, but no reader uses it:
		// names are at most 255 bytes).
		nameLen := int(b[p+6])
		ft := uint8(DTUnknown)
		if filetype {
			ft = b[p+7]
		}
		if rl < 8 || rl%4 != 0 || p+rl > len(b) || (child != 0 && 8+nameLen > rl) {
			return corrupt("readdir", ino, blk, "entry at offset %d: rec_len %d, name_len %d in a %d-byte block", p, rl, nameLen, len(b))
		}
		if child != 0 {
			name := b[p+8 : p+8+nameLen]
			if child > fs.sb.InodesCount {
				return corrupt("readdir", ino, blk, "entry %q points to inode %d beyond %d", name, child, fs.sb.InodesCount)
			}
			switch {
			case first && k == 0 && string(name) == ".":
				l.dot = child
			case first && k == 1 && l.dot != 0 && string(name) == "..":
				l.dotdot = child
			default:
				l.ents = append(l.ents, DirEntry{Name: append([]byte(nil), name...), Ino: child, FileType: ft})
			}
		}
		p += rl
	}
	return nil
}

var _ io.ReaderAt = (*File)(nil)
