package treeclone

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"mis/manifest"
)

// Overlayfs's private xattrs in the upper (trusted.* as root). They
// describe the overlay, not the files, and never go into a manifest.
const (
	ovlPrefix   = "trusted.overlay."
	ovlOpaque   = ovlPrefix + "opaque"
	ovlWhiteout = ovlPrefix + "whiteout" // xattr-form whiteout (kernel 6.7+, nested overlays)
	ovlRedirect = ovlPrefix + "redirect"
	ovlMetacopy = ovlPrefix + "metacopy"
)

// userFlags are the inode flags chattr sets (FS_*_FL). Other flags (extents,
// inline data, htree index...) describe the on-disk layout of whatever
// filesystem holds the file, which the fresh writer decides.
const userFlags = 0x1 | 0x2 | 0x4 | 0x8 | 0x10 | 0x20 | 0x40 | 0x80 | 0x4000 | 0x8000 |
	0x10000 | 0x20000 | 0x800000 | 0x2000000 | 0x20000000 | 0x40000000

// upperNode is one directory entry of an upper directory.
type upperNode struct {
	path     string // relative to the filesystem root, "/"-separated ("" is the root)
	abs      string
	stx      unix.Statx_t
	whiteout bool
	opaque   bool // a directory hiding everything below it in the lower
	xattrs   []manifest.Xattr
	symlink  []byte
	flags    uint32
}

func (n *upperNode) isDir() bool { return n.stx.Mode&unix.S_IFMT == unix.S_IFDIR }

// readUpper walks one filesystem's upper directory, parents before
// children, names sorted.
func readUpper(root string) ([]*upperNode, error) {
	var out []*upperNode
	var walk func(rel, abs string) error
	walk = func(rel, abs string) error {
		n, err := readNode(rel, abs)
		if err != nil {
			return err
		}
		out = append(out, n)
		if !n.isDir() {
			return nil
		}
		d, err := os.Open(abs)
		if err != nil {
			return err
		}
		names, err := d.Readdirnames(-1)
		d.Close()
		if err != nil {
			return fmt.Errorf("read directory %s: %w", abs, err)
		}
		sort.Strings(names)
		for _, name := range names {
			child := name
			if rel != "" {
				child = rel + "/" + name
			}
			if err := walk(child, filepath.Join(abs, name)); err != nil {
				return err
			}
		}
		return nil
	}
	return out, walk("", root)
}

func readNode(rel, abs string) (*upperNode, error) {
	n := &upperNode{path: rel, abs: abs}
	const mask = unix.STATX_BASIC_STATS | unix.STATX_BTIME
	if err := unix.Statx(unix.AT_FDCWD, abs, unix.AT_SYMLINK_NOFOLLOW, mask, &n.stx); err != nil {
		return nil, fmt.Errorf("stat %s: %w", abs, err)
	}
	typ := uint32(n.stx.Mode) & unix.S_IFMT
	if typ == unix.S_IFCHR && n.stx.Rdev_major == 0 && n.stx.Rdev_minor == 0 {
		n.whiteout = true // overlayfs's whiteout: a 0:0 character device
		return n, nil
	}
	xs, err := listXattrs(abs)
	if err != nil {
		return nil, err
	}
	for _, x := range xs {
		switch {
		case x.Name == ovlOpaque:
			n.opaque = string(x.Value) == "y" // "x" only says "has xattr whiteouts inside"
		case x.Name == ovlWhiteout && typ == unix.S_IFREG:
			n.whiteout = true
			return n, nil
		case x.Name == ovlRedirect || x.Name == ovlMetacopy:
			// Only made with redirect_dir=on or metacopy=on, which Mount
			// never sets: an upper made some other way.
			return nil, fmt.Errorf("%s carries %s: this upper was not made by a tree clone mount (redirect_dir and metacopy must be off)", abs, x.Name)
		case strings.HasPrefix(x.Name, ovlPrefix):
			// origin, impure, uuid...: overlay bookkeeping
		default:
			n.xattrs = append(n.xattrs, x)
		}
	}
	switch typ {
	case unix.S_IFLNK:
		if n.symlink, err = readlink(abs, int(n.stx.Size)); err != nil {
			return nil, err
		}
	case unix.S_IFREG, unix.S_IFDIR:
		n.flags = readFlags(abs)
	}
	return n, nil
}

func readlink(path string, size int) ([]byte, error) {
	buf := make([]byte, max(size, 256)+1)
	for {
		k, err := unix.Readlink(path, buf)
		if err != nil {
			return nil, fmt.Errorf("readlink %s: %w", path, err)
		}
		if k < len(buf) {
			return buf[:k], nil
		}
		buf = make([]byte, 2*len(buf))
	}
}

// readFlags returns the chattr flags of a file or directory, 0 when the
// upper's filesystem has none.
func readFlags(path string) uint32 {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOATIME|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0
	}
	defer unix.Close(fd)
	v, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	if err != nil {
		return 0
	}
	return v & userFlags
}

// listXattrs returns every xattr of path (not following symlinks), sorted
// by name.
func listXattrs(path string) ([]manifest.Xattr, error) {
	size, err := unix.Llistxattr(path, nil)
	if errors.Is(err, unix.ENOTSUP) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listxattr %s: %w", path, err)
	}
	if size == 0 {
		return nil, nil
	}
	buf := make([]byte, size)
	if size, err = unix.Llistxattr(path, buf); err != nil {
		return nil, fmt.Errorf("listxattr %s: %w", path, err)
	}
	var out []manifest.Xattr
	for _, name := range strings.Split(string(buf[:size]), "\x00") {
		if name == "" {
			continue
		}
		val, err := getXattr(path, name)
		if err != nil {
			return nil, err
		}
		out = append(out, manifest.Xattr{Name: name, Value: val})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func getXattr(path, name string) ([]byte, error) {
	for {
		n, err := unix.Lgetxattr(path, name, nil)
		if err != nil {
			return nil, fmt.Errorf("getxattr %s %s: %w", path, name, err)
		}
		val := make([]byte, n)
		k, err := unix.Lgetxattr(path, name, val)
		if errors.Is(err, unix.ERANGE) {
			continue // grew in between
		}
		if err != nil {
			return nil, fmt.Errorf("getxattr %s %s: %w", path, name, err)
		}
		return val[:k], nil
	}
}
