package ext4

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"mis/testkit/fuzzkit"
)

// FuzzImage opens, walks and reads an ext2/3/4 image given as bytes: every
// read operation over every inode the walk reaches, UsedBlocks, and the
// invariants callers rely on (usable, unique paths; extents sorted, inside
// the filesystem and not overlapping; sizes within the kernel's limit).
// Errors are fine; panics, hangs and huge allocations are not.
//
// Input: a sparse image (see decodeSparse): a device of sizeKiB KiB that
// reads as zeros except where records put bytes. Seeds in
// testdata/fuzz/FuzzImage are small real images made by mke2fs -d
// (regenerate with MIS_WRITE_FUZZ_SEEDS=1 go test -run TestWriteFuzzSeeds);
// they stay small because only their non-zero bytes are stored, and a
// fuzzer's byte flip in a record is a byte flip in the image.
func FuzzImage(f *testing.F) {
	f.Add([]byte{}, uint32(0))
	f.Fuzz(func(t *testing.T, data []byte, sizeKiB uint32) {
		dev := fuzzkit.DecodeSparse(data, int64(sizeKiB)<<10)
		// A slow input crashes the worker so the fuzzer records it.
		slow := time.AfterFunc(10*time.Second, func() { panic("input took over 10s: possible endless loop") })
		defer slow.Stop()
		defer fuzzkit.CheckAllocs(t, 512<<20)()
		fsys, err := Open(dev, dev.Size())
		if err != nil {
			return
		}
		fuzzExercise(t, fsys)
		_, _ = fsys.UsedBlocks()
	})
}

// fuzzExercise runs every read operation, checking what must hold of any
// result the reader returns without an error.
func fuzzExercise(t *testing.T, fsys *FS) {
	paths := map[string]bool{}
	dirs := map[string]bool{"/": true}
	buf := make([]byte, 16<<10)
	_ = fsys.Walk(func(path []byte, ino uint32, in *Inode) error {
		p := string(path)
		if paths[p] {
			t.Fatalf("path %q walked twice", p)
		}
		paths[p] = true
		if p != "/" {
			i := strings.LastIndexByte(p, '/')
			parent, name := p[:max(i, 1)], p[i+1:]
			if !dirs[parent] {
				t.Fatalf("path %q: parent not walked as a directory", p)
			}
			if nameProblem([]byte(name)) != "" || len(name) > maxNameLen {
				t.Fatalf("path %q: component %q cannot be a file name", p, name)
			}
		}
		if in.IsDir() {
			dirs[p] = true
		}
		if in.Size > fsys.MaxFileSize(in.HasExtents()) {
			t.Fatalf("inode %d: size %d above the limit", ino, in.Size)
		}
		_, _ = fsys.Xattrs(ino)
		_, _ = fsys.MetaBlocks(ino)
		switch {
		case in.IsSymlink():
			_, _ = fsys.Readlink(ino)
		case in.IsDir():
			_, _ = fsys.ReadDir(ino)
		case in.IsReg():
			if in.HasInlineData() {
				_, _ = fsys.InlineData(ino)
			}
			ext, err := fsys.Extents(ino)
			if err == nil {
				checkExtents(t, fsys, ino, ext)
			}
			f, err := fsys.OpenFile(ino)
			if err != nil {
				return nil
			}
			for off := int64(0); off < f.Size() && off < 256<<10; off += int64(len(buf)) {
				if _, err := f.ReadAt(buf, off); err != nil && !errors.Is(err, io.EOF) {
					break
				}
			}
			// and the last bytes, past any hole
			_, _ = f.ReadAt(buf, max(0, f.Size()-int64(len(buf))))
		}
		return nil
	})
}

func checkExtents(t *testing.T, fsys *FS, ino uint32, ext []Extent) {
	byPhys := append([]Extent(nil), ext...)
	sort.Slice(byPhys, func(i, j int) bool { return byPhys[i].Physical < byPhys[j].Physical })
	for i, e := range ext {
		if e.Len == 0 || e.Physical+e.Len > fsys.sb.BlocksCount || e.Physical+e.Len < e.Physical {
			t.Fatalf("inode %d: extent %+v outside the filesystem", ino, e)
		}
		if i > 0 && ext[i-1].Logical+ext[i-1].Len > e.Logical {
			t.Fatalf("inode %d: extents %+v and %+v overlap or are not sorted", ino, ext[i-1], e)
		}
		if i > 0 && byPhys[i-1].Physical+byPhys[i-1].Len > byPhys[i].Physical {
			t.Fatalf("inode %d: extents %+v and %+v share blocks", ino, byPhys[i-1], byPhys[i])
		}
	}
}

