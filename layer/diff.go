package layer

import (
	"bytes"
	"sort"
	"strconv"
	"unicode/utf8"

	"mis/manifest"
)

// Change kinds.
const (
	ChangeAdded   = "added"
	ChangeRemoved = "removed"
	ChangeChanged = "changed"
)

// What a changed path changed, in the order Diff lists them.
const (
	WhatType      = "type"
	WhatContent   = "content"
	WhatSize      = "size"
	WhatMode      = "mode"
	WhatOwner     = "owner"
	WhatXattrs    = "xattrs"
	WhatSymlink   = "symlink"
	WhatRdev      = "rdev"
	WhatHardlinks = "hardlinks"
	WhatNlink     = "nlink"
	WhatFlags     = "flags"
	WhatMtime     = "mtime"
	WhatCtime     = "ctime"
	WhatAtime     = "atime"
	WhatCrtime    = "crtime"
)

// Change is one path that differs between two manifests. Path is raw
// bytes (base64 in JSON, like manifest names); Display is the same path
// for humans, "/"-rooted, Go-quoted when it is not printable UTF-8.
type Change struct {
	Part    int      `json:"part"` // partition index of the filesystem
	Path    []byte   `json:"path"`
	Display string   `json:"display"`
	Kind    string   `json:"kind"`
	What    []string `json:"what,omitempty"` // for ChangeChanged
}

// DisplayPath renders a raw manifest path for humans: "/"-rooted, and
// Go-quoted (%q) when it is not printable UTF-8.
func DisplayPath(p []byte) string {
	s := "/" + string(p)
	if !utf8.ValidString(s) {
		return strconv.Quote(s)
	}
	for _, r := range s {
		if !strconv.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}

// Diff compares two manifests filesystem by filesystem (matched by
// partition index) and path by path. The result is sorted by partition,
// then path. A filesystem present in one manifest only shows all its
// paths added or removed.
func Diff(a, b *manifest.Manifest) []Change {
	fsA, fsB := fsByPart(a), fsByPart(b)
	parts := map[int]bool{}
	for p := range fsA {
		parts[p] = true
	}
	for p := range fsB {
		parts[p] = true
	}
	var out []Change
	for part := range parts {
		out = append(out, diffFS(part, fsA[part], fsB[part])...)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Part != out[j].Part {
			return out[i].Part < out[j].Part
		}
		return bytes.Compare(out[i].Path, out[j].Path) < 0
	})
	return out
}

func fsByPart(m *manifest.Manifest) map[int]*manifest.Filesystem {
	out := map[int]*manifest.Filesystem{}
	if m == nil {
		return out
	}
	for i := range m.Filesystems {
		out[m.Filesystems[i].PartIndex] = &m.Filesystems[i]
	}
	return out
}

func pathIndex(fs *manifest.Filesystem) map[string]*manifest.Entry {
	out := map[string]*manifest.Entry{}
	if fs == nil {
		return out
	}
	for i := range fs.Files {
		for _, p := range fs.Files[i].Paths {
			out[string(p)] = &fs.Files[i]
		}
	}
	return out
}

func diffFS(part int, a, b *manifest.Filesystem) []Change {
	pa, pb := pathIndex(a), pathIndex(b)
	var out []Change
	add := func(p, kind string, what []string) {
		out = append(out, Change{Part: part, Path: []byte(p), Display: DisplayPath([]byte(p)), Kind: kind, What: what})
	}
	for p, ea := range pa {
		eb, ok := pb[p]
		if !ok {
			add(p, ChangeRemoved, nil)
			continue
		}
		if what := diffEntry(ea, eb); len(what) > 0 {
			add(p, ChangeChanged, what)
		}
	}
	for p := range pb {
		if _, ok := pa[p]; !ok {
			add(p, ChangeAdded, nil)
		}
	}
	return out
}

// diffEntry lists what differs between two inodes found at the same path.
func diffEntry(a, b *manifest.Entry) []string {
	var what []string
	check := func(differs bool, w string) {
		if differs {
			what = append(what, w)
		}
	}
	check(a.Mode&manifest.ModeType != b.Mode&manifest.ModeType, WhatType)
	check(!sameRefs(a.Content, b.Content), WhatContent)
	check(a.Size != b.Size, WhatSize)
	check(a.Mode&^manifest.ModeType != b.Mode&^manifest.ModeType, WhatMode)
	check(a.UID != b.UID || a.GID != b.GID, WhatOwner)
	check(!sameXattrs(a.Xattrs, b.Xattrs), WhatXattrs)
	check(!bytes.Equal(a.Symlink, b.Symlink), WhatSymlink)
	check(a.RdevMajor != b.RdevMajor || a.RdevMinor != b.RdevMinor, WhatRdev)
	check(!samePaths(a.Paths, b.Paths), WhatHardlinks)
	check(a.Nlink != b.Nlink, WhatNlink)
	check(a.Flags != b.Flags, WhatFlags)
	check(a.Mtime != b.Mtime, WhatMtime)
	check(a.Ctime != b.Ctime, WhatCtime)
	check(a.Atime != b.Atime, WhatAtime)
	check(a.Crtime != b.Crtime, WhatCrtime)
	return what
}

func sameRefs(a, b []manifest.Ref) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// sameXattrs compares attribute sets; order does not matter.
func sameXattrs(a, b []manifest.Xattr) bool {
	if len(a) != len(b) {
		return false
	}
	m := make(map[string][]byte, len(a))
	for _, x := range a {
		m[x.Name] = x.Value
	}
	for _, x := range b {
		v, ok := m[x.Name]
		if !ok || !bytes.Equal(v, x.Value) {
			return false
		}
	}
	return true
}

// samePaths compares the hardlink sets (all names of the inode).
func samePaths(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	s := func(p [][]byte) []string {
		out := make([]string, len(p))
		for i := range p {
			out[i] = string(p[i])
		}
		sort.Strings(out)
		return out
	}
	sa, sb := s(a), s(b)
	for i := range sa {
		if sa[i] != sb[i] {
			return false
		}
	}
	return true
}
