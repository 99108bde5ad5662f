package ext4

import (
	"bytes"
	"errors"
	"fmt"
	iofs "io/fs"
	"slices"
	"strconv"
)

// RootIno is the inode number of the root directory.
const RootIno = 2

// WalkFunc is called for every path. Returning fs.SkipDir for a directory
// skips its contents; any other error stops the walk.
type WalkFunc func(path []byte, ino uint32, in *Inode) error

// Walk visits the tree depth first from the root ("/"), entries of each
// directory sorted by name. A hard-linked inode is reported at each of its
// paths. The path slice is reused: copy it to keep it. A directory reached
// twice (a cycle or a directory hard link) is an error naming the inode.
//
// Every reported path is usable as a file tree: each component is a name
// a kernel can create (not empty, ".", "..", without "/" or NUL, at most
// 255 bytes) and unique in its directory. A directory entry whose name is
// not (corrupt or crafted: the kernel's readdir refuses such names with
// EUCLEAN, e2fsck renames or clears them) is reported under an escaped
// name, with a message to fs.Warn:
//
//   - "%", "/" and NUL become %25, %2F and %00; an entry named "." or ".."
//     (other than the real ones) becomes %2E or %2E%2E; an empty name "%";
//   - a name already used in the directory (a second entry of the same
//     name, or a name equal to an escaped one) gets "~2", "~3", ... (the
//     first entry on disk keeps the name, as the kernel's lookup finds it);
//   - a name cut to fit 255 bytes with its suffix.
//
// A second "." entry naming the directory itself, or ".." naming its
// parent, adds nothing and is skipped, with a message. A real "." or ".."
// entry naming another inode is reported too (e2fsck would fix it); the
// walk follows the tree, not those entries, as the kernel's lookup does.
func (fs *FS) Walk(fn WalkFunc) error {
	root, err := fs.Inode(RootIno)
	if err != nil {
		return err
	}
	if !root.IsDir() {
		return corrupt("walk", RootIno, 0, "root inode is not a directory (mode 0%o)", root.Mode)
	}
	w := &walker{fs: fs, fn: fn, seenDir: map[uint32]struct{}{}}
	w.markDir(RootIno)
	if err := fn([]byte("/"), RootIno, root); err != nil {
		if errors.Is(err, iofs.SkipDir) {
			return nil
		}
		return err
	}
	return w.dir(make([]byte, 0, 4096), root, RootIno, 0)
}

type walker struct {
	fs *FS
	fn WalkFunc
	// seenDir holds the directory inodes already entered: a set, not a
	// bitmap of InodesCount bits (512 MiB for a crafted 2^32).
	seenDir map[uint32]struct{}
}

// maxWalkDepth bounds recursion; PATH_MAX (4096) allows at most 2048 levels.
const maxWalkDepth = 2048

func (w *walker) markDir(ino uint32) bool {
	_, was := w.seenDir[ino]
	w.seenDir[ino] = struct{}{}
	return was
}

func (w *walker) warn(format string, args ...any) {
	if w.fs.Warn != nil {
		w.fs.Warn(fmt.Sprintf(format, args...))
	}
}

