package layer_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"mis/chunker"
	"mis/layer"
	"mis/manifest"
	"mis/manifest/manifesttest"
	"mis/repo"
)

// history is a chain of synthetic versions saved into a real repository,
// with each version's manifest as computed directly (not read back).
type history struct {
	r    *repo.Repo
	tags []string
	want map[string]*manifest.Manifest
}

// buildHistory saves n versions: the first from base, each next one an
// Edit of the previous (fraction of entries), with the previous as parent.
// The importer's path is taken: the parent manifest is handed to Save.
func buildHistory(t testing.TB, r *repo.Repo, rng *rand.Rand, base *manifest.Manifest, n int, fraction float64, maxDepth int) *history {
	t.Helper()
	ctx := context.Background()
	h := &history{r: r, want: map[string]*manifest.Manifest{}}
	w, err := r.OpenWriter(ctx, "test history")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	m := base
	var parent *layer.Version
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		var pm *manifest.Manifest
		if i > 0 {
			pm = m
			m = manifesttest.Edit(rng, m, fraction)
		}
		tag := fmt.Sprintf("img:v%d", i)
		v := &layer.Version{Created: created.Add(time.Duration(i) * time.Minute)}
		if parent != nil {
			v.Parent = parent.ID
		}
		if err := layer.SaveWithOptions(ctx, w, ref(tag), v, m, layer.SaveOptions{ParentManifest: pm, MaxDepth: maxDepth}); err != nil {
			t.Fatalf("save %s: %v", tag, err)
		}
		h.tags = append(h.tags, tag)
		h.want[tag] = m
		parent = v
	}
	return h
}

func resolveTag(t testing.TB, r *repo.Repo, tag string) *layer.Version {
	t.Helper()
	var v *layer.Version
	if err := r.View(context.Background(), func(tx *repo.Tx) error {
		var err error
		v, err = layer.Resolve(tx, ref(tag))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return v
}

// checkAll reads every version of h still tagged and compares it with the
// manifest computed directly.
func (h *history) checkAll(t *testing.T, removed map[string]bool) {
	t.Helper()
	for _, tag := range h.tags {
		if removed[tag] {
			continue
		}
		v := resolveTag(t, h.r, tag)
		got, err := layer.LoadManifest(context.Background(), h.r, v)
		if err != nil {
			t.Fatalf("%s (depth %d): %v", tag, v.Depth, err)
		}
		a, _ := manifest.Encode(got)
		b, _ := manifest.Encode(h.want[tag])
		if !bytes.Equal(a, b) {
			t.Fatalf("%s (depth %d) does not resolve to the manifest it was saved from", tag, v.Depth)
		}
	}
}

func TestChainResolvesAtDepth(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 1))
	r := newRepo(t)
	// Save's own path, with checkpoints off: depth 1 and 16.
	h := buildHistory(t, r, rng, manifesttest.Realistic(rng, 800), 17, 0.01, -1)
	for _, depth := range []int{0, 1, 16} {
		if v := resolveTag(t, r, h.tags[depth]); v.Depth != depth || (depth > 0) != (v.Base != "") {
			t.Fatalf("%s: depth %d base %q, want depth %d", h.tags[depth], v.Depth, v.Base, depth)
		}
	}
	h.checkAll(t, nil)
	// Depth 256, saved in one commit.
	deep := &history{r: r, want: map[string]*manifest.Manifest{}}
	w := writer(t, r)
	err := layer.SaveChain(ctx, w, "deep", 257, func(i int, prev *manifest.Manifest) *manifest.Manifest {
		if prev == nil {
			return manifesttest.Realistic(rng, 800)
		}
		return manifesttest.Edit(rng, prev, 0.01)
	}, func(i int, v *layer.Version, m *manifest.Manifest) {
		if i <= 2 || i == 16 || i >= 254 {
			deep.tags = append(deep.tags, "deep:"+v.Tag)
			deep.want["deep:"+v.Tag] = m
		}
	})
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	if v := resolveTag(t, r, "deep:v256"); v.Depth != 256 {
		t.Fatalf("deep:v256 has depth %d", v.Depth)
	}
	deep.checkAll(t, nil)
}

