package mountfs_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"mis/chunker"
	"mis/manifest"
	"mis/mountfs"
	"mis/repo"
	"mis/testkit/treecmp"
)

// A flipped byte in a pack makes exactly the reads that need that chunk
// fail with EIO, names the chunk in the log, and leaves the rest readable.
func TestDamagedChunkGivesEIO(t *testing.T) {
	src, r := imported(t, "ext4")
	ctx := context.Background()

	// Find the largest file's first chunk, and a file not using it.
	probe := mountVersion(t, r, "img:v1", mountfs.Options{})
	fsys := &probe.m.Filesystems[0]
	var victim *manifest.Entry
	for i := range fsys.Files {
		e := &fsys.Files[i]
		if e.IsRegular() && len(e.Extents) > 0 && (victim == nil || e.Size > victim.Size) && manifest.StreamSize(e.Content) > 1<<20 {
			victim = e
		}
	}
	if victim == nil {
		t.Fatal("no file with more than 1 MiB of content in the fixture")
	}
	bad := victim.Content[0].ID
	var healthy *manifest.Entry
	for i := range fsys.Files {
		e := &fsys.Files[i]
		if e.IsRegular() && len(e.Content) > 0 && e != victim && !usesChunk(e, bad) {
			healthy = e
			break
		}
	}
	if healthy == nil {
		t.Fatal("no file without the damaged chunk")
	}

	// Damage a copy of the repository.
	copyDir := filepath.Join(t.TempDir(), "repo")
	if out, err := exec.Command("cp", "-a", r.Dir(), copyDir).CombinedOutput(); err != nil {
		t.Fatalf("copy repository: %v: %s", err, out)
	}
	locs, err := r.Lookup(ctx, []chunker.ID{bad})
	if err != nil {
		t.Fatal(err)
	}
	loc := locs[bad]
	pack := filepath.Join(copyDir, "packs", loc.Pack[:2], loc.Pack+".pack")
	flipByte(t, pack, int64(loc.Offset)+int64(loc.StoredLen)/2)
	damaged, err := repo.Open(copyDir)
	if err != nil {
		t.Fatal(err)
	}
	mnt := mountVersion(t, damaged, "img:v1", mountfs.Options{})
	root := filepath.Join(mnt.dir, "p"+strconv.Itoa(fsys.PartIndex))

	victimPath := filepath.Join(root, string(trimSlash(victim.Paths[0])))
	if _, err := os.ReadFile(victimPath); !errors.Is(err, syscall.EIO) {
		t.Errorf("reading %s (damaged chunk): %v, want EIO", victimPath, err)
	}
	healthyPath := string(trimSlash(healthy.Paths[0]))
	got, err := os.ReadFile(filepath.Join(root, healthyPath))
	if err != nil {
		t.Fatalf("reading %s (intact): %v", healthyPath, err)
	}
	loop := treecmp.LoopMount(t, src, fsys.Offset, fsys.Size, "")
	want, err := os.ReadFile(filepath.Join(loop, healthyPath))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("%s: content differs from the loop mount", healthyPath)
	}

	// disk.raw: the victim's first extent fails, the partition table does not.
	disk, err := os.Open(filepath.Join(mnt.dir, "disk.raw"))
	if err != nil {
		t.Fatal(err)
	}
	defer disk.Close()
	buf := make([]byte, 4096)
	if _, err := disk.ReadAt(buf, victim.Extents[0].DiskOff); !errors.Is(err, syscall.EIO) {
		t.Errorf("reading disk.raw at the damaged chunk: %v, want EIO", err)
	}
	if _, err := mnt.fs.Disk().ReadAt(buf, victim.Extents[0].DiskOff); !errors.As(err, new(*mountfs.ChunkError)) {
		t.Errorf("disk view at the damaged chunk: %v, want a ChunkError", err)
	}
	if _, err := disk.ReadAt(buf, 0); err != nil {
		t.Errorf("reading disk.raw at 0: %v", err)
	}

	log := mnt.log.String()
	if !strings.Contains(log, bad.String()) {
		t.Errorf("log does not name the damaged chunk %s:\n%s", bad, log)
	}
	if n := strings.Count(log, "\n"); n != 1 {
		t.Errorf("the damaged chunk was logged %d times, want once:\n%s", n, log)
	}
}

func usesChunk(e *manifest.Entry, id chunker.ID) bool {
	for _, c := range e.Content {
		if c.ID == id {
			return true
		}
	}
	return false
}

func trimSlash(p []byte) []byte { return []byte(strings.TrimPrefix(string(p), "/")) }

func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x40
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// accessEnv makes the test binary print, for every path under a tree,
// whether the calling user may open it for reading.
const accessEnv = "MOUNTFS_TEST_ACCESS"

func accessReport(root string) string {
	var b strings.Builder
	filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		rel, _ := filepath.Rel(root, path)
		if err != nil {
			fmt.Fprintf(&b, "%s: walk: %v\n", rel, errors.Unwrap(err))
			return nil
		}
		if d.Type()&os.ModeSymlink != 0 || d.Type()&(os.ModeNamedPipe|os.ModeSocket|os.ModeDevice) != 0 {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			fmt.Fprintf(&b, "%s: %v\n", rel, errors.Unwrap(err))
			return nil
		}
		f.Close()
		fmt.Fprintf(&b, "%s: ok\n", rel)
		return nil
	})
	return b.String()
}

// Other users get exactly the access a loop mount gives them: modes and
// POSIX ACLs are enforced by the kernel (default_permissions + ACL support).
func TestPermissionsLikeLoopMount(t *testing.T) {
	src, r := imported(t, "ext4")
	mnt := mountVersion(t, r, "img:v1", mountfs.Options{})
	fsys := mnt.m.Filesystems[0]
	loop := treecmp.LoopMount(t, src, fsys.Offset, fsys.Size, "")
	got := filepath.Join(mnt.dir, "p"+strconv.Itoa(fsys.PartIndex))
	bin := worldExecutableCopy(t)
	for _, id := range []uint32{1000, 1001, 100, 65534} {
		want, have := accessAs(t, bin, id, loop), accessAs(t, bin, id, got)
		if want != have {
			t.Errorf("uid %d: access differs from the loop mount:\n%s", id, lineDiff(want, have))
		}
		if !strings.Contains(want, "denied") {
			t.Errorf("uid %d is denied nothing: the fixture does not exercise permissions", id)
		}
	}
}

func accessAs(t *testing.T, bin string, id uint32, root string) string {
	t.Helper()
	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Env = append(os.Environ(), accessEnv+"="+root)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: id, Gid: id}}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("access walk as uid %d: %v", id, err)
	}
	return string(out)
}

// worldExecutableCopy copies the test binary where other users can run it
// (go test's build directory is private to root).
func worldExecutableCopy(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "mountfs-access")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "mountfs.test")
	if out, err := exec.Command("cp", os.Args[0], bin).CombinedOutput(); err != nil {
		t.Fatalf("copy test binary: %v: %s", err, out)
	}
	return bin
}

func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := 0; i < max(len(w), len(g)) && b.Len() < 2000; i++ {
		var a, c string
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			c = g[i]
		}
		if a != c {
			fmt.Fprintf(&b, "  loop: %s\n  mis:  %s\n", a, c)
		}
	}
	return b.String()
}
