package disk

import (
	"encoding/binary"
	"hash/crc32"
	"os"
	"strconv"
	"strings"
	"testing"
)

const gptScript = `label: gpt
label-id: 01234567-89AB-CDEF-0123-456789ABCDEF
start=2048, size=4096, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, uuid=11111111-2222-3333-4444-555555555555, name="EFI system", attrs="RequiredPartition LegacyBIOSBootable GUID:60,63"
start=8192, size=16384, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=AABBCCDD-EEFF-0011-2233-445566778899, name="root ünïcode"
start=32768, size=2048, type=0657FD6D-A4AB-43C4-84E5-0933C84B4F4F, uuid=0A0B0C0D-0E0F-1011-1213-141516171819, name="swap", attrs="NoBlockIOProtocol"
`

func TestGPTMatchesSfdisk(t *testing.T) {
	img := sfdiskImage(t, 64, gptScript)
	l := readImage(t, img)
	st := sfdiskJSON(t, img)
	if l.Kind != KindGPT || st.PT.Label != "gpt" {
		t.Fatalf("kind %q, sfdisk label %q", l.Kind, st.PT.Label)
	}
	if len(l.Warnings) != 0 {
		t.Errorf("warnings on a clean sfdisk GPT: %q", l.Warnings)
	}
	g := l.GPT
	if g.DiskGUID != strings.ToLower(st.PT.ID) || g.DiskGUID != "01234567-89ab-cdef-0123-456789abcdef" {
		t.Errorf("disk GUID %s, sfdisk %s", g.DiskGUID, st.PT.ID)
	}
	if g.FirstUsableLBA != st.PT.FirstLBA || g.LastUsableLBA != st.PT.LastLBA || l.SectorSize != st.PT.SectorSize {
		t.Errorf("usable %d..%d ss %d; sfdisk %d..%d ss %d", g.FirstUsableLBA, g.LastUsableLBA, l.SectorSize, st.PT.FirstLBA, st.PT.LastLBA, st.PT.SectorSize)
	}
	lastLBA := uint64(64<<20/512 - 1)
	if g.Revision != 0x10000 || g.HeaderSize != 92 || g.MyLBA != 1 || g.AlternateLBA != lastLBA ||
		g.PartitionEntryLBA != 2 || g.NumEntries != 128 || g.EntrySize != 128 {
		t.Errorf("header fields %+v", g.GPTHeader)
	}
	if g.FromBackup || !g.BackupAgrees || g.Backup == nil || g.Backup.MyLBA != lastLBA || g.Backup.PartitionEntryLBA != lastLBA-32 {
		t.Errorf("backup: from %v agrees %v header %+v", g.FromBackup, g.BackupAgrees, g.Backup)
	}
	// Header CRCs as stored in the image.
	if crc := binary.LittleEndian.Uint32(readAt(t, img, 512+16, 4)); crc != g.HeaderCRC {
		t.Errorf("header CRC %08x, image %08x", g.HeaderCRC, crc)
	}
	if crc := crc32.ChecksumIEEE(readAt(t, img, 1024, 128*128)); crc != g.EntriesCRC {
		t.Errorf("entries CRC %08x, computed %08x", g.EntriesCRC, crc)
	}
	if !l.MBR.Protective || l.MBR.Entries[0].Type != 0xee || l.MBR.Entries[0].StartLBA != 1 || uint64(l.MBR.Entries[0].Sectors) != lastLBA {
		t.Errorf("protective MBR %+v", l.MBR.Entries[0])
	}
	if len(l.Partitions) != len(st.PT.Partitions) {
		t.Fatalf("%d partitions, sfdisk %d", len(l.Partitions), len(st.PT.Partitions))
	}
	for i, p := range l.Partitions {
		sp := st.PT.Partitions[i]
		if want := img + itoaT(p.Index); sp.Node != want {
			t.Errorf("partition %d: sfdisk node %s", p.Index, sp.Node)
		}
		e := p.GPT
		if p.Start != sp.Start*512 || p.Size != sp.Size*512 || e.TypeGUID != strings.ToLower(sp.Type) ||
			e.PartGUID != strings.ToLower(sp.UUID) || e.Name != sp.Name || sfdiskAttrs(e.Attributes) != sp.Attrs {
			t.Errorf("partition %d: %+v %+v; sfdisk %+v", p.Index, p, e, sp)
		}
		raw := readAt(t, img, 1024+int64(p.Index-1)*128, 128)
		if string(raw) != string(e.Raw) || string(raw[56:]) != string(e.NameRaw[:]) {
			t.Errorf("partition %d: raw entry differs from the image", p.Index)
		}
	}
	if a := l.Partitions[0].GPT.Attributes; a != 1|4|1<<60|1<<63 {
		t.Errorf("attributes %#x", a)
	}
	// Mixed-endian decoding pinned against the raw bytes of partition 2's GUID.
	if raw := l.Partitions[1].GPT.Raw[16:32]; raw[0] != 0xdd || raw[3] != 0xaa || raw[4] != 0xff || raw[8] != 0x22 || raw[15] != 0x99 {
		t.Errorf("raw GUID bytes % x", raw)
	}
}

