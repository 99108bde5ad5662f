package repo

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	badger "github.com/dgraph-io/badger/v4"

	"mis/chunker"
	"mis/internal/durable"
)

// Repair (verify --repair) rebuilds the chunk index from the packs.
//
// It runs as the writer (the writer lock is held throughout) and, unlike
// OpenWriter, touches neither the metadata database nor the packs before
// it has looked at them:
//
//  1. The metadata database is checked (checkMeta): a database Badger
//     cannot open, or would silently lose data in (a MANIFEST that is
//     unreadable, a table it names that is missing, a table that fails its
//     checksums or would make Badger panic) is moved aside to
//     damaged/meta-<time>/ and a new, empty one is created. Only the chunk
//     index can be rebuilt from the packs; caller records (versions, tags)
//     are lost with the old database unless the caller keeps record files
//     (layer does: see records.go). Milder signs (table files the MANIFEST
//     does not name, a torn last MANIFEST entry: Badger deletes or cuts
//     them at the next read-write open, which is right after a crash and
//     loses data after damage) make repair keep a copy at
//     damaged/meta-<time>/ before opening it.
//  2. Every pack in the store is checked: its trailer (magic, checksum,
//     ranges) and, with ReadData, its content hash and every chunk
//     (decompressed and re-hashed). A pack that passes is good: its chunks
//     are indexed where it says.
//  3. A damaged pack (unreadable trailer, e.g. truncated; or, with
//     ReadData, a wrong content hash or a chunk that does not verify) is
//     salvaged: every chunk it held, as its trailer or the old index
//     places it, that still decompresses to its id and has no intact copy
//     in a good pack is copied into a new pack. The damaged pack is then
//     copied to damaged/<name>.pack and removed from the store, so the
//     repository verifies clean and the bytes stay for a human to look at.
//     A damaged pack that neither its trailer nor the index describes (the
//     metadata database was lost too) is scanned instead: its bodies are
//     walked from the header (scan.go).
//  4. The index is made to match: entries of chunks with no intact copy
//     are deleted (their pack is gone or damaged), entries pointing to a
//     pack that lost the chunk are re-pointed to another pack holding the
//     same chunk (a duplicate, possible after recovery or an interrupted
//     gc), unindexed packs are indexed, "p/" entries follow the packs.
//     Where a chunk is in several good packs, the existing entry is kept.
//
// Each step is safe to be killed after: new packs are sealed before they
// are indexed, a damaged pack is copied aside before the index stops
// naming it and removed from the store only after; running repair again
// finishes the job. Memory: one map entry (~80 bytes) per chunk in the
// repository, as verify's index (1 TiB of unique data in 64 KiB chunks:
// about 1.3 GiB).

// damagedDir holds what repair moved out of the way: damaged packs
// (<name>.pack) and metadata databases (meta-<time>/).
const damagedDir = "damaged"

// RepairOptions configure Repair.
type RepairOptions struct {
	// Holder describes this process in the writer lock (e.g. "mis verify --repair").
	Holder string
	// Wait is how long to wait for another writer (see OpenWriterWait);
	// OnWait, if set, is called once when waiting starts.
	Wait   time.Duration
	OnWait func(msg string)
	// ReadData reads every pack whole: content hash and every chunk are
	// checked, so damage inside a pack with a good trailer is found too.
	// Without it, packs are checked by their trailers (cheap ranged reads).
	ReadData bool
	// Progress, if set, is called with the bytes of the packs checked so
	// far and of all packs in the store.
	Progress func(done, total int64)
}

