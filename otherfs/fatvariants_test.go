package otherfs_test

import (
	"encoding/binary"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"mis/disk"
	"mis/manifest"
	"mis/otherfs"
)

// fatTree writes a tree that exercises FAT's name rules: a long name with
// non-ASCII letters, an all-lower-case 8.3 name (stored with the NT case
// flag, no long entry), a mixed-case name (needs a long entry), a file of
// several clusters and an old mtime.
func fatTree(t *testing.T) string {
	src := t.TempDir()
	files := map[string][]byte{
		"ünïcode name.txt": []byte("hi\n"),
		"lower.txt":        []byte("x\n"),
		"UPPER.TXT":        []byte("U\n"),
		"Sub/MiXeD.Txt":    []byte("y\n"),
		"Sub/big.bin":      pattern(70000),
		"Sub/deeper/empty": nil,
	}
	for name, data := range files {
		p := filepath.Join(src, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := os.Chtimes(filepath.Join(src, "lower.txt"), old, old); err != nil {
		t.Fatal(err)
	}
	return src
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}

func TestWalkFATVariants(t *testing.T) {
	src := fatTree(t)
	for _, c := range []struct {
		bits   int
		sizeKB int
	}{{12, 1000}, {16, 16000}, {32, 40000}} {
		variant := "fat" + strconv.Itoa(c.bits)
		t.Run(variant, func(t *testing.T) {
			img := filepath.Join(t.TempDir(), variant+".img")
			run(t, nil, "mkfs.vfat", "-F", strconv.Itoa(c.bits), "-C", img, strconv.Itoa(c.sizeKB))
			ents, _ := os.ReadDir(src)
			for _, e := range ents {
				run(t, []string{"TZ=UTC", "MTOOLS_SKIP_CHECK=1"}, "mcopy", "-i", img, "-s", "-m", filepath.Join(src, e.Name()), "::/")
			}
			p := disk.Partition{Start: 0, Size: int64(c.sizeKB) << 10, Filesystem: "vfat"}
			got, info := walkAll(t, img, p)
			if info.Variant != variant {
				t.Errorf("variant %s, want %s", info.Variant, variant)
			}
			blkid, err := exec.Command("blkid", "-o", "value", "-s", "UUID", img).Output()
			if err != nil {
				t.Fatalf("blkid: %v", err)
			}
			if want := strings.TrimSpace(string(blkid)); info.UUID != want {
				t.Errorf("uuid %q, blkid says %q", info.UUID, want)
			}
			ref, mounted := reference(t, img, p)
			compareTree(t, ref, got, "vfat", mounted)
		})
	}
}

// A FAT whose cluster chain loops is refused with an error (go-diskfs
// would follow the loop forever).
func TestWalkRefusesLoopingFATChain(t *testing.T) {
	src := fatTree(t)
	img := filepath.Join(t.TempDir(), "fat16.img")
	run(t, nil, "mkfs.vfat", "-F", "16", "-C", img, "16000")
	run(t, []string{"MTOOLS_SKIP_CHECK=1"}, "mcopy", "-i", img, "-s", filepath.Join(src, "Sub"), "::/")
	data, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	bps := int(binary.LittleEndian.Uint16(data[11:]))
	fatStart := int(binary.LittleEndian.Uint16(data[14:])) * bps
	fatBytes := int(binary.LittleEndian.Uint16(data[22:])) * bps
	looped := -1
	for c := 2; c < fatBytes/2; c++ {
		v := binary.LittleEndian.Uint16(data[fatStart+2*c:])
		if v >= 2 && v < 0xfff0 { // a link inside a chain: point it back at itself
			for copyN := 0; copyN < int(data[16]); copyN++ {
				binary.LittleEndian.PutUint16(data[fatStart+copyN*fatBytes+2*c:], uint16(c))
			}
			looped = c
			break
		}
	}
	if looped < 0 {
		t.Fatal("no multi-cluster chain to loop")
	}
	if err := os.WriteFile(img, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(img)
	defer f.Close()
	_, err = otherfs.Walk(f, 0, int64(len(data)), "vfat", func(*manifest.Entry, io.Reader) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "loops") {
		t.Fatalf("walk of a FAT looping at cluster %d: %v, want a loop error", looped, err)
	}
	t.Logf("%v", err)
}