// fuzzSeedScript makes the seed images: 1 KiB blocks (small metadata),
// few inodes, every mapping and directory kind mke2fs -d makes.
const fuzzSeedScript = `
S="$OUT/src"; mkdir -p "$S/dir/sub" "$S/many"; cd "$S"
echo hello > dir/sub/file; printf x > one; ln one hardlink; ln -s one fastlink
ln -s "$(printf 'l%.0s' $(seq 90))" slowlink
printf 'some text\n%.0s' $(seq 300) > text
python3 -c '
import os
f=os.open("frag",os.O_WRONLY|os.O_CREAT,0o644)
for i in range(7): os.pwrite(f, b"F"*100, i*4096)
f2=os.open("indirect",os.O_WRONLY|os.O_CREAT,0o644)
os.pwrite(f2, b"I"*100, 0); os.pwrite(f2, b"J"*100, 20*1024)
os.close(f); os.close(f2)'
truncate -s 1M sparse; echo end >> sparse
for i in $(seq 30); do : > "many/entry_with_a_long_name_$i"; done
mkfifo fifo
setfattr -n user.a -v b text; setfattr -n user.big -v "$(printf 'v%.0s' $(seq 400))" one
setfattr -n trusted.t -v x dir
while read -r name size opts; do
  truncate -s "$size" "$OUT/$name.img"
  mke2fs -q -F -N 80 $opts -d "$S" "$OUT/$name.img"
done <<EOF
ext4 512K -t ext4 -b 1024 -O ^has_journal
ext4-journal 4M -t ext4 -b 1024 -J size=1
ext2 512K -t ext2 -b 1024
ext3-128 4M -t ext3 -b 1024 -I 128 -J size=1
inline 512K -t ext4 -b 1024 -O inline_data,^has_journal
metabg 512K -t ext4 -b 1024 -O meta_bg,^resize_inode,^has_journal,^metadata_csum
bs64k 8M -t ext4 -b 65536 -O ^has_journal
EOF
rm -r "$S"
`

// TestWriteFuzzSeeds regenerates testdata/fuzz/FuzzImage/seed-* from real
// images (MIS_WRITE_FUZZ_SEEDS=1; needs root and mke2fs).
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("MIS_WRITE_FUZZ_SEEDS") == "" {
		t.Skip("set MIS_WRITE_FUZZ_SEEDS=1 to rewrite the committed seeds")
	}
	dir := cachedBuild(t, "fuzzseeds", fuzzSeedScript)
	imgs, _ := filepath.Glob(filepath.Join(dir, "*.img"))
	out := filepath.Join("testdata", "fuzz", "FuzzImage")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range imgs {
		img, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		fsys, err := openBytes(img)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if err := exerciseAll(fsys); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		enc := fuzzkit.EncodeSparse(img)
		if dev := fuzzkit.DecodeSparse(enc, int64(len(img))); !bytes.Equal(dev.Bytes(), img) || len(img)%1024 != 0 {
			t.Fatalf("%s: the sparse encoding does not read back", p)
		}
		name := "seed-" + strings.TrimSuffix(filepath.Base(p), ".img")
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\nuint32(%d)\n", enc, len(img)>>10)
		if err := os.WriteFile(filepath.Join(out, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d-byte image, %d bytes encoded, %d in the corpus file", name, len(img), len(enc), len(body))
	}
	// Regression inputs built from the seeds.
	for name, in := range map[string]func(*testing.T) ([]byte, uint32){"regress-group-count": groupCountInput} {
		data, size := in(t)
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\nuint32(%d)\n", data, size)
		if err := os.WriteFile(filepath.Join(out, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// readSeed parses a FuzzImage corpus file.
func readSeed(t *testing.T, name string) ([]byte, uint32) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzImage", name))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) < 3 || lines[0] != "go test fuzz v1" {
		t.Fatalf("%s: not a corpus file", name)
	}
	data, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(lines[2], "uint32("), ")"), 10, 32)
	if err != nil {
		t.Fatal(err)
	}
	return []byte(data), uint32(n)
}

// TestFuzzSeedsAreImages: every committed seed opens and walks cleanly
// (a seed the reader refuses would only fuzz the superblock checks).
func TestFuzzSeedsAreImages(t *testing.T) {
	names, _ := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzImage", "seed-*"))
	if len(names) < 5 {
		t.Fatalf("%d seeds", len(names))
	}
	for _, p := range names {
		data, size := readSeed(t, filepath.Base(p))
		dev := fuzzkit.DecodeSparse(data, int64(size)<<10)
		fsys, err := Open(dev, dev.Size())
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		n := 0
		if err := fsys.Walk(func([]byte, uint32, *Inode) error { n++; return nil }); err != nil || n < 40 {
			t.Errorf("%s: walked %d paths: %v", p, n, err)
		}
	}
}

// groupCountInput is seed-metabg on a 1 TiB device whose superblock
// claims 2^30 blocks in groups of 8: 2^27 group descriptors, of which the
// device holds a handful. Open used to allocate them all first (4 GiB).
func groupCountInput(t *testing.T) ([]byte, uint32) {
	data, _ := readSeed(t, "seed-metabg")
	dev := fuzzkit.DecodeSparse(data, 1<<40)
	sb := make([]byte, superblockSize)
	dev.ReadAt(sb, superblockOffset)
	binary.LittleEndian.PutUint32(sb[0x4:], 1<<30)
	binary.LittleEndian.PutUint32(sb[0x20:], 8)
	in := binary.AppendUvarint(bytes.Clone(data), superblockOffset)
	in = binary.AppendUvarint(in, superblockSize<<1)
	return append(in, sb...), 1 << 30
}

func TestHugeGroupCount(t *testing.T) {
	data, sizeKiB := groupCountInput(t)
	dev := fuzzkit.DecodeSparse(data, int64(sizeKiB)<<10)
	check := fuzzkit.CheckAllocs(t, 64<<20)
	_, err := Open(dev, dev.Size())
	check()
	expectCorrupt(t, err, "inode table")
}
