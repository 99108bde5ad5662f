package repo

import (
	"context"
	"fmt"
	"sort"
	"strings"

	badger "github.com/dgraph-io/badger/v4"

	"mis/chunker"
	"mis/internal/units"
)

// GCPlan is what gc will do, as PlanGC computed it under the writer lock:
// the figures (Report, whose after-figures are what ExecuteGC will reach
// if nothing else changes the packs) and the packs it will rewrite or
// remove. String prints it; ExecuteGC carries it out.
type GCPlan struct {
	Report  GCReport `json:"report"`
	Rewrite []GCPack `json:"rewrite"` // live chunks copied to new packs, then removed
	Drop    []GCPack `json:"drop"`    // no live chunk: removed

	w        *Writer
	gen      uint64 // w.gen when planned
	executed bool
	stepFn   func(string)
	dead     [][]byte // "c/" keys of unreferenced chunks
	rewrite  []*gcPack
	drop     []*gcPack
}

// GCPack is one pack in a gc plan.
type GCPack struct {
	Name       string `json:"name"`
	Size       int64  `json:"size"`
	Chunks     int64  `json:"chunks"`      // chunks in the pack
	LiveChunks int64  `json:"live_chunks"` // referenced chunks the index places in it
	LiveBytes  int64  `json:"live_bytes"`  // their stored bytes (copied if rewritten)
}

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

func (p *gcPack) summary() GCPack {
	return GCPack{Name: p.name, Size: p.info.Size, Chunks: int64(p.info.Chunks),
		LiveChunks: int64(len(p.live)), LiveBytes: p.liveBytes}
}

func (plan *GCPlan) step(name string) {
	if plan.stepFn != nil {
		plan.stepFn(name)
	}
}

// PlanGC marks the chunks live yields (see GC) and decides what gc would
// delete and rewrite, changing nothing. Chunks this writer added and did
// not commit yet are committed first, so that the index it reads is
// complete.
func (w *Writer) PlanGC(ctx context.Context, live func(yield func(chunker.ID) error) error, opt GCOptions) (*GCPlan, error) {
	if opt.MinLiveFraction == 0 {
		opt.MinLiveFraction = 0.5
	}
	if opt.SmallPack == 0 {
		opt.SmallPack = w.r.cfg.PackTargetSize / 4
	}
	if err := w.commitPending(ctx); err != nil {
		return nil, err
	}
	plan := &GCPlan{Report: GCReport{DryRun: true}, Rewrite: []GCPack{}, Drop: []GCPack{}, w: w, stepFn: opt.step}
	// 1. mark
	marked := map[chunker.ID]struct{}{}
	if err := live(func(id chunker.ID) error {
		marked[id] = struct{}{}
		return ctx.Err()
	}); err != nil {
		return nil, fmt.Errorf("gc: list referenced chunks: %w", err)
	}
	plan.step("marked")
	packs, err := w.gcLoadIndex(marked, plan)
	if err != nil {
		return nil, err
	}
	rep := &plan.Report
	if rep.PacksBefore, rep.PackBytesBefore, err = countPacks(ctx, w.r.packs); err != nil {
		return nil, err
	}
	plan.choose(packs, opt)
	w.gcEstimate(rep, plan.rewrite, plan.drop)
	w.mu.Lock()
	plan.gen = w.gen
	w.mu.Unlock()
	return plan, nil
}

// commitPending commits chunks added since the last Commit: they must be
// indexed before the index is read, or they would look unknown.
func (w *Writer) commitPending(ctx context.Context) error {
	w.mu.Lock()
	pending := w.cur != nil || len(w.sealed) > 0
	w.mu.Unlock()
	if !pending {
		return nil
	}
	return w.Commit(ctx, nil)
}

// choose sorts packs with dead chunks into those to rewrite (live chunks
// copied) and to drop (nothing live), and counts what is copied.
func (plan *GCPlan) choose(packs []*gcPack, opt GCOptions) {
	for _, p := range packs {
		deadBytes := p.payload() - p.liveBytes
		switch {
		case len(p.live) == 0:
			plan.drop = append(plan.drop, p)
			plan.Drop = append(plan.Drop, p.summary())
		case deadBytes <= 0:
		case float64(p.liveBytes) < opt.MinLiveFraction*float64(p.info.Size),
			p.info.Size < opt.SmallPack:
			plan.rewrite = append(plan.rewrite, p)
			plan.Rewrite = append(plan.Rewrite, p.summary())
			plan.Report.CopiedChunks += int64(len(p.live))
			plan.Report.CopiedBytes += p.liveBytes
		}
	}
	plan.Report.PacksRewritten = int64(len(plan.rewrite))
	plan.Report.PacksDeleted = int64(len(plan.rewrite) + len(plan.drop))
}

