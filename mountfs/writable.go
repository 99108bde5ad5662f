package mountfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// WritableDisk is a disk that takes writes: a clone's copy-on-write
// overlay over this FS's disk (package clone). Sync makes every write that
// returned before it durable.
type WritableDisk interface {
	io.ReaderAt
	io.WriterAt
	Size() int64
	Sync() error
}

// MountWritable serves d as a writable DIR/disk.raw (mode 0600) at dir.
// It shows no partition trees: they would show the base version's files,
// not what the clone's writes made of them. Reads of blocks d takes from
// the base still get this FS's readahead. FUSE fsync, flush (every close)
// and release call d.Sync.
func (f *FS) MountWritable(dir string, d WritableDisk, mo MountOptions) (*fuse.Server, error) {
	if d.Size() != f.disk.size {
		return nil, fmt.Errorf("mount %s: writable disk has %d bytes, the base %d", dir, d.Size(), f.disk.size)
	}
	opts := f.fuseOptions(mo)
	opts.EnableAcl = false // no trees, so no ACLs to enforce
	if os.Geteuid() == 0 {
		opts.DirectMountStrict = true
		opts.DirectMountFlags = syscall.MS_NOSUID | syscall.MS_NODEV
	}
	srv, err := fs.Mount(dir, &cloneRoot{f: f, d: d}, opts)
	if err != nil {
		return nil, fmt.Errorf("mount %s: %w", dir, err)
	}
	raiseKernelReadahead(dir)
	return srv, nil
}

// cloneRoot is a writable mount's top directory: just disk.raw.
type cloneRoot struct {
	fs.Inode
	f *FS
	d WritableDisk
}

var (
	_ fs.NodeOnAdder   = (*cloneRoot)(nil)
	_ fs.NodeWriter    = (*cloneDisk)(nil)
	_ fs.NodeFsyncer   = (*cloneDisk)(nil)
	_ fs.NodeFlusher   = (*cloneDisk)(nil)
	_ fs.NodeReleaser  = (*cloneDisk)(nil)
	_ fs.NodeSetattrer = (*cloneDisk)(nil)
)

func (r *cloneRoot) OnAdd(ctx context.Context) {
	n := r.NewPersistentInode(ctx, &cloneDisk{f: r.f, d: r.d}, fs.StableAttr{Mode: syscall.S_IFREG, Ino: diskIno})
	r.AddChild(diskFileName, n, false)
}

func (r *cloneRoot) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	r.f.syntheticAttr(&out.Attr, syscall.S_IFDIR|0o755, 0)
	out.Ino = rootIno
	out.Nlink = 2
	return 0
}

func (r *cloneRoot) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	r.f.statfs(out)
	return 0
}

// cloneDisk is the writable disk.raw.
type cloneDisk struct {
	fs.Inode
	f *FS
	d WritableDisk
}

func (c *cloneDisk) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	c.f.syntheticAttr(&out.Attr, syscall.S_IFREG|0o600, c.d.Size())
	out.Ino = diskIno
	return 0
}

// Setattr accepts what does not change the disk's size (touch, chmod by a
// tool that opens with O_TRUNC on an equal size...) and refuses resizing.
func (c *cloneDisk) Setattr(ctx context.Context, fh fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if sz, ok := in.GetSize(); ok && int64(sz) != c.d.Size() {
		return syscall.EPERM
	}
	return c.Getattr(ctx, fh, out)
}

func (c *cloneDisk) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if flags&syscall.O_TRUNC != 0 {
		return nil, 0, syscall.EPERM
	}
	// Only this mount changes the disk, and the kernel updates its cached
	// pages on every write through it: the cache stays valid.
	return &openFile{ra: newReadahead(c.f.disk, c.f.opts.Readahead)}, fuse.FOPEN_KEEP_CACHE, 0
}

func (c *cloneDisk) Read(ctx context.Context, fh fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if h, ok := fh.(*openFile); ok {
		h.ra.observe(off, int64(len(dest)))
	}
	n, err := c.d.ReadAt(dest, off)
	if err != nil && !errors.Is(err, io.EOF) {
		c.f.opts.Logger.Printf("mountfs: %v", err)
		return nil, syscall.EIO
	}
	return fuse.ReadResultData(dest[:n]), 0
}

func (c *cloneDisk) Write(ctx context.Context, fh fs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	size := c.d.Size()
	if off >= size {
		return 0, syscall.EFBIG
	}
	if rem := size - off; int64(len(data)) > rem {
		data = data[:rem] // a short write: the disk does not grow
	}
	n, err := c.d.WriteAt(data, off)
	if err != nil {
		c.f.opts.Logger.Printf("mountfs: %v", err)
		return uint32(n), syscall.EIO
	}
	return uint32(n), 0
}

func (c *cloneDisk) sync() syscall.Errno {
	if err := c.d.Sync(); err != nil {
		c.f.opts.Logger.Printf("mountfs: %v", err)
		return syscall.EIO
	}
	return 0
}

func (c *cloneDisk) Fsync(ctx context.Context, fh fs.FileHandle, flags uint32) syscall.Errno {
	return c.sync()
}

func (c *cloneDisk) Flush(ctx context.Context, fh fs.FileHandle) syscall.Errno { return c.sync() }

func (c *cloneDisk) Release(ctx context.Context, fh fs.FileHandle) syscall.Errno { return c.sync() }

func (c *cloneDisk) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	c.f.statfs(out)
	return 0
}

// Getxattr answers ENOSYS, which tells the kernel that this mount has no
// xattrs at all: otherwise every write first asks for
// security.capability (to strip file capabilities), doubling the FUSE
// round trips of small writes.
func (c *cloneDisk) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	return 0, syscall.ENOSYS
}

func (r *cloneRoot) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	return 0, syscall.ENOSYS
}
