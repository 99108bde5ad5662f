package layer_test

import (
	"context"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"mis/fixtures"
	"mis/image"
	"mis/layer"
	"mis/repo"
	"mis/testkit/treecmp"
)

// usageImport imports path as ref, with no parent (dedup alone must find
// what versions share).
func usageImport(t *testing.T, r *repo.Repo, path, ref string) {
	t.Helper()
	ctx := context.Background()
	w := writer(t, r)
	defer w.Close()
	m, err := image.Import(ctx, w, r.Config().Chunker, path, image.ImportOptions{})
	if err != nil {
		t.Fatalf("import %s: %v", path, err)
	}
	lr, err := layer.ParseRef(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := layer.Save(ctx, w, lr, &layer.Version{Source: path}, m); err != nil {
		t.Fatal(err)
	}
}

// withRandomFile copies src and adds a file of n incompressible bytes
// through a kernel loop mount.
func withRandomFile(t *testing.T, src string, n int) string {
	t.Helper()
	treecmp.RequireRoot(t)
	dir := t.TempDir()
	img := filepath.Join(dir, "v2.img")
	mnt := filepath.Join(dir, "mnt")
	os.Mkdir(mnt, 0o755)
	for _, args := range [][]string{{"cp", "--sparse=always", src, img}, {"mount", "-o", "loop,noatime", img, mnt}} {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	data := make([]byte, n)
	rand.Read(data)
	werr := os.WriteFile(filepath.Join(mnt, "usage-random.bin"), data, 0o644)
	if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
		t.Fatalf("umount: %v\n%s", err, out)
	}
	if werr != nil {
		t.Fatal(werr)
	}
	return img
}

func computeUsage(t *testing.T, r *repo.Repo) (*layer.Usage, map[string]layer.VersionUsage) {
	t.Helper()
	u, err := layer.ComputeUsage(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	by := map[string]layer.VersionUsage{}
	for _, v := range u.Versions {
		by[v.Label()] = v
		t.Logf("%s: %d chunks, unique %d stored (%d raw), shared %d stored (%d raw)",
			v.Label(), v.Chunks, v.UniqueStored, v.UniqueRaw, v.SharedStored, v.SharedRaw)
	}
	if u.Missing != 0 {
		t.Errorf("%d referenced chunks missing from the index", u.Missing)
	}
	return u, by
}

func repoStats(t *testing.T, r *repo.Repo) repo.Stats {
	t.Helper()
	st, err := r.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestUsageUniqueAndShared(t *testing.T) {
	const added = 3 << 20
	v1img := fixtures.Path(t, "ext4")
	v2img := withRandomFile(t, v1img, added)
	r := newRepo(t)

	// One version holds everything alone: its unique bytes are every
	// stored chunk byte of the repository.
	usageImport(t, r, v1img, "img:v1")
	u, by := computeUsage(t, r)
	st := repoStats(t, r)
	one := by["img:v1"]
	if len(u.Versions) != 1 || one.UniqueStored != st.StoredBytes || one.UniqueRaw != st.RawBytes ||
		one.SharedStored != 0 || one.UniqueChunks != st.Chunks || one.Chunks != st.Chunks {
		t.Fatalf("single version %+v, repository %+v", one, st)
	}

	// v2 = v1 + 3 MiB of random bytes: v2 alone holds at least those bytes;
	// everything else of v1's files is shared.
	usageImport(t, r, v2img, "img:v2")
	u, by = computeUsage(t, r)
	st = repoStats(t, r)
	a, b := by["img:v1"], by["img:v2"]
	if a.UniqueStored+b.UniqueStored+a.SharedStored != st.StoredBytes || a.SharedStored != b.SharedStored {
		t.Errorf("unique %d + %d + shared %d != stored chunk bytes %d (shared as seen by v2: %d)",
			a.UniqueStored, b.UniqueStored, a.SharedStored, st.StoredBytes, b.SharedStored)
	}
	k := u.LiveByKind
	if k.Manifest <= 0 || k.Residual <= 0 || k.Content < added || k.Manifest+k.Residual+k.Content != u.LiveStored {
		t.Errorf("live bytes by kind %+v do not add up to %d or miss a kind", k, u.LiveStored)
	}
	if u.LiveStored != st.StoredBytes || u.LiveChunks != st.Chunks {
		t.Errorf("live %d bytes in %d chunks, repository %d in %d", u.LiveStored, u.LiveChunks, st.StoredBytes, st.Chunks)
	}
	if b.UniqueRaw < added || b.UniqueStored < added {
		t.Errorf("v2 holds %d raw / %d stored bytes alone, want at least the %d random bytes it added", b.UniqueRaw, b.UniqueStored, added)
	}
	if a.SharedRaw < one.UniqueRaw/2 {
		t.Errorf("v1 shares only %d of its %d raw bytes with a copy of itself", a.SharedRaw, one.UniqueRaw)
	}
	if a.UniqueStored+a.SharedStored != one.UniqueStored {
		t.Errorf("v1's total moved from %d to %d though v1 did not change", one.UniqueStored, a.UniqueStored+a.SharedStored)
	}

	// Removing v1 moves every byte it shared to v2 alone.
	w := writer(t, r)
	if _, err := layer.Remove(context.Background(), w, ref("img:v1")); err != nil {
		t.Fatal(err)
	}
	w.Close()
	u, by = computeUsage(t, r)
	after := by["img:v2"]
	if len(u.Versions) != 1 || after.SharedStored != 0 || after.UniqueStored != b.UniqueStored+b.SharedStored {
		t.Errorf("after rm img:v1, img:v2 holds %d alone and shares %d; want %d alone, 0 shared",
			after.UniqueStored, after.SharedStored, b.UniqueStored+b.SharedStored)
	}
}

// A version with two tags counts once, named by both tags.
func TestUsageTaggedTwice(t *testing.T) {
	r := newRepo(t)
	usageImport(t, r, fixtures.Path(t, "ext4"), "img:v1")
	w := writer(t, r)
	if _, err := layer.Tag(context.Background(), w, ref("img:v1"), ref("img:stable")); err != nil {
		t.Fatal(err)
	}
	w.Close()
	u, _ := computeUsage(t, r)
	st := repoStats(t, r)
	if len(u.Versions) != 1 || len(u.Versions[0].Refs) != 2 || u.Versions[0].UniqueStored != st.StoredBytes {
		t.Fatalf("usage %+v, repository %+v", u.Versions, st)
	}
}
