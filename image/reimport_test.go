package image_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"mis/fixtures"
	"mis/image"
	"mis/layer"
	"mis/manifest"
	"mis/repo"
	"mis/treecmp"
)

// importWithParent imports path as ref with parent's manifest and returns
// the import's reuse figures.
func importWithParent(t *testing.T, r *repo.Repo, path, ref string, parent *manifest.Manifest, rehash bool) image.ImportStats {
	t.Helper()
	ctx := context.Background()
	w, err := r.OpenWriter(ctx, "test import")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	m, st, err := image.ImportWithStats(ctx, w, r.Config().Chunker, path, image.ImportOptions{Parent: parent, Rehash: rehash})
	if err != nil {
		t.Fatal(err)
	}
	lr, _ := layer.ParseRef(ref)
	if err := layer.Save(ctx, w, lr, &layer.Version{Source: path}, m); err != nil {
		t.Fatal(err)
	}
	return st
}

func TestReimportReusesUnchangedFiles(t *testing.T) {
	treecmp.RequireRoot(t)
	src := fixtures.Path(t, "ext4")
	r := newRepo(t)
	_, m1 := importImage(t, r, src, "img:v1", image.ImportOptions{})

	// The same image again: every file with data is reused, none is read.
	st := importWithParent(t, r, src, "img:same", m1, false)
	if st.ReadBytes != 0 || st.ReusedFiles == 0 {
		t.Fatalf("unchanged re-import read %d bytes of %d files, reused %d files", st.ReadBytes, st.ReadFiles, st.ReusedFiles)
	}
	if out, _ := exportVersion(t, r, "img:same"); sha(t, out) != sha(t, src) {
		t.Fatal("re-imported version does not export byte-identical")
	}

	// A copy where the kernel rewrote one file: only that file is read.
	dir := t.TempDir()
	v2 := filepath.Join(dir, "v2.img")
	run(t, "cp", "--sparse=always", src, v2)
	mnt := filepath.Join(dir, "mnt")
	os.Mkdir(mnt, 0o755)
	run(t, "mount", "-o", "loop", v2, mnt)
	err := os.WriteFile(filepath.Join(mnt, "changed.txt"), []byte("new content\n"), 0o644)
	run(t, "umount", mnt)
	if err != nil {
		t.Fatal(err)
	}
	st = importWithParent(t, r, v2, "img:v2", m1, false)
	if st.ReadFiles != 1 || st.ReusedFiles == 0 {
		t.Fatalf("changed re-import read %d files (%d bytes), reused %d: want exactly the new file read", st.ReadFiles, st.ReadBytes, st.ReusedFiles)
	}
	if out, _ := exportVersion(t, r, "img:v2"); sha(t, out) != sha(t, v2) {
		t.Fatal("changed version does not export byte-identical")
	}

	// Data changed behind the filesystem's back (inode untouched) is what
	// --rehash is for: the heuristic cannot see it, rehash must.
	v3 := filepath.Join(dir, "v3.img")
	run(t, "cp", "--sparse=always", src, v3)
	victim := largestPlacedFile(m1)
	f, err := os.OpenFile(v3, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("scribble"), victim.Extents[0].DiskOff)
	f.Close()
	st = importWithParent(t, r, v3, "img:v3", m1, true)
	if st.ReusedFiles != 0 {
		t.Fatalf("--rehash reused %d files", st.ReusedFiles)
	}
	if out, _ := exportVersion(t, r, "img:v3"); sha(t, out) != sha(t, v3) {
		t.Fatal("rehashed version does not export byte-identical")
	}
}

func largestPlacedFile(m *manifest.Manifest) *manifest.Entry {
	var best *manifest.Entry
	for i := range m.Filesystems {
		for j := range m.Filesystems[i].Files {
			e := &m.Filesystems[i].Files[j]
			if len(e.Extents) > 0 && (best == nil || e.Size > best.Size) {
				best = e
			}
		}
	}
	return best
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v: %s", name, args, err, out)
	}
}
