package mountfs

import (
	"math/rand/v2"
	"testing"

	"mis/chunker"
	"mis/manifest"
	"mis/manifest/manifesttest"
)

// BenchmarkDiskView builds the interval index behind disk.raw for a
// synthetic 200,000-inode manifest: the work a mount does at startup.
func BenchmarkDiskView(b *testing.B) {
	m := manifesttest.Realistic(rand.New(rand.NewPCG(1, 2)), 200_000)
	chunks := &chunkStore{byID: map[chunker.ID]int32{}}
	m.ForEachRef(func(r manifest.Ref) error {
		if _, ok := chunks.byID[r.ID]; !ok {
			chunks.byID[r.ID] = int32(len(chunks.byID))
		}
		return nil
	})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := newDiskView(m, chunks); err != nil {
			b.Fatal(err)
		}
	}
}
