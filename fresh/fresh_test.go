package fresh_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"
	"testing"

	"mis/ext4"
	"mis/fresh"
	"mis/manifest"
	"mis/otherfs"
	"mis/testkit/treecmp"
)

// freshKinds are the fixtures a fresh export must rebuild faithfully.
var freshKinds = []string{"ext4-kernel", "mbr", "gpt", "ext4", "ext4-inline", "ext4-nojournal", "ext4-1k", "ext2", "ext3", "ext4-128"}

func TestFreshExportMatchesOriginal(t *testing.T) {
	treecmp.RequireRoot(t)
	for _, label := range []string{"gpt", "mbr"} {
		t.Run("small-"+label, func(t *testing.T) {
			src := smallDisk(t, label)
			r, m := importImage(t, src)
			out := exportFresh(t, r, m, fresh.Options{})
			checkFresh(t, src, out, m, 0)
		})
	}
	// The whole matrix takes ~10 minutes (mke2fs -d is quadratic in the
	// 20,000-entry directory most fixtures hold): CI runs the first three
	// (bare ext4, MBR with logical partitions, GPT), MIS_TEST_FULL=1 all.
	kinds := freshKinds
	if testing.Short() {
		kinds = kinds[:1]
	} else if os.Getenv("MIS_TEST_FULL") != "1" {
		kinds = kinds[:3]
	}
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			r, src, m := importFixture(t, kind)
			out := exportFresh(t, r, m, fresh.Options{})
			checkFresh(t, src, out, m, 0)
		})
	}
}

// checkFresh checks a fresh export against the original image: same table,
// every rebuilt filesystem clean and equal on every attribute, other
// partitions byte for byte. grow is what --size added to the last partition.
func checkFresh(t *testing.T, src, out string, m *manifest.Manifest, grow int64) {
	t.Helper()
	fi, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != m.DiskSize+grow {
		t.Errorf("fresh image is %d bytes, want %d", fi.Size(), m.DiskSize+grow)
	}
	if m.Layout.Kind != "none" {
		checkTable(t, src, out, grow)
		if !bytes.Equal(readRange(t, src, 0, 440), readRange(t, out, 0, 440)) {
			t.Errorf("boot code differs")
		}
	}
	fsByPart := map[int]*manifest.Filesystem{}
	for i := range m.Filesystems {
		fsByPart[m.Filesystems[i].PartIndex] = &m.Filesystems[i]
	}
	var lastEnd int64
	for _, p := range m.Layout.Partitions {
		if p.Filesystem != "extended" {
			lastEnd = max(lastEnd, p.Start+p.Size)
		}
	}
	for _, p := range m.Layout.Partitions {
		size := p.Size
		grown := grow > 0 && p.Start+p.Size == lastEnd
		if grown {
			size += grow
		}
		fsm := fsByPart[p.Index]
		switch {
		case p.Filesystem == "extended":
		case fsm != nil && strings.HasPrefix(fsm.Type, "ext"):
			checkExt(t, src, out, p, size, grown)
		case fsm != nil && fsm.Type == "vfat":
			checkFAT(t, src, out, p, size)
		default:
			if !bytes.Equal(readRange(t, src, p.Start, p.Size), readRange(t, out, p.Start, p.Size)) {
				t.Errorf("partition %d (%s) is not a byte copy of the original", p.Index, p.Filesystem)
			}
		}
	}
}

// checkTable compares sfdisk's view of both tables and runs sfdisk --verify.
func checkTable(t *testing.T, src, out string, grow int64) {
	t.Helper()
	want, got := sfdiskDump(t, src), sfdiskDump(t, out)
	if grow > 0 {
		want = growDump(t, want, grow/512)
	}
	if want != got {
		t.Errorf("partition table differs:\noriginal (adjusted for --size):\n%s\nfresh:\n%s", want, got)
	}
	if out, err := exec.Command("sfdisk", "--verify", out).CombinedOutput(); err != nil {
		t.Errorf("sfdisk --verify: %v\n%s", err, out)
	}
}