func TestCheckpoints(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	r := newRepo(t)
	h := buildHistory(t, r, rng, manifesttest.Realistic(rng, 500), 35, 0.01, 0)
	whole := 0
	for i, tag := range h.tags {
		v := resolveTag(t, r, tag)
		if v.Depth > layer.DefaultMaxDepth {
			t.Fatalf("%s: depth %d past the limit", tag, v.Depth)
		}
		if v.Base == "" {
			whole++
		} else if prev := resolveTag(t, r, h.tags[i-1]); v.Base != prev.ID || v.Depth != prev.Depth+1 {
			t.Fatalf("%s: base %s depth %d, parent %s depth %d", tag, v.Base, v.Depth, prev.ID, prev.Depth)
		}
	}
	if whole != 3 { // v0, v17, v34
		t.Fatalf("%d versions stored whole in 35, want 3", whole)
	}
	h.checkAll(t, nil)

	// Big changes: the layers would add up to more than a whole manifest.
	r2 := newRepo(t)
	h2 := buildHistory(t, r2, rng, manifesttest.Realistic(rng, 500), 6, 0.6, 0)
	if v := resolveTag(t, r2, h2.tags[5]); v.Depth >= 5 {
		t.Fatalf("60%% edits: depth %d after 5 versions, the size rule never checkpointed", v.Depth)
	}
	h2.checkAll(t, nil)
}

// usedRefs is every chunk the resolved manifests of the tagged versions
// use, plus the manifest streams of their chains.
func usedRefs(t *testing.T, r *repo.Repo, tags []string, removed map[string]bool) map[chunker.ID]string {
	t.Helper()
	ctx := context.Background()
	used := map[chunker.ID]string{}
	for _, tag := range tags {
		if removed[tag] {
			continue
		}
		v := resolveTag(t, r, tag)
		m, err := layer.LoadManifest(ctx, r, v)
		if err != nil {
			t.Fatal(err)
		}
		m.ForEachRef(func(ref manifest.Ref) error { used[ref.ID] = tag; return nil })
		for cur := v; ; {
			for _, ref := range cur.Manifest {
				used[ref.ID] = tag + " (manifest chain)"
			}
			if cur.Base == "" {
				break
			}
			r.View(ctx, func(tx *repo.Tx) error {
				var err error
				cur, err = layer.Get(tx, cur.Base)
				return err
			})
		}
	}
	return used
}

