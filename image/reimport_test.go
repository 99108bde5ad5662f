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
	"mis/testkit/treecmp"
)

// importWithParent imports path as ref with parent's manifest and returns
// the import's reuse figures.
func importWithParent(t *testing.T, r *repo.Repo, path, ref string, parent *manifest.Manifest, opt image.ImportOptions) image.ImportStats {
	t.Helper()
	ctx := context.Background()
	w, err := r.OpenWriter(ctx, "test import")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	m, st, err := image.ImportWithStats(ctx, w, r.Config().Chunker, path, withParent(opt, parent))
	if err != nil {
		t.Fatal(err)
	}
	lr, _ := layer.ParseRef(ref)
	if err := layer.Save(ctx, w, lr, &layer.Version{Source: path}, m); err != nil {
		t.Fatal(err)
	}
	return st
}

func withParent(opt image.ImportOptions, parent *manifest.Manifest) image.ImportOptions {
	opt.Parent = parent
	return opt
}

// TestReimportReadsUnchangedFiles: with a parent, every file is still read
// and hashed (its chunks, already stored, cost nothing); files whose inode
// is unchanged are counted as verified, or as changed under the inode when
// their bytes differ. --trust-metadata skips reading them, and is blind to
// exactly that case.
func TestReimportReadsUnchangedFiles(t *testing.T) {
	treecmp.RequireRoot(t)
	src := fixtures.Path(t, "ext4")
	r := newRepo(t)
	_, m1 := importImage(t, r, src, "img:v1", image.ImportOptions{})

	// The same image again: every file read, every one verified.
	st := importWithParent(t, r, src, "img:same", m1, image.ImportOptions{})
	if st.ReusedFiles != 0 || st.ReadFiles == 0 || st.VerifiedFiles == 0 || st.ChangedUnderInode != 0 {
		t.Fatalf("unchanged re-import: %+v", st)
	}
	if out, _ := exportVersion(t, r, "img:same"); sha(t, out) != sha(t, src) {
		t.Fatal("re-imported version does not export byte-identical")
	}
	trusted := importWithParent(t, r, src, "img:trusted", m1, image.ImportOptions{TrustMetadata: true})
	if trusted.ReadBytes != 0 || trusted.ReusedBytes != st.VerifiedBytes {
		t.Fatalf("--trust-metadata re-import read %d bytes, reused %d bytes (verified %d)", trusted.ReadBytes, trusted.ReusedBytes, st.VerifiedBytes)
	}

	// A copy where the kernel rewrote one file: its inode is new, the
	// others are verified.
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
	st = importWithParent(t, r, v2, "img:v2", m1, image.ImportOptions{})
	if st.ChangedUnderInode != 0 || st.VerifiedFiles != st.ReadFiles-1 {
		t.Fatalf("changed re-import: %+v: want every file but the new one verified", st)
	}
	if out, _ := exportVersion(t, r, "img:v2"); sha(t, out) != sha(t, v2) {
		t.Fatal("changed version does not export byte-identical")
	}

	// Data changed behind the filesystem's back (inode untouched): the
	// default import sees it; --trust-metadata cannot.
	v3 := filepath.Join(dir, "v3.img")
	run(t, "cp", "--sparse=always", src, v3)
	victim := largestPlacedFile(m1)
	f, err := os.OpenFile(v3, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("scribble"), victim.Extents[0].DiskOff)
	f.Close()
	st = importWithParent(t, r, v3, "img:v3", m1, image.ImportOptions{})
	if st.ChangedUnderInode != 1 {
		t.Fatalf("scribbled re-import: %+v: want the scribbled file changed under its inode", st)
	}
	if out, _ := exportVersion(t, r, "img:v3"); sha(t, out) != sha(t, v3) {
		t.Fatal("scribbled version does not export byte-identical")
	}
	importWithParent(t, r, v3, "img:v3-trusted", m1, image.ImportOptions{TrustMetadata: true})
	if out, _ := exportVersion(t, r, "img:v3-trusted"); sha(t, out) == sha(t, v3) {
		t.Fatal("--trust-metadata saw a raw write: then it is not the blind shortcut its callers are told it is")
	}
	st = importWithParent(t, r, v3, "img:v3-rehash", m1, image.ImportOptions{Rehash: true})
	if st.ReusedFiles != 0 || st.VerifiedFiles != 0 {
		t.Fatalf("--rehash used the parent: %+v", st)
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
