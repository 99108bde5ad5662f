package otherfs

import (
	"bufio"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"

	"github.com/diskfs/go-diskfs/filesystem"

	"mis/manifest"
)

// Types lists the probe names (package disk) Walk can read.
var Types = []string{"vfat", "iso9660", "squashfs"}

// Info describes the walked filesystem as a whole.
type Info struct {
	Type      string // the probe name, as given
	Variant   string // "fat12", "fat16", "fat32", "iso9660", "squashfs"
	Label     string
	UUID      string // FAT: the volume serial as blkid shows it ("6D69-7301")
	BlockSize uint32 // cluster size (FAT), logical block (ISO), block size (squashfs)
}

// Walk reads the fstype filesystem ("vfat", "iso9660" or "squashfs") at
// [off, off+size) of r and calls fn once per inode: the root first (path
// ""), then every directory, regular file and symlink, parents before
// children, with all the paths of a hardlinked file in one entry. content
// reads a regular file's bytes (nil for other types) and is valid only
// until fn returns (it may be read on another goroutine meanwhile; a
// go-diskfs panic while reading becomes its error). Entries carry no Content and no Extents: storing the
// content is the caller's business.
func Walk(r io.ReaderAt, off, size int64, fstype string, fn func(e *manifest.Entry, content io.Reader) error) (info *Info, err error) {
	// go-diskfs indexes slices with on-disk values and panics on some
	// damaged filesystems: bad input must give an error instead.
	defer func() {
		if p := recover(); p != nil {
			info, err = nil, fmt.Errorf("%s at offset %d: panic while reading (damaged filesystem?): %v", fstype, off, p)
		}
	}()
	src := sectionStorage{io.NewSectionReader(r, off, size)}
	var (
		fsys filesystem.FileSystem
		fl   flavour
	)
	switch fstype {
	case "vfat":
		fsys, info, err = openFAT(src, size)
		fl = fatFlavour{}
	case "iso9660":
		fsys, info, err = openISO(src, size)
		fl = isoFlavour{src: src}
	case "squashfs":
		fsys, info, err = openSquashfs(src, size)
		fl = squashFlavour{}
	default:
		return nil, fmt.Errorf("otherfs: cannot walk %q (known: %v)", fstype, Types)
	}
	if err != nil {
		return nil, fmt.Errorf("%s at offset %d: %w", fstype, off, err)
	}
	info.Type = fstype
	w := &walker{fsys: fsys, fl: fl, byKey: map[any]int{}}
	if err := w.collect(); err != nil {
		return nil, fmt.Errorf("%s at offset %d: %w", fstype, off, err)
	}
	for i := range w.nodes {
		if err := w.emit(&w.nodes[i], fn); err != nil {
			return nil, err
		}
	}
	return info, nil
}

// flavour turns one filesystem's file information into entry metadata.
type flavour interface {
	// root returns the root directory's metadata.
	root(fsys filesystem.FileSystem) (manifest.Entry, error)
	// entry returns a file's metadata and, for files that may be
	// hardlinked, a key naming the inode (nil otherwise).
	entry(fi fs.FileInfo) (e manifest.Entry, key any, err error)
	// dirNlink says whether directory link counts are derived (2 plus
	// the subdirectories) rather than read from the filesystem.
	dirNlink() bool
	// ownInodes says whether entry already set Ino to the filesystem's own
	// inode number; otherwise inodes are numbered in walk order.
	ownInodes() bool
}

type node struct {
	entry   manifest.Entry
	fsPath  string // io/fs form ("." for the root) to open the content
	subdirs uint32
}

type walker struct {
	fsys  filesystem.FileSystem
	fl    flavour
	nodes []node
	byKey map[any]int
}

func (w *walker) collect() error {
	root, err := w.fl.root(w.fsys)
	if err != nil {
		return fmt.Errorf("root directory: %w", err)
	}
	root.Paths = [][]byte{{}}
	w.nodes = append(w.nodes, node{entry: root, fsPath: "."})
	if err := w.dir(0, ".", 0); err != nil {
		return err
	}
	for i := range w.nodes {
		n := &w.nodes[i]
		if !w.fl.ownInodes() {
			n.entry.Ino = uint32(i + 1)
		}
		switch {
		case n.entry.Mode&manifest.ModeType == manifest.ModeDir:
			if w.fl.dirNlink() || n.entry.Nlink == 0 {
				n.entry.Nlink = 2 + n.subdirs
			}
		case w.fl.ownInodes():
			n.entry.Nlink = uint32(len(n.entry.Paths))
		}
	}
	return nil
}

