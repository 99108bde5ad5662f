package ext4

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// fixInodeCsum recomputes an inode's metadata_csum checksum after a patch:
// crc32c over the inode number, generation and the inode with both
// checksum fields zeroed.
func fixInodeCsum(fsys *FS, img []byte, off int64, ino uint32) {
	if !fsys.sb.HasMetadataCsum() {
		return
	}
	le := binary.LittleEndian
	raw := img[off : off+int64(fsys.sb.InodeSize)]
	hasHi := len(raw) > 128 && le.Uint16(raw[0x80:]) >= 4
	le.PutUint16(raw[0x7C:], 0)
	if hasHi {
		le.PutUint16(raw[0x82:], 0)
	}
	var n [4]byte
	le.PutUint32(n[:], ino)
	c := crc32cRaw(fsys.sb.ChecksumSeed, n[:])
	le.PutUint32(n[:], le.Uint32(raw[0x64:]))
	c = crc32cRaw(c, n[:])
	c = crc32cRaw(c, raw)
	le.PutUint16(raw[0x7C:], uint16(c))
	if hasHi {
		le.PutUint16(raw[0x82:], uint16(c>>16))
	}
}

// withSize returns a copy of img with inode ino's i_size set to size.
func withSize(t *testing.T, img []byte, path string, size uint64) []byte {
	t.Helper()
	fsys, err := openBytes(img)
	if err != nil {
		t.Fatal(err)
	}
	ino, _ := inodeOf(t, fsys, path)
	out := bytes.Clone(img)
	off := inodeOffset(t, fsys, ino)
	binary.LittleEndian.PutUint32(out[off+4:], uint32(size))
	binary.LittleEndian.PutUint32(out[off+0x6C:], uint32(size>>32))
	fixInodeCsum(fsys, out, off, ino)
	return out
}

// TestFileSizeLimit: an i_size beyond what the kernel allows for the inode
// (its mapping, block size and huge_file) is refused with an error naming
// the inode and the limit; the limit itself is accepted.
func TestFileSizeLimit(t *testing.T) {
	imgs := smallImages(t)
	for _, c := range []struct {
		img   string
		limit uint64 // worked out by hand from the kernel's ext4_max_size / ext4_max_bitmap_size
	}{
		{"text4", (1<<32 - 1) << 10},                   // 1 KiB blocks, extents, huge_file
		{"text2", (12 + 256 + 65536 + 16777216) << 10}, // 1 KiB blocks, block map, no huge_file
		{"text3I128", (12 + 256 + 65536 + 16777216) << 10},
	} {
		t.Run(c.img, func(t *testing.T) {
			for _, size := range []uint64{c.limit, c.limit + 1, 1 << 48, 1<<64 - 1} {
				img := withSize(t, imgs[c.img], "/small", size)
				fsys, err := openBytes(img)
				if err != nil {
					t.Fatal(err)
				}
				err = exerciseAll(fsys)
				if size == c.limit {
					if err != nil {
						t.Errorf("size %d (the limit): %v", size, err)
					}
					continue
				}
				if err == nil {
					f, _ := fsys.OpenFile(mustIno(t, imgs[c.img], "/small"))
					t.Errorf("size %d accepted (served as %d bytes)", size, f.Size())
					continue
				}
				var e *Error
				if !errors.As(err, &e) || !errors.Is(err, ErrCorrupt) {
					t.Errorf("size %d: error %v is not an ext4 corruption error", size, err)
				}
				for _, w := range []string{fmt.Sprintf("inode %d", mustIno(t, imgs[c.img], "/small")), fmt.Sprint(c.limit), "/small"} {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("size %d: error %q does not mention %q", size, err, w)
					}
				}
				if size == 1<<48 {
					t.Logf("%s, i_size 2^48: %v", c.img, err)
					t.Logf("e2fsck -fn:\n%s", e2fsckSays(t, img))
				}
			}
		})
	}
}

func mustIno(t *testing.T, img []byte, path string) uint32 {
	t.Helper()
	fsys, err := openBytes(img)
	if err != nil {
		t.Fatal(err)
	}
	ino, _ := inodeOf(t, fsys, path)
	return ino
}