// RepairReport says what Repair found and did.
type RepairReport struct {
	// MetaProblems is what was wrong with the metadata database.
	MetaProblems []string `json:"meta_problems,omitempty"`
	// MetaMovedTo is where a database Badger could not use was moved (a
	// new, empty one replaced it: caller records were lost with it).
	MetaMovedTo string `json:"meta_moved_to,omitempty"`
	// MetaCopiedTo is where a copy of a suspicious database was kept
	// before Badger opened (and possibly cut) it.
	MetaCopiedTo string `json:"meta_copied_to,omitempty"`

	Packs      int64 `json:"packs"`       // packs in the store when repair started
	PackBytes  int64 `json:"pack_bytes"`  // their size
	BytesRead  int64 `json:"bytes_read"`  // pack bytes read
	PacksAdded int64 `json:"packs_added"` // packs written (salvaged chunks)
	// PacksIndexed are good packs that were not in the index.
	PacksIndexed []string `json:"packs_indexed,omitempty"`
	// PacksGone are packs the index named that are not in the store.
	PacksGone []string      `json:"packs_gone,omitempty"`
	Damaged   []DamagedPack `json:"damaged_packs,omitempty"`

	Chunks          int64 `json:"chunks"`           // chunks in the index after repair
	ChunksAdded     int64 `json:"chunks_added"`     // entries added (unindexed packs, a rebuilt index)
	ChunksRelinked  int64 `json:"chunks_relinked"`  // entries re-pointed to another copy of the chunk
	ChunksCorrected int64 `json:"chunks_corrected"` // entries fixed to what their pack's trailer says
	ChunksSalvaged  int64 `json:"chunks_salvaged"`  // copied out of damaged packs into new packs
	ChunksLost      int64 `json:"chunks_lost"`      // entries removed: no intact copy anywhere
	BadEntries      int64 `json:"bad_entries"`      // undecodable index entries removed
}

// DamagedPack is a pack repair took out of the store.
type DamagedPack struct {
	Name    string `json:"name"`
	Problem string `json:"problem"`
	// Chunks it held (as far as its trailer or the old index say).
	Chunks     int `json:"chunks"`
	Salvaged   int `json:"salvaged"`   // copied into a new pack
	Duplicates int `json:"duplicates"` // an intact copy was in another pack
	Lost       int `json:"lost"`       // gone
	// Scanned: neither its trailer nor the index described it, so its
	// chunks were found by walking its bodies (scan.go).
	Scanned bool   `json:"scanned,omitempty"`
	MovedTo string `json:"moved_to"`
}

// Changed reports whether repair changed anything.
func (rep *RepairReport) Changed() bool {
	return rep.MetaMovedTo != "" || len(rep.PacksIndexed) > 0 || len(rep.PacksGone) > 0 || len(rep.Damaged) > 0 ||
		rep.ChunksAdded+rep.ChunksRelinked+rep.ChunksCorrected+rep.ChunksLost+rep.BadEntries > 0
}

// Repair takes the writer lock, repairs the metadata database and the
// chunk index (see the comment at the top of repair.go) and returns the
// writer, ready for the caller's repairs of its own records (versions
// whose chunks are gone). The caller closes it.
func (r *Repo) Repair(ctx context.Context, opt RepairOptions) (*Writer, *RepairReport, error) {
	w, err := r.waitForWriter(ctx, opt.Wait, opt.OnWait, func() (*Writer, error) { return r.lockedWriter(ctx, opt.Holder) })
	if err != nil {
		return nil, nil, err
	}
	rep, err := w.repair(ctx, opt)
	if err != nil {
		w.Close()
		return nil, rep, err
	}
	return w, rep, nil
}

// lockedWriter takes the writer lock and returns a Writer with no
// metadata handle yet: nothing has been read or cleaned up.
func (r *Repo) lockedWriter(ctx context.Context, holder string) (*Writer, error) {
	lock, err := r.acquireWriterLock(holder)
	if err != nil {
		return nil, err
	}
	lvl, _ := zstdLevel(r.cfg.ZstdLevel)
	return &Writer{r: r, lock: lock, enc: encoderFor(lvl), reader: r.NewChunkReader(), ctx: ctx,
		pending: map[chunker.ID]pendingChunk{}}, nil
}

// newIndexEntry is a chunk's place in the rebuilt index.
type newIndexEntry struct {
	pack      int32
	flags     uint8
	present   bool // the old index has exactly this entry
	offset    uint64
	storedLen uint32
	rawLen    uint32
}

// repairPack is one pack in the store as repair sees it.
type repairPack struct {
	name    string
	size    int64
	entries []packEntry // trailer entries (nil if unreadable)
	problem string      // empty: good
	old     []packEntry // damaged: the old index's entries for it
}

