package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sync"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/klauspost/compress/zstd"

	"mis/chunker"
)

// Writer adds chunks and metadata to a repository. There is at most one
// per repository (the writer lock). See doc.go for the session protocol.
type Writer struct {
	r      *Repo
	lock   *writerLock
	enc    *zstd.Encoder
	reader *ChunkReader
	// ctx is OpenWriter's context. It bounds the pack writes that Put,
	// WriteStream and WriteChunks make when a pack fills up (they take no
	// context of their own); Commit and GC use the context they are given.
	ctx context.Context

	mu      sync.Mutex
	db      *badger.DB // read-only during the data phase
	cur     *openPack
	pending map[chunker.ID]pendingChunk
	sealed  []sealedPack // sealed since the last commit, not yet indexed
	stats   WriteStats
	closed  bool
	spare   []byte // buffer of the last sealed pack, reused for the next
	// gen counts the calls through which a caller may come to reference a
	// chunk (Has, Commit, Update): a gc plan made at one gen is stale at
	// another.
	gen uint64
}

// openPack is the pack being filled; once sealed it keeps only its name.
type openPack struct {
	b    *packBuilder
	name string // set when sealed
}

type pendingChunk struct {
	pack  *openPack
	entry packEntry
}

type sealedPack struct {
	name    string
	size    int64
	entries []packEntry
}

// WriteStats counts what a Writer did.
type WriteStats struct {
	NewChunks   int64 // chunks added
	NewBytes    int64 // raw bytes of added chunks
	StoredBytes int64 // bytes of added chunks as stored (after compression)
	DupChunks   int64 // chunks already present
	DupBytes    int64 // raw bytes of chunks already present
	Packs       int64 // packs sealed
}

// OpenWriter takes the writer lock, cleans up after interrupted writers
// and starts a data phase. holder describes this process for others'
// error messages (e.g. "mis import vm1"). ctx also bounds the pack writes
// of Put, WriteStream and WriteChunks for the writer's life.
func (r *Repo) OpenWriter(ctx context.Context, holder string) (*Writer, error) {
	lock, err := r.acquireWriterLock(holder)
	if err != nil {
		return nil, err
	}
	lvl, _ := zstdLevel(r.cfg.ZstdLevel) // validated by Open
	w := &Writer{
		r:       r,
		lock:    lock,
		enc:     encoderFor(lvl),
		reader:  r.NewChunkReader(),
		ctx:     ctx,
		pending: map[chunker.ID]pendingChunk{},
	}
	r.fixRepoModes()
	if err := w.recover(ctx); err != nil {
		lock.release()
		return nil, err
	}
	if w.db, err = r.openMeta(ctx, true); err != nil {
		lock.release()
		return nil, err
	}
	return w, nil
}

// OpenWriterWait is OpenWriter that, while another process holds the
// writer lock, retries for up to wait (calling onWait once with the
// holder's description) instead of failing at once. The lock is the lease
// that keeps gc and imports apart: whichever comes second waits, and gc
// computes its live set only once it holds the lock.
func (r *Repo) OpenWriterWait(ctx context.Context, holder string, wait time.Duration, onWait func(msg string)) (*Writer, error) {
	return r.waitForWriter(ctx, wait, onWait, func() (*Writer, error) { return r.OpenWriter(ctx, holder) })
}

