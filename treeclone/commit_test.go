package treeclone_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"mis/manifest"
	"mis/testkit/treecmp"
	"mis/treeclone"
)

// smallBase is a hand-made manifest of a 1 MiB disk with one filesystem:
//
//	/ (2)  a/ (3)  a/x (4, 4 KiB at disk 64 KiB)  a/y (5)  b (6, hardlinked as c)  keep (7, 4 KiB at 128 KiB)
func smallBase() *manifest.Manifest {
	const mib = 1 << 20
	dir := func(ino uint32, p string, nlink uint32) manifest.Entry {
		return manifest.Entry{Ino: ino, Paths: [][]byte{[]byte(p)}, Mode: manifest.ModeDir | 0o755, Nlink: nlink, Size: 4096}
	}
	file := func(ino uint32, size uint64, paths ...string) manifest.Entry {
		e := manifest.Entry{Ino: ino, Mode: manifest.ModeRegular | 0o644, Nlink: uint32(len(paths)), Size: size, Crtime: 42, Generation: 7}
		for _, p := range paths {
			e.Paths = append(e.Paths, []byte(p))
		}
		return e
	}
	x := file(4, 4096, "a/x")
	x.Extents = []manifest.Extent{{FileOff: 0, DiskOff: 64 << 10, Len: 4096}}
	x.Content = []manifest.Ref{{Size: 4096}}
	keep := file(7, 4096, "keep")
	keep.Extents = []manifest.Extent{{FileOff: 0, DiskOff: 128 << 10, Len: 4096}}
	keep.Content = []manifest.Ref{{Size: 4096}}
	return &manifest.Manifest{
		FormatVersion: manifest.FormatVersion, DiskSize: mib, Exact: true,
		Layout: manifest.Layout{Kind: "none", SectorSize: 512, Partitions: []manifest.Partition{{Index: 0, Size: mib, Filesystem: "ext4"}}},
		Residual: []manifest.Run{
			{Off: 0, Len: 64 << 10, Zero: true},
			{Off: 64<<10 + 4096, Len: 64<<10 - 4096, Zero: true},
			{Off: 128<<10 + 4096, Len: mib - 128<<10 - 4096, Zero: true},
		},
		Filesystems: []manifest.Filesystem{{PartIndex: 0, Type: "ext4", Size: mib, BlockSize: 4096, Files: []manifest.Entry{
			dir(2, "", 4), dir(3, "a", 2), x, file(5, 0, "a/y"), file(6, 0, "b", "c"), keep,
		}}},
	}
}

