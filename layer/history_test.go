package layer_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"mis/chunker"
	"mis/fixtures"
	"mis/image"
	"mis/layer"
	"mis/manifest"
	"mis/repo"
)

func fileSHA(t *testing.T, path string) [32]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return [32]byte(h.Sum(nil))
}

func writer(t *testing.T, r *repo.Repo) *repo.Writer {
	t.Helper()
	w, err := r.OpenWriter(context.Background(), "test "+t.Name())
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func ref(s string) layer.Ref {
	r, err := layer.ParseRef(s)
	if err != nil {
		panic(err)
	}
	return r
}

func verifyClean(t *testing.T, r *repo.Repo) {
	t.Helper()
	ctx := context.Background()
	var problems []string
	rep, err := r.Verify(ctx, repo.VerifyOptions{ReadData: true, Refs: func(yield func(string, chunker.ID) error) error {
		var err error
		problems, err = layer.ForEachRef(ctx, r, yield)
		return err
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("manifest problem: %s", p)
	}
	for _, p := range rep.Problems {
		t.Errorf("verify: %s", p)
	}
}

func exportsIdentical(t *testing.T, r *repo.Repo, name, src string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out.raw")
	if err := image.Export(context.Background(), r, loadManifest(t, r, name), out, image.ExportOptions{}); err != nil {
		t.Fatalf("export %s: %v", name, err)
	}
	if fileSHA(t, out) != fileSHA(t, src) {
		t.Fatalf("%s does not export byte-identical to %s", name, src)
	}
}

func TestTagRmLogGC(t *testing.T) {
	ctx := context.Background()
	v1src := fixtures.Path(t, "ext4")
	v2src, _ := changedCopy(t, v1src)
	v3src := fixtures.Path(t, "ext2")
	r := newRepo(t)
	importImage(t, r, v1src, "img:v1")
	v2 := importImage(t, r, v2src, "img:v2")
	importImage(t, r, v3src, "img:v3")

	// tag: a second name for v2, no copy; an existing name is refused.
	w := writer(t, r)
	if _, err := layer.Tag(ctx, w, ref("img:v2"), ref("img:v2b")); err != nil {
		t.Fatal(err)
	}
	if _, err := layer.Tag(ctx, w, ref("img:v1"), ref("img:v3")); err == nil {
		t.Fatal("tag over an existing name succeeded")
	}
	if _, err := layer.Tag(ctx, w, ref("img:nope"), ref("img:x")); !errors.Is(err, layer.ErrNotFound) {
		t.Fatalf("tag of a missing version: %v", err)
	}
	w.Close()

	var hist []layer.HistoryEntry
	err := r.View(ctx, func(tx *repo.Tx) error {
		var err error
		hist, err = layer.History(tx, "img")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, h := range hist {
		order = append(order, h.Ref.String())
	}
	if len(hist) != 4 || hist[0].Ref.Tag != "v1" || hist[3].Ref.Tag != "v3" || hist[1].Version.ID != v2.ID || hist[2].Version.ID != v2.ID {
		t.Fatalf("history order: %v", order)
	}

	// rm of one of two tags keeps the version; rm of the last removes it.
	w = writer(t, r)
	res, err := layer.Remove(ctx, w, ref("img:v2b"))
	if err != nil || res.VersionRemoved || len(res.OtherTags) != 1 || res.OtherTags[0] != "img:v2" {
		t.Fatalf("rm img:v2b: %+v %v", res, err)
	}
	if res, err = layer.Remove(ctx, w, ref("img:v2")); err != nil || !res.VersionRemoved || res.ID != v2.ID {
		t.Fatalf("rm img:v2: %+v %v", res, err)
	}
	if _, err := layer.Remove(ctx, w, ref("img:v2")); !errors.Is(err, layer.ErrNotFound) {
		t.Fatalf("second rm: %v", err)
	}
	w.Close()

	before, err := r.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w = writer(t, r)
	dry, err := w.GC(ctx, layer.LiveChunks(ctx, r), repo.GCOptions{DryRun: true})
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	if after, _ := r.Stats(ctx); after != before {
		t.Fatalf("dry run changed the repository: %+v -> %+v", before, after)
	}

	w = writer(t, r)
	start := time.Now()
	rep, err := w.GC(ctx, layer.LiveChunks(ctx, r), repo.GCOptions{})
	elapsed := time.Since(start)
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	after, err := r.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("gc in %v: %d dead chunks (%d stored bytes), %d packs rewritten, %d deleted, %d written; pack bytes %d -> %d (freed %d; dry run said %d)",
		elapsed, rep.DeadChunks, rep.DeadStoredBytes, rep.PacksRewritten, rep.PacksDeleted, rep.PacksWritten,
		rep.PackBytesBefore, rep.PackBytesAfter, rep.Freed(), dry.Freed())
	// v2's own data is a 2 MiB random file.
	if rep.DeadChunks == 0 || rep.Freed() < 2<<20 || after.PackBytes != rep.PackBytesAfter || dry.DeadChunks != rep.DeadChunks {
		t.Fatalf("gc freed nothing: before %+v after %+v report %+v", before, after, rep)
	}
	verifyClean(t, r)
	exportsIdentical(t, r, "img:v1", v1src)
	exportsIdentical(t, r, "img:v3", v3src)
}

// importChild imports path as a child of parent (the importer's path: the
// parent's manifest reuses unchanged files and is handed to Save).
func importChild(t *testing.T, r *repo.Repo, path, tag string, parent *layer.Version) *layer.Version {
	t.Helper()
	ctx := context.Background()
	pm, err := layer.LoadManifest(ctx, r, parent)
	if err != nil {
		t.Fatal(err)
	}
	w := writer(t, r)
	defer w.Close()
	m, err := image.Import(ctx, w, r.Config().Chunker, path, image.ImportOptions{Parent: pm})
	if err != nil {
		t.Fatalf("import %s: %v", path, err)
	}
	v := &layer.Version{Source: path, Parent: parent.ID}
	if err := layer.SaveWithOptions(ctx, w, ref(tag), v, m, layer.SaveOptions{ParentManifest: pm}); err != nil {
		t.Fatal(err)
	}
	return v
}

// rm of the middle of a layered history of real images, then gc: every
// remaining version exports byte-identically and verify is clean.
func TestRmMiddleLayerThenGC(t *testing.T) {
	ctx := context.Background()
	v1src := fixtures.Path(t, "ext4")
	v2src, _ := changedCopy(t, v1src)
	v3src, _ := changedCopy(t, v2src)
	r := newRepo(t)
	v1 := importImage(t, r, v1src, "img:v1")
	v2 := importChild(t, r, v2src, "img:v2", v1)
	v3 := importChild(t, r, v3src, "img:v3", v2)
	if v2.Base != v1.ID || v3.Base != v2.ID || v3.Depth != 2 {
		t.Fatalf("not stored as layers: v2 base %q, v3 base %q depth %d", v2.Base, v3.Base, v3.Depth)
	}
	full := manifest.StreamSize(v1.Manifest)
	t.Logf("manifest streams: v1 whole %d bytes, v2 layer %d, v3 layer %d", full,
		manifest.StreamSize(v2.Manifest), manifest.StreamSize(v3.Manifest))
	if manifest.StreamSize(v3.Manifest)*4 > full {
		t.Fatalf("a layer changing a handful of files is %d bytes, the whole manifest %d", manifest.StreamSize(v3.Manifest), full)
	}
	w := writer(t, r)
	res, err := layer.Remove(ctx, w, ref("img:v2"))
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rebased) != 1 || res.Rebased[0] != v3.ID {
		t.Fatalf("rm img:v2 rebased %v, want v3", res.Rebased)
	}
	if v := resolveTag(t, r, "img:v3"); v.Base != v1.ID || v.Depth != 1 {
		t.Fatalf("v3 after rm: base %q depth %d, want base v1 depth 1", v.Base, v.Depth)
	}
	exportsIdentical(t, r, "img:v3", v3src)
	// v2's layer stream is garbage now (v3's rebased layer replaced it).
	live := liveSet(t, r)
	for _, ref := range v2.Manifest {
		if live[ref.ID] {
			t.Fatalf("the removed v2's layer chunk %s is still live", ref.ID)
		}
	}
	w = writer(t, r)
	rep, err := w.GC(ctx, layer.LiveChunks(ctx, r), repo.GCOptions{})
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("gc freed %d bytes (%d dead chunks)", rep.Freed(), rep.DeadChunks)
	// v2's 2 MiB file stays: v3 rewrote it, and exact images keep free
	// blocks' old bytes in the residual. v2's own layer stream goes.
	if rep.DeadChunks < int64(len(v2.Manifest)) {
		t.Fatalf("gc found %d dead chunks; v2's layer stream alone is %d", rep.DeadChunks, len(v2.Manifest))
	}
	verifyClean(t, r)
	exportsIdentical(t, r, "img:v1", v1src)
	exportsIdentical(t, r, "img:v3", v3src)
}
