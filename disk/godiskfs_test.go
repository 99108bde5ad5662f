package disk

import (
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/diskfs/go-diskfs/partition/mbr"
)

// TestGoDiskfsAgrees cross-checks our GPT and MBR reading against go-diskfs.
func TestGoDiskfsAgrees(t *testing.T) {
	img := sfdiskImage(t, 64, gptScript)
	l := readImage(t, img)
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gt, err := gpt.Read(f, 512, 512)
	if err != nil {
		t.Fatal(err)
	}
	if strings.ToLower(gt.GUID) != l.GPT.DiskGUID || !gt.ProtectiveMBR || len(gt.Partitions) != len(l.Partitions) {
		t.Fatalf("go-diskfs: guid %s protective %v %d partitions", gt.GUID, gt.ProtectiveMBR, len(gt.Partitions))
	}
	for i, gp := range gt.Partitions {
		p := l.Partitions[i]
		if gp.Index != p.Index || int64(gp.Start)*512 != p.Start || int64(gp.Size) != p.Size || gp.Name != p.GPT.Name ||
			strings.ToLower(string(gp.Type)) != p.GPT.TypeGUID || strings.ToLower(gp.GUID) != p.GPT.PartGUID || gp.Attributes != p.GPT.Attributes {
			t.Errorf("partition %d: go-diskfs %+v, ours %+v", p.Index, gp, p.GPT)
		}
	}

	mimg := mbrImage(t)
	ml := readImage(t, mimg)
	mf, err := os.Open(mimg)
	if err != nil {
		t.Fatal(err)
	}
	defer mf.Close()
	mt, err := mbr.Read(mf, 512, 512)
	if err != nil {
		t.Fatal(err)
	}
	if mt.UUID() != "1234abcd" {
		t.Errorf("go-diskfs MBR UUID %s", mt.UUID())
	}
	for i, mp := range mt.Partitions {
		p := ml.Partitions[i]
		if mp.Bootable != p.Bootable() || byte(mp.Type) != p.MBR.Type || mp.Start != p.MBR.StartLBA || mp.Size != p.MBR.Sectors ||
			[3]byte{mp.StartHead, mp.StartSector, mp.StartCylinder} != p.MBR.StartCHS {
			t.Errorf("MBR partition %d: go-diskfs %+v, ours %+v", i+1, mp, p.MBR)
		}
	}
	// Shortfall: go-diskfs lists only the 4 primary slots, no logical partitions.
	if len(mt.Partitions) != 4 {
		t.Errorf("go-diskfs fixed logical partitions (now %d partitions): revisit", len(mt.Partitions))
	}
}

// TestGoDiskfsShortfalls pins the places where go-diskfs v1.9.4 is wrong, so
// that an upgrade that fixes them is noticed.
func TestGoDiskfsShortfalls(t *testing.T) {
	img := sfdiskImage(t, 16, "label: gpt\nstart=2048, size=4096, type=L, name=\"a\"\n")
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rewriteHeader := func(edit func(h []byte)) {
		h := readAt(t, img, 512, 512)
		edit(h)
		size := binary.LittleEndian.Uint32(h[12:])
		if size > 512 {
			size = 92
		}
		clear(h[16:20])
		binary.LittleEndian.PutUint32(h[16:], crc32.ChecksumIEEE(h[:size]))
		patch(t, img, 512, h)
	}

	// 1. The UEFI spec allows a header larger than 92 bytes (CRC over HeaderSize);
	// go-diskfs insists on exactly 92 and silently falls back to the backup.
	rewriteHeader(func(h []byte) { binary.LittleEndian.PutUint32(h[12:], 96) })
	l := readImage(t, img)
	if l.GPT.FromBackup || l.GPT.HeaderSize != 96 || len(l.Partitions) != 1 {
		t.Fatalf("ours: 96-byte header: from backup %v size %d", l.GPT.FromBackup, l.GPT.HeaderSize)
	}
	gt, err := gpt.Read(f, 512, 512)
	if err == nil && !gt.RecoveredFromBackup {
		t.Errorf("go-diskfs fixed 96-byte GPT headers: revisit")
	}

	// 2. An absurd entry count makes go-diskfs panic on allocation instead of erroring.
	rewriteHeader(func(h []byte) {
		binary.LittleEndian.PutUint32(h[12:], 92)
		binary.LittleEndian.PutUint32(h[80:], 0xffffffff)
		binary.LittleEndian.PutUint32(h[84:], 0xffffffff)
	})
	// Break the backup too so go-diskfs cannot fall back.
	patch(t, img, 16<<20-512, make([]byte, 512))
	if _, err := Read(f, 16<<20); err == nil || !strings.Contains(err.Error(), "entry") {
		t.Errorf("ours: absurd entry array: err %v", err)
	}
	panicked := func() (p bool) {
		defer func() { p = recover() != nil }()
		gpt.Read(f, 512, 512)
		return false
	}()
	if !panicked {
		t.Errorf("go-diskfs fixed the panic on a huge GPT entry array: revisit")
	}
}

// TestGPT4KSectors reads a GPT written by go-diskfs with 4096-byte logical
// sectors (this sfdisk has no --sector-size for images).
func TestGPT4KSectors(t *testing.T) {
	img := filepath.Join(t.TempDir(), "4k.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const size = 64 << 20
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	tbl := &gpt.Table{LogicalSectorSize: 4096, PhysicalSectorSize: 4096, ProtectiveMBR: true,
		GUID: "6D697300-0000-4000-8000-00000000004B",
		Partitions: []*gpt.Partition{{Index: 1, Start: 256, End: 2303, Type: gpt.LinuxFilesystem, Name: "four k",
			GUID: "6D697300-0000-4000-8000-0000000000B1"}}}
	if err := tbl.Write(f, size); err != nil {
		t.Fatal(err)
	}
	l, err := Read(f, size)
	if err != nil {
		t.Fatal(err)
	}
	if l.Kind != KindGPT || l.SectorSize != 4096 || len(l.Partitions) != 1 || !l.GPT.BackupAgrees {
		t.Fatalf("kind %s sector %d partitions %d warnings %q", l.Kind, l.SectorSize, len(l.Partitions), l.Warnings)
	}
	p := l.Partitions[0]
	if p.Start != 256*4096 || p.Size != 2048*4096 || p.GPT.Name != "four k" || p.GPT.PartGUID != "6d697300-0000-4000-8000-0000000000b1" ||
		l.GPT.DiskGUID != "6d697300-0000-4000-8000-00000000004b" {
		t.Errorf("partition %+v %+v", p, p.GPT)
	}
}