func liveSet(t *testing.T, r *repo.Repo) map[chunker.ID]bool {
	t.Helper()
	live := map[chunker.ID]bool{}
	if err := layer.LiveChunks(context.Background(), r)(func(id chunker.ID) error {
		live[id] = true
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return live
}

func TestRemoveRebasesAtSeveralDepths(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(3, 3))
	r := newRepo(t)
	h := buildHistory(t, r, rng, manifesttest.Realistic(rng, 600), 20, 0.02, 0)
	removed := map[string]bool{}
	// A layer at depth 1, one deep in the chain, a whole manifest with
	// layers on it (v17: its child must become whole), the first version,
	// and the newest (nothing rests on it).
	for _, tag := range []string{"img:v1", "img:v9", "img:v17", "img:v0", "img:v19", "img:v10"} {
		v := resolveTag(t, r, tag)
		w := writer(t, r)
		res, err := layer.Remove(ctx, w, ref(tag))
		w.Close()
		if err != nil {
			t.Fatalf("rm %s: %v", tag, err)
		}
		removed[tag] = true
		t.Logf("rm %s (depth %d): rebased %d versions", tag, v.Depth, len(res.Rebased))
		if tag != "img:v19" && len(res.Rebased) != 1 {
			t.Fatalf("rm %s rebased %v, want its one child", tag, res.Rebased)
		}
		h.checkAll(t, removed)
		// Depths stay exact and bases exist.
		for _, tg := range h.tags {
			if removed[tg] {
				continue
			}
			x := resolveTag(t, r, tg)
			want := 0
			if x.Base != "" {
				var b *layer.Version
				r.View(ctx, func(tx *repo.Tx) error { b, err = layer.Get(tx, x.Base); return err })
				if err != nil {
					t.Fatalf("%s: base %s: %v", tg, x.Base, err)
				}
				want = b.Depth + 1
			}
			if x.Depth != want {
				t.Fatalf("after rm %s: %s has depth %d, want %d", tag, tg, x.Depth, want)
			}
		}
		// gc's live set covers everything the remaining versions use,
		// without resolving them.
		live := liveSet(t, r)
		for id, who := range usedRefs(t, r, h.tags, removed) {
			if !live[id] {
				t.Fatalf("after rm %s: chunk %s used by %s is not in LiveChunks", tag, id, who)
			}
		}
	}
	if v := resolveTag(t, r, "img:v18"); v.Base != "" {
		t.Fatalf("v18 rested on the whole v17, which was removed; it should be whole now, has base %s", v.Base)
	}
	problems, err := layer.ForEachRef(ctx, r, func(string, chunker.ID) error { return nil })
	if err != nil || len(problems) > 0 {
		t.Fatalf("ForEachRef after the removals: %v %v", problems, err)
	}
}

// A repository written before layers stores JSON manifests (format 1): its
// versions still read, and a new version layers on top of one.
func TestLegacyJSONParent(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(4, 4))
	r := newRepo(t)
	old := manifesttest.Realistic(rng, 300)
	w := writer(t, r)
	defer w.Close()
	j, err := manifest.EncodeJSON(old)
	if err != nil {
		t.Fatal(err)
	}
	refs, err := w.WriteStream(bytes.NewReader(j), nil)
	if err != nil {
		t.Fatal(err)
	}
	legacy := &layer.Version{ID: layer.NewID(), Name: "img", Tag: "old", Created: time.Now().UTC(), Exact: true,
		DiskSize: old.DiskSize, Files: old.FileCount()}
	for _, ref := range refs {
		legacy.Manifest = append(legacy.Manifest, manifest.Ref{ID: ref.ID, Size: ref.Size})
	}
	if err := w.Commit(ctx, func(tx *repo.Tx) error {
		// The record as mis wrote it before layers: no base, depth or sum.
		rec, err := json.Marshal(legacy)
		if err != nil || bytes.Contains(rec, []byte(`"base"`)) || bytes.Contains(rec, []byte(`"sum"`)) {
			return fmt.Errorf("legacy record %s: %v", rec, err)
		}
		if err := tx.Put([]byte("ver/"+legacy.ID), rec); err != nil {
			return err
		}
		return tx.Put([]byte("tag/img\x00old"), []byte(legacy.ID))
	}); err != nil {
		t.Fatal(err)
	}
	w.Close()
	got, err := layer.LoadManifest(ctx, r, resolveTag(t, r, "img:old"))
	if err != nil {
		t.Fatalf("legacy version: %v", err)
	}
	a, _ := manifest.Encode(got)
	b, _ := manifest.Encode(old)
	if !bytes.Equal(a, b) {
		t.Fatal("legacy JSON manifest reads back different")
	}
	next := manifesttest.Edit(rng, old, 0.05)
	w = writer(t, r)
	v := &layer.Version{Parent: legacy.ID}
	if err := layer.Save(ctx, w, ref("img:new"), v, next); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if v.Base != legacy.ID || v.Depth != 1 {
		t.Fatalf("new version on a legacy parent: base %q depth %d", v.Base, v.Depth)
	}
	h := &history{r: r, tags: []string{"img:old", "img:new"}, want: map[string]*manifest.Manifest{"img:old": old, "img:new": next}}
	h.checkAll(t, nil)
	// A wrong parent manifest handed to Save is caught by the checksum
	// (the parent has one now) and not used.
	w = writer(t, r)
	defer w.Close()
	v2 := &layer.Version{Parent: v.ID}
	third := manifesttest.Edit(rng, next, 0.05)
	if err := layer.SaveWithOptions(ctx, w, ref("img:third"), v2, third, layer.SaveOptions{ParentManifest: old}); err != nil {
		t.Fatal(err)
	}
	h.tags = append(h.tags, "img:third")
	h.want["img:third"] = third
	h.checkAll(t, nil)
}
