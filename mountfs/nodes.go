package mountfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"mis/manifest"
)

// Inode numbers of the synthetic nodes; filesystem inodes start above them.
const (
	rootIno      = 1
	diskIno      = 2
	firstFSBase  = 16
	diskFileName = "disk.raw"
)

// rootNode is the mount's top directory: disk.raw and one pN per filesystem.
type rootNode struct {
	fs.Inode
	f *FS
}

var (
	_ fs.NodeOnAdder     = (*rootNode)(nil)
	_ fs.NodeGetattrer   = (*rootNode)(nil)
	_ fs.NodeStatfser    = (*rootNode)(nil)
	_ fs.NodeOpener      = (*diskNode)(nil)
	_ fs.NodeReader      = (*diskNode)(nil)
	_ fs.NodeLookuper    = (*entryNode)(nil)
	_ fs.NodeReaddirer   = (*entryNode)(nil)
	_ fs.NodeReader      = (*entryNode)(nil)
	_ fs.NodeReadlinker  = (*entryNode)(nil)
	_ fs.NodeGetxattrer  = (*entryNode)(nil)
	_ fs.NodeListxattrer = (*entryNode)(nil)
)

func (r *rootNode) OnAdd(ctx context.Context) {
	if !r.f.opts.NoDisk {
		disk := r.NewPersistentInode(ctx, &diskNode{f: r.f}, fs.StableAttr{Mode: syscall.S_IFREG, Ino: diskIno})
		r.AddChild(diskFileName, disk, false)
	}
	for _, t := range r.f.trees {
		n := &entryNode{f: r.f, t: t, idx: t.root}
		dir := r.NewPersistentInode(ctx, n, fs.StableAttr{Mode: syscall.S_IFDIR, Ino: t.ino(t.root)})
		r.AddChild(partDirName(t.fs.PartIndex), dir, false)
	}
}

func partDirName(part int) string { return fmt.Sprintf("p%d", part) }

func (r *rootNode) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	r.f.syntheticAttr(&out.Attr, syscall.S_IFDIR|0o555, 0)
	out.Ino = rootIno
	out.Nlink = uint32(2 + len(r.f.trees))
	return 0
}

func (r *rootNode) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	r.f.statfs(out)
	return 0
}

// diskNode is disk.raw, the whole image. Only its owner may read it: it
// holds every file of the image whatever their permissions.
type diskNode struct {
	fs.Inode
	f *FS
}

func (d *diskNode) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	d.f.syntheticAttr(&out.Attr, syscall.S_IFREG|0o400, d.f.disk.size)
	out.Ino = diskIno
	return 0
}

func (d *diskNode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if flags&syscall.O_ACCMODE != syscall.O_RDONLY {
		return nil, 0, syscall.EROFS
	}
	return &openFile{ra: newReadahead(d.f.disk, d.f.opts.Readahead)}, fuse.FOPEN_KEEP_CACHE, 0
}

func (d *diskNode) Read(ctx context.Context, fh fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	return readView(d.f.disk, fh, dest, off)
}

func (d *diskNode) Lseek(ctx context.Context, fh fs.FileHandle, off uint64, whence uint32) (uint64, syscall.Errno) {
	return seekView(d.f.disk, off, whence)
}

func (d *diskNode) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	d.f.statfs(out)
	return 0
}

// openFile is an open regular file: it remembers where reads went so
// sequential readers get readahead.
type openFile struct {
	ra *readahead
}

// seekView answers SEEK_DATA and SEEK_HOLE from the view's pieces, so
// sparse-aware tools (cp --sparse, tar -S) skip holes and zero runs.
func seekView(v *View, off uint64, whence uint32) (uint64, syscall.Errno) {
	if off >= uint64(v.size) {
		return 0, syscall.ENXIO
	}
	switch whence {
	case unix.SEEK_DATA:
		d, ok := v.NextData(int64(off))
		if !ok {
			return 0, syscall.ENXIO
		}
		return uint64(d), 0
	case unix.SEEK_HOLE:
		return uint64(v.NextHole(int64(off))), 0
	}
	return 0, syscall.EINVAL
}

func readView(v *View, fh fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if h, ok := fh.(*openFile); ok {
		h.ra.observe(off, int64(len(dest)))
	}
	n, err := v.ReadAt(dest, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, syscall.EIO // chunkStore logged which chunk
	}
	return fuse.ReadResultData(dest[:n]), 0
}

