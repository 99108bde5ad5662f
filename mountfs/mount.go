package mountfs

import (
	"context"
	"fmt"
	"log"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"mis/manifest"
	"mis/repo"
)

// DefaultCacheSize bounds the decompressed-chunk cache. The kernel's page
// cache already keeps the file data readers touched (files are opened with
// FOPEN_KEEP_CACHE), so this cache only needs the chunks in use plus the
// readahead windows of a few concurrent sequential readers: 64 MiB is ~1000
// average chunks, 8 windows of 8 MiB, and stays small on a small machine.
const DefaultCacheSize = 64 << 20

// DefaultReadahead is how far ahead of a sequential reader chunks are
// fetched: enough to keep two prefetch goroutines busy while the kernel
// copies the current data out.
const DefaultReadahead = 8 << 20

// Options tunes a mount's data path.
type Options struct {
	CacheSize   int64       // bytes of decompressed chunks kept (default DefaultCacheSize)
	Readahead   int64       // bytes prefetched ahead of sequential reads (default DefaultReadahead; <0 disables)
	Prefetchers int         // goroutines reading ahead (default 2)
	Logger      *log.Logger // damaged chunks and other serving problems (default: the standard logger)
	// Created is the time shown on the synthetic root and disk.raw.
	Created time.Time
	// NoDisk leaves disk.raw out: a version edited as a tree has no disk
	// image whose bytes match its files.
	NoDisk bool
}

// FS is a version prepared for serving: the chunk table with every chunk's
// location, the disk view and the directory index of each filesystem.
type FS struct {
	m      *manifest.Manifest
	opts   Options
	chunks *chunkStore
	disk   *View
	trees  []*fsTree
}

