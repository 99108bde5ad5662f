package ext4

import (
	"bytes"
	"errors"
	iofs "io/fs"
	"sort"
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
func (fs *FS) Walk(fn WalkFunc) error {
	root, err := fs.Inode(RootIno)
	if err != nil {
		return err
	}
	if !root.IsDir() {
		return corrupt("walk", RootIno, 0, "root inode is not a directory (mode 0%o)", root.Mode)
	}
	w := &walker{fs: fs, fn: fn, seenDir: make([]uint64, fs.sb.InodesCount/64+1)}
	w.markDir(RootIno)
	if err := fn([]byte("/"), RootIno, root); err != nil {
		if errors.Is(err, iofs.SkipDir) {
			return nil
		}
		return err
	}
	return w.dir(make([]byte, 0, 4096), root, 0)
}

type walker struct {
	fs      *FS
	fn      WalkFunc
	seenDir []uint64 // bitmap of directory inodes already entered
}

// maxWalkDepth bounds recursion; PATH_MAX (4096) allows at most 2048 levels.
const maxWalkDepth = 2048

func (w *walker) markDir(ino uint32) bool {
	word, bit := ino/64, uint64(1)<<(ino%64)
	was := w.seenDir[word]&bit != 0
	w.seenDir[word] |= bit
	return was
}

func (w *walker) dir(path []byte, in *Inode, depth int) error {
	if depth > maxWalkDepth {
		return corrupt("walk", in.Ino, 0, "directory nesting deeper than %d at %q", maxWalkDepth, path)
	}
	ents, err := w.fs.readDir(in)
	if err != nil {
		return err
	}
	sort.Slice(ents, func(i, j int) bool { return bytes.Compare(ents[i].Name, ents[j].Name) < 0 })
	for _, e := range ents {
		p := append(append(path, '/'), e.Name...)
		child, err := w.fs.Inode(e.Ino)
		if err != nil {
			return err
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
			if err := w.dir(p, child, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}