// recover removes unfinished packs and indexes sealed packs that an
// interrupted writer never indexed.
func (w *Writer) recover(ctx context.Context) error {
	n, err := w.r.packs.RemoveIncomplete(ctx)
	if err != nil {
		return fmt.Errorf("%s: remove incomplete packs: %w", w.r.dir, err)
	}
	if n > 0 {
		debugf("removed %d unfinished pack(s)", n)
	}
	db, err := w.r.openMeta(ctx, false)
	if err != nil {
		return err
	}
	defer closeRW(db, w.r.metaDir())
	indexed := map[string]bool{}
	err = db.View(func(txn *badger.Txn) error {
		return iteratePacks(txn, func(name string, _ packInfo) error {
			indexed[name] = true
			return nil
		})
	})
	if err != nil {
		return err
	}
	var orphans []sealedPack
	err = w.r.packs.List(ctx, func(name string, size int64) error {
		if indexed[name] {
			return nil
		}
		entries, err := readWholePack(ctx, w.r.packs, name)
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed since the listing: nothing to index
		}
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			warnf("removing unreadable unindexed pack %s: %v", name, err)
			return w.r.packs.Remove(ctx, name)
		}
		orphans = append(orphans, sealedPack{name: name, size: size, entries: entries})
		return nil
	})
	if err != nil {
		return fmt.Errorf("%s: recover packs: %w", w.r.dir, err)
	}
	if len(orphans) == 0 {
		return nil
	}
	debugf("indexing %d pack(s) left unindexed by an interrupted writer", len(orphans))
	return writeIndex(db, orphans, true)
}

// readWholePack reads a pack and checks its name (content hash) and trailer.
func readWholePack(ctx context.Context, store PackStore, name string) ([]packEntry, error) {
	data, err := readPackBytes(ctx, store, name)
	if err != nil {
		return nil, err
	}
	if got := packNameOf(data); got != name {
		return nil, fmt.Errorf("content hash is %s, not its name", got)
	}
	return readPackTrailer(bytesReaderAt(data), int64(len(data)))
}

// writeIndex records packs and their chunks. With keepExisting, chunks
// already indexed (elsewhere) keep their entry.
func writeIndex(db *badger.DB, packs []sealedPack, keepExisting bool) error {
	now := time.Now().Unix()
	wb := db.NewWriteBatch()
	defer wb.Cancel()
	for _, p := range packs {
		raw, err := parsePackName(p.name)
		if err != nil {
			return err
		}
		for _, e := range p.entries {
			if keepExisting {
				exists := false
				err := db.View(func(txn *badger.Txn) error {
					_, ok, err := getLocation(txn, e.ID)
					exists = ok
					return err
				})
				if err != nil {
					return err
				}
				if exists {
					continue
				}
			}
			if err := wb.Set(chunkKey(e.ID), encodeChunkValue(raw, e)); err != nil {
				return err
			}
		}
		info := packInfo{Size: p.size, Chunks: uint32(len(p.entries)), Created: now}
		if err := wb.Set(packKey(raw), encodePackValue(info)); err != nil {
			return err
		}
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("write chunk index: %w", err)
	}
	return db.Sync()
}

func iteratePacks(txn *badger.Txn, fn func(name string, info packInfo) error) error {
	prefix := []byte(packPrefix)
	it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: false, Prefix: prefix})
	defer it.Close()
	for it.Seek(prefix); it.ValidForPrefix(prefix); it.Next() {
		item := it.Item()
		key := item.Key()
		if len(key) != len(prefix)+packNameRawSize {
			return fmt.Errorf("malformed pack index key %x", key)
		}
		name := fmt.Sprintf("%x", key[len(prefix):])
		var info packInfo
		if err := item.Value(func(v []byte) error {
			var err error
			info, err = decodePackValue(v)
			return err
		}); err != nil {
			return fmt.Errorf("pack %s: %w", name, err)
		}
		if err := fn(name, info); err != nil {
			return err
		}
	}
	return nil
}

func (w *Writer) checkOpen() error {
	if w.closed {
		return errors.New("repository writer is closed")
	}
	return nil
}

// Has reports whether chunk id is stored (pending or indexed).
func (w *Writer) Has(id chunker.ID) (bool, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.checkOpen(); err != nil {
		return false, err
	}
	return w.hasLocked(id)
}

func (w *Writer) hasLocked(id chunker.ID) (bool, error) {
	w.gen++
	if _, ok := w.pending[id]; ok {
		return true, nil
	}
	var found bool
	err := w.db.View(func(txn *badger.Txn) error {
		_, err := txn.Get(chunkKey(id))
		if err == badger.ErrKeyNotFound {
			return nil
		}
		found = err == nil
		return err
	})
	return found, err
}

