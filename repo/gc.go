package repo

import (
	"context"
	"errors"
	"fmt"

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
// gc runs in two parts: PlanGC (gcplan.go) marks and decides, changing
// nothing; ExecuteGC carries the plan out. A plan is valid only on the
// Writer that made it and only until that Writer does anything through
// which a caller could come to reference a chunk (Has, Put, Write*,
// Commit, Update): ExecuteGC refuses a stale plan. GC is both in one call.
//
// Order of the steps, each safe to be killed after:
//  1. mark (PlanGC): the caller's live function enumerates every
//     referenced chunk; any error aborts gc before anything changed.
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
	// DryRun makes GC return the plan's report without changing anything.
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

// GCReport says what gc did (or, for a plan, will do).
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
	PackBytesAfter  int64 `json:"pack_bytes_after"` // estimate in a plan
	PacksBefore     int64 `json:"packs_before"`
	PacksAfter      int64 `json:"packs_after"` // estimate in a plan
}

// Freed is the number of pack bytes gc gave back.
func (r GCReport) Freed() int64 { return r.PackBytesBefore - r.PackBytesAfter }

// GC removes chunks no version references and rewrites packs that are
// mostly dead: PlanGC, then (unless opt.DryRun) ExecuteGC. live enumerates
// every referenced chunk (it may yield a chunk many times); it must be
// complete: gc deletes whatever it does not yield. See the comment at the
// top of gc.go for why this is safe.
func (w *Writer) GC(ctx context.Context, live func(yield func(chunker.ID) error) error, opt GCOptions) (GCReport, error) {
	plan, err := w.PlanGC(ctx, live, opt)
	if err != nil {
		return GCReport{DryRun: opt.DryRun}, err
	}
	if opt.DryRun {
		return plan.Report, nil
	}
	return w.ExecuteGC(ctx, plan)
}

// ExecuteGC carries out a plan PlanGC made on this Writer. It refuses a
// plan that is stale (the Writer was used since) or already executed.
func (w *Writer) ExecuteGC(ctx context.Context, plan *GCPlan) (GCReport, error) {
	rep := plan.Report
	rep.DryRun = false
	if err := w.claimPlan(plan); err != nil {
		return rep, err
	}
	// 2. copy live chunks of the packs to rewrite into new packs
	written, err := w.gcCopyAll(ctx, plan.rewrite)
	rep.PacksWritten = int64(len(written))
	if err != nil {
		return rep, err
	}
	plan.step("copied")
	removed := packsToRemove(written, plan.rewrite, plan.drop)
	rep.PacksDeleted = int64(len(removed))
	// 3-5
	if err := w.gcUnindex(ctx, plan, removed); err != nil {
		return rep, err
	}
	// 6. remove the old packs
	for _, p := range removed {
		if err := w.r.packs.Remove(ctx, p.name); err != nil {
			return rep, fmt.Errorf("gc: remove pack %s: %w", p.name, err)
		}
		plan.step("removed")
	}
	rep.PacksAfter, rep.PackBytesAfter, err = countPacks(ctx, w.r.packs)
	return rep, err
}

// claimPlan checks that plan may run on w now and marks it used.
func (w *Writer) claimPlan(plan *GCPlan) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case plan.w != w:
		return errors.New("gc: the plan was made by another writer")
	case plan.executed:
		return errors.New("gc: the plan was already executed")
	case plan.gen != w.gen:
		return errors.New("gc: the plan is stale (the writer was used since it was made): plan again")
	}
	plan.executed = true
	return w.checkOpen()
}

// gcCopyAll copies the live chunks of packs into new packs, seals the
// last one and returns the names of the packs written.
func (w *Writer) gcCopyAll(ctx context.Context, packs []*gcPack) (map[string]bool, error) {
	for _, p := range packs {
		if err := w.gcCopy(ctx, p); err != nil {
			return nil, err
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	err := w.sealLocked(ctx)
	written := map[string]bool{}
	for _, sp := range w.sealed {
		written[sp.name] = true
	}
	return written, err
}

// packsToRemove lists the packs to rewrite or drop, except those gc has
// just written. A new pack can have the very name of a pack to remove: a
// gc killed after step 2 left that pack, the next writer indexed it (its
// chunks still named the old pack, so it looked dead), and this gc wrote
// the same chunks again, byte for byte. It must stay.
func packsToRemove(written map[string]bool, rewrite, drop []*gcPack) []*gcPack {
	var removed []*gcPack
	for _, p := range append(append([]*gcPack(nil), rewrite...), drop...) {
		if !written[p.name] {
			removed = append(removed, p)
		}
	}
	return removed
}

// gcUnindex does steps 3-5 in one read-write session, each step synced
// before the next: index the new packs, delete the dead chunks' entries,
// delete the removed packs' entries.
func (w *Writer) gcUnindex(ctx context.Context, plan *GCPlan, removed []*gcPack) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.readWriteSessionLocked(ctx, func(db *badger.DB) error {
		if len(w.sealed) > 0 {
			if err := writeIndex(db, w.sealed, false); err != nil {
				return err
			}
			w.sealed = nil
			w.pending = map[chunker.ID]pendingChunk{}
		}
		plan.step("indexed")
		if err := deleteKeys(db, plan.dead); err != nil {
			return fmt.Errorf("gc: delete unreferenced chunks: %w", err)
		}
		plan.step("swept")
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
		plan.step("unindexed")
		return nil
	})
}

// gcCopy appends the live chunks of p, as stored, to the writer's packs.
// The whole pack is read and its content hash checked first, so damage is
// never copied into a pack with a fresh, valid name.
func (w *Writer) gcCopy(ctx context.Context, p *gcPack) error {
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

// countPacks returns the number and total size of the packs in store.
func countPacks(ctx context.Context, store PackStore) (n, bytes int64, err error) {
	err = store.List(ctx, func(_ string, size int64) error {
		n++
		bytes += size
		return nil
	})
	if err != nil {
		err = fmt.Errorf("gc: list packs: %w", err)
	}
	return n, bytes, err
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
