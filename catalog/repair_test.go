package catalog_test

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"mis/catalog"
	"mis/chunker"
	"mis/image"
	"mis/layer"
	"mis/repo"
	"mis/testkit/testrepo"
)

// layeredRepo imports two raw images, a:v2 being a:v1 with its last MiB
// changed, so that a:v2 is stored as a layer on a:v1. Each import is its
// own writer, so each version's chunks and manifest are in packs of their
// own. It returns the packs each import added.
func layeredRepo(t *testing.T) (r *repo.Repo, imgs map[string][]byte, packs map[string][]string) {
	t.Helper()
	r = testrepo.New(t)
	rng := rand.New(rand.NewPCG(7, 7))
	v1 := make([]byte, 6<<20)
	for i := range v1 {
		v1[i] = byte(rng.Uint32())
	}
	v2 := bytes.Clone(v1)
	for i := len(v2) - 1<<20; i < len(v2); i++ {
		v2[i] = byte(rng.Uint32())
	}
	imgs = map[string][]byte{"a:v1": v1, "a:v2": v2}
	packs = map[string][]string{}
	cat := catalog.Open(r)
	ctx := context.Background()
	for _, name := range []string{"a:v1", "a:v2"} {
		path := filepath.Join(t.TempDir(), "img")
		if err := os.WriteFile(path, imgs[name], 0o600); err != nil {
			t.Fatal(err)
		}
		before := packSet(t, r)
		w, err := r.OpenWriter(ctx, "test")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cat.Import(ctx, w, path, ref(t, name), catalog.Parent{}, image.ImportOptions{}); err != nil {
			t.Fatal(err)
		}
		w.Close()
		for p := range packSet(t, r) {
			if !before[p] {
				packs[name] = append(packs[name], p)
			}
		}
	}
	lv2, _, err := layer.Load(ctx, r, ref(t, "a:v2"))
	if err != nil {
		t.Fatal(err)
	}
	if lv2.Base == "" {
		t.Fatal("setup: a:v2 is not stored as a layer")
	}
	return r, imgs, packs
}

