package disk

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/metrics"
	"strings"
	"testing"
	"time"

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
		v := decodeSparse(data, int64(sizeSectors)*512)
		slow := time.AfterFunc(10*time.Second, func() { panic("input took over 10s: possible endless loop") })
		defer slow.Stop()
		defer checkAllocs(t, 64<<20)()
		l, err := Read(v, v.size)
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
			if p.Start < 0 || p.Size < 0 || p.Start > v.size || p.Size > v.size-p.Start {
				t.Fatalf("partition %d (%d+%d) outside a %d-byte disk", p.Index, p.Start, p.Size, v.size)
			}
		}
		if len(l.EBRs) > maxEBRs {
			t.Fatalf("%d EBRs", len(l.EBRs))
		}
	})
}

// checkAllocs fails the input if it made the process allocate more than
// limit bytes (a size field trusted too early is the usual cause). Go's
// fuzzer does not see allocations that never touch memory.
func checkAllocs(t *testing.T, limit uint64) func() {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	before := s[0].Value.Uint64()
	return func() {
		metrics.Read(s)
		if n := s[0].Value.Uint64() - before; n > limit {
			t.Fatalf("allocated %d MiB for one input", n>>20)
		}
	}
}

// maxSparseSize bounds the device a fuzz input describes.
const maxSparseSize = 1 << 40

// sparseDev is a device of size bytes reading as zeros except for recs.
type sparseDev struct {
	size int64
	recs []sparseRec // later records win where they overlap
}

// sparseRec puts data at off, or n copies of fill when data is nil.
type sparseRec struct {
	off, n int64
	data   []byte
	fill   byte
}

// decodeSparse reads records until the input ends (a truncated last
// record is cut short) onto a device of size bytes (at most
// maxSparseSize; bytes beyond it are dropped). A record is
// uvarint(offset) uvarint(n<<1) and n bytes, or uvarint(offset)
// uvarint(n<<1|1) and one byte repeated n times (bitmap padding).
func decodeSparse(in []byte, size int64) *sparseDev {
	d := &sparseDev{size: max(0, min(size, maxSparseSize))}
	for len(in) > 0 {
		off, n1 := binary.Uvarint(in)
		if n1 <= 0 {
			break
		}
		ln, n2 := binary.Uvarint(in[n1:])
		if n2 <= 0 {
			break
		}
		in = in[n1+n2:]
		r := sparseRec{off: int64(min(off, uint64(d.size))), n: int64(min(ln>>1, uint64(d.size)))}
		if ln&1 == 1 {
			if len(in) == 0 {
				break
			}
			r.fill, in = in[0], in[1:]
		} else {
			r.data = in[:min(uint64(len(in)), ln>>1)]
			in = in[len(r.data):]
			r.n = int64(len(r.data))
		}
		r.n = min(r.n, d.size-r.off)
		if r.n > 0 {
			d.recs = append(d.recs, r)
		}
	}
	return d
}

func (d *sparseDev) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off >= d.size {
		return 0, io.EOF
	}
	n := len(p)
	if int64(n) > d.size-off {
		n = int(d.size - off)
	}
	clear(p[:n])
	end := off + int64(n)
	for _, r := range d.recs {
		rend := r.off + r.n
		if rend <= off || r.off >= end {
			continue
		}
		lo, hi := max(off, r.off), min(end, rend)
		if r.data != nil {
			copy(p[lo-off:hi-off], r.data[lo-r.off:hi-r.off])
		} else {
			dst := p[lo-off : hi-off]
			for i := range dst {
				dst[i] = r.fill
			}
		}
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// encodeSparse is decodeSparse's inverse for an image: its non-zero
// stretches (zero runs shorter than 32 bytes stay inside a record), runs
// of 64 or more equal bytes as fill records.
func encodeSparse(img []byte) []byte {
	var out []byte
	lit := func(i, end int) {
		if end > i {
			out = binary.AppendUvarint(out, uint64(i))
			out = binary.AppendUvarint(out, uint64(end-i)<<1)
			out = append(out, img[i:end]...)
		}
	}
	run := func(i int) int { // length of the run of img[i] from i
		j := i
		for j < len(img) && img[j] == img[i] {
			j++
		}
		return j - i
	}
	for i := 0; i < len(img); {
		if img[i] == 0 {
			i++
			continue
		}
		if n := run(i); n >= 64 {
			out = binary.AppendUvarint(out, uint64(i))
			out = binary.AppendUvarint(out, uint64(n)<<1|1)
			out = append(out, img[i])
			i += n
			continue
		}
		j := i
		for j < len(img) {
			if n := run(j); (img[j] == 0 && n >= 32) || (img[j] != 0 && n >= 64) {
				break
			} else {
				j += n
			}
		}
		lit(i, j)
		i = j
	}
	return out
}

func readAll(d *sparseDev) []byte {
	b := make([]byte, d.size)
	d.ReadAt(b, 0)
	return b
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
		enc := encodeSparse(img)
		if !bytes.Equal(readAll(decodeSparse(enc, int64(len(img)))), img) {
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
		v := decodeSparse(data, int64(sectors)*512)
		l, err := Read(v, v.size)
		if err != nil || l.Kind != kind || (name != "gpt-empty" && len(l.Partitions) == 0) {
			t.Errorf("%s: %v, kind %v", name, err, l)
		}
	}
}
