package layer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"testing"

	"mis/chunker"
	"mis/manifest"
	"mis/manifest/manifesttest"
	"mis/repo"
	"mis/testkit/fuzzkit"
)

// pieceStore serves a chain's manifest streams as resolve reads them: the
// chunks of all versions in chain order, each version's stream cut into
// as many pieces as its record has refs (a record's sizes may lie, as a
// damaged one would; the repository returns what the chunks hold).
type pieceStore struct{ pieces [][]byte }

func (s *pieceStore) view(context.Context, func(*repo.Tx) error) error {
	return errors.New("no metadata in this test store")
}

func (s *pieceStore) readChunks(_ context.Context, ids []chunker.ID, fn func([]byte) error) error {
	if len(ids) != len(s.pieces) {
		return errors.New("chunk list does not match the records")
	}
	for _, p := range s.pieces {
		if err := fn(p); err != nil {
			return err
		}
	}
	return nil
}

// cut splits b into n pieces (n >= 1).
func cut(b []byte, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		lo, hi := len(b)*i/n, len(b)*(i+1)/n
		out[i] = b[lo:hi]
	}
	return out
}

// refsFor is one ref per chunk of a stream of the given pieces.
func refsFor(pieces [][]byte) []manifest.Ref {
	refs := make([]manifest.Ref, len(pieces))
	for i, p := range pieces {
		refs[i] = manifest.Ref{ID: chunker.Sum(p), Size: uint32(len(p))}
	}
	return refs
}

// FuzzResolve decodes a version record (JSON, as Get does) and resolves
// its manifest through a chain of three stored streams: the record's own
// layer on a middle layer on a whole manifest, as LoadManifest does
// (MISLAYER decoding, ApplyLayers, Validate, the record's checks). Errors
// are fine; panics, hangs, huge allocations and a resolved manifest that
// does not validate or re-encode are not. The seeds are built in code
// from a fixed generator seed.
func FuzzResolve(f *testing.F) {
	for _, s := range resolveSeeds() {
		f.Add(s[0], s[1], s[2], s[3])
	}
	f.Fuzz(func(t *testing.T, rec, whole, l1, l2 []byte) {
		defer fuzzkit.CheckAllocs(t, 256<<20)()
		m, top, err := resolveInput(rec, whole, l1, l2)
		if err != nil {
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("resolved manifest does not validate: %v", err)
		}
		if m.DiskSize != top.DiskSize || m.FileCount() != top.Files {
			t.Fatalf("resolved manifest disagrees with its record")
		}
		enc, err := manifest.Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		back, err := manifest.DecodeBytes(enc)
		if err != nil {
			t.Fatalf("a resolved manifest does not read back: %v", err)
		}
		if again, _ := manifest.Encode(back); !bytes.Equal(enc, again) {
			t.Fatal("re-encoding changed the bytes")
		}
	})
}

// resolveSeeds are FuzzResolve's seeds (record, whole, middle layer, top
// layer), built from a fixed generator seed.
func resolveSeeds() [][4][]byte {
	rng := rand.New(rand.NewPCG(5, 5))
	base := manifesttest.Realistic(rng, 30)
	v1 := manifesttest.Edit(rng, base, 0.3)
	v2 := manifesttest.Edit(rng, v1, 0.3)
	whole, _ := manifest.Encode(base)
	l1 := manifest.EncodeLayer(manifest.Diff(base, v1))
	l2 := manifest.EncodeLayer(manifest.Diff(v1, v2))
	var out [][4][]byte
	for _, n := range []int{1, 3} {
		rec, _ := json.Marshal(&Version{ID: "top", Name: "img", Tag: "v2", DiskSize: v2.DiskSize, Files: v2.FileCount(),
			Manifest: refsFor(cut(l2, n)), Base: "mid", Depth: 2})
		out = append(out, [4][]byte{rec, whole, l1, l2})
	}
	// the middle layer replaces the layout, the top one changes nothing
	lay := manifesttest.Clone(v1)
	lay.Layout.Kind = "none"
	l2 = manifest.EncodeLayer(manifest.Diff(lay, lay))
	rec, _ := json.Marshal(&Version{ID: "top", DiskSize: lay.DiskSize, Files: lay.FileCount(), Manifest: refsFor(cut(l2, 1))})
	return append(out, [4][]byte{rec, whole, manifest.EncodeLayer(manifest.Diff(base, lay)), l2})
}

// resolveInput is one FuzzResolve input: the record (JSON, decoded as Get
// does) on top of a middle layer on a whole manifest.
func resolveInput(rec, whole, l1, l2 []byte) (*manifest.Manifest, *Version, error) {
	var top Version
	if err := json.Unmarshal(rec, &top); err != nil {
		return nil, nil, err
	}
	if len(top.Manifest) == 0 {
		return nil, nil, errors.New("no manifest refs")
	}
	mid := &Version{ID: "mid", Base: "bottom", Manifest: refsFor(cut(l1, 2))}
	bottom := &Version{ID: "bottom", Manifest: refsFor(cut(whole, 2))}
	top.Base = "mid"
	s := &pieceStore{}
	s.pieces = append(s.pieces, cut(l2, len(top.Manifest))...)
	s.pieces = append(s.pieces, cut(l1, 2)...)
	s.pieces = append(s.pieces, cut(whole, 2)...)
	m, err := resolve(context.Background(), s, []*Version{&top, mid, bottom})
	return m, &top, err
}

func TestFuzzResolveSeedsResolve(t *testing.T) {
	for i, s := range resolveSeeds() {
		if _, _, err := resolveInput(s[0], s[1], s[2], s[3]); err != nil {
			t.Errorf("seed %d: %v", i, err)
		}
	}
}

// TestResolveRecordSizes: a version record whose refs claim 4 GiB chunks
// (damaged, or crafted) must not size a buffer from them.
func TestResolveRecordSizes(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	base := manifesttest.Realistic(rng, 10)
	whole, _ := manifest.Encode(base)
	refs := refsFor(cut(whole, 4))
	for i := range refs {
		refs[i].Size = 1<<32 - 1
	}
	v := &Version{ID: "v", DiskSize: base.DiskSize, Files: base.FileCount(), Manifest: refs}
	check := fuzzkit.CheckAllocs(t, 64<<20)
	m, err := resolve(context.Background(), &pieceStore{pieces: cut(whole, 4)}, []*Version{v})
	check()
	if err != nil || m.FileCount() != base.FileCount() {
		t.Fatalf("resolve: %v", err)
	}
}
