package chunker

import (
	"bytes"
	"slices"
	"testing"
	"testing/iotest"
)

func FuzzChunker(f *testing.F) {
	f.Add([]byte{}, uint8(0))
	f.Add([]byte("hello"), uint8(1))
	f.Add(mixedData(1, 3000), uint8(2))
	f.Add(make([]byte, 2000), uint8(3))
	f.Fuzz(func(t *testing.T, data []byte, shape uint8) {
		// Tiny params so that fuzz-sized inputs span many chunks.
		avg := 128 << (shape % 3)
		p := Params{Min: 64 + int(shape/3%4)*16, Avg: avg, Max: avg*2 + int(shape/12)}
		if err := p.Validate(); err != nil {
			t.Fatal(err)
		}
		chunks := chunkStream(t, bytes.NewReader(data), p)
		checkInvariants(t, data, chunks, p)
		if len(data) == 0 && len(chunks) != 0 {
			t.Fatalf("empty input gave %d chunks", len(chunks))
		}
		for off := 0; off < len(data); {
			n := Boundary(data[off:], p)
			if want := referenceBoundary(data[off:], p); n != want {
				t.Fatalf("offset %d: Boundary %d, reference %d", off, n, want)
			}
			off += n
		}
		half := chunkStream(t, iotest.HalfReader(bytes.NewReader(data)), p)
		if !slices.Equal(lengths(half), lengths(chunks)) {
			t.Fatalf("HalfReader cuts %v, whole reader %v", lengths(half), lengths(chunks))
		}
	})
}
