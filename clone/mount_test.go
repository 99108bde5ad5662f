package clone_test

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"mis/clone"
	"mis/image"
	"mis/layer"
	"mis/manifest"
	"mis/mountfs"
	"mis/repo"
	"mis/testkit/testrepo"
	"mis/testkit/treecmp"
)

const fusectlDir = "/sys/fs/fuse/connections"

func TestMain(m *testing.M) {
	if os.Geteuid() == 0 {
		if _, ok, _ := mountfs.FindMount(fusectlDir); !ok {
			exec.Command("mount", "-t", "fusectl", "none", fusectlDir).Run()
		}
	}
	os.Exit(m.Run())
}

// env is a repository holding one imported fixture, img:v1, with its
// base view ready for clones.
type env struct {
	src     string
	repoDir string
	r       *repo.Repo
	v       *layer.Version
	fs      *mountfs.FS
	store   *clone.Store
}

func newEnv(t testing.TB, kind string) *env {
	t.Helper()
	treecmp.RequireRoot(t)
	e := &env{}
	var r *repo.Repo
	e.src, r, _ = testrepo.Fixture(t, kind)
	e.r, e.repoDir = r, r.Dir()
	ctx := context.Background()
	ref := layer.Ref{Name: "img", Tag: "v1"}
	var m *manifest.Manifest
	var err error
	e.v, m, err = layer.Load(ctx, r, ref)
	if err != nil {
		t.Fatal(err)
	}
	if e.fs, err = mountfs.New(ctx, r, m, mountfs.Options{Logger: log.New(os.Stderr, "mountfs: ", 0)}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.fs.Close() })
	e.store = clone.Open(e.repoDir)
	return e
}