func (w *Writer) repair(ctx context.Context, opt RepairOptions) (*RepairReport, error) {
	r := w.r
	rep := &RepairReport{}
	r.fixRepoModes()
	if _, err := r.packs.RemoveIncomplete(ctx); err != nil {
		return rep, fmt.Errorf("%s: remove incomplete packs: %w", r.dir, err)
	}
	if err := w.repairMeta(ctx, rep); err != nil {
		return rep, err
	}

	// Old pack entries.
	oldPacks := map[string]packInfo{}
	if err := w.metaView(ctx, func(txn *badger.Txn) error {
		return iteratePacks(txn, func(name string, info packInfo) error {
			oldPacks[name] = info
			return nil
		})
	}); err != nil {
		return rep, fmt.Errorf("repair: read pack index: %w", err)
	}

	// Check every pack in the store.
	var packs []*repairPack
	if err := r.packs.List(ctx, func(name string, size int64) error {
		packs = append(packs, &repairPack{name: name, size: size})
		rep.PackBytes += size
		return nil
	}); err != nil {
		return rep, fmt.Errorf("repair: list packs: %w", err)
	}
	rep.Packs = int64(len(packs))
	var checked int64
	for _, p := range packs {
		if err := w.checkPack(ctx, p, opt.ReadData, rep); err != nil {
			return rep, err
		}
		checked += p.size
		if opt.Progress != nil {
			opt.Progress(checked, rep.PackBytes)
		}
	}
	inStore := map[string]*repairPack{}
	for _, p := range packs {
		inStore[p.name] = p
	}
	for name := range oldPacks {
		if _, ok := inStore[name]; !ok {
			rep.PacksGone = append(rep.PacksGone, name)
		}
	}
	sort.Strings(rep.PacksGone)

	// The new index from the good packs, in name order: the first pack
	// holding a chunk wins, unless the old index names another good copy
	// (dups remembers the alternatives).
	var good []*repairPack
	idx := map[chunker.ID]newIndexEntry{}
	dups := map[chunker.ID][]newIndexEntry{}
	damaged := map[string]*repairPack{}
	for _, p := range packs {
		if p.problem != "" {
			damaged[p.name] = p
			continue
		}
		pi := int32(len(good))
		good = append(good, p)
		for _, e := range p.entries {
			ne := newIndexEntry{pack: pi, flags: e.Flags, offset: e.Offset, storedLen: e.StoredLen, rawLen: e.RawLen}
			if _, ok := idx[e.ID]; ok {
				dups[e.ID] = append(dups[e.ID], ne)
				continue
			}
			idx[e.ID] = ne
		}
		if _, ok := oldPacks[p.name]; !ok {
			rep.PacksIndexed = append(rep.PacksIndexed, p.name)
		}
	}

	// The old index's entries for damaged packs, for salvage.
	if len(damaged) > 0 {
		if err := w.metaView(ctx, func(txn *badger.Txn) error {
			return iterateChunkEntries(txn, func(id chunker.ID, loc Location, bad error) error {
				if bad != nil {
					return nil
				}
				if p := damaged[loc.Pack]; p != nil {
					p.old = append(p.old, packEntry{ID: id, Flags: locationFlags(loc), Offset: loc.Offset,
						StoredLen: loc.StoredLen, RawLen: loc.RawLen})
				}
				return nil
			})
		}); err != nil {
			return rep, fmt.Errorf("repair: read chunk index: %w", err)
		}
	}
	// Salvage, in name order, then seal the last new pack.
	var names []string
	for n := range damaged {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := w.salvage(ctx, damaged[n], idx, rep); err != nil {
			return rep, err
		}
	}
	w.mu.Lock()
	err := w.sealLocked(ctx)
	sealed := w.sealed
	w.mu.Unlock()
	if err != nil {
		return rep, err
	}
	for _, sp := range sealed {
		pi := int32(len(good))
		good = append(good, &repairPack{name: sp.name, size: sp.size, entries: sp.entries})
		rep.PacksAdded++
		for _, e := range sp.entries {
			if _, ok := idx[e.ID]; !ok {
				idx[e.ID] = newIndexEntry{pack: pi, flags: e.Flags, offset: e.Offset, storedLen: e.StoredLen, rawLen: e.RawLen}
			}
		}
	}

	// Make the index match, in one read-write session.
	if err := w.rewriteIndex(ctx, good, oldPacks, idx, dups, rep); err != nil {
		return rep, err
	}
	w.mu.Lock()
	w.sealed = nil
	w.pending = map[chunker.ID]pendingChunk{}
	w.mu.Unlock()
	rep.Chunks = int64(len(idx))

	// The index no longer names the damaged packs: take them out.
	for i := range rep.Damaged {
		d := &rep.Damaged[i]
		if d.MovedTo == "" {
			continue
		}
		if err := r.packs.Remove(ctx, d.Name); err != nil {
			return rep, fmt.Errorf("repair: remove damaged pack %s (copied to %s): %w", d.Name, d.MovedTo, err)
		}
	}

	// Back to an ordinary writer's data phase.
	db, err := r.openMeta(ctx, true)
	if err != nil {
		return rep, err
	}
	w.mu.Lock()
	w.db = db
	w.mu.Unlock()
	return rep, nil
}

