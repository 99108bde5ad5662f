package manifest_test

import (
	"bytes"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"mis/manifest"
	"mis/manifest/manifesttest"
	"mis/testkit/fuzzkit"
)

func TestBinaryRoundTripRealistic(t *testing.T) {
	for seed := range uint64(5) {
		rng := rand.New(rand.NewPCG(seed, 1))
		m := manifesttest.Realistic(rng, 2000)
		if err := m.Validate(); err != nil {
			t.Fatalf("generator made an invalid manifest: %v", err)
		}
		b, err := manifest.Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		got, err := manifest.DecodeBytes(b)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("seed %d: binary round trip changed the manifest", seed)
		}
		again, _ := manifest.Encode(got)
		if !bytes.Equal(again, b) {
			t.Fatalf("seed %d: encoding is not deterministic", seed)
		}
		j, _ := manifest.EncodeJSON(m)
		fromJSON, err := manifest.DecodeBytes(j)
		if err != nil {
			t.Fatal(err)
		}
		if b2, _ := manifest.Encode(fromJSON); !bytes.Equal(b2, b) {
			t.Fatalf("seed %d: JSON (format 1) and binary read back differently", seed)
		}
		if seed == 0 {
			t.Logf("2000 entries: binary %d bytes, JSON %d bytes", len(b), len(j))
		}
	}
}

// Every truncation and many single-byte corruptions of a valid manifest
// and layer are refused with an error or decode to something, never panic.
func TestDecodeCorruptInput(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	m := manifesttest.Realistic(rng, 300)
	b, _ := manifest.Encode(m)
	l := manifest.EncodeLayer(manifest.Diff(m, manifesttest.Edit(rng, m, 0.1)))
	for _, in := range [][]byte{b, l} {
		for n := 0; n < len(in); n += 1 + n/500 {
			if _, _, err := manifest.DecodeStream(in[:n]); err == nil {
				t.Fatalf("truncation to %d of %d bytes accepted", n, len(in))
			}
		}
		for range 3000 {
			c := bytes.Clone(in)
			c[rng.IntN(len(c))] ^= byte(1 + rng.IntN(255))
			decodeAndApply(m, c)
		}
	}
}

// decodeAndApply is what a reader does with stored bytes; it must not panic.
func decodeAndApply(base *manifest.Manifest, b []byte) {
	m, l, err := manifest.DecodeStream(b)
	if err != nil {
		return
	}
	if l != nil {
		if m, err = l.Apply(base); err != nil {
			return
		}
	}
	_ = m.Validate()
	_, _ = manifest.Encode(m)
}

// FuzzDecodeStream decodes what a version stores (binary manifest, format
// 1 JSON, MISLAYER layer), applies a layer to a fixed base, and checks
// that whatever decodes and validates survives a re-encode. An input that
// makes the decoder allocate more than 256 MiB fails. The seeds are made
// here from a fixed generator seed (deterministic, so nothing needs to be
// stored beside them).
func FuzzDecodeStream(f *testing.F) {
	rng := rand.New(rand.NewPCG(3, 3))
	base := manifesttest.Realistic(rng, 40)
	b, _ := manifest.Encode(base)
	j, _ := manifest.EncodeJSON(base)
	f.Add(b)
	f.Add(j)
	f.Add(manifest.EncodeLayer(manifest.Diff(base, manifesttest.Edit(rng, base, 0.3))))
	// a layer that changes the layout and removes a filesystem's entries
	other := manifesttest.Clone(base)
	other.Layout.Kind, other.Layout.Signature = "mbr", 0x1234
	if len(other.Filesystems) > 0 {
		other.Filesystems[0].Files = other.Filesystems[0].Files[:len(other.Filesystems[0].Files)/2]
	}
	f.Add(manifest.EncodeLayer(manifest.Diff(base, other)))
	empty, _ := manifest.Encode(&manifest.Manifest{FormatVersion: manifest.FormatVersion})
	f.Add(empty)
	f.Add(manifest.EncodeLayer(manifest.Diff(base, base)))
	f.Fuzz(func(t *testing.T, in []byte) {
		defer fuzzkit.CheckAllocs(t, 256<<20)()
		m, l, err := manifest.DecodeStream(in)
		if err != nil {
			return
		}
		if l != nil {
			// A layer that decodes re-encodes to the same bytes.
			if again := manifest.EncodeLayer(l); !bytes.Equal(again, in) {
				got, err := manifest.DecodeLayer(again)
				if err != nil || !reflect.DeepEqual(got, l) {
					t.Fatalf("layer does not survive a re-encode: %v", err)
				}
			}
			if m, err = l.Apply(base); err != nil {
				return
			}
		}
		if err := m.Validate(); err != nil {
			return
		}
		enc, err := manifest.Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		back, err := manifest.DecodeBytes(enc)
		if err != nil {
			t.Fatalf("a valid manifest does not read back: %v", err)
		}
		if enc2, _ := manifest.Encode(back); !bytes.Equal(enc, enc2) {
			t.Fatalf("re-encoding changed the bytes")
		}
	})
}

