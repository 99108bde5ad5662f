package repo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mis/chunker"
)

func TestRoundTripChunkKinds(t *testing.T) {
	r := newTestRepo(t)
	w := openWriter(t, r)
	defer w.Close()
	kinds := map[string][]byte{
		"random":         randomBytes(1, 100_000),
		"compressible":   compressibleBytes(2, 100_000),
		"zeros":          make([]byte, 100_000),
		"incompressible": randomBytes(3, 64<<10),
		"tiny":           []byte("x"),
	}
	ids := map[string]chunker.ID{}
	for name, data := range kinds {
		id, added, err := w.Put(data)
		if err != nil || !added {
			t.Fatalf("%s: added=%v err=%v", name, added, err)
		}
		ids[name] = id
		// Pending chunks are readable before Commit.
		got, err := w.Read(id)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%s: pending read mismatch (err %v)", name, err)
		}
	}
	if err := w.Commit(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	for name, data := range kinds {
		got, err := w.Read(ids[name])
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%s: indexed read mismatch (err %v)", name, err)
		}
	}
	w.Close()

	var list []chunker.ID
	for _, id := range ids {
		list = append(list, id)
	}
	locs, err := r.Lookup(context.Background(), list)
	if err != nil {
		t.Fatal(err)
	}
	cr := r.NewChunkReader()
	defer cr.Close()
	for name, data := range kinds {
		loc := locs[ids[name]]
		got, err := cr.Read(ids[name], loc, nil)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%s: reader mismatch (err %v)", name, err)
		}
		wantCompressed := name == "compressible" || name == "zeros"
		if loc.Compressed != wantCompressed {
			t.Errorf("%s: compressed=%v, want %v", name, loc.Compressed, wantCompressed)
		}
		if !loc.Compressed && loc.StoredLen != loc.RawLen {
			t.Errorf("%s: raw chunk stored as %d of %d bytes", name, loc.StoredLen, loc.RawLen)
		}
	}
	verifyOK(t, r, VerifyOptions{ReadData: true})
}

func TestIdenticalContentStoredOnce(t *testing.T) {
	r := newTestRepo(t)
	data := compressibleBytes(5, 3<<20)
	w := openWriter(t, r)
	if err := commitVersion(context.Background(), w, 1, data); err != nil {
		t.Fatal(err)
	}
	first := w.Stats()
	if first.NewChunks == 0 {
		t.Fatal("nothing stored")
	}
	// Same data again, in the same writer and then in a new one.
	if err := commitVersion(context.Background(), w, 2, data); err != nil {
		t.Fatal(err)
	}
	second := w.Stats()
	if second.NewChunks != first.NewChunks || second.NewBytes != first.NewBytes {
		t.Fatalf("second copy added data: %+v then %+v", first, second)
	}
	w.Close()
	packsBefore := listPacks(t, r)

	w = openWriter(t, r)
	if err := commitVersion(context.Background(), w, 3, data); err != nil {
		t.Fatal(err)
	}
	if st := w.Stats(); st.NewChunks != 0 || st.DupBytes != int64(len(data)) {
		t.Fatalf("third copy: %+v", st)
	}
	w.Close()
	if after := listPacks(t, r); len(after) != len(packsBefore) {
		t.Fatalf("packs %d -> %d after storing duplicate data", len(packsBefore), len(after))
	}
	st, err := r.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Chunks != first.NewChunks || st.RawBytes != first.NewBytes {
		t.Fatalf("repo stats %+v, writer stats %+v", st, first)
	}
	vs := loadVersions(t, r)
	for name, rec := range vs {
		restoreVersion(t, r, name, rec)
	}
	verifyOK(t, r, VerifyOptions{ReadData: true, Refs: refsOf(vs)})
}

