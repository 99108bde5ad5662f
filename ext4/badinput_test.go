package ext4

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// smallTreeScript: a few files, including one with > 4 extents so its
// extent tree has an index level, and nested directories.
const smallTreeScript = `
S="$OUT/src"; mkdir -p "$S/a/b/c"; cd "$S"
echo hello > a/b/c/file; printf x > one; ln -s one link
head -c 20000 /dev/urandom > small
python3 -c '
import os
f=os.open("frag",os.O_WRONLY|os.O_CREAT,0o644)
for i in range(12): os.pwrite(f, os.urandom(1024), i*8192)
os.close(f)'
setfattr -n user.x -v y small
for opts in "-t ext4" "-t ext2" "-t ext4 -O inline_data" "-t ext3 -I 128"; do
  n=$(echo "$opts" | tr -d ' -' | tr '^' '_')
  truncate -s 2M "$OUT/$n.img"; mke2fs -q -F -b 1024 $opts -d "$S" "$OUT/$n.img"
done
`

func smallImages(t testing.TB) map[string][]byte {
	dir := cachedBuild(t, "small", smallTreeScript)
	paths, _ := filepath.Glob(filepath.Join(dir, "*.img"))
	out := map[string][]byte{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out[strings.TrimSuffix(filepath.Base(p), ".img")] = b
	}
	if len(out) != 4 {
		t.Fatalf("expected 4 small images in %s, got %d", dir, len(out))
	}
	return out
}

// withTimeout fails the test instead of hanging when fn does not return.
func withTimeout(t *testing.T, d time.Duration, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); fn() }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("timed out after %v (endless loop?)", d)
	}
}

// exerciseAll runs every read operation and returns the first error.
func exerciseAll(fsys *FS) error {
	return fsys.Walk(func(path []byte, ino uint32, in *Inode) error {
		if _, err := fsys.Xattrs(ino); err != nil {
			return err
		}
		switch {
		case in.IsSymlink():
			_, err := fsys.Readlink(ino)
			return err
		case in.IsReg():
			if _, err := fsys.Extents(ino); err != nil {
				return err
			}
			f, err := fsys.OpenFile(ino)
			if err != nil {
				return err
			}
			buf := make([]byte, 64<<10)
			for off := int64(0); off < f.Size() && off < 8<<20; off += int64(len(buf)) {
				if _, err := f.ReadAt(buf, off); err != nil && !errors.Is(err, io.EOF) {
					return err
				}
			}
		}
		return nil
	})
}