// entryNode is one inode of a filesystem of the image.
type entryNode struct {
	fs.Inode
	f   *FS
	t   *fsTree
	idx int32

	viewOnce sync.Once
	view     *View
}

func (n *entryNode) entry() *manifest.Entry { return n.t.entry(n.idx) }

func (n *entryNode) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.t.fillAttr(n.idx, &out.Attr)
	return 0
}

func (n *entryNode) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	n.f.statfs(out)
	return 0
}

func (n *entryNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if !n.entry().IsDir() {
		return nil, syscall.ENOTDIR
	}
	idx, ok := n.t.child(n.idx, name)
	if !ok {
		return nil, syscall.ENOENT
	}
	n.t.fillAttr(idx, &out.Attr)
	child := &entryNode{f: n.f, t: n.t, idx: idx}
	mode := n.t.entry(idx).Mode & manifest.ModeType
	// A hardlink looked up by another path gets the inode already known
	// for its number: go-fuse matches StableAttr.
	return n.NewInode(ctx, child, fs.StableAttr{Mode: mode, Ino: n.t.ino(idx)}), 0
}

func (n *entryNode) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	if !n.entry().IsDir() {
		return nil, syscall.ENOTDIR
	}
	list := n.t.children[n.idx]
	out := make([]fuse.DirEntry, 0, len(list)+2)
	parentIno := uint64(rootIno)
	if _, p := n.Parent(); p != nil {
		parentIno = p.StableAttr().Ino
	}
	out = append(out,
		fuse.DirEntry{Name: ".", Ino: n.t.ino(n.idx), Mode: syscall.S_IFDIR},
		fuse.DirEntry{Name: "..", Ino: parentIno, Mode: syscall.S_IFDIR})
	for _, d := range list {
		out = append(out, fuse.DirEntry{Name: d.name, Ino: n.t.ino(d.idx), Mode: n.t.entry(d.idx).Mode & manifest.ModeType})
	}
	return fs.NewListDirStream(out), 0
}

func (n *entryNode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if flags&syscall.O_ACCMODE != syscall.O_RDONLY {
		return nil, 0, syscall.EROFS
	}
	if !n.entry().IsRegular() {
		return nil, 0, 0
	}
	v := n.fileView()
	if v == nil {
		return nil, 0, syscall.EIO
	}
	return &openFile{ra: newReadahead(v, n.f.opts.Readahead)}, fuse.FOPEN_KEEP_CACHE, 0
}

// fileView builds the file's view on first use (most files are never
// opened, so the mount does not hold views for all of them).
func (n *entryNode) fileView() *View {
	n.viewOnce.Do(func() {
		v, err := newFileView(n.entry(), n.f.chunks)
		if err != nil {
			n.f.opts.Logger.Printf("mountfs: partition %d: %v", n.t.fs.PartIndex, err)
			return
		}
		n.view = v
	})
	return n.view
}

func (n *entryNode) Read(ctx context.Context, fh fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if !n.entry().IsRegular() {
		return nil, syscall.EISDIR
	}
	v := n.fileView()
	if v == nil {
		return nil, syscall.EIO
	}
	return readView(v, fh, dest, off)
}

func (n *entryNode) Lseek(ctx context.Context, fh fs.FileHandle, off uint64, whence uint32) (uint64, syscall.Errno) {
	if !n.entry().IsRegular() {
		return 0, syscall.EINVAL
	}
	v := n.fileView()
	if v == nil {
		return 0, syscall.EIO
	}
	return seekView(v, off, whence)
}

func (n *entryNode) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	e := n.entry()
	if !e.IsSymlink() {
		return nil, syscall.EINVAL
	}
	return e.Symlink, 0
}

func (n *entryNode) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	for _, x := range n.entry().Xattrs {
		if x.Name == attr {
			if len(dest) < len(x.Value) {
				return uint32(len(x.Value)), syscall.ERANGE
			}
			return uint32(copy(dest, x.Value)), 0
		}
	}
	return 0, syscall.ENODATA
}

func (n *entryNode) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	size := 0
	for _, x := range n.entry().Xattrs {
		size += len(x.Name) + 1
	}
	if len(dest) < size {
		return uint32(size), syscall.ERANGE
	}
	pos := 0
	for _, x := range n.entry().Xattrs {
		pos += copy(dest[pos:], x.Name)
		dest[pos] = 0
		pos++
	}
	return uint32(size), 0
}