// New checks m, looks up the location of every chunk it uses in one short
// metadata session (the database is not held afterwards) and builds the
// indexes. Close releases the pack handles.
func New(ctx context.Context, r *repo.Repo, m *manifest.Manifest, opt Options) (*FS, error) {
	if opt.CacheSize <= 0 {
		opt.CacheSize = DefaultCacheSize
	}
	if opt.Readahead == 0 {
		opt.Readahead = DefaultReadahead
	}
	if opt.Prefetchers <= 0 {
		opt.Prefetchers = 2
	}
	if opt.Logger == nil {
		opt.Logger = log.Default()
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	f := &FS{m: m, opts: opt}
	base := uint64(firstFSBase)
	seen := map[int]bool{}
	for i := range m.Filesystems {
		fsys := &m.Filesystems[i]
		if seen[fsys.PartIndex] {
			return nil, fmt.Errorf("manifest: partition %d has two filesystems", fsys.PartIndex)
		}
		seen[fsys.PartIndex] = true
		t, err := newFSTree(fsys, base)
		if err != nil {
			return nil, fmt.Errorf("manifest: %w", err)
		}
		f.trees = append(f.trees, t)
		base += maxIno(fsys) + 1
	}
	chunks, err := newChunkStore(ctx, r, m, opt.CacheSize, opt.Prefetchers, opt.Logger)
	if err != nil {
		return nil, err
	}
	f.chunks = chunks
	if f.disk, err = newDiskView(m, chunks); err != nil {
		chunks.close()
		return nil, fmt.Errorf("manifest: %w", err)
	}
	return f, nil
}

// Disk is the view of the whole disk image.
func (f *FS) Disk() *View { return f.disk }

// Stats reports the chunk cache counters.
func (f *FS) Stats() CacheStats { return f.chunks.Stats() }

// Close stops the prefetchers and closes pack handles. Call it after the
// server has stopped.
func (f *FS) Close() error { return f.chunks.close() }

// MountOptions are the FUSE-level choices of a mount.
type MountOptions struct {
	FsName     string // first column of /proc/mounts, e.g. "mis:debian:12"
	AllowOther bool   // let other users in (permissions are still checked by the kernel)
	Debug      bool   // log every FUSE request
}

// attrTimeout: nothing in a mounted version ever changes, so the kernel may
// keep names and attributes as long as it likes.
const attrTimeout = time.Hour

// Mount serves f read-only at dir and returns once the kernel has the
// mount. The caller waits with server.Wait and stops with server.Unmount.
//
// Permissions are checked by the kernel (default_permissions, with POSIX
// ACLs enforced), so with AllowOther a user reads what the image's modes
// allow them, exactly as on a loop mount. The mount is nosuid and nodev:
// setuid bits and device nodes show but confer nothing on the host.
func (f *FS) Mount(dir string, mo MountOptions) (*fuse.Server, error) {
	opts := f.fuseOptions(mo)
	if os.Geteuid() == 0 {
		// Mount directly: no fusermount needed, and read-only as a flag
		// (the kernel rejects "ro" among the fuse options).
		opts.DirectMountStrict = true
		opts.DirectMountFlags = syscall.MS_RDONLY | syscall.MS_NOSUID | syscall.MS_NODEV
	} else {
		opts.Options = append(opts.Options, "ro")
	}
	srv, err := fs.Mount(dir, &rootNode{f: f}, opts)
	if err != nil {
		return nil, fmt.Errorf("mount %s: %w", dir, err)
	}
	raiseKernelReadahead(dir)
	return srv, nil
}

// fuseOptions are the go-fuse options every mount of f shares.
func (f *FS) fuseOptions(mo MountOptions) *fs.Options {
	timeout := attrTimeout
	opts := &fs.Options{
		EntryTimeout:    &timeout,
		AttrTimeout:     &timeout,
		NegativeTimeout: &timeout,
		NullPermissions: true, // mode 0 stays 0
		Logger:          f.opts.Logger,
		MountOptions: fuse.MountOptions{
			FsName:       mo.FsName,
			Name:         "mis",
			AllowOther:   mo.AllowOther,
			Options:      []string{"default_permissions"},
			EnableAcl:    true,
			MaxWrite:     1 << 20,
			MaxReadAhead: 1 << 20,
			// Data comes from memory, so splice gains nothing; and with
			// 1 MiB reads go-fuse's splice pipe (max 1 MiB) is too small for
			// data plus header, which it logs on every read.
			DisableSplice: true,
			Debug:         mo.Debug,
			Logger:        f.opts.Logger,
		},
	}
	return opts
}

// kernelReadaheadKB replaces the kernel's 128 KiB readahead for the mount:
// bigger FUSE reads mean fewer round trips (cold sequential reads of
// disk.raw went from ~420 to ~770 MB/s on the 2-core test machine).
const kernelReadaheadKB = 1024

// raiseKernelReadahead sets the mount's readahead through sysfs. The FUSE
// handshake cannot raise it above the kernel's default; only root may write
// sysfs, so for others this quietly does nothing.
func raiseKernelReadahead(dir string) {
	mi, ok, err := FindMount(dir)
	if err != nil || !ok {
		return
	}
	path := fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", mi.Major, mi.Minor)
	os.WriteFile(path, []byte(strconv.Itoa(kernelReadaheadKB)), 0)
}

// syntheticAttr fills the attributes of the root and disk.raw.
func (f *FS) syntheticAttr(a *fuse.Attr, mode uint32, size int64) {
	a.Mode = mode
	a.Size = uint64(size)
	a.Nlink = 1
	a.Owner = fuse.Owner{Uid: uint32(os.Geteuid()), Gid: uint32(os.Getegid())}
	t := f.opts.Created
	if t.IsZero() {
		t = time.Unix(0, 0)
	}
	sec, nsec := splitNanos(t.UnixNano())
	a.Atime, a.Mtime, a.Ctime = sec, sec, sec
	a.Atimensec, a.Mtimensec, a.Ctimensec = nsec, nsec, nsec
	a.Blksize = 4096
	a.Blocks = uint64(size+511) / 512
}

func (f *FS) statfs(out *fuse.StatfsOut) {
	out.Bsize = 4096
	out.Frsize = 4096
	out.Blocks = uint64(f.m.DiskSize+4095) / 4096
	out.Files = uint64(f.m.FileCount())
	out.NameLen = 255
}

// LimitMemory sets a soft heap limit of what the indexes use now plus the
// chunk cache plus room for FUSE buffers, unless GOMEMLIMIT is set: evicted
// chunks are garbage, and without a limit the heap would grow to twice the
// cache before the collector reclaims them. Call it once a server's FS is
// built.
func LimitMemory(cacheSize int64) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	if cacheSize <= 0 {
		cacheSize = DefaultCacheSize
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	debug.SetMemoryLimit(int64(ms.HeapAlloc) + cacheSize + 64<<20)
}