// metaView runs fn in a short read-only session.
func (w *Writer) metaView(ctx context.Context, fn func(txn *badger.Txn) error) error {
	db, err := w.r.openMeta(ctx, true)
	if err != nil {
		return err
	}
	err = db.View(fn)
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	return err
}

// checkPack reads what repair needs of one pack and sets p.problem if
// the pack is damaged. A pack that cannot be read (other than gone) stops
// repair: guessing would lose data that is only out of reach.
func (w *Writer) checkPack(ctx context.Context, p *repairPack, readData bool, rep *RepairReport) error {
	if readData {
		data, err := readPackBytes(ctx, w.r.packs, p.name)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // vanished: nobody but us removes packs, so it was never there
			}
			return fmt.Errorf("repair: read pack %s: %w (nothing was changed)", p.name, err)
		}
		rep.BytesRead += int64(len(data))
		p.entries, err = readPackTrailer(bytesReaderAt(data), int64(len(data)))
		if err != nil {
			p.problem = "trailer: " + err.Error()
			p.entries = nil
			return nil
		}
		if got := packNameOf(data); got != p.name {
			p.problem = "content hash is " + got + ", not its name"
		}
		var raw []byte
		for _, e := range p.entries {
			raw, err = decodeChunk(e.ID, e.Flags, data[e.Offset:e.Offset+uint64(e.StoredLen)], e.RawLen, raw)
			if err != nil {
				p.problem = fmt.Sprintf("chunk %s at offset %d: %v", e.ID.Short(), e.Offset, err)
				break
			}
		}
		return nil
	}
	pr, err := w.r.packs.Open(ctx, p.name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("repair: open pack %s: %w (nothing was changed)", p.name, err)
	}
	defer pr.Close()
	p.entries, err = readPackTrailer(readerAt{ctx, pr}, pr.Size())
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		p.problem = "trailer: " + err.Error()
		p.entries = nil
	}
	return nil
}

