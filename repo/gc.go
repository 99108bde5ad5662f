package repo

import (
	"context"
	"fmt"
	"sort"

	badger "github.com/dgraph-io/badger/v4"

	"mis/chunker"
)

// Garbage collection.
//
// Why gc may run at all: gc is a Writer, so it holds the writer lock for
// its whole run. An import (or tag, rm) in flight holds the same lock, so
// gc either waits (OpenWriterWait, mis --wait) or fails at OpenWriter naming
// that holder; once it has the lock, no other writer can add a version whose
// chunks gc is about to drop. The live set is computed after the lock is taken, so it includes
// every version that will exist while gc runs.
//
// Order of the steps, each safe to be killed after:
//  1. mark: the caller's live function enumerates every referenced chunk;
//     any error aborts gc before anything changed.
//  2. copy: live chunks of packs to rewrite are appended, as stored bytes,
//     to new packs, which are sealed (fsync, rename) like any pack.
//     Killed here: new packs are unindexed; the next writer indexes them
//     keeping the existing entries, so they are dead packs a later gc
//     removes.
//  3. index the new packs ("c/" entries now name the new packs; synced).
//  4. delete the "c/" entries of unreferenced chunks (synced). Harmless:
//     nothing references them.
//  5. delete the "p/" entries of packs being removed (synced). No "c/"
//     entry names them any more (their live chunks moved in step 3, their
//     dead ones went in step 4). Killed after: the pack files are
//     unindexed packs; the next writer re-indexes them (their chunks keep
//     existing entries; dead ones come back as unreferenced entries).
//  6. remove the pack files.
//
// What the writer lock does not cover: a reader (export, mount) looks up
// chunk locations in a short session and reads packs later. A pack it
// already has open stays readable after gc removes it (local store) or
// fails with fs.ErrNotExist (object stores); for a pack that is gone,
// ChunkReader looks the chunk up again and follows it to its new pack
// (packs are immutable and named by content, so never wrong data).

// GCOptions tunes which packs gc rewrites.
type GCOptions struct {
	// DryRun computes the report without changing anything.
	DryRun bool
	// MinLiveFraction: a pack whose live stored bytes are below this
	// fraction of its size is rewritten. Default 0.5.
	MinLiveFraction float64
	// SmallPack: a pack smaller than this with any dead chunk is rewritten,
	// so small packs merge. Default a quarter of the pack target size.
	SmallPack int64
	// step, if set, is called after each step (tests use it to be killed
	// at known points).
	step func(name string)
}

// GCReport says what gc did (or, with DryRun, would do).
type GCReport struct {
	DryRun          bool  `json:"dry_run"`
	LiveChunks      int64 `json:"live_chunks"`       // referenced and indexed
	MissingChunks   int64 `json:"missing_chunks"`    // referenced but not indexed (verify reports them)
	DeadChunks      int64 `json:"dead_chunks"`       // index entries removed
	DeadRawBytes    int64 `json:"dead_raw_bytes"`    // their raw size
	DeadStoredBytes int64 `json:"dead_stored_bytes"` // their stored size
	PacksRewritten  int64 `json:"packs_rewritten"`   // packs whose live chunks were copied
	PacksDeleted    int64 `json:"packs_deleted"`     // packs removed (rewritten or fully dead)
	PacksWritten    int64 `json:"packs_written"`     // new packs
	CopiedChunks    int64 `json:"copied_chunks"`
	CopiedBytes     int64 `json:"copied_bytes"` // stored bytes copied into new packs
	PackBytesBefore int64 `json:"pack_bytes_before"`
	PackBytesAfter  int64 `json:"pack_bytes_after"` // estimate with DryRun
	PacksBefore     int64 `json:"packs_before"`
	PacksAfter      int64 `json:"packs_after"` // estimate with DryRun
}

// Freed is the number of pack bytes gc gave back.
func (r GCReport) Freed() int64 { return r.PackBytesBefore - r.PackBytesAfter }

// gcPack is one indexed pack as gc sees it.
type gcPack struct {
	name      string
	info      packInfo
	liveBytes int64
	live      []chunkAt // live chunks indexed in this pack
	dead      int       // dead chunks indexed in this pack
}

type chunkAt struct {
	id  chunker.ID
	loc Location
}

// payload is the bytes of chunk bodies in the pack.
func (p *gcPack) payload() int64 {
	return p.info.Size - int64(packHeaderSize+packFooterSize) - int64(p.info.Chunks)*packEntrySize
}

