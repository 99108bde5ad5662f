package manifest_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"mis/manifest"
	"mis/manifest/manifesttest"
)

// checkLayer asserts Apply(base, Diff(base, m)) equals m, also after the
// layer went through its encoding, and returns the encoded layer.
func checkLayer(t *testing.T, what string, base, m *manifest.Manifest) []byte {
	t.Helper()
	l := manifest.Diff(base, m)
	got, err := l.Apply(base)
	if err != nil {
		t.Fatalf("%s: apply: %v", what, err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Fatalf("%s: Apply(base, Diff(base, m)) differs from m", what)
	}
	enc := manifest.EncodeLayer(l)
	if again := manifest.EncodeLayer(l); !bytes.Equal(enc, again) {
		t.Fatalf("%s: layer encoding is not deterministic", what)
	}
	dl, err := manifest.DecodeLayer(enc)
	if err != nil {
		t.Fatalf("%s: decode layer: %v", what, err)
	}
	got, err = dl.Apply(base)
	if err != nil {
		t.Fatalf("%s: apply decoded layer: %v", what, err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Fatalf("%s: the decoded layer applies to something else than m", what)
	}
	return enc
}

func TestLayerRandomEdits(t *testing.T) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 9))
		base := manifesttest.Realistic(rng, 300+rng.IntN(300))
		m := manifesttest.Edit(rng, base, []float64{0.01, 0.1, 0.5, 1}[seed%4])
		checkLayer(t, fmt.Sprintf("seed %d", seed), base, m)
		if err := m.Validate(); err != nil {
			t.Fatalf("seed %d: the edit broke the manifest: %v", seed, err)
		}
		// And back: the reverse layer undoes it.
		checkLayer(t, fmt.Sprintf("seed %d reversed", seed), m, base)
	}
}

func TestLayerEdgeCases(t *testing.T) {
	rng := rand.New(rand.NewPCG(42, 42))
	base := manifesttest.Realistic(rng, 200)
	edit := func(name string, fn func(m *manifest.Manifest)) {
		m := manifesttest.Clone(base)
		fn(m)
		enc := checkLayer(t, name, base, m)
		t.Logf("%-28s layer %6d bytes", name, len(enc))
	}
	files := func(m *manifest.Manifest) []manifest.Entry { return m.Filesystems[0].Files }
	edit("unchanged", func(m *manifest.Manifest) {})
	edit("xattrs only", func(m *manifest.Manifest) {
		files(m)[5].Xattrs = []manifest.Xattr{{Name: "user.a", Value: []byte("1")}}
	})
	edit("times only", func(m *manifest.Manifest) { files(m)[7].Atime++; files(m)[8].Crtime-- })
	edit("hardlink added", func(m *manifest.Manifest) {
		f := &files(m)[9]
		f.Paths = append(slices.Clone(f.Paths), []byte("new/link"))
		f.Nlink++
	})
	edit("hardlink path renamed", func(m *manifest.Manifest) {
		for i := range files(m) {
			if f := &files(m)[i]; len(f.Paths) > 1 {
				f.Paths = slices.Clone(f.Paths)
				f.Paths[1] = []byte("moved/\xff")
				return
			}
		}
		t.Fatal("no hardlinked file in the generated manifest")
	})
	edit("first and last removed", func(m *manifest.Manifest) {
		fs := &m.Filesystems[0]
		fs.Files = fs.Files[1 : len(fs.Files)-1]
	})
	edit("filesystem appears", func(m *manifest.Manifest) {
		extra := m.Filesystems[0]
		extra.PartIndex, extra.UUID = 2, "other"
		m.Filesystems = append(m.Filesystems, extra)
	})
	edit("filesystem disappears", func(m *manifest.Manifest) {
		m.Filesystems = nil
	})
	edit("filesystems swap order", func(m *manifest.Manifest) {
		extra := m.Filesystems[0]
		extra.PartIndex, extra.Files = 3, extra.Files[:10]
		m.Filesystems = []manifest.Filesystem{extra, m.Filesystems[0]}
	})
	edit("params changed", func(m *manifest.Manifest) {
		m.Filesystems[0].Label = []byte("new label")
		m.Layout.DiskGUID = "changed"
		m.Exact = false
		m.DiskSize++
	})
	edit("not inode ordered", func(m *manifest.Manifest) {
		f := m.Filesystems[0].Files
		f[3], f[4] = f[4], f[3]
	})
	edit("residual shuffled", func(m *manifest.Manifest) {
		r := m.ResidualData
		r[0], r[len(r)-1] = r[len(r)-1], r[0]
		r = append(r, r[3])
		m.ResidualData = append(r[:5], r[9:]...)
		m.Residual = m.Residual[2:]
	})
	// A base that is not inode ordered cannot be keyed: stored whole.
	unordered := manifesttest.Clone(base)
	f := unordered.Filesystems[0].Files
	f[1], f[2] = f[2], f[1]
	checkLayer(t, "unordered base", unordered, base)
}