// salvage copies the chunks of damaged pack p that verify and have no
// intact copy into the writer's new packs, then copies p to the damaged
// directory.
func (w *Writer) salvage(ctx context.Context, p *repairPack, idx map[chunker.ID]newIndexEntry, rep *RepairReport) error {
	data, err := readPackBytes(ctx, w.r.packs, p.name)
	if err != nil {
		return fmt.Errorf("repair: read damaged pack %s: %w", p.name, err)
	}
	rep.BytesRead += int64(len(data))
	d := DamagedPack{Name: p.name, Problem: p.problem}
	// Candidates: the trailer's entries (if it reads) and the old index's.
	// Neither (its trailer and its index entries are both lost): scan.
	lists := [][]packEntry{p.entries, p.old}
	if len(p.entries) == 0 && len(p.old) == 0 {
		lists = [][]packEntry{scanPack(data, w.r.cfg.Chunker)}
		d.Scanned = true
	}
	seen := map[chunker.ID]bool{}
	var cands []packEntry
	for _, list := range lists {
		for _, e := range list {
			if !seen[e.ID] {
				seen[e.ID] = true
				cands = append(cands, e)
			}
		}
	}
	d.Chunks = len(cands)
	var raw []byte
	w.mu.Lock()
	for _, e := range cands {
		if _, ok := idx[e.ID]; ok {
			d.Duplicates++
			continue
		}
		end := e.Offset + uint64(e.StoredLen)
		if e.Offset < uint64(packHeaderSize) || end > uint64(len(data)) {
			d.Lost++
			continue
		}
		stored := data[e.Offset:end]
		if raw, err = decodeChunk(e.ID, e.Flags, stored, e.RawLen, raw); err != nil {
			d.Lost++
			continue
		}
		if err := w.appendStoredLocked(ctx, e.ID, stored, e.Flags, int(e.RawLen)); err != nil {
			w.mu.Unlock()
			return fmt.Errorf("repair: salvage from pack %s: %w", p.name, err)
		}
		d.Salvaged++
	}
	w.mu.Unlock()
	rep.ChunksSalvaged += int64(d.Salvaged)

	dir := filepath.Join(w.r.dir, damagedDir)
	if err := os.MkdirAll(dir, DirMode); err != nil {
		return err
	}
	d.MovedTo = filepath.Join(dir, p.name+".pack")
	if err := durable.WriteFile(d.MovedTo, data, FileMode); err != nil {
		return fmt.Errorf("repair: keep damaged pack %s: %w", p.name, err)
	}
	if err := durable.SyncDir(w.r.dir); err != nil {
		return err
	}
	rep.Damaged = append(rep.Damaged, d)
	return nil
}

// rewriteIndex makes the "c/" and "p/" entries match the good packs.
func (w *Writer) rewriteIndex(ctx context.Context, good []*repairPack, oldPacks map[string]packInfo,
	idx map[chunker.ID]newIndexEntry, dups map[chunker.ID][]newIndexEntry, rep *RepairReport) error {
	names := make([][packNameRawSize]byte, len(good))
	goodByName := map[string]int32{}
	for i, p := range good {
		raw, err := parsePackName(p.name)
		if err != nil {
			return err
		}
		names[i] = raw
		goodByName[p.name] = int32(i)
	}
	db, err := w.r.openMeta(ctx, false)
	if err != nil {
		return err
	}
	defer closeRW(db, w.r.metaDir())
	wb := db.NewWriteBatch()
	defer wb.Cancel()
	// Existing chunk entries: keep, re-point or delete.
	err = db.View(func(txn *badger.Txn) error {
		prefix := []byte(chunkPrefix)
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: false, Prefix: prefix})
		defer it.Close()
		for it.Seek(prefix); it.ValidForPrefix(prefix); it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			item := it.Item()
			key := item.KeyCopy(nil)
			var id chunker.ID
			if len(key) != len(prefix)+len(id) {
				rep.BadEntries++
				if err := wb.Delete(key); err != nil {
					return err
				}
				continue
			}
			copy(id[:], key[len(prefix):])
			var loc Location
			verr := item.Value(func(v []byte) error {
				var err error
				loc, err = decodeChunkValue(v)
				return err
			})
			ne, found := idx[id]
			switch {
			case verr != nil:
				rep.BadEntries++
				if !found {
					if err := wb.Delete(key); err != nil {
						return err
					}
					continue
				}
			case !found:
				rep.ChunksLost++
				if err := wb.Delete(key); err != nil {
					return err
				}
				continue
			}
			if verr == nil {
				pi, ok := goodByName[loc.Pack]
				old := newIndexEntry{pack: pi, flags: locationFlags(loc), offset: loc.Offset, storedLen: loc.StoredLen, rawLen: loc.RawLen}
				kept := ok && sameEntry(ne, old)
				if ok && !kept {
					for _, alt := range dups[id] {
						if sameEntry(alt, old) {
							ne, kept = alt, true // keep the copy the index already names
							break
						}
					}
				}
				if kept {
					ne.present = true
					idx[id] = ne
					continue
				}
				if !ok || good[ne.pack].name != loc.Pack {
					rep.ChunksRelinked++
				} else {
					rep.ChunksCorrected++
				}
			}
			ne.present = true
			idx[id] = ne
			if err := wb.Set(key, encodeChunkValue(names[ne.pack], packEntry{Flags: ne.flags, Offset: ne.offset, StoredLen: ne.storedLen, RawLen: ne.rawLen})); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("repair: rewrite chunk index: %w", err)
	}
	for id, ne := range idx {
		if ne.present {
			continue
		}
		rep.ChunksAdded++
		if err := wb.Set(chunkKey(id), encodeChunkValue(names[ne.pack], packEntry{Flags: ne.flags, Offset: ne.offset, StoredLen: ne.storedLen, RawLen: ne.rawLen})); err != nil {
			return err
		}
	}
	// Pack entries.
	now := time.Now().Unix()
	for i, p := range good {
		info := packInfo{Size: p.size, Chunks: uint32(len(p.entries)), Created: now}
		if old, ok := oldPacks[p.name]; ok {
			if old.Size == info.Size && old.Chunks == info.Chunks {
				continue
			}
			info.Created = old.Created
		}
		if err := wb.Set(packKey(names[i]), encodePackValue(info)); err != nil {
			return err
		}
	}
	for name := range oldPacks {
		if _, ok := goodByName[name]; ok {
			continue
		}
		raw, err := parsePackName(name)
		if err != nil {
			return err
		}
		if err := wb.Delete(packKey(raw)); err != nil {
			return err
		}
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("repair: write chunk index: %w", err)
	}
	return db.Sync()
}