func TestMaxFileSize(t *testing.T) {
	for _, c := range []struct {
		bits          uint
		huge, extents bool
		want          int64
	}{
		{12, true, true, (1<<32 - 1) << 12},  // 16 TiB - 4 KiB
		{12, false, true, (1<<29 - 1) << 12}, // i_blocks: 2^32 sectors
		{16, true, true, (1<<32 - 1) << 16},  // 2^48 is one block too many
		{16, false, true, (1<<25 - 1) << 16}, // (2^32-1)>>7 blocks
		{10, true, false, (12 + 256 + 65536 + 16777216) << 10},
		{12, true, false, (12 + 1024 + 1<<20 + 1<<30) << 12},
		// i_blocks bounds a dense file: 2^29-1 blocks less 524801
		// indirect blocks (worked out by hand from ext4_max_bitmap_size).
		{12, false, false, (1<<29 - 1 - 524801) << 12},
	} {
		if got := maxFileSize(c.bits, c.huge, c.extents); got != c.want {
			t.Errorf("maxFileSize(%d, huge %v, extents %v) = %d, want %d", c.bits, c.huge, c.extents, got, c.want)
		}
	}
}

// sizeLimitScript: files of exactly the kernel's limit and one byte more,
// made by mke2fs -d (libext2fs allows both, and e2fsck passes both).
const sizeLimitScript = `
mkdir -p "$OUT/ext2/src" "$OUT/nohuge/src"
truncate -s 2196873666560 "$OUT/ext2/src/limit"; truncate -s 2196873666561 "$OUT/ext2/src/over"
truncate -s 2199023251456 "$OUT/nohuge/src/limit"; truncate -s 2199023251457 "$OUT/nohuge/src/over"
truncate -s 16M "$OUT/ext2.img"; mke2fs -q -F -t ext2 -b 4096 -d "$OUT/ext2/src" "$OUT/ext2.img"
truncate -s 16M "$OUT/nohuge.img"; mke2fs -q -F -t ext4 -b 4096 -O ^huge_file -d "$OUT/nohuge/src" "$OUT/nohuge.img"
rm -r "$OUT/ext2/src" "$OUT/nohuge/src"
`

// TestFileSizeLimitMatchesKernel: the kernel serves the file of the limit
// and refuses the one a byte larger; the reader does the same.
func TestFileSizeLimitMatchesKernel(t *testing.T) {
	dir := cachedBuild(t, "sizelimit", sizeLimitScript)
	for _, name := range []string{"ext2", "nohuge"} {
		t.Run(name, func(t *testing.T) {
			img := dir + "/" + name + ".img"
			fsys := openImage(t, img)
			ents, err := fsys.ReadDir(RootIno)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range ents {
				in, err := fsys.Inode(e.Ino)
				switch string(e.Name) {
				case "limit":
					if err != nil {
						t.Errorf("limit: %v", err)
					} else if in.Size != fsys.MaxFileSize(in.HasExtents()) {
						t.Errorf("limit: size %d, MaxFileSize %d", in.Size, fsys.MaxFileSize(in.HasExtents()))
					}
				case "over":
					if err == nil || !strings.Contains(err.Error(), "i_size") {
						t.Errorf("over: %v, want an i_size error", err)
					}
				}
			}
			err = fsys.Walk(func([]byte, uint32, *Inode) error { return nil })
			if err == nil || !strings.Contains(err.Error(), `(at "/over")`) {
				t.Errorf("walk: %v, want an error at /over", err)
			}
			t.Logf("reader: %v", err)
			mnt := t.TempDir()
			if out, err := exec.Command("mount", "-o", "loop,ro", img, mnt).CombinedOutput(); err != nil {
				t.Fatalf("mount: %v: %s", err, out)
			}
			defer exec.Command("umount", mnt).Run()
			if _, err := os.Lstat(mnt + "/limit"); err != nil {
				t.Errorf("the kernel refuses /limit: %v", err)
			}
			if fi, err := os.Lstat(mnt + "/over"); err == nil {
				t.Errorf("the kernel shows /over (%d bytes); the reader refuses it", fi.Size())
			} else {
				t.Logf("kernel: %v", err)
			}
		})
	}
}