// TestCommitUpperSemantics commits hand-made uppers (the forms overlayfs
// writes) onto a hand-made base and checks the resulting entries.
func TestCommitUpperSemantics(t *testing.T) {
	treecmp.RequireRoot(t)
	r := newRepo(t)
	ctx := context.Background()
	w, err := r.OpenWriter(ctx, "test")
	must(t, err)
	defer w.Close()
	base := smallBase()
	if err := base.Validate(); err != nil {
		t.Fatal(err)
	}

	upper := t.TempDir()
	p0 := filepath.Join(upper, "p0")
	must(t, os.Mkdir(p0, 0o755))
	// a is opaque: x and y go; a/new is added.
	must(t, os.Mkdir(filepath.Join(p0, "a"), 0o700))
	must(t, unix.Lsetxattr(filepath.Join(p0, "a"), "trusted.overlay.opaque", []byte("y"), 0))
	must(t, os.WriteFile(filepath.Join(p0, "a/new"), []byte("new content"), 0o600))
	// b is deleted with a char 0:0 whiteout, c stays (link count drops).
	must(t, unix.Mknod(filepath.Join(p0, "b"), unix.S_IFCHR, 0))
	// d/ is new with a subdirectory and an xattr-form whiteout (ignored: nothing below).
	must(t, os.MkdirAll(filepath.Join(p0, "d/sub"), 0o755))
	must(t, unix.Lsetxattr(filepath.Join(p0, "d"), "user.note", []byte("v"), 0))
	must(t, unix.Lsetxattr(filepath.Join(p0, "d"), "trusted.overlay.impure", []byte("y"), 0))
	// Two new names of one new inode.
	must(t, os.WriteFile(filepath.Join(p0, "h1"), []byte("linked"), 0o644))
	must(t, os.Link(filepath.Join(p0, "h1"), filepath.Join(p0, "d/h2")))

	m, st, err := treeclone.Commit(ctx, w, r.Config().Chunker, base, upper)
	if err != nil {
		t.Fatal(err)
	}
	if m.Exact || !st.NeedsFresh {
		t.Errorf("Exact %v NeedsFresh %v", m.Exact, st.NeedsFresh)
	}
	byPath := map[string]*manifest.Entry{}
	for i := range m.Filesystems[0].Files {
		e := &m.Filesystems[0].Files[i]
		for _, p := range e.Paths {
			byPath[string(p)] = e
		}
	}
	var paths []string
	for p := range byPath {
		paths = append(paths, p)
	}
	want := []string{"", "a", "a/new", "c", "d", "d/h2", "d/sub", "h1", "keep"}
	if len(paths) != len(want) {
		t.Fatalf("paths %q, want %q", paths, want)
	}
	for _, p := range want {
		if byPath[p] == nil {
			t.Fatalf("missing %q in %q", p, paths)
		}
	}
	if e := byPath["a"]; e.Ino != 3 || e.Mode != manifest.ModeDir|0o700 || e.Nlink != 2 {
		t.Errorf("a: ino %d mode %o nlink %d (want the base's inode 3, the upper's mode 0700, nlink 2)", e.Ino, e.Mode, e.Nlink)
	}
	if e := byPath["c"]; e.Ino != 6 || e.Nlink != 1 || len(e.Paths) != 1 {
		t.Errorf("c: ino %d nlink %d paths %q (want inode 6 with one name)", e.Ino, e.Nlink, e.Paths)
	}
	if e := byPath["d"]; e.Ino <= 7 || e.Nlink != 3 || len(e.Xattrs) != 1 || e.Xattrs[0].Name != "user.note" {
		t.Errorf("d: ino %d nlink %d xattrs %v (want a new inode, nlink 3, only user.note)", e.Ino, e.Nlink, e.Xattrs)
	}
	if h1, h2 := byPath["h1"], byPath["d/h2"]; h1 != h2 || h1.Nlink != 2 || manifest.StreamSize(h1.Content) != 6 {
		t.Errorf("h1 and d/h2 are not one inode with 2 links and 6 bytes")
	}
	if e := byPath[""]; e.Ino != 2 || e.Nlink != 4 {
		t.Errorf("root: ino %d nlink %d (want 2 and 4: a, d and itself)", e.Ino, e.Nlink)
	}
	if e := byPath["keep"]; len(e.Extents) != 1 {
		t.Errorf("keep lost its extents")
	}
	inos := map[uint32]bool{}
	for _, e := range m.Filesystems[0].Files {
		if inos[e.Ino] {
			t.Errorf("inode %d used twice", e.Ino)
		}
		inos[e.Ino] = true
	}
	// a/x's disk range is now a zero run: the manifest still tiles the disk.
	found := false
	for _, run := range m.Residual {
		if run.Zero && run.Off <= 64<<10 && run.Off+run.Len >= 64<<10+4096 {
			found = true
		}
	}
	if !found {
		t.Errorf("a/x's extent did not become a zero run: %+v", m.Residual)
	}
	if st.Deleted != 3 || st.Added != 5 || st.Replaced != 2 {
		t.Errorf("stats %+v: want 3 deleted (a/x, a/y, b), 5 added (a/new, d, d/sub, h1, d/h2), 2 replaced (the root, a)", st)
	}

	// Forms a tree clone mount never writes are refused, not misread.
	must(t, unix.Lsetxattr(filepath.Join(p0, "d"), "trusted.overlay.redirect", []byte("/a"), 0))
	if _, _, err := treeclone.Commit(ctx, w, r.Config().Chunker, base, upper); err == nil || !strings.Contains(err.Error(), "redirect") {
		t.Errorf("upper with a redirect: %v", err)
	}
	must(t, unix.Lremovexattr(filepath.Join(p0, "d"), "trusted.overlay.redirect"))
	must(t, os.Mkdir(filepath.Join(upper, "p9"), 0o755))
	if _, _, err := treeclone.Commit(ctx, w, r.Config().Chunker, base, upper); err == nil || !strings.Contains(err.Error(), "p9") {
		t.Errorf("upper with an unknown filesystem: %v", err)
	}
}

func TestCloneRecords(t *testing.T) {
	repoDir := t.TempDir()
	for _, bad := range []string{"", "Upper", "-x", "a/b", "..", strings.Repeat("a", 65)} {
		if err := treeclone.Create(repoDir, bad, "v"); err == nil {
			t.Errorf("name %q accepted", bad)
		}
	}
	must(t, treeclone.Create(repoDir, "b.2", "id-b"))
	must(t, treeclone.Create(repoDir, "a_1", "id-a"))
	if err := treeclone.Create(repoDir, "a_1", "id-x"); err == nil {
		t.Error("duplicate name accepted")
	}
	list, err := treeclone.List(repoDir)
	must(t, err)
	if len(list) != 2 || list[0].Name != "a_1" || list[0].Base != "id-a" || list[1].Name != "b.2" {
		t.Fatalf("list %+v", list)
	}
	must(t, treeclone.Rebase(repoDir, "a_1", "id-a2"))
	if c, err := treeclone.Get(repoDir, "a_1"); err != nil || c.Base != "id-a2" {
		t.Fatalf("after rebase: %+v %v", c, err)
	}
	rec := filepath.Join(treeclone.Paths(repoDir, "b.2").Root, "clone.json")
	must(t, os.WriteFile(rec, []byte(`{"format_version": 2, "name": "b.2", "base": "x"}`), 0o600))
	if _, err := treeclone.Get(repoDir, "b.2"); err == nil || !strings.Contains(err.Error(), "format version 2") {
		t.Errorf("newer format: %v", err)
	}
	must(t, treeclone.Remove(repoDir, "a_1"))
	if _, err := treeclone.Get(repoDir, "a_1"); !errors.Is(err, treeclone.ErrNotFound) {
		t.Errorf("after remove: %v", err)
	}
	if err := treeclone.Remove(repoDir, "zzz"); !errors.Is(err, treeclone.ErrNotFound) {
		t.Errorf("removing a missing clone: %v", err)
	}
}