// inodeOf finds a path's inode number with our own reader.
func inodeOf(t *testing.T, fsys *FS, path string) (uint32, *Inode) {
	t.Helper()
	var ino uint32
	var node *Inode
	if err := fsys.Walk(func(p []byte, i uint32, in *Inode) error {
		if string(p) == path {
			ino, node = i, in
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if ino == 0 {
		t.Fatalf("%s not found", path)
	}
	return ino, node
}

// inodeOffset is the byte offset of an inode within the image.
func inodeOffset(t *testing.T, fsys *FS, ino uint32) int64 {
	blk, off, err := fsys.inodeLocation(ino)
	if err != nil {
		t.Fatal(err)
	}
	return int64(blk*fsys.bs + off)
}

func openBytes(b []byte) (*FS, error) { return Open(bytes.NewReader(b), int64(len(b))) }

func expectCorrupt(t *testing.T, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatal("expected an error, got nil")
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v is not an *ext4.Error", err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
	t.Logf("got expected error: %v", err)
}

func TestBadInput(t *testing.T) {
	imgs := smallImages(t)
	base := imgs["text4"]
	fsys, err := openBytes(base)
	if err != nil {
		t.Fatal(err)
	}
	if err := exerciseAll(fsys); err != nil {
		t.Fatalf("pristine image: %v", err)
	}
	fragIno, _ := inodeOf(t, fsys, "/frag")
	fileIno, _ := inodeOf(t, fsys, "/small")
	le := binary.LittleEndian
	patched := func(fn func(b []byte)) []byte {
		b := bytes.Clone(base)
		fn(b)
		return b
	}
	run := func(name string, img []byte, want ...string) {
		t.Run(name, func(t *testing.T) {
			withTimeout(t, 20*time.Second, func() {
				fsys, err := openBytes(img)
				if err == nil {
					err = exerciseAll(fsys)
				}
				expectCorrupt(t, err, want...)
			})
		})
	}

	run("truncated", base[:len(base)/2], "exceeds", "truncated")
	run("zero magic", patched(func(b []byte) { b[1080], b[1081] = 0, 0 }), "bad magic")
	run("superblock checksum", patched(func(b []byte) { b[1024+0x78] ^= 1 }), "checksum")
	run("huge inode size", patched(func(b []byte) {
		le.PutUint16(b[1024+0x58:], 3000)
		fixSuperCsum(b)
	}), "inode size")

	fileI := inodeOffset(t, fsys, fileIno)
	run("extent header magic", patched(func(b []byte) { b[fileI+0x28] = 0 }), "inode", "extent header magic")
	run("extent past end", patched(func(b []byte) {
		// first leaf entry of the in-inode root: ee_start_lo at +12+8
		le.PutUint32(b[fileI+0x28+12+8:], uint32(fsys.sb.BlocksCount+5))
	}), "outside the filesystem")
	run("extent entries exceed max", patched(func(b []byte) { le.PutUint16(b[fileI+0x28+2:], 60) }), "entries")

	fragI := inodeOffset(t, fsys, fragIno)
	if d := le.Uint16(base[fragI+0x28+6:]); d != 1 {
		t.Fatalf("frag inode tree depth %d, want 1 (fixture changed?)", d)
	}
	leaf := uint64(le.Uint32(base[fragI+0x28+12+4:]))
	run("extent tree loop", patched(func(b []byte) {
		// root claims depth 2; the leaf becomes an index node pointing to itself
		le.PutUint16(b[fragI+0x28+6:], 2)
		node := b[leaf*fsys.bs:]
		le.PutUint16(node[2:], 1)
		le.PutUint16(node[6:], 1)
		le.PutUint32(node[12+4:], uint32(leaf))
		le.PutUint16(node[12+8:], 0)
	}), "referenced twice", "loop")
	run("extent tree depth mismatch", patched(func(b []byte) { le.PutUint16(b[fragI+0x28+6:], 3) }), "depth")

	rootExt, err := fsys.Extents(RootIno)
	if err != nil || len(rootExt) == 0 {
		t.Fatalf("root extents: %v %v", rootExt, err)
	}
	rootBlk := rootExt[0].Physical
	run("dirent rec_len", patched(func(b []byte) {
		le.PutUint16(b[rootBlk*fsys.bs+4:], 3)
	}), "inode 2", "rec_len")
	run("dirent beyond inode count", patched(func(b []byte) {
		le.PutUint32(b[rootBlk*fsys.bs+24:], 0xFFFFFF00) // third entry after . and ..
	}), "beyond")
	run("root not a dir", patched(func(b []byte) {
		le.PutUint16(b[inodeOffset(t, fsys, RootIno):], 0x81a4)
	}), "root inode is not a directory")
}

// fixSuperCsum recomputes the superblock checksum after a patch.
func fixSuperCsum(b []byte) {
	sb := b[1024:2048]
	binary.LittleEndian.PutUint32(sb[0x3FC:], crc32cRaw(^uint32(0), sb[:0x3FC]))
}

func TestDirectoryCycle(t *testing.T) {
	imgs := smallImages(t)
	for _, name := range []string{"text4", "text2"} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "cyc.img")
			if err := os.WriteFile(p, imgs[name], 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command("debugfs", "-w", "-R", "link /a /a/b/c/loop", p).CombinedOutput(); err != nil {
				t.Fatalf("debugfs link: %v %s", err, out)
			}
			pristine, err := openBytes(imgs[name])
			if err != nil {
				t.Fatal(err)
			}
			aIno, _ := inodeOf(t, pristine, "/a")
			withTimeout(t, 20*time.Second, func() {
				err := openImage(t, p).Walk(func([]byte, uint32, *Inode) error { return nil })
				expectCorrupt(t, err, "directory reached twice", fmt.Sprintf("inode %d", aIno), "/a/b/c/loop")
			})
		})
	}
}
