package catalog_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mis/catalog"
	"mis/clone"
	"mis/image"
	"mis/layer"
	"mis/manifest"
	"mis/repo"
	"mis/testkit/testrepo"
)

func ref(t *testing.T, s string) layer.Ref {
	t.Helper()
	r, err := layer.ParseRef(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func wantErr(t *testing.T, err error, contains string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), contains) {
		t.Fatalf("got error %v, want one containing %q", err, contains)
	}
}

func writer(t *testing.T, r *repo.Repo) *repo.Writer {
	t.Helper()
	w, err := r.OpenWriter(context.Background(), "catalog test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

func TestNamesRule(t *testing.T) {
	src, r, _ := testrepo.Fixture(t, "ext4")
	cat := catalog.Open(r)
	ctx := context.Background()
	v1 := ref(t, "img:v1")

	_, err := cat.CloneVersion(ctx, v1, []string{"img"})
	wantErr(t, err, "is the name of an image")
	if _, err := cat.CloneVersion(ctx, v1, []string{"vm1"}); err != nil {
		t.Fatal(err)
	}
	_, err = cat.TreeClone(ctx, v1, []string{"vm1"})
	wantErr(t, err, "is already a clone")
	if _, err := cat.TreeClone(ctx, v1, []string{"t1"}); err != nil {
		t.Fatal(err)
	}
	_, err = cat.CloneVersion(ctx, v1, []string{"t1"})
	wantErr(t, err, "is already a tree clone")
	_, err = cat.CloneClone(ctx, "vm1", []string{"t1"})
	wantErr(t, err, "is already a tree clone")

	if k := cat.CloneKind("vm1"); k != catalog.KindDiskClone {
		t.Errorf("CloneKind(vm1) = %q", k)
	}
	if k := cat.CloneKind("t1"); k != catalog.KindTreeClone {
		t.Errorf("CloneKind(t1) = %q", k)
	}
	if k := cat.CloneKind("img:v1"); k != catalog.KindNone {
		t.Errorf("CloneKind(img:v1) = %q", k)
	}

	w := writer(t, r)
	for _, name := range []string{"vm1", "t1"} {
		_, err = cat.Import(ctx, w, src, ref(t, name+":x"), catalog.Parent{}, image.ImportOptions{})
		wantErr(t, err, "is the name of a clone")
	}
}

// The name rule is checked again under the names lock when the version is
// saved: a clone that took the name while the version was being built wins.
func TestCreateRechecksNameAtSave(t *testing.T) {
	src, r, _ := testrepo.Fixture(t, "ext4")
	cat := catalog.Open(r)
	ctx := context.Background()
	w := writer(t, r)
	_, err := cat.Create(ctx, w, catalog.NewVersion{Ref: ref(t, "late:v1"), Parent: catalog.Parent{None: true}, Source: src,
		Build: func(ctx context.Context, w *repo.Writer, _ *layer.Version, _ *manifest.Manifest, _ *layer.Version) (*manifest.Manifest, error) {
			if _, err := cat.CloneVersion(ctx, ref(t, "img:v1"), []string{"late"}); err != nil {
				t.Fatal(err)
			}
			return image.Import(ctx, w, r.Config().Chunker, src, image.ImportOptions{})
		}})
	wantErr(t, err, "is the name of a clone")
	if err := w.View(ctx, func(tx *repo.Tx) error {
		_, err := layer.Resolve(tx, ref(t, "late:v1"))
		return err
	}); !errors.Is(err, layer.ErrNotFound) {
		t.Fatalf("late:v1 after the refused save: %v", err)
	}
}

// A taken tag or a clone's name is refused before Build reads anything.
func TestCreateChecksNameFirst(t *testing.T) {
	_, r, _ := testrepo.Fixture(t, "ext4")
	cat := catalog.Open(r)
	ctx := context.Background()
	if _, err := cat.CloneVersion(ctx, ref(t, "img:v1"), []string{"vm1"}); err != nil {
		t.Fatal(err)
	}
	w := writer(t, r)
	for name, want := range map[string]string{"img:v1": "already exists", "vm1:v1": "name of a clone"} {
		built := false
		_, err := cat.Create(ctx, w, catalog.NewVersion{Ref: ref(t, name),
			Build: func(context.Context, *repo.Writer, *layer.Version, *manifest.Manifest, *layer.Version) (*manifest.Manifest, error) {
				built = true
				return nil, errors.New("built")
			}})
		wantErr(t, err, want)
		if built {
			t.Errorf("%s: Build ran before the name was checked", name)
		}
	}
}

func TestRemoveHeldVersion(t *testing.T) {
	_, r, _ := testrepo.Fixture(t, "ext4")
	cat := catalog.Open(r)
	ctx := context.Background()
	v1 := ref(t, "img:v1")
	if _, err := cat.CloneVersion(ctx, v1, []string{"vm1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := cat.TreeClone(ctx, v1, []string{"t1"}); err != nil {
		t.Fatal(err)
	}
	w := writer(t, r)
	_, err := cat.RemoveVersion(ctx, w, v1)
	wantErr(t, err, "is the base of 2 clone(s): vm1, t1")

	// Another tag keeps the version: removing this one is fine.
	if _, err := layer.Tag(ctx, w, v1, ref(t, "img:keep")); err != nil {
		t.Fatal(err)
	}
	if res, err := cat.RemoveVersion(ctx, w, v1); err != nil || res.VersionRemoved {
		t.Fatalf("rm of a second tag: %+v, %v", res, err)
	}
	_, err = cat.RemoveVersion(ctx, w, ref(t, "img:keep"))
	wantErr(t, err, "is the base of 2 clone(s)")

	for name, kind := range map[string]catalog.Kind{"vm1": catalog.KindDiskClone, "t1": catalog.KindTreeClone} {
		if k, err := cat.RemoveClone(name); err != nil || k != kind {
			t.Fatalf("RemoveClone(%s) = %q, %v", name, k, err)
		}
	}
	if res, err := cat.RemoveVersion(ctx, w, ref(t, "img:keep")); err != nil || !res.VersionRemoved {
		t.Fatalf("rm once no clone holds it: %+v, %v", res, err)
	}
	if _, err := cat.RemoveClone("vm1"); !errors.Is(err, clone.ErrNotFound) {
		t.Errorf("RemoveClone of a removed clone: %v", err)
	}
}

func TestGCRefusesMissingBase(t *testing.T) {
	_, r, _ := testrepo.Fixture(t, "ext4")
	cat := catalog.Open(r)
	ctx := context.Background()
	// A record whose base no longer exists: what a damaged repository or
	// a bug elsewhere would leave. gc must not free anything then.
	if _, err := cat.Clones().Create(clone.Base{VersionID: "gone", Ref: "old:v1", DiskSize: 4096}, []string{"orphan"}, clone.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	w := writer(t, r)
	_, err := cat.GC(ctx, w, repo.GCOptions{})
	wantErr(t, err, "version gone, held by disk orphan, is missing")
	if _, err := cat.RemoveClone("orphan"); err != nil {
		t.Fatal(err)
	}
	if _, err := cat.GC(ctx, w, repo.GCOptions{}); err != nil {
		t.Fatalf("gc without the orphan: %v", err)
	}
}

func TestHolders(t *testing.T) {
	_, r, v := testrepo.Fixture(t, "ext4")
	cat := catalog.Open(r)
	ctx := context.Background()
	if _, err := cat.CloneVersion(ctx, ref(t, "img:v1"), []string{"a", "b"}); err != nil {
		t.Fatal(err)
	}
	if _, err := cat.TreeClone(ctx, ref(t, "img:v1"), []string{"c"}); err != nil {
		t.Fatal(err)
	}
	hs, err := cat.HoldersOf(v.ID)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, h := range hs {
		got = append(got, string(h.Kind)+":"+h.Name)
	}
	if strings.Join(got, ",") != "disk:a,disk:b,tree:c" {
		t.Errorf("holders: %v", got)
	}
	if hs, _ := cat.HoldersOf("other"); len(hs) != 0 {
		t.Errorf("holders of another version: %v", hs)
	}
}

func TestMountHoldsVersion(t *testing.T) {
	_, r, v := testrepo.Fixture(t, "ext4")
	cat := catalog.Open(r)
	ctx := context.Background()
	v1 := ref(t, "img:v1")
	release, err := cat.RegisterMount(ctx, v, "img:v1", "/mnt/test")
	if err != nil {
		t.Fatal(err)
	}
	w := writer(t, r)
	_, err = cat.RemoveVersion(ctx, w, v1)
	wantErr(t, err, "img:v1 is mounted at /mnt/test")
	release()
	if ms, err := cat.Mounts(); err != nil || len(ms) != 0 {
		t.Fatalf("mounts after release: %v, %v", ms, err)
	}

	// A record nobody holds locked is a server that died: not a holder,
	// and removed when seen.
	dead := filepath.Join(r.Dir(), "mounts", "0123456789abcdef.json")
	if err := os.WriteFile(dead, []byte(`{"id":"0123456789abcdef","version":"`+v.ID+`","dir":"/mnt/dead","pid":1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if hs, err := cat.HoldersOf(v.ID); err != nil || len(hs) != 0 {
		t.Fatalf("holders with a dead record: %v, %v", hs, err)
	}
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Errorf("dead record still there: %v", err)
	}
	if _, err := cat.RemoveVersion(ctx, w, v1); err != nil {
		t.Fatalf("rm after the mount ended: %v", err)
	}
	_, err = cat.RegisterMount(ctx, v, "img:v1", "/mnt/late")
	wantErr(t, err, "removed meanwhile")
}