// gcLoadIndex reads the pack and chunk index, sorting chunks into live
// (per pack) and dead (their keys, to delete), and counts them in plan.
func (w *Writer) gcLoadIndex(marked map[chunker.ID]struct{}, plan *GCPlan) ([]*gcPack, error) {
	byName := map[string]*gcPack{}
	var packs []*gcPack
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
		return iterateChunks(txn, func(id chunker.ID, loc Location, key []byte) {
			plan.mark(byName[loc.Pack], marked, id, loc, key)
		})
	})
	if err != nil {
		return nil, fmt.Errorf("gc: read index: %w", err)
	}
	plan.Report.MissingChunks = int64(len(marked)) - plan.Report.LiveChunks
	// A live chunk in a pack missing from the pack index cannot be moved
	// safely; such packs are left alone (they are not in packs anyway).
	for _, p := range packs {
		sort.Slice(p.live, func(i, j int) bool { return p.live[i].loc.Offset < p.live[j].loc.Offset })
	}
	return packs, nil
}

// mark files one indexed chunk as live (in its pack p, if indexed) or
// dead (its key kept for deletion).
func (plan *GCPlan) mark(p *gcPack, marked map[chunker.ID]struct{}, id chunker.ID, loc Location, key []byte) {
	rep := &plan.Report
	if _, ok := marked[id]; ok {
		rep.LiveChunks++
		if p != nil {
			p.live = append(p.live, chunkAt{id, loc})
			p.liveBytes += int64(loc.StoredLen)
		}
		return
	}
	rep.DeadChunks++
	rep.DeadRawBytes += int64(loc.RawLen)
	rep.DeadStoredBytes += int64(loc.StoredLen)
	plan.dead = append(plan.dead, append([]byte(nil), key...))
	if p != nil {
		p.dead++
	}
}

// iterateChunks calls fn for every "c/" entry; key is valid during the call.
func iterateChunks(txn *badger.Txn, fn func(id chunker.ID, loc Location, key []byte)) error {
	prefix := []byte(chunkPrefix)
	it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: false, Prefix: prefix})
	defer it.Close()
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
		fn(id, loc, key)
	}
	return nil
}

// gcEstimate fills the after-figures of a plan: removed packs go, and
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

// String describes the plan, one line per pack to rewrite or remove, then
// a summary.
func (plan *GCPlan) String() string {
	var b strings.Builder
	for _, p := range plan.Rewrite {
		fmt.Fprintf(&b, "rewrite pack %s: %d of %d chunk(s) live, copy %s of %s\n",
			p.Name, p.LiveChunks, p.Chunks, units.Bytes(p.LiveBytes), units.Bytes(p.Size))
	}
	for _, p := range plan.Drop {
		fmt.Fprintf(&b, "remove pack %s: no live chunk, %s\n", p.Name, units.Bytes(p.Size))
	}
	r := plan.Report
	if r.MissingChunks > 0 {
		fmt.Fprintf(&b, "warning: %d referenced chunk(s) are not in the index: run mis verify\n", r.MissingChunks)
	}
	fmt.Fprintf(&b, "plan: unindex %d unreferenced chunk(s) (%s stored, %s raw), keep %d live; "+
		"rewrite %d pack(s) (copy %d chunk(s), %s), remove %d pack(s) with no live chunk; packs %d (%s) -> %d (%s)\n",
		r.DeadChunks, units.Bytes(r.DeadStoredBytes), units.Bytes(r.DeadRawBytes), r.LiveChunks,
		len(plan.Rewrite), r.CopiedChunks, units.Bytes(r.CopiedBytes), len(plan.Drop),
		r.PacksBefore, units.Bytes(r.PackBytesBefore), r.PacksAfter, units.Bytes(r.PackBytesAfter))
	return b.String()
}
