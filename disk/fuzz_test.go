package disk

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mis/testkit/fuzzkit"

	"github.com/diskfs/go-diskfs/partition/gpt"
)

// FuzzRead reads partition tables (GPT at both sector sizes, MBR, the EBR
// chain, the filesystem probe) from a disk given as bytes. Errors are
// fine; panics, hangs, huge allocations and layouts that break the
// promises of Read are not.
//
// Input: a sparse disk of sizeSectors 512-byte sectors (up to 2 TiB) that
// reads as zeros except where records put bytes (see decodeSparse). Seeds
// in testdata/fuzz/FuzzRead are tables made by sfdisk and go-diskfs
// (regenerate with MIS_WRITE_FUZZ_SEEDS=1 go test -run TestWriteFuzzSeeds).
func FuzzRead(f *testing.F) {
	f.Add([]byte{}, uint32(0))
	f.Fuzz(func(t *testing.T, data []byte, sizeSectors uint32) {
		v := fuzzkit.DecodeSparse(data, int64(sizeSectors)*512)
		slow := time.AfterFunc(10*time.Second, func() { panic("input took over 10s: possible endless loop") })
		defer slow.Stop()
		defer fuzzkit.CheckAllocs(t, 64<<20)()
		l, err := Read(v, v.Size())
		if err != nil {
			return
		}
		if l.Kind != KindGPT && l.Kind != KindMBR && l.Kind != KindNone {
			t.Fatalf("kind %q", l.Kind)
		}
		if l.SectorSize != 512 && l.SectorSize != 4096 {
			t.Fatalf("sector size %d", l.SectorSize)
		}
		for _, p := range l.Partitions {
			if p.Start < 0 || p.Size < 0 || p.Start > v.Size() || p.Size > v.Size()-p.Start {
				t.Fatalf("partition %d (%d+%d) outside a %d-byte disk", p.Index, p.Start, p.Size, v.Size())
			}
		}
		if len(l.EBRs) > maxEBRs {
			t.Fatalf("%d EBRs", len(l.EBRs))
		}
	})
}

// A small MBR whose EBR chain fits in the first MiB.
const compactMBRScript = `label: dos
label-id: 0xcafef00d
start=64, size=64, type=c, bootable
start=128, size=64, type=83
start=256, size=1700, type=5
start=320, size=64, type=83
start=448, size=64, type=82
start=576, size=64, type=83
`

// TestWriteFuzzSeeds regenerates testdata/fuzz/FuzzRead/seed-* from tables
// written by real tools (MIS_WRITE_FUZZ_SEEDS=1; needs sfdisk).
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("MIS_WRITE_FUZZ_SEEDS") == "" {
		t.Skip("set MIS_WRITE_FUZZ_SEEDS=1 to rewrite the committed seeds")
	}
	read := func(p string) []byte {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	seeds := map[string][]byte{
		"gpt":         read(sfdiskImage(t, 64, gptScript)),
		"gpt-empty":   read(sfdiskImage(t, 8, "label: gpt\n")),
		"gpt-4-slots": read(sfdiskImage(t, 8, "label: gpt\ntable-length: 4\nstart=2048, size=2048, type=L\n")),
		"mbr":         read(sfdiskImage(t, 64, mbrScript)),
		"mbr-compact": read(sfdiskImage(t, 1, compactMBRScript)),
	}
	hybrid := bytes.Clone(seeds["gpt"])
	hybrid[446+16+4] = 0x0c
	binary.LittleEndian.PutUint32(hybrid[446+16+8:], 2048)
	binary.LittleEndian.PutUint32(hybrid[446+16+12:], 4096)
	seeds["gpt-hybrid"] = hybrid
	bare := make([]byte, 1<<20)
	bare[1024+56], bare[1024+57] = 0x53, 0xef
	seeds["bare-ext"] = bare
	{ // 4096-byte sectors (sfdisk cannot write them to an image)
		p := filepath.Join(t.TempDir(), "4k.img")
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		const size = 16 << 20
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
		f.Close()
		seeds["gpt-4k"] = read(p)
	}
	out := filepath.Join("testdata", "fuzz", "FuzzRead")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, img := range seeds {
		if len(img)%512 != 0 {
			t.Fatalf("%s: %d bytes", name, len(img))
		}
		if _, err := Read(bytes.NewReader(img), int64(len(img))); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		enc := fuzzkit.EncodeSparse(img)
		if !bytes.Equal(fuzzkit.DecodeSparse(enc, int64(len(img))).Bytes(), img) {
			t.Fatalf("%s: the sparse encoding does not read back", name)
		}
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\nuint32(%d)\n", enc, len(img)/512)
		if err := os.WriteFile(filepath.Join(out, "seed-"+name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("seed-%s: %d-byte disk, %d bytes in the corpus file", name, len(img), len(body))
	}
}

// TestFuzzSeedsAreTables: the committed seeds still read as what they were
// made as (a seed Read refuses would only fuzz the first checks).
func TestFuzzSeedsAreTables(t *testing.T) {
	want := map[string]string{"gpt": KindGPT, "gpt-empty": KindGPT, "gpt-4-slots": KindGPT, "gpt-hybrid": KindGPT,
		"gpt-4k": KindGPT, "mbr": KindMBR, "mbr-compact": KindMBR, "bare-ext": KindNone}
	for name, kind := range want {
		b, err := os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzRead", "seed-"+name))
		if err != nil {
			t.Fatal(err)
		}
		var data []byte
		var sectors uint32
		lines := strings.SplitN(string(b), "\n", 4)
		if _, err := fmt.Sscanf(lines[1], "[]byte(%q)", &data); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := fmt.Sscanf(lines[2], "uint32(%d)", &sectors); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		v := fuzzkit.DecodeSparse(data, int64(sectors)*512)
		l, err := Read(v, v.Size())
		if err != nil || l.Kind != kind || (name != "gpt-empty" && len(l.Partitions) == 0) {
			t.Errorf("%s: %v, kind %v", name, err, l)
		}
	}
}
