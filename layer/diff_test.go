package layer_test

import (
	"context"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"mis/chunker"
	"mis/fixtures"
	"mis/image"
	"mis/layer"
	"mis/manifest"
	"mis/repo"
	"mis/testkit/testrepo"
	"mis/testkit/treecmp"
)

func entry(ino uint32, paths ...string) manifest.Entry {
	e := manifest.Entry{Ino: ino, Mode: manifest.ModeRegular | 0o644, Nlink: uint32(len(paths)), Size: 3,
		Mtime: 1, Ctime: 1, Atime: 1, Crtime: 1, Content: []manifest.Ref{{ID: chunker.Sum([]byte("abc")), Size: 3}}}
	for _, p := range paths {
		e.Paths = append(e.Paths, []byte(p))
	}
	return e
}

func TestDiffHandMade(t *testing.T) {
	a := &manifest.Manifest{Filesystems: []manifest.Filesystem{{PartIndex: 1, Files: []manifest.Entry{
		entry(1, "same"), entry(2, "gone"), entry(3, "content"), entry(4, "meta"),
		entry(5, "link1", "link2"), entry(6, "names/\xff\xfe"), entry(7, "xattr"), entry(8, "type"),
	}}, {PartIndex: 2, Files: []manifest.Entry{entry(1, "only-in-a")}}}}
	b := &manifest.Manifest{Filesystems: []manifest.Filesystem{{PartIndex: 1, Files: []manifest.Entry{
		entry(11, "same"), entry(3, "content"), entry(4, "meta"),
		entry(5, "link1", "link2", "link3"), entry(6, "names/\xff\xfe"), entry(7, "xattr"), entry(8, "type"), entry(9, "new"),
	}}}}
	fb := b.Filesystems[0].Files
	fb[1].Content = []manifest.Ref{{ID: chunker.Sum([]byte("abd")), Size: 3}}
	fb[1].Mtime = 2
	fb[2].Mode = manifest.ModeRegular | 0o4755
	fb[2].UID, fb[2].Ctime, fb[2].Atime, fb[2].Crtime = 1000, 5, 6, 7
	fb[3].Nlink = 3
	fb[4].RdevMinor = 1 // odd for a file, but Diff only compares
	fb[5].Xattrs = []manifest.Xattr{{Name: "user.x", Value: []byte("1")}}
	fb[6].Mode = manifest.ModeSymlink | 0o777
	fb[6].Symlink = []byte("target")
	fb[6].Content = nil
	fb[6].Size = 6

	got := map[string]string{}
	for _, c := range layer.Diff(a, b) {
		got[c.Display] = c.Kind + " " + strings.Join(c.What, ",")
	}
	want := map[string]string{
		"/gone":             "removed ",
		"/new":              "added ",
		"/content":          "changed content,mtime",
		"/meta":             "changed mode,owner,ctime,atime,crtime",
		"/link1":            "changed hardlinks,nlink",
		"/link2":            "changed hardlinks,nlink",
		"/link3":            "added ",
		`"/names/\xff\xfe"`: "changed rdev",
		"/xattr":            "changed xattrs",
		"/type":             "changed type,content,size,mode,symlink",
		"/only-in-a":        "removed ",
	}
	compareDiff(t, got, want)
	if d := layer.Diff(a, a); len(d) != 0 {
		t.Fatalf("a manifest differs from itself: %v", d)
	}
}

func compareDiff(t *testing.T, got, want map[string]string) {
	t.Helper()
	var keys []string
	for k := range got {
		keys = append(keys, k)
	}
	for k := range want {
		if _, ok := got[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		if got[k] != want[k] {
			t.Errorf("%s: got %q, want %q", k, got[k], want[k])
		}
	}
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v: %s", name, args, err, out)
	}
}