// growDump edits an sfdisk dump as --size should change it: last-lba and
// the size of the partition (and extended container) ending last.
func growDump(t *testing.T, dump string, sectors int64) string {
	t.Helper()
	lines := strings.Split(dump, "\n")
	type span struct{ line, start, size int64 }
	var parts []span
	var lastEnd int64
	for i, l := range lines {
		if strings.HasPrefix(l, "last-lba:") {
			var v int64
			mustScan(t, strings.TrimSpace(strings.TrimPrefix(l, "last-lba:")), &v)
			lines[i] = "last-lba: " + itoa(v+sectors)
		}
		if strings.Contains(l, " : start=") {
			var s, n int64
			f := strings.Split(strings.SplitN(l, " : ", 2)[1], ",")
			mustScan(t, strings.TrimSpace(strings.TrimPrefix(f[0], "start=")), &s)
			mustScan(t, strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(f[1]), "size=")), &n)
			parts = append(parts, span{int64(i), s, n})
			if !strings.Contains(l, "type=5") && !strings.Contains(l, "type=f,") {
				lastEnd = max(lastEnd, s+n)
			}
		}
	}
	for _, p := range parts {
		if p.start+p.size >= lastEnd {
			l := lines[p.line]
			old := "size=" + pad(p.size)
			lines[p.line] = strings.Replace(l, old, "size="+pad(p.size+sectors), 1)
		}
	}
	return strings.Join(lines, "\n")
}

