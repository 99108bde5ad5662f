package mountfs_test

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"mis/mountfs"
	"mis/testkit/treecmp"
)

// diskKinds cover a bare filesystem, inline data, 1 KiB blocks, a
// kernel-written filesystem with holes, and both partition tables.
var diskKinds = []string{"ext4", "ext4-inline", "ext4-1k", "ext4-kernel", "gpt", "mbr"}

// treeKinds are fewer: comparing a tree reads every file on both sides,
// ~20 s per hard tree (its 3 GiB sparse file). ext4-inline has the whole
// hard tree plus inline data, ext4-1k the small-block variant, gpt a
// partition at an offset, ext4-kernel kernel-written extents and holes.
// squashfs is a walked secondary filesystem (detached content); gpt and
// mbr also carry FAT32, which is compared only where the kernel has vfat.
var treeKinds = []string{"ext4-inline", "ext4-1k", "ext4-kernel", "gpt", "squashfs"}

func TestDiskRawIsTheImage(t *testing.T) {
	for _, kind := range diskKinds {
		t.Run(kind, func(t *testing.T) {
			src, r := imported(t, kind)
			mnt := mountVersion(t, r, "img:v1", mountfs.Options{})
			want, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			disk := filepath.Join(mnt.dir, "disk.raw")
			st, err := os.Stat(disk)
			if err != nil {
				t.Fatal(err)
			}
			if st.Size() != int64(len(want)) {
				t.Fatalf("disk.raw is %d bytes, the image %d", st.Size(), len(want))
			}
			rng := rand.New(rand.NewPCG(1, uint64(len(kind))))
			// Random reads first, while neither cache holds anything.
			f, err := os.Open(disk)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			checkRandomReads(t, "disk.raw through FUSE", f, want, rng, 300)
			// The view directly: unaligned offsets FUSE never sends.
			checkRandomReads(t, "disk view", mnt.fs.Disk(), want, rng, 2000)
			got, err := os.ReadFile(disk)
			if err != nil {
				t.Fatal(err)
			}
			if i := firstDiff(got, want); i >= 0 {
				t.Fatalf("disk.raw differs from the image at byte %d", i)
			}
		})
	}
}