// GC removes chunks no version references and rewrites packs that are
// mostly dead. live enumerates every referenced chunk (it may yield a
// chunk many times); it must be complete: gc deletes whatever it does not
// yield. See the comment at the top of gc.go for why this is safe.
func (w *Writer) GC(ctx context.Context, live func(yield func(chunker.ID) error) error, opt GCOptions) (GCReport, error) {
	rep := GCReport{DryRun: opt.DryRun}
	if opt.MinLiveFraction == 0 {
		opt.MinLiveFraction = 0.5
	}
	if opt.SmallPack == 0 {
		opt.SmallPack = w.r.cfg.PackTargetSize / 4
	}
	step := func(name string) {
		if opt.step != nil {
			opt.step(name)
		}
	}
	// Anything this writer added so far must be indexed before the index
	// is read, or its chunks would look unknown.
	w.mu.Lock()
	pending := w.cur != nil || len(w.sealed) > 0
	w.mu.Unlock()
	if pending {
		if err := w.Commit(ctx, nil); err != nil {
			return rep, err
		}
	}

	// 1. mark
	marked := map[chunker.ID]struct{}{}
	if err := live(func(id chunker.ID) error {
		marked[id] = struct{}{}
		return ctx.Err()
	}); err != nil {
		return rep, fmt.Errorf("gc: list referenced chunks: %w", err)
	}
	step("marked")

	packs, dead, err := w.gcLoadIndex(marked, &rep)
	if err != nil {
		return rep, err
	}
	if err := w.r.packs.List(ctx, func(_ string, size int64) error {
		rep.PacksBefore++
		rep.PackBytesBefore += size
		return nil
	}); err != nil {
		return rep, fmt.Errorf("gc: list packs: %w", err)
	}

	var rewrite, drop []*gcPack // drop: removed without copying
	for _, p := range packs {
		deadBytes := p.payload() - p.liveBytes
		switch {
		case len(p.live) == 0:
			drop = append(drop, p)
		case deadBytes <= 0:
		case float64(p.liveBytes) < opt.MinLiveFraction*float64(p.info.Size),
			p.info.Size < opt.SmallPack:
			rewrite = append(rewrite, p)
		}
	}
	for _, p := range rewrite {
		rep.CopiedChunks += int64(len(p.live))
		rep.CopiedBytes += p.liveBytes
	}
	rep.PacksRewritten = int64(len(rewrite))
	rep.PacksDeleted = int64(len(rewrite) + len(drop))
	if opt.DryRun {
		w.gcEstimate(&rep, rewrite, drop)
		return rep, nil
	}

	// 2. copy live chunks of the packs to rewrite into new packs
	for _, p := range rewrite {
		if err := w.gcCopy(ctx, p); err != nil {
			return rep, err
		}
	}
	w.mu.Lock()
	err = w.sealLocked(ctx)
	rep.PacksWritten = int64(len(w.sealed))
	w.mu.Unlock()
	if err != nil {
		return rep, err
	}
	step("copied")

	// 3-5 in one read-write session, each step synced before the next.
	// A new pack can have the very name of a pack to remove: a gc killed
	// after step 2 left that pack, the next writer indexed it (its chunks
	// still named the old pack, so it looked dead), and this gc wrote the
	// same chunks again, byte for byte. It must stay.
	w.mu.Lock()
	written := map[string]bool{}
	for _, sp := range w.sealed {
		written[sp.name] = true
	}
	var removed []*gcPack
	for _, p := range append(append([]*gcPack(nil), rewrite...), drop...) {
		if !written[p.name] {
			removed = append(removed, p)
		}
	}
	rep.PacksDeleted = int64(len(removed))
	err = w.readWriteSessionLocked(ctx, func(db *badger.DB) error {
		if len(w.sealed) > 0 {
			if err := writeIndex(db, w.sealed, false); err != nil {
				return err
			}
			w.sealed = nil
			w.pending = map[chunker.ID]pendingChunk{}
		}
		step("indexed")
		if err := deleteKeys(db, dead); err != nil {
			return fmt.Errorf("gc: delete unreferenced chunks: %w", err)
		}
		step("swept")
		var pk [][]byte
		for _, p := range removed {
			raw, err := parsePackName(p.name)
			if err != nil {
				return err
			}
			pk = append(pk, packKey(raw))
		}
		if err := deleteKeys(db, pk); err != nil {
			return fmt.Errorf("gc: delete pack entries: %w", err)
		}
		step("unindexed")
		return nil
	})
	w.mu.Unlock()
	if err != nil {
		return rep, err
	}

	// 6. remove the old packs
	for _, p := range removed {
		if err := w.r.packs.Remove(ctx, p.name); err != nil {
			return rep, fmt.Errorf("gc: remove pack %s: %w", p.name, err)
		}
		step("removed")
	}
	if err := w.r.packs.List(ctx, func(_ string, size int64) error {
		rep.PacksAfter++
		rep.PackBytesAfter += size
		return nil
	}); err != nil {
		return rep, fmt.Errorf("gc: list packs: %w", err)
	}
	return rep, nil
}