func TestInitAndOpenErrors(t *testing.T) {
	base := t.TempDir()
	if _, err := Open(base); err == nil || !strings.Contains(err.Error(), "is not a mis repository (no config.json)") {
		t.Fatalf("open of plain dir: %v", err)
	}
	if err := os.WriteFile(filepath.Join(base, "junk"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Init(base, InitOptions{}); err == nil {
		t.Fatal("init of non-empty non-repo dir succeeded")
	}
	dir := filepath.Join(base, "r")
	if err := Init(dir, InitOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := Init(dir, InitOptions{}); err == nil || !strings.Contains(err.Error(), "already") {
		t.Fatalf("second init: %v", err)
	}
	if err := Init(filepath.Join(base, "bad"), InitOptions{ZstdLevel: "ultra"}); err == nil {
		t.Fatal("init with bad zstd level succeeded")
	}
	r, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if c := r.Config(); c.Chunker != chunker.DefaultParams() || c.PackTargetSize != DefaultPackTargetSize || c.ZstdLevel != ZstdFastest || len(c.ID) != 32 {
		t.Fatalf("defaults: %+v", c)
	}

	// An unknown format version is refused with a clear message.
	cfgPath := filepath.Join(dir, "config.json")
	raw, _ := os.ReadFile(cfgPath)
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	m["format_version"] = 7
	raw, _ = json.Marshal(m)
	os.WriteFile(cfgPath, raw, 0o644)
	_, err = Open(dir)
	if err == nil || !strings.Contains(err.Error(), "repository format version 7 is not supported by this mis (supports 1)") {
		t.Fatalf("open of format 7: %v", err)
	}
}

func TestReservedKeysRejected(t *testing.T) {
	r := newTestRepo(t)
	w := openWriter(t, r)
	defer w.Close()
	id, _, err := w.Put([]byte("some chunk"))
	if err != nil {
		t.Fatal(err)
	}
	err = w.Commit(context.Background(), func(tx *Tx) error {
		for _, k := range []string{"c/" + string(id[:]), "p/x", "c/"} {
			if err := tx.Put([]byte(k), []byte("v")); err == nil || !strings.Contains(err.Error(), "reserved") {
				t.Errorf("Put %q: %v", k, err)
			}
			if err := tx.Delete([]byte(k)); err == nil {
				t.Errorf("Delete %q allowed", k)
			}
			if _, err := tx.Get([]byte(k)); err == nil || errors.Is(err, ErrNotFound) {
				t.Errorf("Get %q: %v", k, err)
			}
		}
		if err := tx.Iterate([]byte("c/"), func(k, v []byte) error { return nil }); err == nil {
			t.Error("Iterate over c/ allowed")
		}
		return tx.Put([]byte("cx"), []byte("caller"))
	})
	if err != nil {
		t.Fatal(err)
	}
	// Iterating everything shows caller keys only.
	var keys []string
	err = r.View(context.Background(), func(tx *Tx) error {
		if err := tx.Put([]byte("k"), []byte("v")); err == nil {
			t.Error("Put in a View succeeded")
		}
		if _, err := tx.Get([]byte("nope")); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get of missing key: %v", err)
		}
		return tx.Iterate(nil, func(k, v []byte) error { keys = append(keys, string(k)); return nil })
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[0] != "cx" {
		t.Fatalf("iterate all: %q", keys)
	}
}

func TestPackTrailerSelfDescribing(t *testing.T) {
	r := newTestRepo(t)
	w := openWriter(t, r)
	data := append(randomBytes(9, 3<<20), compressibleBytes(9, 1<<20)...)
	if err := commitVersion(context.Background(), w, 1, data); err != nil {
		t.Fatal(err)
	}
	w.Close()
	packs := listPacks(t, r)
	if len(packs) < 2 {
		t.Fatalf("expected several 1 MiB packs, got %d", len(packs))
	}
	// Every index entry must equal what the pack's own trailer says.
	var fromTrailers []chunker.ID
	for name := range packs {
		entries, err := readWholePack(context.Background(), r.packs, name)
		if err != nil {
			t.Fatal(err)
		}
		if size := packs[name]; size > 2<<20 {
			t.Errorf("pack %s is %d bytes, target is 1 MiB", name, size)
		}
		for _, e := range entries {
			fromTrailers = append(fromTrailers, e.ID)
		}
	}
	locs, err := r.Lookup(context.Background(), fromTrailers)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := r.Stats(context.Background())
	if len(locs) != len(fromTrailers) || int64(len(fromTrailers)) != st.Chunks {
		t.Fatalf("trailers list %d chunks, index resolves %d, has %d", len(fromTrailers), len(locs), st.Chunks)
	}
}

func TestWriteStreamRefsProgressAndUpdate(t *testing.T) {
	r := newTestRepo(t)
	w := openWriter(t, r)
	defer w.Close()
	data := append(randomBytes(31, 1<<20), make([]byte, 1<<20)...)
	var progressed int64
	refs, err := w.WriteStream(bytes.NewReader(data), func(n int64) { progressed += n })
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	var rebuilt []byte
	for _, ref := range refs {
		total += int64(ref.Size)
		chunk, err := w.Read(ref.ID) // pending: from the open pack or a sealed one
		if err != nil {
			t.Fatal(err)
		}
		rebuilt = append(rebuilt, chunk...)
	}
	if total != int64(len(data)) || progressed != total || !bytes.Equal(rebuilt, data) {
		t.Fatalf("refs cover %d bytes, progress %d, data %d, equal=%v", total, progressed, len(data), bytes.Equal(rebuilt, data))
	}
	// Metadata-only update: visible to readers; the pending chunks stay pending.
	if err := w.Update(context.Background(), func(tx *Tx) error { return tx.Put([]byte("name"), []byte("vm1")) }); err != nil {
		t.Fatal(err)
	}
	err = r.View(context.Background(), func(tx *Tx) error {
		v, err := tx.Get([]byte("name"))
		if err != nil || string(v) != "vm1" {
			t.Errorf("get after update: %q %v", v, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if locs, _ := r.Lookup(context.Background(), []chunker.ID{refs[0].ID}); len(locs) != 0 {
		t.Fatal("chunk indexed before Commit")
	}
	if has, _ := w.Has(refs[0].ID); !has {
		t.Fatal("pending chunk lost by Update")
	}
	// Close without Commit: the open pack is discarded, sealed packs are
	// picked up by the next writer.
	w.Close()
	w2 := openWriter(t, r)
	defer w2.Close()
	sealed := 0
	for _, ref := range refs {
		if has, _ := w2.Has(ref.ID); has {
			sealed++
		}
	}
	if sealed == 0 || sealed == len(refs) {
		t.Fatalf("%d of %d chunks survived Close; want the sealed ones only", sealed, len(refs))
	}
	verifyOK(t, r, VerifyOptions{ReadData: true})
}