func checkRandomReads(t *testing.T, what string, r io.ReaderAt, want []byte, rng *rand.Rand, n int) {
	t.Helper()
	size := int64(len(want))
	for i := 0; i < n; i++ {
		off := rng.Int64N(size + 1)
		buf := make([]byte, rng.IntN(300<<10)+1)
		got, err := r.ReadAt(buf, off)
		wantN := min(int64(len(buf)), size-off)
		if err != nil && !(errors.Is(err, io.EOF) && int64(got) == wantN && wantN < int64(len(buf))) {
			t.Fatalf("%s: read %d bytes at %d: %v", what, len(buf), off, err)
		}
		if int64(got) != wantN {
			t.Fatalf("%s: read %d bytes at %d returned %d, want %d", what, len(buf), off, got, wantN)
		}
		if !bytes.Equal(buf[:got], want[off:off+wantN]) {
			t.Fatalf("%s: read %d bytes at %d: wrong bytes (first difference at +%d)", what, len(buf), off, firstDiff(buf[:got], want[off:off+wantN]))
		}
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}

// The loop mount of the original image is the truth for every attribute.
func TestTreesMatchLoopMount(t *testing.T) {
	for _, kind := range treeKinds {
		t.Run(kind, func(t *testing.T) {
			src, r := imported(t, kind)
			mnt := mountVersion(t, r, "img:v1", mountfs.Options{})
			if len(mnt.m.Filesystems) == 0 {
				t.Fatalf("no filesystem walked in %s", kind)
			}
			entries, err := os.ReadDir(mnt.dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != 1+len(mnt.m.Filesystems) {
				t.Errorf("mount root lists %d entries, want disk.raw and %d partitions", len(entries), len(mnt.m.Filesystems))
			}
			for _, fs := range mnt.m.Filesystems {
				opt, ok := compareOptions(fs.Type)
				if !ok {
					t.Logf("partition %d: this kernel cannot mount %s; not compared", fs.PartIndex, fs.Type)
					continue
				}
				want := treecmp.LoopMount(t, src, fs.Offset, fs.Size, fs.Type)
				got := filepath.Join(mnt.dir, "p"+strconv.Itoa(fs.PartIndex))
				diffs, err := treecmp.Compare(want, got, opt)
				if err != nil {
					t.Fatal(err)
				}
				for _, d := range diffs {
					t.Errorf("partition %d: %s", fs.PartIndex, d)
				}
			}
			if s := mnt.log.String(); s != "" {
				t.Errorf("serving logged problems:\n%s", s)
			}
		})
	}
}

func TestMountBasics(t *testing.T) {
	_, r := imported(t, "gpt")
	mnt := mountVersion(t, r, "img:v1", mountfs.Options{})
	mi, ok, err := mountfs.FindMount(mnt.dir)
	if err != nil || !ok {
		t.Fatalf("FindMount(%s) = %v, %v", mnt.dir, ok, err)
	}
	if mi.FSType != "fuse.mis" || mi.Source != "mis:img:v1" {
		t.Errorf("mount is %s from %q, want fuse.mis from mis:img:v1", mi.FSType, mi.Source)
	}
	disk := filepath.Join(mnt.dir, "disk.raw")
	if _, err := os.OpenFile(disk, os.O_RDWR, 0); !errors.Is(err, syscall.EROFS) {
		t.Errorf("opening disk.raw for writing: %v, want EROFS", err)
	}
	if err := os.WriteFile(filepath.Join(mnt.dir, "p"+strconv.Itoa(mnt.m.Filesystems[0].PartIndex), "new"), nil, 0o644); !errors.Is(err, syscall.EROFS) {
		t.Errorf("creating a file: %v, want EROFS", err)
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(mnt.dir, &st); err != nil {
		t.Fatal(err)
	}
	if st.Blocks == 0 || st.Flags&0x1 == 0 { // ST_RDONLY
		t.Errorf("statfs: %d blocks, flags %#x: want the disk size and read-only", st.Blocks, st.Flags)
	}
	// A sequential read must have prefetched.
	if _, err := os.ReadFile(disk); err != nil {
		t.Fatal(err)
	}
	if s := mnt.fs.Stats(); s.Prefetched == 0 || s.Misses == 0 {
		t.Errorf("after a sequential read: %+v, want prefetched chunks", s)
	}
	if _, err := mountfs.Unmount(filepath.Join(mnt.dir, "p"+strconv.Itoa(mnt.m.Filesystems[0].PartIndex)), false); !errors.Is(err, mountfs.ErrNotMounted) {
		t.Errorf("Unmount of a non-mount-point: %v, want ErrNotMounted", err)
	}
}

func TestCacheStaysBounded(t *testing.T) {
	_, r := imported(t, "ext4")
	const limit = 2 << 20
	mnt := mountVersion(t, r, "img:v1", mountfs.Options{CacheSize: limit, Readahead: 1 << 20})
	want, err := os.ReadFile(filepath.Join(mnt.dir, "disk.raw"))
	if err != nil {
		t.Fatal(err)
	}
	s := mnt.fs.Stats()
	if s.CachedBytes > limit || s.CachedBytes == 0 {
		t.Errorf("cache holds %d bytes with a limit of %d", s.CachedBytes, limit)
	}
	// Reading again through the view must still be right with a tiny cache.
	rng := rand.New(rand.NewPCG(7, 7))
	checkRandomReads(t, "disk view, small cache", mnt.fs.Disk(), want, rng, 500)
}

func TestUnmountAfterServerKilled(t *testing.T) {
	_, r := imported(t, "ext4")
	dir := t.TempDir()
	srv := startServer(t, r.Dir(), "img:v1", dir)
	t.Cleanup(func() { abortMount(dir) })
	if _, err := os.Stat(filepath.Join(dir, "p0")); err != nil {
		t.Fatalf("mount not serving: %v", err)
	}
	if err := srv.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	srv.Wait()
	if _, err := os.Stat(filepath.Join(dir, "disk.raw")); !errors.Is(err, syscall.ENOTCONN) {
		t.Logf("after kill -9, stat gives %v (expected ENOTCONN)", err)
	}
	if _, ok, _ := mountfs.FindMount(dir); !ok {
		t.Fatal("mount vanished by itself after kill -9; the test proves nothing")
	}
	if _, err := mountfs.Unmount(dir, false); err != nil {
		t.Fatalf("unmount after the server died: %v", err)
	}
	if _, ok, _ := mountfs.FindMount(dir); ok {
		t.Fatal("still mounted after Unmount")
	}
}

func TestUnmountBusyNeedsLazy(t *testing.T) {
	_, r := imported(t, "ext4")
	dir := t.TempDir()
	srv := startServer(t, r.Dir(), "img:v1", dir)
	t.Cleanup(func() {
		abortMount(dir)
		srv.Process.Kill()
		srv.Wait()
	})
	f, err := os.Open(filepath.Join(dir, "disk.raw"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = mountfs.Unmount(dir, false)
	if err == nil || !strings.Contains(err.Error(), "busy") {
		t.Errorf("unmount with an open file: %v, want a busy error", err)
	}
	detached, err := mountfs.Unmount(dir, true)
	if err != nil || !detached {
		t.Fatalf("lazy unmount: detached=%v err=%v", detached, err)
	}
	if _, ok, _ := mountfs.FindMount(dir); ok {
		t.Error("still mounted after a lazy unmount")
	}
	f.Close()
	if err := srv.Wait(); err != nil {
		t.Errorf("server after its mount went away: %v", err)
	}
}

// SEEK_DATA/SEEK_HOLE follow the extents: holes of sparse files and zero
// runs of the disk are skipped by sparse-aware tools.
func TestSeekDataAndHole(t *testing.T) {
	_, r := imported(t, "ext4-kernel")
	mnt := mountVersion(t, r, "img:v1", mountfs.Options{})
	fsys := &mnt.m.Filesystems[0]
	root := filepath.Join(mnt.dir, "p"+strconv.Itoa(fsys.PartIndex))
	checked, sparse := 0, 0
	for i := range fsys.Files {
		e := &fsys.Files[i]
		if !e.IsRegular() || len(e.Extents) == 0 {
			continue
		}
		f, err := os.Open(filepath.Join(root, strings.TrimPrefix(string(e.Paths[0]), "/")))
		if err != nil {
			t.Fatal(err)
		}
		x := e.Extents[0]
		end := x.FileOff + x.Len
		for _, y := range e.Extents[1:] {
			if y.FileOff != end {
				break
			}
			end += y.Len
		}
		if d, err := unix.Seek(int(f.Fd()), 0, unix.SEEK_DATA); err != nil || d != x.FileOff {
			t.Errorf("%q: SEEK_DATA from 0 = %d, %v; want %d", e.Paths[0], d, err, x.FileOff)
		}
		if h, err := unix.Seek(int(f.Fd()), x.FileOff, unix.SEEK_HOLE); err != nil || h != end {
			t.Errorf("%q: SEEK_HOLE from %d = %d, %v; want %d", e.Paths[0], x.FileOff, h, err, end)
		}
		if x.FileOff > 0 || end < int64(e.Size) {
			sparse++
		}
		f.Close()
		checked++
	}
	if checked == 0 || sparse == 0 {
		t.Fatalf("checked %d files, %d sparse: the fixture does not exercise holes", checked, sparse)
	}
	disk, err := os.Open(filepath.Join(mnt.dir, "disk.raw"))
	if err != nil {
		t.Fatal(err)
	}
	defer disk.Close()
	h, err := unix.Seek(int(disk.Fd()), 0, unix.SEEK_HOLE)
	if err != nil || h <= 0 || h >= mnt.m.DiskSize {
		t.Errorf("disk.raw SEEK_HOLE from 0 = %d, %v: want a hole inside the disk", h, err)
	}
}

// compareOptions says which attributes a walked filesystem keeps exactly
// as the kernel shows them, and whether this kernel can mount it at all.
// ext and squashfs: every time (squashfs's one time is all three). FAT has
// no ctime and an access date only, ISO 9660 one recording time: their
// atime and ctime are not compared.
func compareOptions(fstype string) (treecmp.Options, bool) {
	if strings.HasPrefix(fstype, "ext") {
		return treecmp.Options{Atime: true, Ctime: true}, true
	}
	if !kernelHas(fstype) {
		return treecmp.Options{}, false
	}
	if fstype == "squashfs" {
		return treecmp.Options{Atime: true, Ctime: true}, true
	}
	return treecmp.Options{}, true
}

func kernelHas(fstype string) bool {
	b, _ := os.ReadFile("/proc/filesystems")
	for _, line := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(strings.TrimPrefix(line, "nodev")) == fstype {
			return true
		}
	}
	return false
}