func sameEntry(a, b newIndexEntry) bool {
	return a.pack == b.pack && a.flags == b.flags && a.offset == b.offset && a.storedLen == b.storedLen && a.rawLen == b.rawLen
}

// iterateChunkEntries calls fn for every "c/" entry; bad is set for an
// entry that does not decode.
func iterateChunkEntries(txn *badger.Txn, fn func(id chunker.ID, loc Location, bad error) error) error {
	prefix := []byte(chunkPrefix)
	it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: false, Prefix: prefix})
	defer it.Close()
	for it.Seek(prefix); it.ValidForPrefix(prefix); it.Next() {
		item := it.Item()
		key := item.Key()
		var id chunker.ID
		if len(key) != len(prefix)+len(id) {
			if err := fn(id, Location{}, fmt.Errorf("key %x has the wrong length", key)); err != nil {
				return err
			}
			continue
		}
		copy(id[:], key[len(prefix):])
		var loc Location
		err := item.Value(func(v []byte) error {
			var err error
			loc, err = decodeChunkValue(v)
			return err
		})
		if err := fn(id, loc, err); err != nil {
			return err
		}
	}
	return nil
}

// repairMeta checks the metadata database and moves it aside (or keeps a
// copy) as the comment at the top of this file says, then makes sure a
// read-write open works.
func (w *Writer) repairMeta(ctx context.Context, rep *RepairReport) error {
	dir := w.r.metaDir()
	hard, soft, _, err := checkMeta(ctx, dir, true)
	if err != nil {
		return err
	}
	rep.MetaProblems = append(append(rep.MetaProblems, hard...), soft...)
	if len(hard) == 0 && len(soft) > 0 {
		to, err := w.r.keepMeta(ctx, false)
		if err != nil {
			return fmt.Errorf("repair: copy the metadata database aside: %w", err)
		}
		rep.MetaCopiedTo = to
	}
	if len(hard) == 0 {
		db, err := openRWSafely(ctx, dir)
		if err == nil {
			// The chunk index must read back whole; a block that does not
			// is damage the table checks missed.
			err = db.View(func(txn *badger.Txn) error {
				it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: false})
				defer it.Close()
				for it.Rewind(); it.Valid(); it.Next() {
				}
				return nil
			})
			if cerr := closeRW(db, dir); err == nil {
				err = cerr
			}
			if err == nil {
				return nil
			}
		}
		if isBadgerLocked(err) || !isDamage(err) {
			return fmt.Errorf("repair: open metadata: %w", err)
		}
		rep.MetaProblems = append(rep.MetaProblems, "Badger cannot open it: "+err.Error())
	}
	to, err := w.r.keepMeta(ctx, true)
	if err != nil {
		return fmt.Errorf("repair: move the metadata database aside: %w", err)
	}
	rep.MetaMovedTo = to
	rep.MetaCopiedTo = ""
	if err := os.MkdirAll(dir, DirMode); err != nil {
		return err
	}
	db, err := openBadger(dir, false)
	if err != nil {
		return fmt.Errorf("repair: create a new metadata database: %w", err)
	}
	return closeRW(db, dir)
}