func itoaT(i int) string { return strconv.Itoa(i) }

func TestGPTNoPartitions(t *testing.T) {
	l := readImage(t, sfdiskImage(t, 8, "label: gpt\n"))
	if l.Kind != KindGPT || len(l.Partitions) != 0 || !l.GPT.BackupAgrees {
		t.Fatalf("kind %s, %d partitions, warnings %q", l.Kind, len(l.Partitions), l.Warnings)
	}
}

func TestGPTCorruptPrimaryUsesBackup(t *testing.T) {
	img := sfdiskImage(t, 64, gptScript)
	want := readImage(t, img)
	patch(t, img, 1024+56, []byte("X")) // first entry's name: entries CRC now wrong
	l := readImage(t, img)
	if !l.GPT.FromBackup || !warningsContain(l, "primary GPT invalid") || !warningsContain(l, "CRC") {
		t.Fatalf("from backup %v, warnings %q", l.GPT.FromBackup, l.Warnings)
	}
	if l.GPT.MyLBA != want.GPT.AlternateLBA || len(l.Partitions) != 3 {
		t.Fatalf("backup header %+v, %d partitions", l.GPT.GPTHeader, len(l.Partitions))
	}
	for i := range l.Partitions {
		if string(l.Partitions[i].GPT.Raw) != string(want.Partitions[i].GPT.Raw) {
			t.Errorf("partition %d differs when read from the backup", i+1)
		}
	}
	// Wiped primary header: still recovered, because the MBR has an 0xEE entry.
	patch(t, img, 512, make([]byte, 512))
	if l := readImage(t, img); !l.GPT.FromBackup || len(l.Partitions) != 3 {
		t.Fatalf("wiped primary: %+v", l)
	}
	// Both bad: a clear error.
	patch(t, img, 64<<20-512+16, []byte{1, 2, 3, 4})
	f, _ := os.Open(img)
	defer f.Close()
	_, err := Read(f, 64<<20)
	if err == nil || !strings.Contains(err.Error(), "0xEE") {
		t.Fatalf("both GPTs bad: err %v", err)
	}
}

func TestGPTBackupDisagrees(t *testing.T) {
	img := sfdiskImage(t, 64, gptScript)
	// Rewrite the backup's entry array and fix its CRCs so it is valid but different.
	last := int64(64<<20 - 512)
	entries := readAt(t, img, last-32*512, 128*128)
	entries[56] = 'Z'
	patch(t, img, last-32*512, entries)
	hdr := readAt(t, img, last, 92)
	binary.LittleEndian.PutUint32(hdr[88:], crc32.ChecksumIEEE(entries))
	clear(hdr[16:20])
	binary.LittleEndian.PutUint32(hdr[16:], crc32.ChecksumIEEE(hdr))
	patch(t, img, last, hdr)
	l := readImage(t, img)
	if l.GPT.FromBackup || l.GPT.BackupAgrees || !warningsContain(l, "disagrees") {
		t.Fatalf("from backup %v agrees %v warnings %q", l.GPT.FromBackup, l.GPT.BackupAgrees, l.Warnings)
	}
}

func TestGPTHybridMBR(t *testing.T) {
	img := sfdiskImage(t, 64, gptScript)
	// Add a FAT entry in slot 2 of the protective MBR, as a hybrid MBR does.
	e := make([]byte, 16)
	e[4] = 0x0c
	binary.LittleEndian.PutUint32(e[8:], 2048)
	binary.LittleEndian.PutUint32(e[12:], 4096)
	patch(t, img, 446+16, e)
	l := readImage(t, img)
	if l.Kind != KindGPT || l.MBR.Protective || !warningsContain(l, "hybrid") || l.MBR.Entries[1].Type != 0x0c {
		t.Fatalf("kind %s protective %v warnings %q", l.Kind, l.MBR.Protective, l.Warnings)
	}
	if len(l.Partitions) != 3 {
		t.Fatalf("hybrid MBR changed the GPT partitions: %d", len(l.Partitions))
	}
}

func TestGPTTruncatedImage(t *testing.T) {
	img := sfdiskImage(t, 64, gptScript)
	if err := os.Truncate(img, 10<<20); err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(img)
	defer f.Close()
	_, err := Read(f, 10<<20)
	if err == nil || !strings.Contains(err.Error(), "past the end") {
		t.Fatalf("truncated GPT disk: err %v", err)
	}
}
