package main_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"mis/fixtures"
	"mis/testkit/treecmp"
)

// TestCLITreeCloneEditCommitFresh is the tree clones' end-to-end test: a tree
// clone is edited through its mount (add, modify, delete, rename, chmod,
// chown, setfattr, mkdir), committed, and exported fresh. The same edits
// made to a loop mount of a copy of the original image give the expected
// tree; the fresh export must match it on every attribute, so the edits are
// there and nothing else changed.
func TestCLITreeCloneEditCommitFresh(t *testing.T) {
	treecmp.RequireRoot(t)
	img := fixtures.Path(t, "ext4-kernel")
	repo := filepath.Join(t.TempDir(), "repo")
	mustMis(t, repo, "init")
	mustMis(t, repo, "import", "-q", img, "img:v1")
	mustMis(t, repo, "clone", "--tree", "img:v1", "web")

	// The expected tree: the same edits on a loop mount of a copy.
	want := filepath.Join(t.TempDir(), "want.img")
	run(t, "cp", "--sparse=always", img, want)
	wantDir := loopMount(t, want, false)

	dir := t.TempDir()
	cleanupMount(t, dir)
	t.Cleanup(func() { exec.Command(misBin, "--repo", repo, "umount", dir).Run() })
	mustMis(t, repo, "mount", "-d", "web", dir)
	cloneDir := filepath.Join(dir, "p0")

	files := plainFiles(t, wantDir, 6)
	for _, root := range []string{wantDir, cloneDir} {
		editTree(t, root, files)
	}
	// A mounted tree clone cannot be removed or committed.
	if _, errOut, code := mis(t, repo, "rm", "web"); code == 0 || !strings.Contains(errOut, "mounted") {
		t.Errorf("rm of a mounted tree clone: exit %d, %q", code, errOut)
	}
	mustMis(t, repo, "umount", dir)
	run(t, "umount", wantDir)

	mustMis(t, repo, "commit", "web", "img:v2")
	out := filepath.Join(t.TempDir(), "v2.raw")
	if _, errOut, code := mis(t, repo, "export", "img:v2", out); code == 0 || !strings.Contains(errOut, "--fresh") {
		t.Fatalf("exact export of a tree-edited version: exit %d, %q (want a refusal naming --fresh)", code, errOut)
	}
	mustMis(t, repo, "export", "-q", "--fresh", "img:v2", out)
	if err := exec.Command("e2fsck", "-fn", out).Run(); err != nil {
		t.Fatalf("e2fsck -fn of the fresh export: %v", err)
	}
	gotDir := loopMount(t, out, true)
	wantRO := loopMount(t, want, true)
	diffs, err := treecmp.Compare(wantRO, gotDir, treecmp.Options{Skip: map[string]bool{"lost+found": true}})
	if err != nil {
		t.Fatal(err)
	}
	if len(diffs) > 0 {
		t.Fatalf("fresh export of the committed tree clone differs from the edited copy:\n%s", strings.Join(diffs, "\n"))
	}
	// And the comparison sees the edits: against the original, every
	// edited path differs.
	orig := loopMount(t, img, true)
	if diffs := diffsOrig(t, orig, gotDir); len(diffs) < len(files)+3 {
		t.Fatalf("only %d differences against the unedited original: %v", len(diffs), diffs)
	}
	// The base still exports byte-identical.
	base := filepath.Join(t.TempDir(), "v1.raw")
	mustMis(t, repo, "export", "-q", "img:v1", base)
	run(t, "cmp", img, base)
	mustMis(t, repo, "rm", "web")
}

// plainFiles picks n regular files with one link, in a stable order.
func plainFiles(t *testing.T, root string, n int) []string {
	t.Helper()
	var out []string
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil || !fi.Mode().IsRegular() || fi.Sys().(*syscall.Stat_t).Nlink != 1 || strings.Contains(p, "lost+found") {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		out = append(out, rel)
		return nil
	})
	sort.Strings(out)
	if len(out) < n {
		t.Fatalf("%s has only %d plain files", root, len(out))
	}
	return out[:n]
}

// editTree makes the same edits under root, with fixed times so both trees
// can be compared on every attribute except ctime and atime.
func editTree(t *testing.T, root string, files []string) {
	t.Helper()
	p := func(rel string) string { return filepath.Join(root, rel) }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(p("added.txt"), []byte("added through the clone\n"), 0o644))
	must(os.Mkdir(p("newdir"), 0o750))
	must(os.WriteFile(p("newdir/inner.bin"), make([]byte, 70000), 0o600))
	f, err := os.OpenFile(p(files[0]), os.O_WRONLY|os.O_APPEND, 0)
	must(err)
	_, err = f.WriteString("appended\n")
	must(err)
	must(f.Close())
	must(os.Remove(p(files[1])))
	must(os.Rename(p(files[2]), p(files[2]+".renamed")))
	must(os.Chmod(p(files[3]), 0o600))
	must(os.Lchown(p(files[4]), 1234, 5678))
	run(t, "setfattr", "-n", "user.mis", "-v", "edited", p(files[5]))
	touched := []string{"added.txt", "newdir/inner.bin", "newdir", files[0], files[2] + ".renamed"}
	for _, f := range files {
		touched = append(touched, filepath.Dir(f))
	}
	for _, rel := range append(touched, ".") {
		run(t, "touch", "-h", "-m", "-d", "@1600000000.123456789", p(rel))
	}
}

// loopMount mounts a bare filesystem image and unmounts it at cleanup.
func loopMount(t *testing.T, img string, ro bool) string {
	t.Helper()
	dir := t.TempDir()
	opts := "loop"
	if ro {
		opts += ",ro,noload"
	}
	run(t, "mount", "-o", opts, img, dir)
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	return dir
}

// diffsOrig compares two trees, logging the differences.
func diffsOrig(t *testing.T, a, b string) []string {
	t.Helper()
	d, err := treecmp.Compare(a, b, treecmp.Options{Skip: map[string]bool{"lost+found": true}})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range d {
		t.Log(s)
	}
	return d
}
