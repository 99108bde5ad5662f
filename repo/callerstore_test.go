package repo

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"mis/chunker"
)

// countingStore counts the calls made to the store it wraps.
type countingStore struct {
	PackStore
	mu    sync.Mutex
	calls map[string]int
}

func newCountingStore(s PackStore) *countingStore {
	return &countingStore{PackStore: s, calls: map[string]int{}}
}

func (c *countingStore) count(method string) {
	c.mu.Lock()
	c.calls[method]++
	c.mu.Unlock()
}

// take returns the counts so far and starts again from zero.
func (c *countingStore) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.calls
	c.calls = map[string]int{}
	return out
}

func (c *countingStore) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	c.count("Put")
	return c.PackStore.Put(ctx, name, r, size)
}

func (c *countingStore) Open(ctx context.Context, name string) (PackReader, error) {
	c.count("Open")
	pr, err := c.PackStore.Open(ctx, name)
	if err != nil {
		return nil, err
	}
	return countingReader{pr, c}, nil
}

func (c *countingStore) Stat(ctx context.Context, name string) (int64, error) {
	c.count("Stat")
	return c.PackStore.Stat(ctx, name)
}

func (c *countingStore) List(ctx context.Context, fn func(string, int64) error) error {
	c.count("List")
	return c.PackStore.List(ctx, fn)
}

func (c *countingStore) Remove(ctx context.Context, name string) error {
	c.count("Remove")
	return c.PackStore.Remove(ctx, name)
}

func (c *countingStore) RemoveIncomplete(ctx context.Context) (int, error) {
	c.count("RemoveIncomplete")
	return c.PackStore.RemoveIncomplete(ctx)
}

type countingReader struct {
	PackReader
	c *countingStore
}

func (r countingReader) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	r.c.count("ReadAt")
	return r.PackReader.ReadAt(ctx, p, off)
}

// TestRepoOnCallerStore opens a repository on a store the caller passes
// (a local store in another directory, wrapped to count calls) and checks
// that writes, reads, gc and verify all go through it and that nothing
// lands in the repository's own packs/.
func TestRepoOnCallerStore(t *testing.T) {
	ctx := context.Background()
	storeDir := filepath.Join(t.TempDir(), "elsewhere")
	if err := os.Mkdir(storeDir, 0o755); err != nil {
		t.Fatal(err)
	}
	cs := newCountingStore(NewLocalPackStore(storeDir))
	dir := filepath.Join(t.TempDir(), "repo")
	if err := Init(dir, InitOptions{Chunker: testParams, PackTargetSize: 1 << 20, PackStore: cs}); err != nil {
		t.Fatal(err)
	}
	r, err := Open(dir, WithPackStore(cs))
	if err != nil {
		t.Fatal(err)
	}
	if r.Packs() != PackStore(cs) {
		t.Fatal("Packs() is not the store passed to Open")
	}
	cs.take()

	// Writes: recovery cleans through the store, packs are Put into it.
	w := openWriter(t, r)
	for v := 1; v <= 3; v++ {
		if err := commitVersion(ctx, w, v, versionData(v)); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	expectCalls(t, "write", cs.take(), "RemoveIncomplete", "List", "Put")
	if own := countPacksIn(t, NewLocalPackStore(filepath.Join(dir, packsDir))); own != 0 {
		t.Fatalf("%d pack(s) in the repository's own packs/", own)
	}
	if n := countPacksIn(t, NewLocalPackStore(storeDir)); n == 0 {
		t.Fatal("no pack in the caller's store")
	}

	// Reads.
	vs := loadVersions(t, r)
	for name, rec := range vs {
		restoreVersion(t, r, name, rec)
	}
	expectCalls(t, "read", cs.take(), "Open", "ReadAt")

	// gc: drop version 2, whose data is private.
	w = openWriter(t, r)
	if err := w.Update(ctx, func(tx *Tx) error { return tx.Delete(versionKey(2)) }); err != nil {
		t.Fatal(err)
	}
	rep, err := w.GC(ctx, liveOf(ctx, w), GCOptions{})
	w.Close()
	if err != nil || rep.PacksDeleted == 0 {
		t.Fatalf("gc: %+v %v", rep, err)
	}
	expectCalls(t, "gc", cs.take(), "List", "Remove")

	// verify --read-data.
	verifyOK(t, r, VerifyOptions{ReadData: true, Refs: refsOf(loadVersions(t, r))})
	expectCalls(t, "verify", cs.take(), "List", "Open", "ReadAt")

	// A second repository may not start on a store that holds packs.
	err = Init(filepath.Join(t.TempDir(), "repo2"), InitOptions{PackStore: cs})
	if err == nil || !strings.Contains(err.Error(), "already holds packs") {
		t.Fatalf("init on a non-empty store: %v", err)
	}
}

// countPacksIn returns how many packs s lists.
func countPacksIn(t *testing.T, s PackStore) int {
	t.Helper()
	n := 0
	if err := s.List(context.Background(), func(string, int64) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

func expectCalls(t *testing.T, what string, calls map[string]int, methods ...string) {
	t.Helper()
	for _, m := range methods {
		if calls[m] == 0 {
			t.Errorf("%s: no call to %s went through the caller's store (calls: %v)", what, m, calls)
		}
	}
}

// objectLikeStore behaves as an object store does after a DELETE: a read
// through a handle opened before the pack was removed fails with
// fs.ErrNotExist (the local store would keep serving the open file).
type objectLikeStore struct{ PackStore }

type objectLikeReader struct {
	PackReader
	s    objectLikeStore
	name string
}

func (s objectLikeStore) Open(ctx context.Context, name string) (PackReader, error) {
	pr, err := s.PackStore.Open(ctx, name)
	if err != nil {
		return nil, err
	}
	return objectLikeReader{pr, s, name}, nil
}

func (r objectLikeReader) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	if _, err := r.s.Stat(ctx, r.name); err != nil {
		return 0, err
	}
	return r.PackReader.ReadAt(ctx, p, off)
}

// TestReaderFollowsChunksWhenOpenPackVanishes: a ChunkReader holding
// handles of packs that gc then removes must, on an object store, find the
// chunks in their new packs when the ranged read says the pack is gone.
func TestReaderFollowsChunksWhenOpenPackVanishes(t *testing.T) {
	base := gcSetup(t, 6, 2, 3, 5, 6)
	ctx := context.Background()
	r, err := Open(base.Dir(), WithPackStore(objectLikeStore{NewLocalPackStore(filepath.Join(base.Dir(), packsDir))}))
	if err != nil {
		t.Fatal(err)
	}
	var ids []chunker.ID
	for _, rec := range loadVersions(t, r) {
		for _, s := range rec.Refs {
			id, err := chunker.ParseID(s)
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		}
	}
	stale, err := r.Lookup(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	cr := r.NewChunkReader()
	defer cr.Close()
	for _, id := range ids { // open (and cache) every pack
		if _, err := cr.Read(id, stale[id], nil); err != nil {
			t.Fatal(err)
		}
	}
	w := openWriter(t, r)
	rep, err := w.GC(ctx, liveOf(ctx, w), GCOptions{})
	w.Close()
	if err != nil || rep.PacksDeleted == 0 {
		t.Fatalf("gc removed no pack, the test proves nothing: %+v %v", rep, err)
	}
	for _, id := range ids {
		if _, err := cr.ReadContext(ctx, id, stale[id], nil); err != nil {
			t.Fatalf("read through a handle opened before gc: %v", err)
		}
	}
}
