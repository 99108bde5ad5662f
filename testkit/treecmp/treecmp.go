// Package treecmp compares two file trees, as the kernel shows them, on
// every attribute mis promises to keep: file type, mode bits, owner, size,
// link count and hardlink groups, device numbers, nanosecond times, symlink
// targets, extended attributes (ACLs and capabilities included) and content.
//
// Tests use it to check an export or a mount against a loop mount of the
// original image. It reports every difference, not just the first.
package treecmp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/zeebo/blake3"
	"golang.org/x/sys/unix"
)

// Options selects what to compare beyond the always-compared attributes.
type Options struct {
	Atime bool // atimes change on read unless both trees are mounted noatime
	Ctime bool // ctimes cannot be set by tools that write a fresh filesystem
	// Skip names paths (relative, e.g. "lost+found") left out on both sides.
	Skip map[string]bool
	// MaxDiffs stops after this many differences (0: 100).
	MaxDiffs int
}

// Compare walks want and got and returns the differences found.
func Compare(want, got string, opt Options) ([]string, error) {
	if opt.MaxDiffs == 0 {
		opt.MaxDiffs = 100
	}
	c := &comparer{opt: opt, inoMap: map[uint64]uint64{}}
	wantPaths, err := listTree(want, opt.Skip)
	if err != nil {
		return nil, err
	}
	gotPaths, err := listTree(got, opt.Skip)
	if err != nil {
		return nil, err
	}
	gotSet := map[string]bool{}
	for _, p := range gotPaths {
		gotSet[p] = true
	}
	for _, p := range wantPaths {
		if len(c.diffs) >= opt.MaxDiffs {
			break
		}
		if !gotSet[p] {
			c.addf("%q: missing", p)
			continue
		}
		delete(gotSet, p)
		if err := c.compareOne(p, filepath.Join(want, p), filepath.Join(got, p)); err != nil {
			return c.diffs, err
		}
	}
	var extra []string
	for p := range gotSet {
		extra = append(extra, p)
	}
	sort.Strings(extra)
	for _, p := range extra {
		c.addf("%q: unexpected extra path", p)
	}
	return c.diffs, nil
}

type comparer struct {
	opt    Options
	diffs  []string
	inoMap map[uint64]uint64 // want inode -> got inode, to check hardlink groups
}

func (c *comparer) addf(format string, args ...any) {
	if len(c.diffs) < c.opt.MaxDiffs {
		c.diffs = append(c.diffs, fmt.Sprintf(format, args...))
	}
}

func listTree(root string, skip map[string]bool) ([]string, error) {
	var out []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		if skip[rel] {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		out = append(out, rel)
		return nil
	})
	sort.Strings(out)
	return out, err
}