func (e *env) create(t testing.TB, names ...string) {
	t.Helper()
	if _, err := e.store.Create(clone.Base{VersionID: e.v.ID, Ref: "img:v1", DiskSize: e.v.DiskSize}, names, clone.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// mount mounts clone name writable; the returned function unmounts it
// (also run at cleanup).
func (e *env) mount(t testing.TB, name string) (dir string, unmount func()) {
	t.Helper()
	d, err := e.store.OpenDisk(name, e.fs.Disk(), clone.DiskOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dir = t.TempDir()
	srv, err := e.fs.MountWritable(dir, d, mountfs.MountOptions{FsName: "mis:" + name})
	if err != nil {
		d.Close()
		t.Fatal(err)
	}
	done := false
	unmount = func() {
		if done {
			return
		}
		done = true
		if err := srv.Unmount(); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
			if mi, ok, _ := mountfs.FindMount(dir); ok {
				os.WriteFile(fmt.Sprintf("%s/%d/abort", fusectlDir, mi.Minor), []byte("1"), 0)
			}
			mountfs.Unmount(dir, true)
		}
		srv.Wait()
		if err := d.Close(); err != nil {
			t.Error(err)
		}
	}
	t.Cleanup(unmount)
	return dir, unmount
}

// pwriteSync writes p at off into DIR/disk.raw and fsyncs.
func pwriteSync(t testing.TB, dir string, off int64, p []byte) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, "disk.raw"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(p, off); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func TestMountedCloneWritesReadBackAndBaseStays(t *testing.T) {
	e := newEnv(t, "ext4")
	e.create(t, "vm")
	model := readFile(t, e.src)
	dir, unmount := e.mount(t, "vm")
	if got := readFile(t, filepath.Join(dir, "disk.raw")); !bytes.Equal(got, model) {
		t.Fatalf("a fresh clone differs from its base at byte %d", firstDiff(got, model))
	}
	rng := rand.New(rand.NewSource(3))
	for i := 0; i < 50; i++ {
		off := rng.Int63n(int64(len(model)) - 70000)
		p := make([]byte, 1+rng.Intn(70000))
		rng.Read(p)
		pwriteSync(t, dir, off, p)
		copy(model[off:], p)
	}
	if got := readFile(t, filepath.Join(dir, "disk.raw")); !bytes.Equal(got, model) {
		t.Fatalf("clone after writes differs from the model at byte %d", firstDiff(got, model))
	}
	unmount()
	checkHoles(t, e, "vm", model)
	// Remounted, nothing comes from the kernel's cache of the old mount.
	dir, _ = e.mount(t, "vm")
	if got := readFile(t, filepath.Join(dir, "disk.raw")); !bytes.Equal(got, model) {
		t.Fatalf("remounted clone differs from the model at byte %d", firstDiff(got, model))
	}
	// The base version still exports byte for byte as imported.
	_, m, err := layer.Load(context.Background(), e.r, layer.Ref{Name: "img", Tag: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "base.raw")
	if err := image.Export(context.Background(), e.r, m, out, image.ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := exec.Command("cmp", e.src, out).Run(); err != nil {
		t.Fatalf("base export differs from the imported image after clone writes: %v", err)
	}
	// A resize is refused.
	if err := os.Truncate(filepath.Join(dir, "disk.raw"), 4096); err == nil {
		t.Error("truncating a clone's disk.raw succeeded")
	}
}

// TestThousandClonesTwentyMounted is the clones' scale goal: 1,000 clones
// of one base made in one call, and 20 of them mounted at once with
// independent writes.
func TestThousandClonesTwentyMounted(t *testing.T) {
	e := newEnv(t, "ext4")
	before := duBytes(t, e.repoDir)
	names := make([]string, 1000)
	for i := range names {
		names[i] = fmt.Sprintf("vm%04d", i)
	}
	start := time.Now()
	e.create(t, names...)
	elapsed := time.Since(start)
	added := duBytes(t, e.repoDir) - before
	t.Logf("1000 clones: created in %v, repository grew by %d bytes (du)", elapsed, added)
	if list, err := e.store.List(); err != nil || len(list) != 1000 {
		t.Fatalf("list: %d clones, %v", len(list), err)
	}
	if added >= 1<<20 {
		t.Errorf("1000 clones added %d bytes, the goal is under 1 MiB", added)
	}

	// 20 mounted at once; each writes its own number over the same blocks.
	const n = 20
	dirs := make([]string, n)
	unmounts := make([]func(), n)
	for i := range n {
		dirs[i], unmounts[i] = e.mount(t, names[i*50])
	}
	const off = 1<<20 + 512
	for i := range n {
		pwriteSync(t, dirs[i], off, bytes.Repeat([]byte{byte(i + 1)}, 10000))
	}
	orig := readFile(t, e.src)[off : off+10000]
	for i := range n {
		f, err := os.Open(filepath.Join(dirs[i], "disk.raw"))
		if err != nil {
			t.Fatal(err)
		}
		got := make([]byte, 12000)
		f.ReadAt(got, off-1000)
		f.Close()
		if !bytes.Equal(got[1000:11000], bytes.Repeat([]byte{byte(i + 1)}, 10000)) || !bytes.Equal(got[:1000], readFile(t, e.src)[off-1000:off]) {
			t.Errorf("clone %s does not read back its own write", names[i*50])
		}
	}
	for _, u := range unmounts {
		u()
	}
	// From the deltas themselves: each clone holds its write only, and an
	// unmounted clone none.
	for _, c := range []struct {
		name string
		want []byte
	}{
		{names[0], bytes.Repeat([]byte{1}, 10000)},
		{names[50], bytes.Repeat([]byte{2}, 10000)},
		{names[950], bytes.Repeat([]byte{20}, 10000)},
		{names[1], orig}, // never mounted
	} {
		d, err := e.store.OpenDisk(c.name, e.fs.Disk(), clone.DiskOptions{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		got := make([]byte, 10000)
		d.ReadAt(got, off)
		d.Close()
		if !bytes.Equal(got, c.want) {
			t.Errorf("clone %s: delta holds the wrong bytes (first %d, want %d)", c.name, got[0], c.want[0])
		}
	}
}

func duBytes(t testing.TB, dir string) int64 {
	t.Helper()
	var total int64
	err := filepath.Walk(dir, func(path string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		total += statBlocks(path)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return total
}

// checkHoles walks the clone's NextData/NextHole (what commit's importer
// skips) and checks that every byte it calls a hole is zero.
func checkHoles(t *testing.T, e *env, name string, model []byte) {
	t.Helper()
	d, err := e.store.OpenDisk(name, e.fs.Disk(), clone.DiskOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var pos, holes int64
	for pos < d.Size() {
		data, ok := d.NextData(pos)
		if !ok {
			data = d.Size()
		}
		if data < pos {
			t.Fatalf("NextData(%d) = %d, before the offset", pos, data)
		}
		if !bytes.Equal(model[pos:data], make([]byte, data-pos)) {
			t.Fatalf("bytes [%d, %d) are called a hole but are not zero (first non-zero at %d)", pos, data, pos+int64(firstDiff(model[pos:data], make([]byte, data-pos))))
		}
		holes += data - pos
		if !ok {
			break
		}
		pos = d.NextHole(data)
		if pos <= data && data < d.Size() {
			t.Fatalf("NextHole(%d) = %d: no progress", data, pos)
		}
	}
	t.Logf("clone %s: %d of %d bytes are holes", name, holes, d.Size())
	if holes == 0 {
		t.Error("no holes found in a mostly empty filesystem image")
	}
}
