package mountfs

import (
	"bytes"
	"fmt"
	"sort"

	"mis/manifest"
)

// fsTree indexes the directories of one filesystem of the manifest.
type fsTree struct {
	fs      *manifest.Filesystem
	inoBase uint64 // added to the manifest's inode numbers: unique across partitions
	root    int32  // index of the root directory's entry
	// children lists each directory's entries (by entry index), sorted by name.
	children map[int32][]dirent
}

type dirent struct {
	name string
	idx  int32
}

// newFSTree builds the directory index from the entries' paths. Every path
// but the root's must have its parent directory among the entries.
func newFSTree(f *manifest.Filesystem, inoBase uint64) (*fsTree, error) {
	t := &fsTree{fs: f, inoBase: inoBase, root: -1, children: map[int32][]dirent{}}
	dirs := map[string]int32{}
	for i := range f.Files {
		e := &f.Files[i]
		if !e.IsDir() {
			continue
		}
		for _, p := range e.Paths {
			p = relPath(p)
			dirs[string(p)] = int32(i)
			if len(p) == 0 {
				t.root = int32(i)
			}
		}
	}
	if t.root < 0 {
		return nil, fmt.Errorf("partition %d: the manifest has no root directory", f.PartIndex)
	}
	for i := range f.Files {
		e := &f.Files[i]
		if e.Ino == 0 {
			return nil, fmt.Errorf("partition %d: an entry has inode number 0 (paths %q)", f.PartIndex, e.Paths)
		}
		for _, p := range e.Paths {
			if p = relPath(p); len(p) == 0 {
				continue
			}
			parent, name := splitPath(p)
			if len(name) == 0 || string(name) == "." || string(name) == ".." {
				return nil, fmt.Errorf("partition %d inode %d: invalid path %q", f.PartIndex, e.Ino, p)
			}
			d, ok := dirs[string(parent)]
			if !ok {
				return nil, fmt.Errorf("partition %d inode %d: path %q has no parent directory in the manifest", f.PartIndex, e.Ino, p)
			}
			t.children[d] = append(t.children[d], dirent{string(name), int32(i)})
		}
	}
	for d, list := range t.children {
		sort.Slice(list, func(i, j int) bool { return list[i].name < list[j].name })
		for i := 1; i < len(list); i++ {
			if list[i].name == list[i-1].name {
				return nil, fmt.Errorf("partition %d: directory inode %d holds %q twice", f.PartIndex, f.Files[d].Ino, list[i].name)
			}
		}
	}
	return t, nil
}

// relPath accepts both spellings of a manifest path: relative ("" is the
// root, as documented) and absolute ("/" is the root, as ext4.Walk reports).
func relPath(p []byte) []byte {
	if len(p) > 0 && p[0] == '/' {
		return p[1:]
	}
	return p
}

func splitPath(p []byte) (parent, name []byte) {
	if i := bytes.LastIndexByte(p, '/'); i >= 0 {
		return p[:i], p[i+1:]
	}
	return nil, p
}

// entry returns the entry at index idx.
func (t *fsTree) entry(idx int32) *manifest.Entry { return &t.fs.Files[idx] }

// ino is the inode number the mount reports for entry idx.
func (t *fsTree) ino(idx int32) uint64 { return t.inoBase + uint64(t.fs.Files[idx].Ino) }

// child finds name in directory dir.
func (t *fsTree) child(dir int32, name string) (int32, bool) {
	list := t.children[dir]
	i := sort.Search(len(list), func(i int) bool { return list[i].name >= name })
	if i < len(list) && list[i].name == name {
		return list[i].idx, true
	}
	return 0, false
}

// maxIno is the largest inode number of the filesystem.
func maxIno(f *manifest.Filesystem) uint64 {
	var m uint32
	for i := range f.Files {
		m = max(m, f.Files[i].Ino)
	}
	return uint64(m)
}