// checkExt checks one rebuilt ext filesystem: e2fsck clean, loop mounts equal
// on every attribute, and what a mount cannot show (crtime, flags,
// generation, superblock identity) equal through our reader.
func checkExt(t *testing.T, src, out string, p manifest.Partition, size int64, grown bool) {
	t.Helper()
	treecmp.E2fsck(t, out, p.Start, size)
	want := treecmp.LoopMount(t, src, p.Start, p.Size, "")
	got := treecmp.LoopMount(t, out, p.Start, size, "")
	diffs, err := treecmp.Compare(want, got, treecmp.Options{Atime: true, Ctime: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range diffs {
		t.Errorf("partition %d: %s", p.Index, d)
	}
	a := openExt(t, src, p.Start, p.Size)
	b := openExt(t, out, p.Start, size)
	compareSuper(t, p.Index, a.Super(), b.Super(), grown)
	files, frag, back := layoutStats(t, a)
	t.Logf("partition %d original: %d files with data, %d in more than one piece, %d placed before the previous file (walk order)", p.Index, files, frag, back)
	files, frag, back = layoutStats(t, b)
	t.Logf("partition %d fresh:    %d files with data, %d in more than one piece, %d placed before the previous file (walk order)", p.Index, files, frag, back)
	ai, bi := inodesByPath(t, a), inodesByPath(t, b)
	n := 0
	for path, x := range ai {
		y := bi[path]
		if y == nil {
			continue // treecmp reported it
		}
		const userFlags = 0x1 | 0x2 | 0x8 | 0x10 | 0x20 | 0x40 | 0x80 | 0x4000 | 0x8000 | 0x10000 | 0x20000 | 0x2000000 | 0x20000000
		for _, d := range []struct {
			what string
			a, b any
		}{
			{"crtime", x.Crtime, y.Crtime}, {"atime", x.Atime, y.Atime}, {"ctime", x.Ctime, y.Ctime}, {"mtime", x.Mtime, y.Mtime},
			{"flags", x.Flags & userFlags, y.Flags & userFlags}, {"generation", x.Generation, genOf(b, x, y)},
		} {
			if d.a != d.b && n < 50 {
				n++
				t.Errorf("partition %d %q: %s %v, got %v", p.Index, path, d.what, d.a, d.b)
			}
		}
	}
}

// genOf is the generation the fresh inode y should have: the original's,
// except where metadata_csum seeds block checksums with it (directories,
// extent trees with index blocks), where fresh keeps its own.
func genOf(fs *ext4.FS, x, y *ext4.Inode) uint32 {
	if !fs.Super().HasMetadataCsum() || y.HasInlineData() {
		return y.Generation
	}
	if y.IsDir() || y.HasExtents() && binary.LittleEndian.Uint16(y.Block[6:]) > 0 {
		return x.Generation
	}
	return y.Generation
}

func compareSuper(t *testing.T, part int, a, b *ext4.Superblock, grown bool) {
	t.Helper()
	le := binary.LittleEndian
	const transientIncompat, transientRo = 0x4, 0x10000
	check := func(what string, x, y any) {
		if x != y {
			t.Errorf("partition %d superblock: %s %v, got %v", part, what, x, y)
		}
	}
	check("uuid", a.UUID, b.UUID)
	check("label", string(a.VolumeName), string(b.VolumeName))
	check("hash seed", a.HashSeed, b.HashSeed)
	check("default hash", a.DefHashVersion, b.DefHashVersion)
	check("compat features", a.FeatureCompat, b.FeatureCompat)
	check("incompat features", a.FeatureIncompat&^transientIncompat, b.FeatureIncompat)
	check("ro_compat features", a.FeatureRoCompat&^transientRo, b.FeatureRoCompat)
	check("block size", a.BlockSize, b.BlockSize)
	check("inode size", a.InodeSize, b.InodeSize)
	check("blocks per group", a.BlocksPerGroup, b.BlocksPerGroup)
	check("inodes per group", a.InodesPerGroup, b.InodesPerGroup)
	check("flex groups", a.LogGroupsPerFlex, b.LogGroupsPerFlex)
	check("checksum seed", a.ChecksumSeed, b.ChecksumSeed)
	check("errors", le.Uint16(a.Raw[0x3C:]), le.Uint16(b.Raw[0x3C:]))
	check("default mount options", le.Uint32(a.Raw[0x100:]), le.Uint32(b.Raw[0x100:]))
	if !grown {
		check("blocks", a.BlocksCount, b.BlocksCount)
		check("inodes", a.InodesCount, b.InodesCount)
		check("reserved blocks", le.Uint32(a.Raw[0x08:]), le.Uint32(b.Raw[0x08:]))
	} else if b.BlocksCount <= a.BlocksCount {
		t.Errorf("partition %d: grown filesystem has %d blocks, the original %d", part, b.BlocksCount, a.BlocksCount)
	}
}

// checkFAT checks a rebuilt FAT: fsck.fat clean, same volume id, label and
// block size, and the same files with the same times and content (read with
// otherfs, as this kernel has no vfat).
func checkFAT(t *testing.T, src, out string, p manifest.Partition, size int64) {
	t.Helper()
	part := extract(t, out, p.Start, size)
	if b, err := exec.Command("fsck.fat", "-n", part).CombinedOutput(); err != nil {
		t.Errorf("fsck.fat -n: %v\n%s", err, b)
	}
	want, wi := fatListing(t, src, p.Start, p.Size)
	got, gi := fatListing(t, out, p.Start, size)
	if wi.UUID != gi.UUID || wi.Label != gi.Label || wi.BlockSize != gi.BlockSize {
		t.Errorf("FAT identity %+v, got %+v", *wi, *gi)
	}
	if strings.Join(want, "\n") != strings.Join(got, "\n") {
		t.Errorf("FAT files differ:\noriginal:\n%s\nfresh:\n%s", strings.Join(want, "\n"), strings.Join(got, "\n"))
	}
}

func fatListing(t *testing.T, img string, off, size int64) ([]string, *otherfs.Info) {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	info, err := otherfs.Walk(f, off, size, "vfat", func(e *manifest.Entry, content io.Reader) error {
		h := sha256.New()
		if content != nil {
			if _, err := io.Copy(h, content); err != nil {
				return err
			}
		}
		for _, p := range e.Paths {
			out = append(out, fmt.Sprintf("%q mode %o size %d mtime %d sha %x", p, e.Mode, e.Size, e.Mtime, h.Sum(nil)[:8]))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out, info
}

func mustScan(t *testing.T, s string, v *int64) {
	t.Helper()
	if _, err := fmt.Sscan(s, v); err != nil {
		t.Fatalf("parse %q: %v", s, err)
	}
}

func itoa(v int64) string { return fmt.Sprint(v) }

// pad formats a number as sfdisk --dump does (right-aligned in 12 columns).
func pad(v int64) string { return fmt.Sprintf("%12d", v) }

// layoutStats reports how files lie in walk (directory) order: how many
// regular files hold data, how many are in more than one physical piece,
// and how many start before the previous file's end.
func layoutStats(t *testing.T, fs *ext4.FS) (files, fragmented, backward int) {
	t.Helper()
	seen := map[uint32]bool{}
	var prevEnd uint64
	err := fs.Walk(func(path []byte, ino uint32, in *ext4.Inode) error {
		if !in.IsReg() || seen[ino] || in.HasInlineData() {
			return nil
		}
		seen[ino] = true
		exts, err := fs.Extents(ino)
		if err != nil {
			return err
		}
		pieces := 0
		var end, first uint64
		for i, x := range exts {
			if i == 0 {
				first = x.Physical
			}
			if i == 0 || x.Physical != end {
				pieces++
			}
			end = x.Physical + x.Len
		}
		if pieces == 0 {
			return nil
		}
		files++
		if pieces > 1 {
			fragmented++
		}
		if first < prevEnd {
			backward++
		}
		prevEnd = end
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files, fragmented, backward
}