// Apply refuses layers that do not fit the base instead of guessing.
func TestLayerApplyRefusesMismatch(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	base := manifesttest.Realistic(rng, 100)
	m := manifesttest.Edit(rng, base, 0.2)
	l := manifest.Diff(base, m)
	if len(l.Filesystems[0].Removed) == 0 {
		t.Fatal("the edit removed nothing")
	}
	other := manifesttest.Clone(base)
	other.Filesystems[0].Files = other.Filesystems[0].Files[:10]
	if _, err := l.Apply(other); err == nil {
		t.Error("a layer with whiteouts of inodes the base lacks applied")
	}
	short := manifesttest.Clone(base)
	short.ResidualData = short.ResidualData[:1]
	if _, err := l.Apply(short); err == nil {
		t.Error("a residual edit copying past the base's list applied")
	}
	if _, err := l.Apply(&manifest.Manifest{}); err == nil {
		t.Error("a layer applied to an empty base")
	}
}

// The figure the issue asks for: a version changing 1% (5%) of its files
// stores about 1% (5%) of the whole manifest.
func TestLayerSizeFraction(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 11))
	base := manifesttest.Realistic(rng, 60000)
	full, _ := manifest.Encode(base)
	for _, frac := range []float64{0.01, 0.05} {
		m := manifesttest.Edit(rng, base, frac)
		l := manifest.EncodeLayer(manifest.Diff(base, m))
		ratio := float64(len(l)) / float64(len(full))
		t.Logf("60000 entries, %.0f%% edited: full manifest %d bytes, layer %d bytes = %.2f%% of full", frac*100, len(full), len(l), ratio*100)
		if ratio > 2*frac {
			t.Errorf("layer is %.2f%% of the full manifest for %.0f%% edits", ratio*100, frac*100)
		}
		// The residual's share: whole lists against their edit scripts.
		d := manifest.Diff(base, m)
		whole, _ := manifest.Encode(&manifest.Manifest{Residual: m.Residual, ResidualData: m.ResidualData})
		delta := manifest.EncodeLayer(&manifest.Layer{Residual: d.Residual, ResidualData: d.ResidualData})
		t.Logf("  residual: %d runs, %d data refs: whole %d bytes, as edits against the parent %d bytes",
			len(m.Residual), len(m.ResidualData), len(whole), len(delta))
	}
}

func BenchmarkLayer(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	base := manifesttest.Realistic(rng, 60000)
	for _, frac := range []float64{0.01, 0.05} {
		m := manifesttest.Edit(rng, base, frac)
		b.Run(fmt.Sprintf("diff-%.0fpct", frac*100), func(b *testing.B) {
			for b.Loop() {
				manifest.EncodeLayer(manifest.Diff(base, m))
			}
		})
		enc := manifest.EncodeLayer(manifest.Diff(base, m))
		b.Run(fmt.Sprintf("apply-%.0fpct", frac*100), func(b *testing.B) {
			for b.Loop() {
				l, err := manifest.DecodeLayer(enc)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := l.Apply(base); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// A chain of layers applied at once gives what the chain's last manifest
// was, with filesystems appearing, disappearing and changing order on
// the way.
func TestApplyLayersChain(t *testing.T) {
	for seed := range uint64(6) {
		rng := rand.New(rand.NewPCG(seed, 77))
		ms := []*manifest.Manifest{manifesttest.Realistic(rng, 400)}
		var layers []*manifest.Layer
		for i := 1; i <= 12; i++ {
			m := manifesttest.Edit(rng, ms[i-1], 0.05)
			switch i {
			case 3: // a second filesystem appears
				extra := manifesttest.Realistic(rng, 50).Filesystems[0]
				extra.PartIndex = 2
				m.Filesystems = append(m.Filesystems, extra)
			case 6: // they swap order
				m.Filesystems[0], m.Filesystems[1] = m.Filesystems[1], m.Filesystems[0]
			case 9: // the second disappears
				m.Filesystems = m.Filesystems[1:]
			}
			if len(m.Filesystems) > 1 && m.Filesystems[1].PartIndex == 2 && i%2 == 0 {
				fs := &m.Filesystems[1]
				fs.Files = slices.Clone(fs.Files[1:])
			}
			ms = append(ms, m)
			layers = append(layers, manifest.Diff(ms[i-1], m))
			got, err := manifest.ApplyLayers(ms[0], layers)
			if err != nil {
				t.Fatalf("seed %d: %d layers: %v", seed, i, err)
			}
			if !reflect.DeepEqual(got, m) {
				t.Fatalf("seed %d: %d layers applied at once differ from the manifest", seed, i)
			}
		}
	}
}
