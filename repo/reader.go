package repo

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sync"

	badger "github.com/dgraph-io/badger/v4"

	"mis/chunker"
)

// Lookup returns the locations of the given chunks in one read-only
// session. Chunks not in the index are absent from the map.
func (r *Repo) Lookup(ctx context.Context, ids []chunker.ID) (map[chunker.ID]Location, error) {
	out := make(map[chunker.ID]Location, len(ids))
	db, err := r.openMeta(ctx, true)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	err = db.View(func(txn *badger.Txn) error {
		for _, id := range ids {
			loc, ok, err := getLocation(txn, id)
			if err != nil {
				return err
			}
			if ok {
				out[id] = loc
			}
		}
		return nil
	})
	return out, err
}

func getLocation(txn *badger.Txn, id chunker.ID) (Location, bool, error) {
	item, err := txn.Get(chunkKey(id))
	if err == badger.ErrKeyNotFound {
		return Location{}, false, nil
	}
	if err != nil {
		return Location{}, false, err
	}
	var loc Location
	err = item.Value(func(v []byte) error {
		var derr error
		loc, derr = decodeChunkValue(v)
		return derr
	})
	if err != nil {
		return Location{}, false, fmt.Errorf("index entry of chunk %s: %w", id, err)
	}
	return loc, true, nil
}

// maxOpenPacks bounds the pack handles a ChunkReader keeps open.
const maxOpenPacks = 64

// ChunkReader reads chunks from packs given their locations. It caches
// open pack handles and is safe for concurrent use.
type ChunkReader struct {
	store PackStore
	// relookup finds a chunk's current location when its pack is gone:
	// gc may have moved it to a new pack since the caller looked it up.
	relookup func(ctx context.Context, id chunker.ID) (Location, bool, error)

	mu      sync.Mutex
	handles map[string]*packHandle
}

type packHandle struct {
	pr      PackReader
	refs    int
	evicted bool
}

// NewChunkReader returns a reader of this repository's packs.
func (r *Repo) NewChunkReader() *ChunkReader {
	cr := newChunkReader(r.packs)
	cr.relookup = func(ctx context.Context, id chunker.ID) (Location, bool, error) {
		locs, err := r.Lookup(ctx, []chunker.ID{id})
		loc, ok := locs[id]
		return loc, ok, err
	}
	return cr
}

func newChunkReader(store PackStore) *ChunkReader {
	return &ChunkReader{store: store, handles: map[string]*packHandle{}}
}

func (cr *ChunkReader) acquire(ctx context.Context, name string) (*packHandle, error) {
	cr.mu.Lock()
	defer cr.mu.Unlock()
	if h, ok := cr.handles[name]; ok {
		h.refs++
		return h, nil
	}
	if len(cr.handles) >= maxOpenPacks {
		for n, h := range cr.handles { // evict an arbitrary handle
			delete(cr.handles, n)
			h.evicted = true
			if h.refs == 0 {
				h.pr.Close()
			}
			break
		}
	}
	pr, err := cr.store.Open(ctx, name)
	if err != nil {
		return nil, err
	}
	h := &packHandle{pr: pr, refs: 1}
	cr.handles[name] = h
	return h, nil
}

// forget drops the cached handle of a pack found to be gone.
func (cr *ChunkReader) forget(name string) {
	cr.mu.Lock()
	defer cr.mu.Unlock()
	if h, ok := cr.handles[name]; ok {
		delete(cr.handles, name)
		h.evicted = true
		if h.refs == 0 {
			h.pr.Close()
		}
	}
}

func (cr *ChunkReader) release(h *packHandle) {
	cr.mu.Lock()
	defer cr.mu.Unlock()
	h.refs--
	if h.evicted && h.refs == 0 {
		h.pr.Close()
	}
}

var storedBufPool = sync.Pool{New: func() any { b := make([]byte, 0, 256<<10); return &b }}

