package image

import (
	"math/rand/v2"
	"testing"

	"mis/manifest/manifesttest"
)

// BenchmarkPlanDisk plans the export of a synthetic 200,000-inode manifest
// (every chunk's placements, repeated chunks merged): the work Export does
// before it reads its first chunk.
func BenchmarkPlanDisk(b *testing.B) {
	m := manifesttest.Realistic(rand.New(rand.NewPCG(1, 2)), 200_000)
	b.ReportAllocs()
	for b.Loop() {
		jobs, err := planDisk(m)
		if err != nil {
			b.Fatal(err)
		}
		if len(jobs) == 0 {
			b.Fatal("no jobs")
		}
	}
}
