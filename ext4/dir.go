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

// ReadDir lists directory ino without "." and "..", in on-disk order.
// Htree directories are read linearly: the dx root block parses as "." and a
// ".." spanning the block, and dx node blocks as one empty entry, so all
// index blocks are skipped naturally, as the kernel's linear readdir does.
func (fs *FS) ReadDir(ino uint32) ([]DirEntry, error) {
	in, err := fs.Inode(ino)
	if err != nil {
		return nil, err
	}
	return fs.readDir(in)
}

func (fs *FS) readDir(in *Inode) ([]DirEntry, error) {
	if !in.IsDir() {
		return nil, &Error{Op: "readdir", Ino: in.Ino, Err: errors.New("not a directory")}
	}
	if in.Flags&FlagEncrypt != 0 {
		return nil, &Error{Op: "readdir", Ino: in.Ino, Err: wrapf(ErrUnsupported, "encrypted directory")}
	}
	if in.Size > maxDirSize {
		return nil, corrupt("readdir", in.Ino, 0, "directory size %d is absurd", in.Size)
	}
	var out []DirEntry
	if in.HasInlineData() {
		data, err := fs.inlineData(in)
		if err != nil {
			return nil, err
		}
		if len(data) < 4 || in.Size > uint64(len(data)) {
			return nil, corrupt("readdir", in.Ino, 0, "inline directory of size %d has %d bytes of inline data", in.Size, len(data))
		}
		// First 4 bytes: parent inode; then entries in the rest of i_block
		// and, separately, in the system.data value.
		first := data[4:min(len(data), inlineBlockSize)]
		if out, err = fs.parseDirBlock(in.Ino, 0, first, out); err != nil {
			return nil, err
		}
		if len(data) > inlineBlockSize {
			if out, err = fs.parseDirBlock(in.Ino, 0, data[inlineBlockSize:], out); err != nil {
				return nil, err
			}
		}
		return out, nil
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
			if out, err = fs.parseDirBlock(in.Ino, blk, b, out); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
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

// parseDirBlock appends the live entries of one directory block (or inline area).
func (fs *FS) parseDirBlock(ino uint32, blk uint64, b []byte, out []DirEntry) ([]DirEntry, error) {
	le := binary.LittleEndian
	filetype := fs.sb.HasFiletype()
	for p := 0; p < len(b); {
		if p+8 > len(b) {
			return nil, corrupt("readdir", ino, blk, "entry at offset %d truncated", p)
		}
		child := le.Uint32(b[p:])
		rl := fs.recLen(le.Uint16(b[p+4:]))
		nameLen := int(b[p+6])
		ft := uint8(DTUnknown)
		if filetype {
			ft = b[p+7]
		} else {
			nameLen |= int(b[p+7]) << 8
		}
		if rl < 8 || rl%4 != 0 || p+rl > len(b) || (child != 0 && 8+nameLen > rl) {
			return nil, corrupt("readdir", ino, blk, "entry at offset %d: rec_len %d, name_len %d in a %d-byte block", p, rl, nameLen, len(b))
		}
		if child != 0 {
			name := b[p+8 : p+8+nameLen]
			if child > fs.sb.InodesCount {
				return nil, corrupt("readdir", ino, blk, "entry %q points to inode %d beyond %d", name, child, fs.sb.InodesCount)
			}
			if !(nameLen == 1 && name[0] == '.') && !(nameLen == 2 && name[0] == '.' && name[1] == '.') {
				out = append(out, DirEntry{Name: append([]byte(nil), name...), Ino: child, FileType: ft})
			}
		}
		p += rl
	}
	return out, nil
}

var _ io.ReaderAt = (*File)(nil)