func (w *walker) dir(path []byte, in *Inode, parent uint32, depth int) error {
	if depth > maxWalkDepth {
		return corrupt("walk", in.Ino, 0, "directory nesting deeper than %d at %q", maxWalkDepth, path)
	}
	l, err := w.fs.readDir(in)
	if err != nil {
		return err
	}
	if l.dot != 0 && l.dot != in.Ino {
		w.warn("directory inode %d (%s): its \".\" entry names inode %d, not itself; ignored", in.Ino, showDir(path), l.dot)
	}
	if l.dotdot != 0 && l.dotdot != parent {
		w.warn("directory inode %d (%s): its \"..\" entry names inode %d, not its parent %d; ignored", in.Ino, showDir(path), l.dotdot, parent)
	}
	ents := w.usableNames(path, in.Ino, parent, l.ents)
	for _, e := range ents {
		p := append(append(path, '/'), e.Name...)
		child, err := w.fs.Inode(e.Ino)
		if err != nil {
			return fmt.Errorf("%w (at %q)", err, p)
		}
		if child.IsDir() && w.markDir(e.Ino) {
			return corrupt("walk", e.Ino, 0, "directory reached twice (cycle or directory hard link), second time at %q", p)
		}
		if err := w.fn(p, e.Ino, child); err != nil {
			if errors.Is(err, iofs.SkipDir) {
				continue
			}
			return err
		}
		if child.IsDir() {
			if err := w.dir(p, child, in.Ino, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

func showDir(path []byte) string {
	if len(path) == 0 {
		return "/"
	}
	q := strconv.Quote(string(path))
	return q[1 : len(q)-1]
}

// maxNameLen is the kernel's NAME_MAX.
const maxNameLen = 255

// nameProblem says why name cannot be a path component, or "".
func nameProblem(name []byte) string {
	switch {
	case len(name) == 0:
		return "an empty name"
	case len(name) == 1 && name[0] == '.', len(name) == 2 && name[0] == '.' && name[1] == '.':
		return "a second \"" + string(name) + "\" entry"
	case bytes.IndexByte(name, '/') >= 0:
		return "a name containing \"/\""
	case bytes.IndexByte(name, 0) >= 0:
		return "a name containing a NUL byte"
	}
	return ""
}

// escapeName is the name Walk reports for an entry whose own name cannot
// be a path component (see Walk).
func escapeName(name []byte) []byte {
	switch string(name) {
	case "":
		return []byte("%")
	case ".":
		return []byte("%2E")
	case "..":
		return []byte("%2E%2E")
	}
	out := make([]byte, 0, len(name)+8)
	for _, c := range name {
		switch c {
		case '%', '/', 0:
			out = fmt.Appendf(out, "%%%02X", c)
		default:
			out = append(out, c)
		}
	}
	return out
}

// usableNames returns the directory's entries sorted by the names Walk
// reports: unchanged when every name is usable and unique (the common
// case, checked without building a set), else with the others escaped.
func (w *walker) usableNames(path []byte, dir, parent uint32, ents []DirEntry) []DirEntry {
	ok := true
	for _, e := range ents {
		if nameProblem(e.Name) != "" {
			ok = false
			break
		}
	}
	if ok {
		sorted := slices.Clone(ents)
		slices.SortFunc(sorted, func(a, b DirEntry) int { return bytes.Compare(a.Name, b.Name) })
		for i := 1; ok && i < len(sorted); i++ {
			ok = !bytes.Equal(sorted[i-1].Name, sorted[i].Name)
		}
		if ok {
			return sorted
		}
	}
	// ents is still in on-disk order, which decides who keeps a name
	// entered twice.
	// Names kept as they are: usable ones, the first on disk of each.
	taken := make(map[string]bool, len(ents))
	keep := make([]bool, len(ents))
	for i, e := range ents {
		if nameProblem(e.Name) == "" && !taken[string(e.Name)] {
			taken[string(e.Name)] = true
			keep[i] = true
		}
	}
	next := map[string]int{} // first suffix number to try per base name
	out := make([]DirEntry, 0, len(ents))
	for i, e := range ents {
		if keep[i] {
			out = append(out, e)
			continue
		}
		where := fmt.Sprintf("directory inode %d (%s): entry %q (inode %d)", dir, showDir(path), e.Name, e.Ino)
		why := nameProblem(e.Name)
		if (string(e.Name) == "." && e.Ino == dir) || (string(e.Name) == ".." && e.Ino == parent) {
			w.warn("%s: %s naming the same inode as the real one; ignored", where, why)
			continue
		}
		base := e.Name
		if why != "" {
			base = escapeName(e.Name)
		} else {
			why = "a name already used in this directory"
		}
		k := max(next[string(base)], 1)
		var name []byte
		for ; ; k++ {
			name = suffixed(base, k)
			if !taken[string(name)] {
				break
			}
		}
		next[string(base)] = k + 1
		taken[string(name)] = true
		w.warn("%s: %s; kept as %q", where, why, name)
		out = append(out, DirEntry{Name: name, Ino: e.Ino, FileType: e.FileType})
	}
	slices.SortFunc(out, func(a, b DirEntry) int { return bytes.Compare(a.Name, b.Name) })
	return out
}

// suffixed is base for k == 1, else base + "~k", cut to maxNameLen bytes.
func suffixed(base []byte, k int) []byte {
	sfx := ""
	if k > 1 {
		sfx = "~" + strconv.Itoa(k)
	}
	n := min(len(base), maxNameLen-len(sfx))
	return append(base[:n:n], sfx...)
}
