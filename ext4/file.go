package ext4

import (
	"errors"
	"io"
	"sort"
)

// maxInlineSize bounds inline data: i_block plus a system.data value that
// must fit inside the inode.
const inlineBlockSize = 60

// isFastSymlink reports whether a symlink's target is stored in i_block.
// Like the kernel, a symlink is fast when it has no data blocks besides an
// external xattr block.
func (fs *FS) isFastSymlink(in *Inode) bool {
	if !in.IsSymlink() || in.HasInlineData() {
		return false
	}
	if in.HasExtents() {
		return false
	}
	blocks := in.Blocks
	if in.FileACL != 0 {
		blocks -= min(blocks, fs.bs/512)
	}
	return blocks == 0 && in.Size < inlineBlockSize
}

// InlineData returns the stored content of an inode with the inline_data
// flag: i_block (60 bytes) followed by the system.data xattr value, clipped
// to the inode size. If Size is larger (truncate-extended inline files),
// the rest of the file reads as zeros, as in the kernel.
func (fs *FS) InlineData(ino uint32) ([]byte, error) {
	in, err := fs.Inode(ino)
	if err != nil {
		return nil, err
	}
	return fs.inlineData(in)
}

func (fs *FS) inlineData(in *Inode) ([]byte, error) {
	if !in.HasInlineData() {
		return nil, &Error{Op: "inline data", Ino: in.Ino, Err: errors.New("inode has no inline data flag")}
	}
	data := append([]byte(nil), in.Block[:]...)
	if in.Size > inlineBlockSize {
		attrs, err := fs.inodeXattrs(in, true)
		if err != nil {
			return nil, err
		}
		for _, a := range attrs {
			if a.Name == "system.data" {
				data = append(data, a.Value...)
			}
		}
	}
	return data[:min(in.Size, uint64(len(data)))], nil
}

// Readlink returns a symlink's target: fast (i_block), slow (data block)
// or inline-data symlinks.
func (fs *FS) Readlink(ino uint32) ([]byte, error) {
	in, err := fs.Inode(ino)
	if err != nil {
		return nil, err
	}
	if !in.IsSymlink() {
		return nil, &Error{Op: "readlink", Ino: ino, Err: errors.New("not a symlink")}
	}
	if in.Size > uint64(fs.bs) || in.Size > 4096 {
		return nil, corrupt("readlink", ino, 0, "symlink size %d too large", in.Size)
	}
	if fs.isFastSymlink(in) {
		return append([]byte(nil), in.Block[:in.Size]...), nil
	}
	r, err := fs.openInode(in)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, in.Size)
	if _, err := r.ReadAt(buf, 0); err != nil && err != io.EOF {
		return nil, err
	}
	return buf, nil
}

// OpenFile returns a reader of the content of inode ino (regular file,
// directory or slow symlink): holes and uninitialized extents read as zeros,
// reads end at Size with io.EOF.
func (fs *FS) OpenFile(ino uint32) (*File, error) {
	in, err := fs.Inode(ino)
	if err != nil {
		return nil, err
	}
	return fs.openInode(in)
}

// File reads one inode's content. It implements io.ReaderAt.
type File struct {
	fs       *FS
	ino      uint32
	size     int64
	extents  []Extent
	inline   []byte // content of inline-data inodes
	isInline bool
}

func (fs *FS) openInode(in *Inode) (*File, error) {
	f := &File{fs: fs, ino: in.Ino, size: int64(in.Size)}
	if in.Size > 1<<62 {
		return nil, corrupt("open", in.Ino, 0, "absurd size %d", in.Size)
	}
	if in.HasInlineData() {
		d, err := fs.inlineData(in)
		if err != nil {
			return nil, err
		}
		f.inline, f.isInline = d, true
		return f, nil
	}
	if !fs.hasBlockMapping(in) {
		return nil, &Error{Op: "open", Ino: in.Ino, Err: errors.New("inode has no content (device, fifo, socket or fast symlink)")}
	}
	m, err := fs.mapInode(in)
	if err != nil {
		return nil, err
	}
	f.extents = m.extents
	return f, nil
}

// Size is the file size in bytes.
func (f *File) Size() int64 { return f.size }

// Extents are the file's data extents (nil for inline data).
func (f *File) Extents() []Extent { return f.extents }

// ReadAt implements io.ReaderAt.
func (f *File) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, &Error{Op: "read", Ino: f.ino, Err: errors.New("negative offset")}
	}
	if off >= f.size {
		return 0, io.EOF
	}
	want := len(p)
	if int64(want) > f.size-off {
		p = p[:f.size-off]
	}
	var err error
	if f.isInline {
		n := 0
		if off < int64(len(f.inline)) {
			n = copy(p, f.inline[off:])
		}
		clear(p[n:])
	} else {
		err = f.readBlocks(p, off)
	}
	if err != nil {
		return 0, err
	}
	if len(p) < want {
		return len(p), io.EOF
	}
	return len(p), nil
}

// readBlocks fills p from file offset off, zero-filling holes and uninit extents.
func (f *File) readBlocks(p []byte, off int64) error {
	bs := int64(f.fs.bs)
	// first extent that ends after off
	i := sort.Search(len(f.extents), func(i int) bool {
		e := f.extents[i]
		return int64(e.Logical+e.Len)*bs > off
	})
	for len(p) > 0 {
		if i >= len(f.extents) || int64(f.extents[i].Logical)*bs >= off+int64(len(p)) {
			clear(p)
			return nil
		}
		e := f.extents[i]
		start := int64(e.Logical) * bs
		if start > off { // hole before this extent
			n := start - off
			clear(p[:n])
			p, off = p[n:], start
		}
		end := int64(e.Logical+e.Len) * bs
		n := min(int64(len(p)), end-off)
		if e.Uninit {
			clear(p[:n])
		} else {
			phys := int64(e.Physical)*bs + (off - start)
			got, err := f.fs.r.ReadAt(p[:n], phys)
			if int64(got) != n {
				if err == nil || errors.Is(err, io.EOF) {
					err = corrupt("read", f.ino, e.Physical, "short read at device offset %d (image truncated?)", phys)
				}
				return &Error{Op: "read", Ino: f.ino, Block: e.Physical, Err: err}
			}
		}
		p, off = p[n:], off+n
		i++
	}
	return nil
}
