package fresh

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"mis/disk"
	"mis/fixtures"
	"mis/image"
	"mis/manifest"
)

// layoutOf reads a fixture's table the way import records it.
func layoutOf(t *testing.T, kind string) (string, *manifest.Manifest) {
	t.Helper()
	src := fixtures.Path(t, kind)
	f, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	l, err := disk.Read(f, fi.Size())
	if err != nil {
		t.Fatal(err)
	}
	m := &manifest.Manifest{DiskSize: fi.Size(), Layout: image.LayoutFromDisk(l)}
	return src, m
}

func sfdiskDump(t *testing.T, img string) string {
	t.Helper()
	out, err := exec.Command("sfdisk", "--dump", img).CombinedOutput()
	if err != nil {
		t.Fatalf("sfdisk --dump %s: %v\n%s", img, err, out)
	}
	return strings.ReplaceAll(string(out), img, "IMG")
}

// TestTableMatchesSfdiskDump writes each fixture's table on a blank disk,
// as is and grown, and checks it with sfdisk --dump/--verify and our reader:
// same partitions, and for GPT the backup header at the new last sector.
func TestTableMatchesSfdiskDump(t *testing.T) {
	for _, kind := range []string{"gpt", "mbr"} {
		for _, grow := range []int64{0, 64 << 20} {
			src, m := layoutOf(t, kind)
			p, err := newPlan(m, m.DiskSize+grow)
			if err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(t.TempDir(), "disk.raw")
			if err := os.WriteFile(out, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(out, p.diskSize); err != nil {
				t.Fatal(err)
			}
			if err := writeTable(context.Background(), out, m, p); err != nil {
				t.Fatalf("%s: %v", kind, err)
			}
			if b, err := exec.Command("sfdisk", "--verify", out).CombinedOutput(); err != nil {
				t.Errorf("%s grow %d: sfdisk --verify: %v\n%s", kind, grow, err, b)
			}
			want := sfdiskDump(t, src)
			got := sfdiskDump(t, out)
			if grow > 0 {
				want = growLastLBA(want, grow/512)
				for _, pp := range p.parts {
					if pp.newSize != pp.part.Size {
						want = strings.Replace(want, sizeField(pp.part.Size/512), sizeField(pp.newSize/512), 1)
					}
				}
			}
			if want != got {
				t.Errorf("%s grow %d: table differs:\nwant\n%s\ngot\n%s", kind, grow, want, got)
			}
			f, err := os.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			l, err := disk.Read(f, p.diskSize)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			if len(l.Warnings) > 0 {
				t.Errorf("%s grow %d: reader warnings %v", kind, grow, l.Warnings)
			}
			if l.GPT != nil && (!l.GPT.BackupAgrees || l.GPT.AlternateLBA != uint64(p.diskSize/512-1)) {
				t.Errorf("%s grow %d: backup GPT header at LBA %d (agrees %v), disk ends at %d", kind, grow, l.GPT.AlternateLBA, l.GPT.BackupAgrees, p.diskSize/512-1)
			}
		}
	}
}

func sizeField(sectors int64) string { return "size=" + padded(sectors) }

func padded(v int64) string {
	s := strings.Repeat(" ", 12) + itoa(v)
	return s[len(s)-12:]
}

func itoa(v int64) string {
	if v == 0 {
		return "0"
	}
	var b []byte
	for v > 0 {
		b = append([]byte{byte('0' + v%10)}, b...)
		v /= 10
	}
	return string(b)
}

func growLastLBA(dump string, sectors int64) string {
	lines := strings.Split(dump, "\n")
	for i, l := range lines {
		if v, ok := strings.CutPrefix(l, "last-lba: "); ok {
			var n int64
			for _, c := range v {
				n = n*10 + int64(c-'0')
			}
			lines[i] = "last-lba: " + itoa(n+sectors)
		}
	}
	return strings.Join(lines, "\n")
}

func TestBadInput(t *testing.T) {
	m := &manifest.Manifest{DiskSize: 1 << 20, Layout: manifest.Layout{Kind: "gpt", SectorSize: 512}}
	if _, err := newPlan(m, 1<<19); err == nil || !strings.Contains(err.Error(), "smaller") {
		t.Errorf("shrinking: %v", err)
	}
	if _, err := newPlan(m, 1<<20+100); err == nil || !strings.Contains(err.Error(), "sector") {
		t.Errorf("unaligned size: %v", err)
	}
	if _, err := featureList([3]uint32{0, 0x1, 0}); err == nil || !strings.Contains(err.Error(), "compression") {
		t.Errorf("compression feature: %v", err)
	}
	if _, err := featureList([3]uint32{0, 0x80000000, 0}); err == nil || !strings.Contains(err.Error(), "unknown feature") {
		t.Errorf("unknown feature: %v", err)
	}
	if got, _ := featureList([3]uint32{0x3c, 0x2c6, 0x10000 | 0x46b}); got != "none,has_journal,ext_attr,resize_inode,dir_index,filetype,extent,64bit,flex_bg,sparse_super,large_file,huge_file,dir_nlink,extra_isize,metadata_csum" {
		t.Errorf("feature list %q", got)
	}
	if _, err := gptAttrs(1 << 10); err == nil {
		t.Errorf("reserved GPT attribute bit accepted")
	}
	if a, _ := gptAttrs(1<<2 | 1<<48 | 1<<63); a != "LegacyBIOSBootable GUID:48,63" {
		t.Errorf("attrs %q", a)
	}
	if _, err := parseFATBoot(make([]byte, 512)); err == nil {
		t.Errorf("FAT boot sector without signature accepted")
	}
}

func TestSplitTime(t *testing.T) {
	for _, c := range []struct {
		ns        int64
		lo, extra uint32
	}{
		{0, 0, 0},
		{1_500_000_001, 1, 500_000_001 << 2},
		{-1, 0xffffffff, 999_999_999 << 2},           // 1969-12-31 23:59:59.999999999
		{4102444800_000000007, 4102444800, 7<<2 | 1}, // 2100-01-01: epoch bit 1
		{-(1 << 31) * 1e9, 0x80000000, 0},            // 1901-12-13, the earliest an inode holds
		{(1<<32 + 1<<31 - 1) * 1e9, 0x7fffffff, 1},   // 2174
	} {
		lo, extra := splitTime(c.ns)
		if lo != c.lo || extra != c.extra {
			t.Errorf("splitTime(%d) = %#x, %#x; want %#x, %#x", c.ns, lo, extra, c.lo, c.extra)
		}
	}
}