func (c *comparer) compareOne(rel, a, b string) error {
	var sa, sb unix.Stat_t
	if err := unix.Lstat(a, &sa); err != nil {
		return err
	}
	if err := unix.Lstat(b, &sb); err != nil {
		return err
	}
	if sa.Mode != sb.Mode {
		c.addf("%q: mode %o, got %o", rel, sa.Mode, sb.Mode)
	}
	if sa.Uid != sb.Uid || sa.Gid != sb.Gid {
		c.addf("%q: owner %d:%d, got %d:%d", rel, sa.Uid, sa.Gid, sb.Uid, sb.Gid)
	}
	isDir := sa.Mode&unix.S_IFMT == unix.S_IFDIR
	if !isDir && sa.Size != sb.Size {
		c.addf("%q: size %d, got %d", rel, sa.Size, sb.Size)
	}
	if sa.Nlink != sb.Nlink {
		c.addf("%q: nlink %d, got %d", rel, sa.Nlink, sb.Nlink)
	}
	if sa.Rdev != sb.Rdev {
		c.addf("%q: rdev %d:%d, got %d:%d", rel, unix.Major(sa.Rdev), unix.Minor(sa.Rdev), unix.Major(sb.Rdev), unix.Minor(sb.Rdev))
	}
	if sa.Mtim != sb.Mtim {
		c.addf("%q: mtime %d.%09d, got %d.%09d", rel, sa.Mtim.Sec, sa.Mtim.Nsec, sb.Mtim.Sec, sb.Mtim.Nsec)
	}
	if c.opt.Atime && sa.Atim != sb.Atim {
		c.addf("%q: atime %d.%09d, got %d.%09d", rel, sa.Atim.Sec, sa.Atim.Nsec, sb.Atim.Sec, sb.Atim.Nsec)
	}
	if c.opt.Ctime && sa.Ctim != sb.Ctim {
		c.addf("%q: ctime %d.%09d, got %d.%09d", rel, sa.Ctim.Sec, sa.Ctim.Nsec, sb.Ctim.Sec, sb.Ctim.Nsec)
	}
	if sa.Nlink > 1 && !isDir {
		if prev, ok := c.inoMap[sa.Ino]; ok && prev != sb.Ino {
			c.addf("%q: not hardlinked like the original", rel)
		}
		c.inoMap[sa.Ino] = sb.Ino
	}
	switch sa.Mode & unix.S_IFMT {
	case unix.S_IFLNK:
		ta, err := os.Readlink(a)
		if err != nil {
			return err
		}
		tb, err := os.Readlink(b)
		if err != nil {
			return err
		}
		if ta != tb {
			c.addf("%q: symlink target %q, got %q", rel, ta, tb)
		}
	case unix.S_IFREG:
		if sa.Size == sb.Size {
			ha, err := hashFile(a)
			if err != nil {
				return err
			}
			hb, err := hashFile(b)
			if err != nil {
				return err
			}
			if ha != hb {
				c.addf("%q: content differs", rel)
			}
		}
	}
	xa, err := Xattrs(a)
	if err != nil {
		return err
	}
	xb, err := Xattrs(b)
	if err != nil {
		return err
	}
	for name, va := range xa {
		vb, ok := xb[name]
		switch {
		case !ok:
			c.addf("%q: xattr %s missing", rel, name)
		case !bytes.Equal(va, vb):
			c.addf("%q: xattr %s = %x, got %x", rel, name, va, vb)
		}
	}
	for name := range xb {
		if _, ok := xa[name]; !ok {
			c.addf("%q: unexpected xattr %s", rel, name)
		}
	}
	return nil
}

func hashFile(path string) ([32]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return [32]byte{}, err
	}
	defer f.Close()
	h := blake3.New()
	if _, err := io.Copy(h, f); err != nil {
		return [32]byte{}, fmt.Errorf("read %s: %w", path, err)
	}
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out, nil
}

// Xattrs returns every extended attribute of path (not following symlinks).
func Xattrs(path string) (map[string][]byte, error) {
	size, err := unix.Llistxattr(path, nil)
	if err != nil {
		if errors.Is(err, unix.ENOTSUP) {
			return nil, nil
		}
		return nil, fmt.Errorf("listxattr %s: %w", path, err)
	}
	buf := make([]byte, size)
	n, err := unix.Llistxattr(path, buf)
	if err != nil {
		return nil, fmt.Errorf("listxattr %s: %w", path, err)
	}
	out := map[string][]byte{}
	for _, name := range bytes.Split(buf[:n], []byte{0}) {
		if len(name) == 0 {
			continue
		}
		vsize, err := unix.Lgetxattr(path, string(name), nil)
		if err != nil {
			return nil, fmt.Errorf("getxattr %s %s: %w", path, name, err)
		}
		val := make([]byte, vsize)
		vn, err := unix.Lgetxattr(path, string(name), val)
		if err != nil {
			return nil, fmt.Errorf("getxattr %s %s: %w", path, name, err)
		}
		out[string(name)] = val[:vn]
	}
	return out, nil
}
