package disk

import (
	"os"
	"path/filepath"
	"testing"
)

// fsImage makes a small image of the given kind with the real tool.
func fsImage(t *testing.T, kind string) string {
	t.Helper()
	dir := t.TempDir()
	img := filepath.Join(dir, kind+".img")
	mk := func(mib int64) {
		if err := os.Truncate(createFile(t, img), mib<<20); err != nil {
			t.Fatal(err)
		}
	}
	src := filepath.Join(dir, "src")
	os.MkdirAll(src, 0o755)
	os.WriteFile(filepath.Join(src, "hello.txt"), []byte("hello\n"), 0o644)
	switch kind {
	case "ext2", "ext3", "ext4":
		needTool(t, "mke2fs")
		mk(8)
		run(t, "", "mke2fs", "-q", "-F", "-t", kind, img)
	case "vfat12", "vfat32":
		needTool(t, "mkfs.vfat")
		if kind == "vfat32" {
			mk(40)
			run(t, "", "mkfs.vfat", "-F", "32", img)
		} else {
			mk(2)
			run(t, "", "mkfs.vfat", "-F", "12", img)
		}
	case "swap":
		needTool(t, "mkswap")
		mk(4)
		run(t, "", "mkswap", img)
	case "squashfs":
		needTool(t, "mksquashfs")
		run(t, "", "mksquashfs", src, img, "-quiet", "-noappend")
	case "iso9660":
		needTool(t, "xorriso")
		run(t, "", "xorriso", "-as", "mkisofs", "-quiet", "-o", img, src)
	}
	return img
}

func TestProbeRealFilesystems(t *testing.T) {
	for kind, want := range map[string]string{
		"ext2": FSExt, "ext3": FSExt, "ext4": FSExt, "vfat12": FSVFAT, "vfat32": FSVFAT,
		"swap": FSSwap, "squashfs": FSSquashfs, "iso9660": FSISO9660,
	} {
		t.Run(kind, func(t *testing.T) {
			img := fsImage(t, kind)
			l := readImage(t, img)
			if l.Kind != KindNone || len(l.Partitions) != 1 || l.Partitions[0].Index != 0 ||
				l.Partitions[0].Size != l.Size || l.Partitions[0].Filesystem != want {
				t.Fatalf("bare %s: kind %s partitions %+v", kind, l.Kind, l.Partitions)
			}
		})
	}
}

func TestProbeInsidePartitions(t *testing.T) {
	img := sfdiskImage(t, 64, gptScript)
	put := func(kind string, p int) {
		fs := fsImage(t, kind)
		b, err := os.ReadFile(fs)
		if err != nil {
			t.Fatal(err)
		}
		start := map[int]int64{1: 2048, 2: 8192, 3: 32768}[p] * 512
		patch(t, img, start, b)
	}
	put("vfat12", 1)
	put("ext4", 2)
	put("swap", 3)
	want := []string{FSVFAT, FSExt, FSSwap}
	l := readImage(t, img)
	for i, p := range l.Partitions {
		if p.Filesystem != want[i] {
			t.Errorf("partition %d: %q, want %q", p.Index, p.Filesystem, want[i])
		}
	}
}

func TestProbeMagics(t *testing.T) {
	// Formats we have no tool for here: the magic is placed by hand.
	for _, c := range []struct {
		off   int64
		magic string
		want  string
	}{
		{0, "XFSB", FSXFS}, {0x10040, "_BHRfS_M", FSBtrfs}, {0, "LUKS\xba\xbe", FSLUKS},
		{512, "LABELONE", FSLVM}, {4086, "SWAP-SPACE", FSSwap}, {65536 - 10, "SWAPSPACE2", FSSwap},
	} {
		b := make([]byte, 1<<17)
		copy(b[c.off:], c.magic)
		if c.want == FSLVM {
			copy(b[c.off+24:], "LVM2 001")
		}
		if got := Probe(bytesReaderAt(b), 0, int64(len(b))); got != c.want {
			t.Errorf("magic %q at %d: %q, want %q", c.magic, c.off, got, c.want)
		}
		// A region too small to hold the magic must not match (nor read outside).
		if got := Probe(bytesReaderAt(b), 0, c.off); got == c.want {
			t.Errorf("magic %q matched outside the region", c.magic)
		}
	}
	if got := Probe(bytesReaderAt(make([]byte, 1<<16)), 0, 1<<16); got != "" {
		t.Errorf("zeros probed as %q", got)
	}
}

type bytesReaderAt []byte

func (b bytesReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off >= int64(len(b)) {
		return 0, os.ErrInvalid
	}
	n := copy(p, b[off:])
	if n < len(p) {
		return n, os.ErrInvalid
	}
	return n, nil
}

func TestUnknownContentIsNone(t *testing.T) {
	l, err := Read(bytesReaderAt(make([]byte, 1<<20)), 1<<20)
	if err != nil || l.Kind != KindNone || len(l.Partitions) != 1 || l.Partitions[0].Filesystem != "" {
		t.Fatalf("zeros: %v %+v", err, l)
	}
	if _, err := Read(bytesReaderAt(make([]byte, 100)), 100); err == nil {
		t.Fatal("100-byte image accepted")
	}
}
