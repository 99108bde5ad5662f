package layer_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"mis/layer"
	"mis/manifest"
	"mis/manifest/manifesttest"
	"mis/repo"
)

func benchRepo(b *testing.B) *repo.Repo {
	b.Helper()
	dir := filepath.Join(b.TempDir(), "repo")
	if err := repo.Init(dir, repo.InitOptions{}); err != nil {
		b.Fatal(err)
	}
	r, err := repo.Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	return r
}

// BenchmarkLoadManifest reads a 60,000-entry version at the bottom of a
// chain and 1, 16 and 256 layers up (each layer edits 0.1% of the entries,
// checkpoints off), from a real repository, and logs each depth's cost
// against depth 1. Save stores whole again after DefaultMaxDepth layers,
// so depth 16 is the worst a repository sees.
func BenchmarkLoadManifest(b *testing.B) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(8, 8))
	r := benchRepo(b)
	w, err := r.OpenWriter(ctx, "bench")
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	var layerBytes int64
	err = layer.SaveChain(ctx, w, "deep", 257, func(i int, prev *manifest.Manifest) *manifest.Manifest {
		if prev == nil {
			return manifesttest.Realistic(rng, 60000)
		}
		return manifesttest.Edit(rng, prev, 0.001)
	}, func(i int, v *layer.Version, m *manifest.Manifest) {
		if i > 0 {
			layerBytes += manifest.StreamSize(v.Manifest)
		} else {
			b.Logf("whole manifest: %d bytes", manifest.StreamSize(v.Manifest))
		}
	})
	w.Close()
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("saved 257 versions in %v; layers average %d bytes", time.Since(start).Round(time.Millisecond), layerBytes/256)
	per := map[int]float64{}
	for _, depth := range []int{1, 0, 16, 256} {
		v := resolveTag(b, r, fmt.Sprintf("deep:v%d", depth))
		b.Run(fmt.Sprintf("depth-%d", depth), func(b *testing.B) {
			for b.Loop() {
				if _, err := layer.LoadManifest(ctx, r, v); err != nil {
					b.Fatal(err)
				}
			}
			ms := float64(b.Elapsed().Milliseconds()) / float64(b.N)
			b.ReportMetric(ms, "ms/load")
			per[depth] = ms
		})
	}
	for _, depth := range []int{0, 16, 256} {
		if per[1] > 0 {
			b.Logf("depth %d: %.1f ms per load = %.2fx depth 1 (%.1f ms)", depth, per[depth], per[depth]/per[1], per[1])
		}
	}
}

// BenchmarkSaveUnchanged saves a 60,000-entry manifest identical to its
// parent's, the parent's manifest handed over as the importer does: the
// cost an unchanged re-import pays for its manifest (commit included).
func BenchmarkSaveUnchanged(b *testing.B) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(9, 9))
	r := benchRepo(b)
	m := manifesttest.Realistic(rng, 60000)
	w, err := r.OpenWriter(ctx, "bench")
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	parent := &layer.Version{}
	if err := layer.Save(ctx, w, ref("img:base"), parent, m); err != nil {
		b.Fatal(err)
	}
	i := 0
	var last *layer.Version
	for b.Loop() {
		i++
		last = &layer.Version{Parent: parent.ID}
		if err := layer.SaveWithOptions(ctx, w, ref(fmt.Sprintf("img:v%d", i)), last, m, layer.SaveOptions{ParentManifest: m}); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("whole manifest %d bytes, unchanged layer %d bytes", manifest.StreamSize(parent.Manifest), manifest.StreamSize(last.Manifest))
}
