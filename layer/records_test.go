package layer_test

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"mis/layer"
	"mis/manifest/manifesttest"
	"mis/repo"
)

func checkFiles(t *testing.T, r *repo.Repo) *layer.RecordFileCheck {
	t.Helper()
	c, err := layer.CheckRecordFiles(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestRecordFilesFollowRecords: Save writes a version's record file, rm
// removes it and rewrites the files of the versions it rebases; a record
// the metadata database lost comes back from its file with its tag.
func TestRecordFilesFollowRecords(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(3, 3))
	r := newRepo(t)
	h := buildHistory(t, r, rng, manifesttest.Realistic(rng, 300), 3, 0.05, 0)
	if c := checkFiles(t, r); len(c.Lost)+len(c.Missing)+len(c.Stale)+len(c.Unreadable) != 0 {
		t.Fatalf("after save: %+v", c)
	}
	v1 := resolveTag(t, r, "img:v1")
	if resolveTag(t, r, "img:v2").Base != v1.ID {
		t.Fatal("setup: img:v2 is not a layer on img:v1")
	}
	w := writer(t, r)
	if _, err := layer.Remove(ctx, w, ref("img:v1")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(r.Dir(), "versions", v1.ID+".json")); !os.IsNotExist(err) {
		t.Fatalf("record file of a removed version: %v", err)
	}
	v2 := resolveTag(t, r, "img:v2")
	if v2.Base == v1.ID {
		t.Fatal("setup: img:v2 was not rebased")
	}
	if c := checkFiles(t, r); len(c.Lost)+len(c.Missing)+len(c.Stale) != 0 {
		t.Fatalf("after rm: %+v", c)
	}

	// The database loses img:v2 (record and tag); a file goes stale.
	if err := w.Update(ctx, func(tx *repo.Tx) error {
		if err := tx.Delete([]byte("ver/" + v2.ID)); err != nil {
			return err
		}
		return tx.Delete([]byte("tag/img\x00v2"))
	}); err != nil {
		t.Fatal(err)
	}
	v0 := resolveTag(t, r, "img:v0")
	stale := *v0
	stale.Files++
	data, _ := json.Marshal(stale)
	if err := os.WriteFile(filepath.Join(r.Dir(), "versions", v0.ID+".json"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	c := checkFiles(t, r)
	if len(c.Lost) != 1 || c.Lost[0].ID != v2.ID || len(c.Stale) != 1 || c.Stale[0].ID != v0.ID {
		t.Fatalf("lost %v, stale %v", c.Lost, c.Stale)
	}
	restored, written, err := layer.RepairRecordFiles(ctx, w)
	if err != nil {
		t.Fatal(err)
	}
	if len(restored) != 1 || restored[0].Ref != "img:v2" || written != 1 {
		t.Fatalf("restored %+v, wrote %d", restored, written)
	}
	if c := checkFiles(t, r); len(c.Lost)+len(c.Missing)+len(c.Stale) != 0 {
		t.Fatalf("after repair: %+v", c)
	}
	if got := resolveTag(t, r, "img:v0"); got.Files != v0.Files {
		t.Fatal("a stale file overwrote its record")
	}
	h.checkAll(t, map[string]bool{"img:v1": true})
}