// changedCopy copies fixture ext4 and changes it through a kernel loop
// mount (noatime, so reads change nothing): it returns the copy and the
// changes Diff must report, keyed by display path.
func changedCopy(t *testing.T, src string) (string, map[string]string) {
	t.Helper()
	treecmp.RequireRoot(t)
	dir := t.TempDir()
	img := filepath.Join(dir, "v2.img")
	run(t, "cp", "--sparse=always", src, img)
	mnt := filepath.Join(dir, "mnt")
	os.Mkdir(mnt, 0o755)
	run(t, "mount", "-o", "loop,noatime", img, mnt)
	mounted := true
	defer func() {
		if mounted {
			exec.Command("umount", mnt).Run()
		}
	}()
	// Six distinct single-link regular files, not in the root directory.
	var picks []string
	filepath.Walk(mnt, func(p string, fi os.FileInfo, err error) error {
		if err != nil || len(picks) == 6 {
			return filepath.SkipDir
		}
		rel, _ := filepath.Rel(mnt, p)
		if fi.IsDir() && (rel == "bigdir" || rel == "lost+found") {
			return filepath.SkipDir
		}
		if fi.Mode().IsRegular() && fi.Size() > 0 && strings.Contains(rel, "/") && nlink(fi) == 1 {
			picks = append(picks, rel)
		}
		return nil
	})
	if len(picks) < 6 {
		t.Fatalf("fixture has only %d single-link files: %v", len(picks), picks)
	}
	want := map[string]string{}
	set := func(rel, what string) { want[layer.DisplayPath([]byte(rel))] = what }
	abs := func(rel string) string { return filepath.Join(mnt, rel) }

	modify, del, own, mode, xattr, touch := picks[0], picks[1], picks[2], picks[3], picks[4], picks[5]
	f, err := os.OpenFile(abs(modify), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	old, _ := os.ReadFile(abs(modify))
	repl := []byte(strings.Repeat("Z", min(len(old), 100)))
	if string(old[:len(repl)]) == string(repl) {
		repl[0] = 'Y'
	}
	f.WriteAt(repl, 0)
	f.Close()
	set(modify, "changed content,mtime,ctime")
	if err := os.Remove(abs(del)); err != nil {
		t.Fatal(err)
	}
	set(del, "removed ")
	set(filepath.Dir(del), "changed mtime,ctime")
	// 2 MiB of random bytes: the version's own data, which gc frees once
	// the version is removed.
	added := make([]byte, 2<<20)
	rand.Read(added)
	if err := os.WriteFile(abs("added.txt"), added, 0o640); err != nil {
		t.Fatal(err)
	}
	set("added.txt", "added ")
	set("", "changed mtime,ctime")
	if err := os.Chown(abs(own), 4321, 8765); err != nil {
		t.Fatal(err)
	}
	set(own, "changed owner,ctime")
	if err := os.Chmod(abs(mode), 0o4711); err != nil {
		t.Fatal(err)
	}
	set(mode, "changed mode,ctime")
	run(t, "setfattr", "-n", "user.mis-diff", "-v", "changed", abs(xattr))
	set(xattr, "changed xattrs,ctime")
	run(t, "touch", "-d", "2022-02-02 02:02:02.5", abs(touch))
	set(touch, "changed mtime,ctime,atime")
	run(t, "umount", mnt)
	mounted = false
	return img, want
}

func nlink(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Nlink)
	}
	return 0
}

func newRepo(t *testing.T) *repo.Repo { return testrepo.New(t) }

func importImage(t *testing.T, r *repo.Repo, path, ref string) *layer.Version {
	v, _ := testrepo.Import(t, r, path, ref, image.ImportOptions{})
	return v
}

func loadManifest(t *testing.T, r *repo.Repo, ref string) *manifest.Manifest {
	t.Helper()
	lr, _ := layer.ParseRef(ref)
	_, m, err := layer.Load(context.Background(), r, lr)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestDiffKernelChanges(t *testing.T) {
	src := fixtures.Path(t, "ext4")
	changed, want := changedCopy(t, src)
	r := newRepo(t)
	importImage(t, r, src, "img:v1")
	importImage(t, r, changed, "img:v2")
	got := map[string]string{}
	for _, c := range layer.Diff(loadManifest(t, r, "img:v1"), loadManifest(t, r, "img:v2")) {
		got[c.Display] = c.Kind + " " + strings.Join(c.What, ",")
	}
	for k, v := range got {
		t.Logf("%s: %s", k, v)
	}
	if len(want) < 9 {
		t.Fatalf("only %d expected changes: %v", len(want), want)
	}
	compareDiff(t, got, want)
}