// TestPathPrefixAmplification: each path is stored as the prefix it
// shares with the previous one plus the rest, so 4 bytes can stand for a
// 32 KiB path. 1500 such paths (38 KB of input) made the decoder build
// 48 MiB of paths (20000 x 60 KB from 140 KB: 1.25 GiB and 30 s); it now
// stops at a budget proportional to the input.
func TestPathPrefixAmplification(t *testing.T) {
	long := bytes.Repeat([]byte("p"), 32<<10)
	paths := make([][]byte, 1500)
	for i := range paths {
		paths[i] = long
	}
	m := &manifest.Manifest{FormatVersion: manifest.FormatVersion, Filesystems: []manifest.Filesystem{{PartIndex: 1, Type: "ext4",
		Files: []manifest.Entry{{Ino: 2, Paths: [][]byte{long}, Mode: manifest.ModeDir}, {Ino: 3, Paths: paths, Mode: manifest.ModeRegular}}}}}
	in, _ := manifest.Encode(m)
	check := fuzzkit.CheckAllocs(t, 32<<20)
	_, _, err := manifest.DecodeStream(in)
	check()
	if err == nil || !strings.Contains(err.Error(), "paths") {
		t.Fatalf("%d-byte input: %v, want an error about the paths", len(in), err)
	}
	t.Logf("%d-byte input: %v", len(in), err)
	// A layer carries entries the same way.
	l := manifest.EncodeLayer(&manifest.Layer{Filesystems: []manifest.FSLayer{{Base: -1, Params: &manifest.Filesystem{}, Changed: m.Filesystems[0].Files}}})
	check = fuzzkit.CheckAllocs(t, 32<<20)
	_, _, err = manifest.DecodeStream(l)
	check()
	if err == nil || !strings.Contains(err.Error(), "paths") {
		t.Fatalf("layer: %v, want an error about the paths", err)
	}
}

func benchManifest(b *testing.B) *manifest.Manifest {
	return manifesttest.Realistic(rand.New(rand.NewPCG(1, 2)), 60000)
}

func BenchmarkEncode(b *testing.B) {
	m := benchManifest(b)
	for _, c := range []struct {
		name string
		enc  func(*manifest.Manifest) ([]byte, error)
	}{{"binary", manifest.Encode}, {"json", manifest.EncodeJSON}} {
		b.Run(c.name, func(b *testing.B) {
			out, _ := c.enc(m)
			b.ReportMetric(float64(len(out)), "bytes")
			b.SetBytes(int64(len(out)))
			for b.Loop() {
				if _, err := c.enc(m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	m := benchManifest(b)
	for _, c := range []struct {
		name string
		enc  func(*manifest.Manifest) ([]byte, error)
	}{{"binary", manifest.Encode}, {"json", manifest.EncodeJSON}} {
		b.Run(c.name, func(b *testing.B) {
			in, _ := c.enc(m)
			b.SetBytes(int64(len(in)))
			for b.Loop() {
				if _, err := manifest.DecodeBytes(in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
