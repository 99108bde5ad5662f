package chunker

import (
	"bytes"
	"fmt"
	"io"
	"testing"
)

// BenchmarkChunker measures cutting only, through the streaming API, on
// 64 MiB of mixed data.
func BenchmarkChunker(b *testing.B) {
	data := benchMixed()
	p := DefaultParams()
	r := bytes.NewReader(data)
	c := New(r, p)
	b.SetBytes(int64(len(data)))
	n := 0
	for b.Loop() {
		r.Reset(data)
		c.Reset(r)
		n = 0
		for {
			_, err := c.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
	}
	b.ReportMetric(float64(len(data))/float64(n), "B/chunk")
}

// BenchmarkBoundary measures the bare cut loop over an in-memory buffer.
func BenchmarkBoundary(b *testing.B) {
	data := benchMixed()
	p := DefaultParams()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		for rest := data; len(rest) > 0; {
			rest = rest[Boundary(rest, p):]
		}
	}
}

// BenchmarkSum hashes the 64 MiB of mixed data in pieces of the default
// average chunk size and, to expose per-call overhead, of 4 KiB.
func BenchmarkSum(b *testing.B) {
	data := benchMixed()
	for _, size := range []int{64 << 10, 4 << 10} {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				for off := 0; off < len(data); off += size {
					Sum(data[off:min(off+size, len(data))])
				}
			}
		})
	}
}
