package disk

import (
	"bytes"
	"io"
	"os"
	"testing"
)

// virtualDisk is head, then gap zero sectors, then tail: a big disk from a small fuzz input.
type virtualDisk struct {
	head, tail []byte
	size       int64
}

func newVirtualDisk(head, tail []byte, gapSectors uint32) *virtualDisk {
	return &virtualDisk{head: head, tail: tail, size: int64(len(head)) + int64(gapSectors)*512 + int64(len(tail))}
}

func (v *virtualDisk) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off >= v.size {
		return 0, io.EOF
	}
	n := 0
	tailStart := v.size - int64(len(v.tail))
	for n < len(p) && off+int64(n) < v.size {
		pos := off + int64(n)
		switch {
		case pos < int64(len(v.head)):
			n += copy(p[n:], v.head[pos:])
		case pos >= tailStart:
			n += copy(p[n:], v.tail[pos-tailStart:])
		default:
			end := min(tailStart-pos, int64(len(p)-n))
			clear(p[n : n+int(end)])
			n += int(end)
		}
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// fuzzSeed splits a real image into its first and last MiB and the gap
// between. Zero sectors at the inner ends move into the gap: the disk is the
// same, and the fuzzer stays fast on small inputs.
func fuzzSeed(f *testing.F, path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	const mib = 1 << 20
	head, tail := b, []byte{}
	if len(b) > 2*mib {
		head, tail = b[:mib], b[len(b)-mib:]
	}
	zero := make([]byte, 512)
	for len(head) >= 512 && bytes.Equal(head[len(head)-512:], zero) {
		head = head[:len(head)-512]
	}
	for len(tail) >= 512 && bytes.Equal(tail[:512], zero) {
		tail = tail[512:]
	}
	f.Add(head, tail, uint32((len(b)-len(head)-len(tail))/512))
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

func FuzzRead(f *testing.F) {
	fuzzSeed(f, sfdiskImage(f, 64, gptScript))
	fuzzSeed(f, sfdiskImage(f, 64, mbrScript))
	fuzzSeed(f, sfdiskImage(f, 1, compactMBRScript))
	fuzzSeed(f, sfdiskImage(f, 8, "label: gpt\n"))
	f.Add([]byte{}, []byte{}, uint32(0))
	f.Fuzz(func(t *testing.T, head, tail []byte, gap uint32) {
		v := newVirtualDisk(head, tail, gap)
		l, err := Read(v, v.size)
		if err != nil {
			return
		}
		if l.Kind != KindGPT && l.Kind != KindMBR && l.Kind != KindNone {
			t.Fatalf("kind %q", l.Kind)
		}
		for _, p := range l.Partitions {
			if p.Start < 0 || p.Size < 0 || p.Start+p.Size > v.size {
				t.Fatalf("partition %d (%d+%d) outside a %d-byte disk", p.Index, p.Start, p.Size, v.size)
			}
		}
		if len(l.EBRs) > maxEBRs {
			t.Fatalf("%d EBRs", len(l.EBRs))
		}
	})
}