// maxDepth bounds directory nesting: a damaged filesystem whose directory
// points back at an ancestor would otherwise recurse forever.
const maxDepth = 512

func (w *walker) dir(parent int, dirPath string, depth int) error {
	if depth >= maxDepth {
		return fmt.Errorf("directory %q: nested more than %d deep (a directory loop?)", dirPath, maxDepth)
	}
	ents, err := w.fsys.ReadDir(dirPath)
	if err != nil {
		return fmt.Errorf("directory %q: %w", dirPath, err)
	}
	// A stable order whatever the directory's own order, so the manifest
	// of an unchanged filesystem is the same every time.
	sort.Slice(ents, func(i, j int) bool { return ents[i].Name() < ents[j].Name() })
	for _, de := range ents {
		p := path.Join(dirPath, de.Name())
		fi, err := de.Info()
		if err != nil {
			return fmt.Errorf("%q: %w", p, err)
		}
		e, key, err := w.fl.entry(fi)
		if err != nil {
			return fmt.Errorf("%q: %w", p, err)
		}
		e.Paths = [][]byte{[]byte(p)}
		if key != nil {
			if i, ok := w.byKey[key]; ok {
				w.nodes[i].entry.Paths = append(w.nodes[i].entry.Paths, []byte(p))
				continue
			}
			w.byKey[key] = len(w.nodes)
		}
		w.nodes = append(w.nodes, node{entry: e, fsPath: p})
		if e.Mode&manifest.ModeType == manifest.ModeDir {
			w.nodes[parent].subdirs++
			if err := w.dir(len(w.nodes)-1, p, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

func (w *walker) emit(n *node, fn func(*manifest.Entry, io.Reader) error) error {
	if n.entry.Mode&manifest.ModeType != manifest.ModeRegular || n.entry.Size == 0 {
		return fn(&n.entry, nil)
	}
	f, err := w.fsys.Open(n.fsPath)
	if err != nil {
		return fmt.Errorf("%q: %w", n.fsPath, err)
	}
	defer f.Close()
	// The reader stops at the recorded size and fails if the file is
	// shorter, so a truncated read is an error, not silently short content.
	// Large reads: go-diskfs's FAT file walks the whole cluster chain on
	// every Read call, so small reads make a file quadratic to read.
	buf := bufio.NewReaderSize(f, int(min(n.entry.Size, readBuffer)))
	return fn(&n.entry, &exactReader{r: buf, left: int64(n.entry.Size), name: n.fsPath})
}

const readBuffer = 4 << 20

// exactReader yields exactly left bytes of r.
type exactReader struct {
	r    io.Reader
	left int64
	name string
}

func (x *exactReader) Read(p []byte) (n int, err error) {
	// go-diskfs panics on some damaged filesystems, and the caller may
	// read on another goroutine than the walk's (a pipeline), outside
	// Walk's recover.
	defer func() {
		if r := recover(); r != nil {
			n, err = 0, fmt.Errorf("%q: panic while reading (damaged filesystem?): %v", x.name, r)
		}
	}()
	if x.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > x.left {
		p = p[:x.left]
	}
	n, err = x.r.Read(p)
	x.left -= int64(n)
	if err == io.EOF {
		if x.left > 0 {
			return n, fmt.Errorf("%q: content ends %d bytes before its size: %w", x.name, x.left, io.ErrUnexpectedEOF)
		}
		err = nil
	}
	return n, err
}

// typeBits maps a Go file mode onto the S_IF* bits of the manifest.
func typeBits(m fs.FileMode) uint32 {
	switch {
	case m.IsDir():
		return manifest.ModeDir
	case m&fs.ModeSymlink != 0:
		return manifest.ModeSymlink
	case m&fs.ModeCharDevice != 0:
		return manifest.ModeChar
	case m&fs.ModeDevice != 0:
		return manifest.ModeBlock
	case m&fs.ModeNamedPipe != 0:
		return manifest.ModeFIFO
	case m&fs.ModeSocket != 0:
		return manifest.ModeSocket
	}
	return manifest.ModeRegular
}

// permBits maps Go's permission and special bits onto 07777.
func permBits(m fs.FileMode) uint32 {
	p := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		p |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		p |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		p |= 0o1000
	}
	return p
}