// Put stores data as a chunk unless it is already present.
func (w *Writer) Put(data []byte) (chunker.ID, bool, error) {
	id := chunker.Sum(data)
	added, err := w.PutWithID(id, data)
	return id, added, err
}

// PutWithID is Put for a caller that already hashed data; id must be
// chunker.Sum(data).
func (w *Writer) PutWithID(id chunker.ID, data []byte) (bool, error) {
	if len(data) > chunker.MaxLimit {
		return false, fmt.Errorf("chunk %s is %d bytes, more than the largest chunk (%d)", id.Short(), len(data), chunker.MaxLimit)
	}
	has, err := w.Has(id)
	if err != nil || has {
		if has {
			w.countDup(len(data))
		}
		return false, err
	}
	bp := storedBufPool.Get().(*[]byte)
	defer storedBufPool.Put(bp)
	stored, flags := compressChunk(w.enc, data, *bp)
	if flags == flagZstd {
		*bp = stored[:0] // keep the grown buffer, never the caller's data
	}
	return w.appendStored(id, stored, flags, len(data))
}

func (w *Writer) countDup(n int) {
	w.mu.Lock()
	w.stats.DupChunks++
	w.stats.DupBytes += int64(n)
	w.mu.Unlock()
}

// appendStored adds an already compressed chunk to the open pack unless
// another goroutine added the same chunk in the meantime.
func (w *Writer) appendStored(id chunker.ID, stored []byte, flags uint8, rawLen int) (bool, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.checkOpen(); err != nil {
		return false, err
	}
	if _, ok := w.pending[id]; ok {
		w.stats.DupChunks++
		w.stats.DupBytes += int64(rawLen)
		return false, nil
	}
	target := w.r.cfg.PackTargetSize
	if w.cur != nil && w.cur.b.size()+int64(len(stored)) > target {
		if err := w.sealLocked(w.ctx); err != nil {
			return false, err
		}
	}
	if w.cur == nil {
		w.cur = &openPack{b: newPackBuilder(target, w.spare)}
		w.spare = nil
	}
	e := w.cur.b.add(id, flags, stored, rawLen)
	w.pending[id] = pendingChunk{pack: w.cur, entry: e}
	w.stats.NewChunks++
	w.stats.NewBytes += int64(rawLen)
	w.stats.StoredBytes += int64(len(stored))
	return true, nil
}

// sealLocked writes the open pack durably under its content hash.
func (w *Writer) sealLocked(ctx context.Context) error {
	p := w.cur
	if p == nil || len(p.b.entries) == 0 {
		return nil
	}
	data, name := p.b.finish()
	if err := w.r.packs.Put(ctx, name, bytes.NewReader(data), int64(len(data))); err != nil {
		// The builder's trailer is appended: the pack cannot take more
		// chunks, so the writer cannot go on.
		w.closed = true
		return fmt.Errorf("store pack %s: %w", name, err)
	}
	w.sealed = append(w.sealed, sealedPack{name: name, size: int64(len(data)), entries: p.b.entries})
	p.name = name
	p.b = nil // pending chunks of this pack are now read from the store
	w.cur = nil
	w.stats.Packs++
	w.spare = data[:0]
	return nil
}

// Read returns the content of a chunk, pending or indexed.
func (w *Writer) Read(id chunker.ID) ([]byte, error) {
	w.mu.Lock()
	if err := w.checkOpen(); err != nil {
		w.mu.Unlock()
		return nil, err
	}
	if pc, ok := w.pending[id]; ok {
		defer w.mu.Unlock()
		if pc.pack.b != nil {
			raw, err := decodeChunk(id, pc.entry.Flags, pc.pack.b.body(pc.entry), pc.entry.RawLen, nil)
			if err != nil {
				return nil, fmt.Errorf("chunk %s in the open pack: %w", id, err)
			}
			return raw, nil
		}
		loc := Location{Pack: pc.pack.name, Offset: pc.entry.Offset, StoredLen: pc.entry.StoredLen,
			RawLen: pc.entry.RawLen, Compressed: pc.entry.Flags == flagZstd}
		return w.reader.ReadContext(w.ctx, id, loc, nil)
	}
	var loc Location
	var found bool
	err := w.db.View(func(txn *badger.Txn) error {
		var err error
		loc, found, err = getLocation(txn, id)
		return err
	})
	w.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("chunk %s is not in the repository", id)
	}
	return w.reader.ReadContext(w.ctx, id, loc, nil)
}