func packSet(t *testing.T, r *repo.Repo) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	if err := r.Packs().List(context.Background(), func(name string, _ int64) error { out[name] = true; return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func removePacks(t *testing.T, r *repo.Repo, names []string) {
	t.Helper()
	for _, n := range names {
		if err := r.Packs().Remove(context.Background(), n); err != nil {
			t.Fatal(err)
		}
	}
}

func repairCat(t *testing.T, cat *catalog.Catalog, opt catalog.RepairOptions) *catalog.Repaired {
	t.Helper()
	opt.Holder = "test"
	res, err := cat.Repair(context.Background(), opt)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range res.Broken {
		t.Logf("broken: %+v", b)
	}
	return res
}

func tagsOf(t *testing.T, r *repo.Repo) []string {
	t.Helper()
	var out []string
	if err := r.View(context.Background(), func(tx *repo.Tx) error {
		tags, err := layer.List(tx)
		for _, tg := range tags {
			out = append(out, tg.Ref.String())
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRepairDropsLayersBeforeTheirBase: a:v1's packs are gone, so a:v1
// and a:v2 (a layer on it) cannot be read; both are dropped, the layer
// first (dropping the base first would have to rebase it, and it cannot
// be read).
func TestRepairDropsLayersBeforeTheirBase(t *testing.T) {
	r, _, packs := layeredRepo(t)
	removePacks(t, r, packs["a:v1"])
	cat := catalog.Open(r)
	res := repairCat(t, cat, catalog.RepairOptions{})
	if len(res.Broken) != 2 || res.Broken[0].Refs[0] != "a:v1" || res.Broken[1].Refs[0] != "a:v2" {
		t.Fatalf("broken: %+v", res.Broken)
	}
	if len(tagsOf(t, r)) != 2 {
		t.Fatal("repair without DropBroken removed versions")
	}
	res = repairCat(t, cat, catalog.RepairOptions{DropBroken: true})
	for _, b := range res.Broken {
		if !b.Dropped || b.Kept != "" {
			t.Errorf("%s not dropped: %s", b.Label(), b.Kept)
		}
	}
	if tags := tagsOf(t, r); len(tags) != 0 {
		t.Fatalf("left: %v", tags)
	}
	if res := repairCat(t, cat, catalog.RepairOptions{DropBroken: true}); len(res.Broken) != 0 {
		t.Fatalf("still broken: %+v", res.Broken)
	}
}

// TestRepairKeepsChainOfHeldVersion: a clone holds a:v2, which cannot be
// read; a:v2 is kept, and so is a:v1, which its layer rests on.
func TestRepairKeepsChainOfHeldVersion(t *testing.T) {
	r, _, packs := layeredRepo(t)
	cat := catalog.Open(r)
	if _, err := cat.CloneVersion(context.Background(), ref(t, "a:v2"), []string{"vm1"}); err != nil {
		t.Fatal(err)
	}
	removePacks(t, r, packs["a:v1"])
	res := repairCat(t, cat, catalog.RepairOptions{DropBroken: true})
	if len(res.Broken) != 2 {
		t.Fatalf("broken: %+v", res.Broken)
	}
	v1, v2 := res.Broken[0], res.Broken[1]
	if v1.Dropped || v1.Kept != "the layers of held a:v2 rest on it" {
		t.Errorf("a:v1: dropped %v, kept %q", v1.Dropped, v1.Kept)
	}
	if v2.Dropped || len(v2.HeldBy) != 1 || v2.HeldBy[0].Name != "vm1" {
		t.Errorf("a:v2: dropped %v, held by %+v", v2.Dropped, v2.HeldBy)
	}
	if len(tagsOf(t, r)) != 2 {
		t.Fatal("a held chain was dropped")
	}
}

// TestRepairRebasesSoundVersionOffDroppedBase: one chunk only a:v1 uses is
// damaged; repair (reading data) salvages the rest of its pack, a:v1 is
// dropped and a:v2, a layer on it, is rebased and still exports
// byte for byte.
func TestRepairRebasesSoundVersionOffDroppedBase(t *testing.T) {
	r, imgs, _ := layeredRepo(t)
	ctx := context.Background()
	_, m1, err := layer.Load(ctx, r, ref(t, "a:v1"))
	if err != nil {
		t.Fatal(err)
	}
	_, m2, err := layer.Load(ctx, r, ref(t, "a:v2"))
	if err != nil {
		t.Fatal(err)
	}
	in2 := map[chunker.ID]bool{}
	for _, x := range m2.ResidualData {
		in2[x.ID] = true
	}
	var victim chunker.ID
	for _, x := range m1.ResidualData {
		if !in2[x.ID] {
			victim = x.ID
		}
	}
	if victim.IsZero() {
		t.Fatal("setup: no chunk of a:v1 alone")
	}
	locs, err := r.Lookup(ctx, []chunker.ID{victim})
	if err != nil {
		t.Fatal(err)
	}
	loc := locs[victim]
	path := filepath.Join(r.Dir(), "packs", loc.Pack[:2], loc.Pack+".pack")
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	var b [1]byte
	off := int64(loc.Offset) + int64(loc.StoredLen)/2
	f.ReadAt(b[:], off)
	b[0] ^= 1
	f.WriteAt(b[:], off)
	f.Close()

	cat := catalog.Open(r)
	res := repairCat(t, cat, catalog.RepairOptions{ReadData: true, DropBroken: true})
	if len(res.Broken) != 1 || res.Broken[0].Refs[0] != "a:v1" || !res.Broken[0].Dropped || res.Broken[0].MissingChunks != 1 {
		t.Fatalf("broken: %+v", res.Broken)
	}
	if d := res.Index.Damaged; len(d) != 1 || d[0].Lost != 1 {
		t.Fatalf("damaged packs: %+v", d)
	}
	v2, m, err := layer.Load(ctx, r, ref(t, "a:v2"))
	if err != nil {
		t.Fatal(err)
	}
	if v2.Base != "" {
		t.Errorf("a:v2 still rests on %s", v2.Base)
	}
	out := filepath.Join(t.TempDir(), "out")
	if err := image.Export(ctx, r, m, out, image.ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(out)
	if !bytes.Equal(got, imgs["a:v2"]) {
		t.Fatal("a:v2 exports different bytes after its base was dropped")
	}
	rep, err := r.Verify(ctx, repo.VerifyOptions{ReadData: true, Refs: func(yield func(string, chunker.ID) error) error {
		_, err := layer.ForEachRef(ctx, r, yield)
		return err
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Serious()) > 0 {
		t.Fatalf("verify after repair: %v", rep.Serious())
	}
}