// Read is ReadContext without a context.
func (cr *ChunkReader) Read(id chunker.ID, loc Location, dst []byte) ([]byte, error) {
	return cr.ReadContext(context.Background(), id, loc, dst)
}

// ReadContext returns the raw content of chunk id stored at loc, appended
// to dst[:0] when it fits. The content is verified against id. If the
// pack is gone (fs.ErrNotExist from the store), the chunk is looked up
// again and read from where it is now.
func (cr *ChunkReader) ReadContext(ctx context.Context, id chunker.ID, loc Location, dst []byte) ([]byte, error) {
	raw, err := cr.readAt(ctx, id, loc, dst)
	if !errors.Is(err, fs.ErrNotExist) || cr.relookup == nil {
		return raw, err
	}
	// Packs are immutable, so a missing pack means gc rewrote it after
	// the caller's lookup: ask the index where the chunk lives now.
	cr.forget(loc.Pack)
	moved, ok, lerr := cr.relookup(ctx, id)
	if lerr != nil || !ok || moved.Pack == loc.Pack {
		return nil, err
	}
	return cr.readAt(ctx, id, moved, dst)
}

// readAt reads chunk id at loc; errors from the store keep their kind
// (fs.ErrNotExist for a pack that is gone).
func (cr *ChunkReader) readAt(ctx context.Context, id chunker.ID, loc Location, dst []byte) ([]byte, error) {
	h, err := cr.acquire(ctx, loc.Pack)
	if err != nil {
		return nil, fmt.Errorf("chunk %s: open pack %s: %w", id, loc.Pack, err)
	}
	defer cr.release(h)
	if end := loc.Offset + uint64(loc.StoredLen); end > uint64(h.pr.Size()) {
		return nil, fmt.Errorf("chunk %s in pack %s: range %d+%d is beyond the pack's %d bytes",
			id, loc.Pack, loc.Offset, loc.StoredLen, h.pr.Size())
	}
	bp := storedBufPool.Get().(*[]byte)
	defer storedBufPool.Put(bp)
	if cap(*bp) < int(loc.StoredLen) {
		*bp = make([]byte, loc.StoredLen)
	}
	stored := (*bp)[:loc.StoredLen]
	if err := readFull(ctx, h.pr, stored, int64(loc.Offset)); err != nil {
		return nil, fmt.Errorf("chunk %s in pack %s at offset %d: %w", id, loc.Pack, loc.Offset, err)
	}
	raw, err := decodeChunk(id, locationFlags(loc), stored, loc.RawLen, dst)
	if err != nil {
		return nil, fmt.Errorf("chunk %s in pack %s at offset %d: %w", id, loc.Pack, loc.Offset, err)
	}
	return raw, nil
}

// Close closes the cached pack handles.
func (cr *ChunkReader) Close() error {
	cr.mu.Lock()
	defer cr.mu.Unlock()
	for n, h := range cr.handles {
		delete(cr.handles, n)
		h.evicted = true
		if h.refs == 0 {
			h.pr.Close()
		}
	}
	return nil
}

// ReadChunks reads the chunks ids, in order, and hands each one's content
// to fn (valid only during the call): the way to read back a stream such as
// a manifest or a file. Locations are looked up in one short session first.
func (r *Repo) ReadChunks(ctx context.Context, ids []chunker.ID, fn func(data []byte) error) error {
	locs, err := r.Lookup(ctx, ids)
	if err != nil {
		return err
	}
	cr := r.NewChunkReader()
	defer cr.Close()
	var buf []byte
	for _, id := range ids {
		loc, ok := locs[id]
		if !ok {
			return fmt.Errorf("chunk %s is missing from the repository", id)
		}
		if buf, err = cr.ReadContext(ctx, id, loc, buf[:0]); err != nil {
			return err
		}
		if err := fn(buf); err != nil {
			return err
		}
	}
	return nil
}