// Commit makes everything written so far durable and indexed, then runs
// fn in a read-write transaction (e.g. to record the version that uses
// the chunks). Readers are locked out only for the duration of the
// index update and fn.
func (w *Writer) Commit(ctx context.Context, fn func(tx *Tx) error) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.checkOpen(); err != nil {
		return err
	}
	w.gen++
	if err := w.sealLocked(ctx); err != nil {
		return err
	}
	return w.readWriteSessionLocked(ctx, func(db *badger.DB) error {
		if len(w.sealed) > 0 {
			if err := writeIndex(db, w.sealed, false); err != nil {
				return err
			}
			w.sealed = nil
			w.pending = map[chunker.ID]pendingChunk{}
		}
		return runUpdate(db, fn)
	})
}

// Update runs fn in a read-write transaction without touching chunks.
// Chunks added since the last Commit stay pending.
func (w *Writer) Update(ctx context.Context, fn func(tx *Tx) error) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.checkOpen(); err != nil {
		return err
	}
	w.gen++
	return w.readWriteSessionLocked(ctx, func(db *badger.DB) error { return runUpdate(db, fn) })
}

func runUpdate(db *badger.DB, fn func(tx *Tx) error) error {
	if fn == nil {
		return nil
	}
	if err := db.Update(func(txn *badger.Txn) error { return fn(&Tx{txn: txn, writable: true}) }); err != nil {
		return err
	}
	return db.Sync()
}

// readWriteSessionLocked swaps the read-only handle for a read-write one
// for the duration of fn, then goes back to read-only.
func (w *Writer) readWriteSessionLocked(ctx context.Context, fn func(db *badger.DB) error) error {
	if err := w.db.Close(); err != nil {
		return err
	}
	w.db = nil
	rw, err := w.r.openMeta(ctx, false)
	if err != nil {
		// Go back to the data phase so the caller may retry.
		ro, oerr := w.r.openMeta(context.WithoutCancel(ctx), true)
		if oerr != nil {
			w.closed = true // no usable metadata handle any more
			return errors.Join(err, oerr)
		}
		w.db = ro
		return err
	}
	err = fn(rw)
	if cerr := closeRW(rw, w.r.metaDir()); err == nil && cerr != nil {
		err = cerr
	}
	ro, oerr := w.r.openMeta(context.WithoutCancel(ctx), true)
	if oerr != nil {
		w.closed = true
		if err == nil {
			err = oerr
		}
		return err
	}
	w.db = ro
	return err
}

// Repo is the repository the writer writes to.
func (w *Writer) Repo() *Repo { return w.r }

// Stats returns counters for this writer's work so far.
func (w *Writer) Stats() WriteStats {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stats
}

// Close ends the writer. Chunks not committed are discarded from
// memory; packs already sealed are indexed by the next writer.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.lock == nil {
		return nil
	}
	w.closed = true
	w.cur = nil
	w.pending = nil
	var err error
	if w.db != nil {
		err = w.db.Close()
		w.db = nil
	}
	w.reader.Close()
	if lerr := w.lock.release(); err == nil {
		err = lerr
	}
	w.lock = nil
	return err
}

// View runs fn in a read-only transaction on the writer's own metadata
// handle: it sees what is committed, not chunks still pending. fn must not
// call the Writer's other methods.
func (w *Writer) View(ctx context.Context, fn func(tx *Tx) error) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.checkOpen(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return w.db.View(func(txn *badger.Txn) error { return fn(&Tx{txn: txn}) })
}
