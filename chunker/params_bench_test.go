package chunker

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// BenchmarkParams compares candidate parameter sets on ~200 MB of real files
// from this machine, laid out like a tar archive (see systemCorpus). Per set
// it reports:
//
//	MB/s               cutting throughput (Boundary over the whole corpus)
//	B/chunk            mean chunk size
//	chunks/GiB         index entries per GiB of input
//	unique-%           bytes left after deduplicating the corpus itself
//	zstd-%             compressed size of the unique chunks, each compressed alone
//	insert-shared-%    bytes of the edited corpus in chunks shared with the
//	                   original, after inserting 1-8 bytes at 100 random places
//	overwrite-shared-% the same after overwriting 100 random aligned 4 KiB
//	                   blocks, the way a VM changes its disk
//
// Run: go test -run '^$' -bench Params -timeout 1200s ./chunker
func BenchmarkParams(b *testing.B) {
	corpus := paramsCorpus(b)
	inserted := insertEdits(corpus, 100, 99)
	overwritten := overwriteEdits(corpus, 100, 4096, 98)
	for _, p := range []Params{
		{Min: 8 << 10, Avg: 32 << 10, Max: 128 << 10},
		{Min: 16 << 10, Avg: 64 << 10, Max: 256 << 10},
		{Min: 32 << 10, Avg: 128 << 10, Max: 512 << 10},
	} {
		name := fmt.Sprintf("%d-%d-%dKiB", p.Min>>10, p.Avg>>10, p.Max>>10)
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(corpus)))
			for b.Loop() {
				for rest := corpus; len(rest) > 0; {
					rest = rest[Boundary(rest, p):]
				}
			}
			orig := cutAll(corpus, p)
			ids := chunkIDs(orig)
			unique := uniqueBytes(orig, ids)
			b.ReportMetric(float64(len(corpus))/float64(len(orig)), "B/chunk")
			b.ReportMetric(float64(len(orig))*float64(1<<30)/float64(len(corpus)), "chunks/GiB")
			b.ReportMetric(100*float64(unique)/float64(len(corpus)), "unique-%")
			b.ReportMetric(100*float64(compressedSize(b, orig, ids))/float64(unique), "zstd-%")
			b.ReportMetric(100*sharedWith(ids, cutAll(inserted, p)), "insert-shared-%")
			b.ReportMetric(100*sharedWith(ids, cutAll(overwritten, p)), "overwrite-shared-%")
		})
	}
}

var (
	corpusOnce sync.Once
	corpus     []byte
)

func paramsCorpus(b *testing.B) []byte {
	corpusOnce.Do(func() {
		corpus = systemCorpus(b, 200<<20, "/usr/lib/x86_64-linux-gnu", "/usr/bin")
	})
	if corpus == nil {
		b.Skip("no system corpus")
	}
	return corpus
}

// cutAll splits data with Boundary; the chunks alias data.
func cutAll(data []byte, p Params) [][]byte {
	var chunks [][]byte
	for len(data) > 0 {
		n := Boundary(data, p)
		chunks = append(chunks, data[:n])
		data = data[n:]
	}
	return chunks
}

func chunkIDs(chunks [][]byte) map[ID]bool {
	ids := make(map[ID]bool, len(chunks))
	for _, c := range chunks {
		ids[Sum(c)] = true
	}
	return ids
}

func uniqueBytes(chunks [][]byte, ids map[ID]bool) int {
	seen := make(map[ID]bool, len(ids))
	n := 0
	for _, c := range chunks {
		if id := Sum(c); !seen[id] {
			seen[id] = true
			n += len(c)
		}
	}
	return n
}

// compressedSize compresses each unique chunk on its own, as a store would.
func compressedSize(b *testing.B, chunks [][]byte, ids map[ID]bool) int {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
	if err != nil {
		b.Fatal(err)
	}
	defer enc.Close()
	seen := make(map[ID]bool, len(ids))
	var buf []byte
	n := 0
	for _, c := range chunks {
		if id := Sum(c); !seen[id] {
			seen[id] = true
			buf = enc.EncodeAll(c, buf[:0])
			n += min(len(buf), len(c)) // a store keeps incompressible chunks raw
		}
	}
	return n
}

// sharedWith returns the fraction of bytes of chunks whose ID is in ids.
func sharedWith(ids map[ID]bool, chunks [][]byte) float64 {
	var shared, total int
	for _, c := range chunks {
		total += len(c)
		if ids[Sum(c)] {
			shared += len(c)
		}
	}
	return float64(shared) / float64(total)
}

// insertEdits returns a copy of data with 1-8 random bytes inserted at n
// random places.
func insertEdits(data []byte, n int, seed uint64) []byte {
	s := splitmix64(seed)
	at := make([]int, n)
	for i := range at {
		at[i] = int(s.next() % uint64(len(data)))
	}
	slices.Sort(at)
	out := make([]byte, 0, len(data)+8*n)
	prev := 0
	for _, pos := range at {
		out = append(out, data[prev:pos]...)
		out = append(out, randomBytes(s.next(), 1+int(s.next()%8))...)
		prev = pos
	}
	return append(out, data[prev:]...)
}

// overwriteEdits returns a copy of data with n random block-aligned blocks
// replaced by random bytes.
func overwriteEdits(data []byte, n, block int, seed uint64) []byte {
	s := splitmix64(seed)
	out := slices.Clone(data)
	for range n {
		off := int(s.next()%uint64(len(data)/block)) * block
		copy(out[off:off+block], randomBytes(s.next(), block))
	}
	return out
}
