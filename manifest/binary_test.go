package manifest_test

import (
	"bytes"
	"math/rand/v2"
	"reflect"
	"testing"

	"mis/manifest"
	"mis/manifest/manifesttest"
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

func FuzzDecodeStream(f *testing.F) {
	rng := rand.New(rand.NewPCG(3, 3))
	base := manifesttest.Realistic(rng, 40)
	b, _ := manifest.Encode(base)
	j, _ := manifest.EncodeJSON(base)
	f.Add(b)
	f.Add(j)
	f.Add(manifest.EncodeLayer(manifest.Diff(base, manifesttest.Edit(rng, base, 0.3))))
	f.Fuzz(func(t *testing.T, in []byte) {
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