// gcLoadIndex reads the chunk and pack index, sorting chunks into live
// (per pack) and dead (their keys, to delete).
func (w *Writer) gcLoadIndex(marked map[chunker.ID]struct{}, rep *GCReport) ([]*gcPack, [][]byte, error) {
	byName := map[string]*gcPack{}
	var packs []*gcPack
	var dead [][]byte
	w.mu.Lock()
	defer w.mu.Unlock()
	err := w.db.View(func(txn *badger.Txn) error {
		if err := iteratePacks(txn, func(name string, info packInfo) error {
			p := &gcPack{name: name, info: info}
			byName[name] = p
			packs = append(packs, p)
			return nil
		}); err != nil {
			return err
		}
		prefix := []byte(chunkPrefix)
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: false, Prefix: prefix})
		defer it.Close()
		found := 0
		for it.Seek(prefix); it.ValidForPrefix(prefix); it.Next() {
			item := it.Item()
			key := item.Key()
			var id chunker.ID
			if len(key) != len(prefix)+len(id) {
				return fmt.Errorf("malformed chunk index key %x: run mis verify", key)
			}
			copy(id[:], key[len(prefix):])
			var loc Location
			if err := item.Value(func(v []byte) error {
				var err error
				loc, err = decodeChunkValue(v)
				return err
			}); err != nil {
				return fmt.Errorf("chunk %s: %w: run mis verify", id, err)
			}
			p := byName[loc.Pack]
			if _, ok := marked[id]; ok {
				found++
				rep.LiveChunks++
				if p != nil {
					p.live = append(p.live, chunkAt{id, loc})
					p.liveBytes += int64(loc.StoredLen)
				}
				continue
			}
			rep.DeadChunks++
			rep.DeadRawBytes += int64(loc.RawLen)
			rep.DeadStoredBytes += int64(loc.StoredLen)
			dead = append(dead, item.KeyCopy(nil))
			if p != nil {
				p.dead++
			}
		}
		rep.MissingChunks = int64(len(marked) - found)
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("gc: read index: %w", err)
	}
	// A live chunk in a pack missing from the pack index cannot be moved
	// safely; such packs are left alone (they are not in packs anyway).
	for _, p := range packs {
		sort.Slice(p.live, func(i, j int) bool { return p.live[i].loc.Offset < p.live[j].loc.Offset })
	}
	return packs, dead, nil
}

// gcCopy appends the live chunks of p, as stored, to the writer's packs.
// The whole pack is read and its content hash checked first, so damage is
// never copied into a pack with a fresh, valid name.
func (w *Writer) gcCopy(ctx context.Context, p *gcPack) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	data, err := readPackBytes(ctx, w.r.packs, p.name)
	if err != nil {
		return fmt.Errorf("gc: read pack %s: %w", p.name, err)
	}
	if got := packNameOf(data); got != p.name {
		return fmt.Errorf("gc: pack %s is damaged (content hash %s): run mis verify; nothing was changed", p.name, got)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, c := range p.live {
		end := c.loc.Offset + uint64(c.loc.StoredLen)
		if end > uint64(len(data)) {
			return fmt.Errorf("gc: chunk %s lies outside pack %s: run mis verify", c.id, p.name)
		}
		if err := w.appendStoredLocked(ctx, c.id, data[c.loc.Offset:end], locationFlags(c.loc), int(c.loc.RawLen)); err != nil {
			return err
		}
	}
	return nil
}

// appendStoredLocked adds a chunk already in stored form to the open pack,
// even when the chunk is indexed elsewhere (gc moves it). w.mu is held.
func (w *Writer) appendStoredLocked(ctx context.Context, id chunker.ID, stored []byte, flags uint8, rawLen int) error {
	if err := w.checkOpen(); err != nil {
		return err
	}
	if _, ok := w.pending[id]; ok {
		return nil
	}
	target := w.r.cfg.PackTargetSize
	if w.cur != nil && w.cur.b.size()+int64(len(stored)) > target {
		if err := w.sealLocked(ctx); err != nil {
			return err
		}
	}
	if w.cur == nil {
		w.cur = &openPack{b: newPackBuilder(target, w.spare)}
		w.spare = nil
	}
	e := w.cur.b.add(id, flags, stored, rawLen)
	w.pending[id] = pendingChunk{pack: w.cur, entry: e}
	return nil
}

// gcEstimate fills the after-figures of a dry run: removed packs go, and
// the copied bytes come back in packs of the usual layout.
func (w *Writer) gcEstimate(rep *GCReport, rewrite, drop []*gcPack) {
	rep.PackBytesAfter, rep.PacksAfter = rep.PackBytesBefore, rep.PacksBefore
	for _, p := range append(append([]*gcPack(nil), rewrite...), drop...) {
		rep.PackBytesAfter -= p.info.Size
		rep.PacksAfter--
	}
	if rep.CopiedChunks > 0 {
		n := (rep.CopiedBytes + w.r.cfg.PackTargetSize - 1) / w.r.cfg.PackTargetSize
		rep.PacksAfter += n
		rep.PackBytesAfter += rep.CopiedBytes + n*int64(packHeaderSize+packFooterSize) + rep.CopiedChunks*packEntrySize
	}
}

// deleteKeys deletes keys in batches and syncs.
func deleteKeys(db *badger.DB, keys [][]byte) error {
	if len(keys) == 0 {
		return nil
	}
	wb := db.NewWriteBatch()
	defer wb.Cancel()
	for _, k := range keys {
		if err := wb.Delete(k); err != nil {
			return err
		}
	}
	if err := wb.Flush(); err != nil {
		return err
	}
	return db.Sync()
}
