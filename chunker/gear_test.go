package chunker

import (
	"encoding/binary"
	"math/bits"
	"slices"
	"testing"

	"github.com/zeebo/blake3"
)

// The gear table and the cut rule are on-disk format: these tests pin them
// so that an accidental change fails loudly instead of silently breaking
// deduplication against existing stores.

func TestGearTablePinned(t *testing.T) {
	var raw []byte
	for _, v := range gear {
		raw = binary.LittleEndian.AppendUint64(raw, v)
	}
	// Reproduce with: printf 'mis chunker gear table v1' | b3sum --length 2048 --raw | b3sum
	const want = "53401bfdbcf96e7224e3eae362defef94b8491e97fb8fad0012432c24308817c"
	if got := ID(blake3.Sum256(raw)).String(); got != want {
		t.Fatalf("gear table hash = %s, want %s", got, want)
	}
	// The first entry by hand, as documented: the XOF's first 8 bytes.
	xof := blake3.New()
	xof.WriteString(gearSeed)
	var first [8]byte
	xof.Digest().Read(first[:])
	if gear[0] != binary.LittleEndian.Uint64(first[:]) {
		t.Fatalf("gear[0] = %#x, not the little-endian start of the XOF %x", gear[0], first)
	}
}

func TestCutPointsPinned(t *testing.T) {
	// Params are spelled out, not taken from DefaultParams, so that a
	// deliberate change of the default does not look like a format change.
	cases := []struct {
		p    Params
		size int
		want []int
	}{
		{small, 64 << 10, []int{998, 395, 1043, 1044, 267, 1099, 1025, 1401, 1011, 1181, 1185, 1369, 1024, 926, 1116, 1052, 1164, 1171, 1068, 858, 798, 1202, 1572, 1492, 943, 1368, 1798, 768, 1803, 1088, 1966, 1940, 1299, 1260, 1321, 1169, 392, 1287, 336, 1070, 1291, 1050, 297, 1330, 1510, 1248, 1118, 1423, 1071, 1031, 1170, 1101, 1517, 1215, 1112, 1262, 1521}},
		{Params{Min: 16 << 10, Avg: 64 << 10, Max: 256 << 10}, 4 << 20, []int{69578, 30524, 80209, 63155, 68306, 74813, 67466, 67569, 55341, 102471, 73778, 43874, 77484, 43314, 78045, 67723, 74207, 74616, 73832, 90928, 73710, 74020, 66789, 71538, 69929, 68894, 79625, 69288, 75837, 64209, 71328, 89273, 26718, 74294, 71314, 109360, 24002, 66861, 41238, 72977, 108541, 47211, 66747, 104335, 67312, 104878, 30146, 67216, 79475, 98150, 85128, 28856, 47332, 66219, 76024, 77853, 79246, 79642, 74269, 67287}},
	}
	for _, c := range cases {
		got := boundaryLengths(randomBytes(42, c.size), c.p)
		if !slices.Equal(got, c.want) {
			t.Errorf("%v over %d random bytes: cuts %#v, want %#v", c.p, c.size, got, c.want)
		}
	}
}

// referenceBoundary restates the cut rule documented on Boundary as plainly
// as possible, without the split loops, to check the fast version.
func referenceBoundary(data []byte, p Params) int {
	strict := ^uint64(0) << (64 - (bits.TrailingZeros(uint(p.Avg)) + 2))
	loose := ^uint64(0) << (64 - (bits.TrailingZeros(uint(p.Avg)) - 2))
	var h uint64
	for i := 0; i < len(data) && i < p.Max; i++ {
		if i < p.Min {
			continue
		}
		h = h<<1 + gear[data[i]]
		mask := strict
		if i >= p.Avg {
			mask = loose
		}
		if h&mask == 0 {
			return i + 1
		}
	}
	return min(len(data), p.Max)
}

func TestBoundaryMatchesReference(t *testing.T) {
	for _, p := range []Params{small, {Min: 64, Avg: 128, Max: 256}, DefaultParams()} {
		for seed, data := range [][]byte{mixedData(31, 2<<20), randomBytes(31, 2<<20), make([]byte, 3*p.Max+5)} {
			for off := 0; off < len(data); {
				got, want := Boundary(data[off:], p), referenceBoundary(data[off:], p)
				if got != want {
					t.Fatalf("%v, data %d at offset %d: Boundary = %d, reference = %d", p, seed, off, got, want)
				}
				off += got
			}
		}
	}
}
