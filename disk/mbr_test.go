package disk

import (
	"encoding/binary"
	"os"
	"strconv"
	"strings"
	"testing"
)

// Three primaries, an extended partition and three logical ones.
const mbrScript = `label: dos
label-id: 0x1234abcd
start=2048, size=4096, type=c, bootable
start=6144, size=8192, type=83
start=14336, size=4096, type=82
start=18432, type=5
start=20480, size=2048, type=83
start=24576, size=2048, type=82
start=28672, size=4096, type=7
`

func mbrImage(t *testing.T) string {
	img := sfdiskImage(t, 64, mbrScript)
	boot := make([]byte, 440)
	for i := range boot {
		boot[i] = byte(i*7 + 3)
	}
	patch(t, img, 0, boot)
	return img
}

func TestMBRMatchesSfdisk(t *testing.T) {
	img := mbrImage(t)
	l := readImage(t, img)
	st := sfdiskJSON(t, img)
	if l.Kind != KindMBR || st.PT.Label != "dos" || len(l.Warnings) != 0 {
		t.Fatalf("kind %s label %s warnings %q", l.Kind, st.PT.Label, l.Warnings)
	}
	if id := "0x" + strconv.FormatUint(uint64(l.MBR.DiskSignature), 16); id != st.PT.ID || l.MBR.DiskSignature != 0x1234abcd {
		t.Errorf("disk signature %s, sfdisk %s", id, st.PT.ID)
	}
	if string(l.MBR.BootCode[:]) != string(readAt(t, img, 0, 440)) || l.MBR.BootCode[1] != 10 {
		t.Errorf("boot code not kept")
	}
	if l.MBR.Signature != 0xaa55 || l.MBR.Protective {
		t.Errorf("signature %#x protective %v", l.MBR.Signature, l.MBR.Protective)
	}
	if len(l.Partitions) != len(st.PT.Partitions) || len(l.Partitions) != 7 {
		t.Fatalf("%d partitions, sfdisk %d", len(l.Partitions), len(st.PT.Partitions))
	}
	for i, p := range l.Partitions {
		sp := st.PT.Partitions[i]
		if sp.Node != img+strconv.Itoa(p.Index) || p.Start != sp.Start*512 || p.Size != sp.Size*512 ||
			strconv.FormatUint(uint64(p.MBR.Type), 16) != sp.Type || p.Bootable() != sp.Bootable {
			t.Errorf("partition %d: start %d size %d type %x boot %v; sfdisk %+v", p.Index, p.Start, p.Size, p.MBR.Type, p.Bootable(), sp)
		}
		if p.Logical != (p.Index >= 5) || p.Extended != (p.Index == 4) {
			t.Errorf("partition %d: logical %v extended %v", p.Index, p.Logical, p.Extended)
		}
		var entryOff int64
		if p.Logical {
			entryOff = p.EBROffset + 446
			if p.Start != p.EBROffset+int64(p.MBR.StartLBA)*512 {
				t.Errorf("partition %d: start is not EBR + relative start", p.Index)
			}
		} else {
			entryOff = 446 + int64(p.Index-1)*16
		}
		if raw := readAt(t, img, entryOff, 16); string(raw) != string(p.MBR.Raw[:]) ||
			string(raw[1:4]) != string(p.MBR.StartCHS[:]) || string(raw[5:8]) != string(p.MBR.EndCHS[:]) {
			t.Errorf("partition %d: raw entry % x, image % x", p.Index, p.MBR.Raw, raw)
		}
	}
	if len(l.EBRs) != 3 || l.EBRs[0].Offset != 18432*512 || l.EBRs[2].Entries[1].Type != 0 {
		t.Errorf("EBR chain %+v", l.EBRs)
	}
	// sfdisk -d agrees on the text form too.
	dump := run(t, "", "sfdisk", "-d", img)
	for _, p := range l.Partitions {
		line := img + strconv.Itoa(p.Index) + " : start=" + strings.Repeat(" ", 12-len(strconv.FormatInt(p.Start/512, 10))) + strconv.FormatInt(p.Start/512, 10)
		if !strings.Contains(dump, line) {
			t.Errorf("sfdisk -d has no line %q", line)
		}
	}
}

func TestMBRNoPartitions(t *testing.T) {
	l := readImage(t, sfdiskImage(t, 8, "label: dos\nlabel-id: 0xdeadbeef\n"))
	if l.Kind != KindMBR || len(l.Partitions) != 0 || l.MBR.DiskSignature != 0xdeadbeef {
		t.Fatalf("kind %s, %d partitions", l.Kind, len(l.Partitions))
	}
}

func TestMBREBRLoop(t *testing.T) {
	img := mbrImage(t)
	l := readImage(t, img)
	// Point the last EBR's link back at the first EBR (relative LBA 0).
	link := make([]byte, 16)
	link[4] = 0x05
	binary.LittleEndian.PutUint32(link[8:], 0)
	binary.LittleEndian.PutUint32(link[12:], 2048)
	patch(t, img, l.EBRs[2].Offset+462, link)
	l = readImage(t, img)
	if !warningsContain(l, "loops back") || len(l.Partitions) != 7 || len(l.EBRs) != 3 {
		t.Fatalf("loop: %d partitions, warnings %q", len(l.Partitions), l.Warnings)
	}
	// A link pointing outside the extended partition stops the chain too.
	binary.LittleEndian.PutUint32(link[8:], 1<<30)
	patch(t, img, l.EBRs[1].Offset+462, link)
	l = readImage(t, img)
	if !warningsContain(l, "outside the extended") || len(l.Partitions) != 6 {
		t.Fatalf("outside: %d partitions, warnings %q", len(l.Partitions), l.Warnings)
	}
}

func TestMBRPastEndAndOverlap(t *testing.T) {
	img := sfdiskImage(t, 16, "label: dos\nstart=2048, size=4096, type=83\nstart=8192, size=4096, type=83\n")
	// Second partition now starts inside the first: a warning.
	e := readAt(t, img, 446+16, 16)
	binary.LittleEndian.PutUint32(e[8:], 4000)
	patch(t, img, 446+16, e)
	if l := readImage(t, img); !warningsContain(l, "overlap") {
		t.Fatalf("overlap not reported: %q", l.Warnings)
	}
	// And now ends past the end of the disk: an error.
	binary.LittleEndian.PutUint32(e[12:], 1<<20)
	patch(t, img, 446+16, e)
	f, _ := os.Open(img)
	defer f.Close()
	if _, err := Read(f, 16<<20); err == nil || !strings.Contains(err.Error(), "partition 2") || !strings.Contains(err.Error(), "past the end") {
		t.Fatalf("past end: err %v", err)
	}
}

func TestMBRBadBootFlagIsNotMBR(t *testing.T) {
	img := sfdiskImage(t, 16, "label: dos\nstart=2048, size=4096, type=83\n")
	patch(t, img, 446, []byte{0x01})
	if l := readImage(t, img); l.Kind != KindNone {
		t.Fatalf("kind %s for an MBR with boot flag 0x01", l.Kind)
	}
}