// isDamage tells an error that says the database is damaged from one that
// says it is out of reach for now (permissions, space, resources), which
// must not make repair move it aside.
func isDamage(err error) bool {
	msg := strings.ToLower(err.Error())
	for _, s := range []string{"permission denied", "no space left", "read-only file system", "too many open files",
		"cannot allocate memory", "operation not permitted", "disk quota", "context canceled", "deadline exceeded"} {
		if strings.Contains(msg, s) {
			return false
		}
	}
	return true
}

// openRWSafely opens dir read-write as openMeta does (waiting while
// readers hold it, deleting the empty memtable logs a killed writer
// leaves), through openBadgerSafely.
func openRWSafely(ctx context.Context, dir string) (*badger.DB, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultBusyTimeout)
		defer cancel()
	}
	backoff := 10 * time.Millisecond
	cleaned := false
	for {
		db, err := openBadgerSafely(dir)
		if err == nil {
			return db, nil
		}
		if !cleaned && !isBadgerLocked(err) {
			cleaned = true
			if rerr := removeEmptyLogs(dir); rerr != nil {
				return nil, rerr
			}
			continue
		}
		if !isBadgerLocked(err) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("repository metadata is busy: %w", ctx.Err())
		case <-time.After(backoff):
		}
		if backoff < 500*time.Millisecond {
			backoff *= 2
		}
	}
}

// openBadgerSafely is a read-write open that turns a panic inside Badger
// (it panics on some damaged tables) into an error.
func openBadgerSafely(dir string) (db *badger.DB, err error) {
	defer func() {
		if p := recover(); p != nil {
			db, err = nil, fmt.Errorf("badger panicked: %v", firstLine(fmt.Sprint(p)))
		}
	}()
	return openBadger(dir, false)
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// keepMeta moves (move) or copies the metadata directory to
// damaged/meta-<time>/ under Badger's directory lock (no session runs
// meanwhile), and returns the new path.
func (r *Repo) keepMeta(ctx context.Context, move bool) (string, error) {
	dir := r.metaDir()
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return "", nil // nothing to keep
	}
	parent := filepath.Join(r.dir, damagedDir)
	if err := os.MkdirAll(parent, DirMode); err != nil {
		return "", err
	}
	to := filepath.Join(parent, "meta-"+time.Now().UTC().Format("20060102T150405Z"))
	for i := 2; ; i++ {
		if _, err := os.Lstat(to); errors.Is(err, fs.ErrNotExist) {
			break
		}
		to = strings.TrimSuffix(to, fmt.Sprintf("-%d", i-1)) + fmt.Sprintf("-%d", i)
	}
	unlock, err := lockMetaDir(ctx, dir, true)
	if err != nil {
		return "", err
	}
	defer unlock()
	if move {
		if err := os.Rename(dir, to); err != nil {
			return "", err
		}
		if err := durable.SyncDir(parent); err != nil {
			return "", err
		}
		return to, durable.SyncDir(r.dir)
	}
	if err := os.Mkdir(to, DirMode); err != nil {
		return "", err
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	for _, e := range ents {
		if !e.Type().IsRegular() || e.Name() == "LOCK" {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), data, FileMode); err != nil {
			return "", err
		}
	}
	if err := syncAll(to); err != nil {
		return "", err
	}
	return to, durable.SyncDir(parent)
}

// syncAll fsyncs every file in dir, then dir.
func syncAll(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			return err
		}
		err = f.Sync()
		f.Close()
		if err != nil {
			return err
		}
	}
	return durable.SyncDir(dir)
}

// waitForWriter calls open until it does not fail with ErrLocked or wait
// has passed (see OpenWriterWait).
func (r *Repo) waitForWriter(ctx context.Context, wait time.Duration, onWait func(msg string), open func() (*Writer, error)) (*Writer, error) {
	deadline := time.Now().Add(wait)
	told := false
	for {
		w, err := open()
		if err == nil || !errors.Is(err, ErrLocked) || !time.Now().Before(deadline) {
			return w, err
		}
		if !told && onWait != nil {
			onWait(err.Error())
			told = true
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
