package repo

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	badger "github.com/dgraph-io/badger/v4"

	"mis/chunker"
)

// VerifyOptions select what Verify checks.
type VerifyOptions struct {
	// ReadData reads every pack: pack content hash, trailer, and every
	// indexed chunk decompressed and re-hashed.
	ReadData bool
	// Refs, if set, yields every (owner, chunk) reference held by the
	// caller's metadata (e.g. owner "vm1@3"). It may be called twice:
	// once to check that every reference resolves, and again to name the
	// owners of damaged chunks. It runs without the metadata database
	// open, so it may call Repo.View itself.
	Refs func(yield func(owner string, id chunker.ID) error) error
	// Progress, if set, is called with work done and total: bytes of
	// packs with ReadData, else chunk index entries.
	Progress func(done, total int64)
}

// Problem kinds reported by Verify.
const (
	ProblemMissingChunk  = "missing chunk"   // referenced but not in the index
	ProblemMissingPack   = "missing pack"    // indexed but not in storage
	ProblemPackSize      = "pack size"       // size differs from the index
	ProblemUnindexedPack = "unindexed pack"  // in storage but not in the index
	ProblemChunkRange    = "chunk range"     // index entry points outside its pack
	ProblemDamagedPack   = "damaged pack"    // content hash or trailer wrong
	ProblemDamagedChunk  = "damaged chunk"   // does not decompress to its id
	ProblemIndex         = "malformed index" // undecodable index entry
	ProblemMetadata      = "metadata"        // the metadata database (Badger) is damaged
)

// maxOwnersPerProblem bounds the owners listed for one chunk.
const maxOwnersPerProblem = 50

// Problem is one thing wrong with a repository.
type Problem struct {
	Kind   string
	Pack   string     // pack name, if the problem concerns one
	Chunk  chunker.ID // zero if the problem does not concern one chunk
	Owners []string   // owners (from VerifyOptions.Refs) using Chunk
	Detail string
	// Harmless marks leftovers of an interrupted writer that lose no data
	// and that the next writer cleans up (unindexed packs).
	Harmless bool
}

func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.Kind)
	if !p.Chunk.IsZero() {
		fmt.Fprintf(&b, ": chunk %s", p.Chunk)
	}
	if p.Pack != "" {
		fmt.Fprintf(&b, " in pack %s", p.Pack)
	}
	if p.Detail != "" {
		fmt.Fprintf(&b, ": %s", p.Detail)
	}
	if len(p.Owners) > 0 {
		fmt.Fprintf(&b, " (used by %s)", strings.Join(p.Owners, ", "))
	}
	return b.String()
}

// VerifyReport is the outcome of Verify.
type VerifyReport struct {
	Packs     int64 // packs in the index
	Chunks    int64 // chunks in the index
	Refs      int64 // references checked
	BytesRead int64 // pack bytes read (ReadData)
	Problems  []Problem
}

// OK reports whether no problem was found.
func (rep *VerifyReport) OK() bool { return len(rep.Problems) == 0 }

// Serious returns the problems that are not Harmless.
func (rep *VerifyReport) Serious() []Problem {
	var out []Problem
	for _, p := range rep.Problems {
		if !p.Harmless {
			out = append(out, p)
		}
	}
	return out
}

// verifyIndex is the chunk index loaded into memory, compactly.
type verifyIndex struct {
	packNames  []string
	packByName map[string]int32
	packInfo   []packInfo
	chunks     map[chunker.ID]verifyChunk
}

type verifyChunk struct {
	pack      int32
	flags     uint8
	offset    uint64
	storedLen uint32
	rawLen    uint32
}

// Verify checks the repository's consistency and, with ReadData, the
// integrity of all stored data. It returns an error only if it could not
// run; what is wrong with the repository is in the report.
func (r *Repo) Verify(ctx context.Context, opt VerifyOptions) (*VerifyReport, error) {
	rep := &VerifyReport{}
	// Badger is looked at before it is opened: some damage makes it panic
	// or silently drop keys (metacheck.go). Every table block is checked:
	// loading the index reads most of them anyway.
	hard, soft, orphans, err := checkMeta(ctx, r.metaDir(), true)
	if err != nil {
		return nil, fmt.Errorf("verify: check metadata: %w", err)
	}
	for _, h := range hard {
		rep.Problems = append(rep.Problems, Problem{Kind: ProblemMetadata,
			Detail: h + "; mis verify --repair moves it aside and rebuilds the chunk index from the packs"})
	}
	if len(hard) > 0 {
		return rep, nil // opening it could crash or mislead
	}
	kept := ""
	if orphans > 0 {
		// Any open, read-only too, deletes tables the MANIFEST does not
		// name: right after a crash, data loss after damage. Keep a copy.
		if to, err := r.keepMeta(ctx, false); err != nil {
			kept = "; keeping a copy of the database failed (" + err.Error() + "), and Badger deletes these at its next open"
		} else {
			kept = "; a copy of the database was kept at " + to + " before Badger opens it"
		}
	}
	for _, s := range soft {
		rep.Problems = append(rep.Problems, Problem{Kind: ProblemMetadata, Harmless: true,
			Detail: s + "; left by a crash, or damage" + kept})
	}
	idx, err := r.loadIndex(ctx, rep)
	if err != nil {
		return nil, err
	}
	rep.Packs = int64(len(idx.packNames))
	rep.Chunks = int64(len(idx.chunks))

	bad := map[chunker.ID]int{} // index in rep.Problems of each chunk's problem, to attach owners
	addChunkProblem := func(p Problem) {
		if _, dup := bad[p.Chunk]; dup {
			return
		}
		bad[p.Chunk] = len(rep.Problems)
		rep.Problems = append(rep.Problems, p)
	}

	if opt.Refs != nil {
		err := opt.Refs(func(owner string, id chunker.ID) error {
			rep.Refs++
			if _, ok := idx.chunks[id]; !ok {
				addChunkProblem(Problem{Kind: ProblemMissingChunk, Chunk: id})
			}
			return ctx.Err()
		})
		if err != nil {
			return nil, fmt.Errorf("verify: list references: %w", err)
		}
	}

	onDisk := map[string]int64{}
	if err := r.packs.List(ctx, func(name string, size int64) error {
		onDisk[name] = size
		return nil
	}); err != nil {
		return nil, fmt.Errorf("verify: list packs: %w", err)
	}
	packOK := make([]bool, len(idx.packNames))
	for i, name := range idx.packNames {
		size, ok := onDisk[name]
		switch {
		case !ok:
			rep.Problems = append(rep.Problems, Problem{Kind: ProblemMissingPack, Pack: name})
		case size != idx.packInfo[i].Size:
			rep.Problems = append(rep.Problems, Problem{Kind: ProblemPackSize, Pack: name,
				Detail: fmt.Sprintf("%d bytes in storage, %d in the index (truncated?)", size, idx.packInfo[i].Size)})
		default:
			packOK[i] = true
		}
	}
	var unindexed []string
	for name := range onDisk {
		if _, ok := idx.packByName[name]; !ok {
			unindexed = append(unindexed, name)
		}
	}
	sort.Strings(unindexed)
	for _, name := range unindexed {
		rep.Problems = append(rep.Problems, Problem{Kind: ProblemUnindexedPack, Pack: name, Harmless: true,
			Detail: "left by an interrupted write; the next writer indexes it"})
	}

	// Range checks, and the chunks of each pack for ReadData.
	byPack := make([][]chunker.ID, len(idx.packNames))
	var done int64
	total := int64(len(idx.chunks))
	for id, c := range idx.chunks {
		name := idx.packNames[c.pack]
		size, exists := onDisk[name]
		switch {
		case !exists:
			addChunkProblem(Problem{Kind: ProblemMissingPack, Chunk: id, Pack: name})
		case c.offset < uint64(packHeaderSize) || c.offset+uint64(c.storedLen) > uint64(size):
			addChunkProblem(Problem{Kind: ProblemChunkRange, Chunk: id, Pack: name,
				Detail: fmt.Sprintf("bytes %d..%d, pack has %d", c.offset, c.offset+uint64(c.storedLen), size)})
		default:
			byPack[c.pack] = append(byPack[c.pack], id)
		}
		done++
		if opt.Progress != nil && !opt.ReadData && done%4096 == 0 {
			opt.Progress(done, total)
		}
	}
	if opt.Progress != nil && !opt.ReadData {
		opt.Progress(total, total)
	}

	if opt.ReadData {
		if err := r.verifyData(ctx, idx, onDisk, byPack, rep, addChunkProblem, opt.Progress); err != nil {
			return nil, err
		}
	}

	if opt.Refs != nil && len(bad) > 0 {
		err := opt.Refs(func(owner string, id chunker.ID) error {
			i, ok := bad[id]
			if !ok {
				return nil
			}
			p := &rep.Problems[i]
			if len(p.Owners) >= maxOwnersPerProblem {
				return nil
			}
			for _, o := range p.Owners {
				if o == owner {
					return nil
				}
			}
			p.Owners = append(p.Owners, owner)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("verify: list references: %w", err)
		}
	}
	return rep, nil
}

// loadIndex copies the chunk and pack index into memory in one short
// read-only session, so the database is not held during long checks.
func (r *Repo) loadIndex(ctx context.Context, rep *VerifyReport) (*verifyIndex, error) {
	idx := &verifyIndex{packByName: map[string]int32{}, chunks: map[chunker.ID]verifyChunk{}}
	db, err := r.openMeta(ctx, true)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	err = db.View(func(txn *badger.Txn) error {
		if err := iteratePacks(txn, func(name string, info packInfo) error {
			idx.packByName[name] = int32(len(idx.packNames))
			idx.packNames = append(idx.packNames, name)
			idx.packInfo = append(idx.packInfo, info)
			return nil
		}); err != nil {
			return err
		}
		prefix := []byte(chunkPrefix)
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: false, Prefix: prefix})
		defer it.Close()
		for it.Seek(prefix); it.ValidForPrefix(prefix); it.Next() {
			item := it.Item()
			key := item.Key()
			var id chunker.ID
			if len(key) != len(prefix)+len(id) {
				rep.Problems = append(rep.Problems, Problem{Kind: ProblemIndex, Detail: fmt.Sprintf("key %x has the wrong length", key)})
				continue
			}
			copy(id[:], key[len(prefix):])
			var loc Location
			if err := item.Value(func(v []byte) error {
				var err error
				loc, err = decodeChunkValue(v)
				return err
			}); err != nil {
				rep.Problems = append(rep.Problems, Problem{Kind: ProblemIndex, Chunk: id, Detail: err.Error()})
				continue
			}
			p, ok := idx.packByName[loc.Pack]
			if !ok {
				rep.Problems = append(rep.Problems, Problem{Kind: ProblemIndex, Chunk: id, Pack: loc.Pack,
					Detail: "chunk points to a pack that is not in the pack index"})
				continue
			}
			idx.chunks[id] = verifyChunk{pack: p, flags: locationFlags(loc), offset: loc.Offset,
				storedLen: loc.StoredLen, rawLen: loc.RawLen}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("verify: read index: %w", err)
	}
	return idx, nil
}

// verifyData reads every indexed pack present in storage.
func (r *Repo) verifyData(ctx context.Context, idx *verifyIndex, onDisk map[string]int64, byPack [][]chunker.ID,
	rep *VerifyReport, addChunkProblem func(Problem), progress func(done, total int64)) error {
	var total int64
	for _, name := range idx.packNames {
		total += onDisk[name]
	}
	var raw []byte
	for i, name := range idx.packNames {
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, ok := onDisk[name]; !ok {
			continue
		}
		data, err := readPackBytes(ctx, r.packs, name)
		if err != nil {
			if errors.Is(err, context.Canceled) {
				return err
			}
			rep.Problems = append(rep.Problems, Problem{Kind: ProblemDamagedPack, Pack: name, Detail: "read: " + err.Error()})
			continue
		}
		rep.BytesRead += int64(len(data))
		if got := packNameOf(data); got != name {
			rep.Problems = append(rep.Problems, Problem{Kind: ProblemDamagedPack, Pack: name,
				Detail: "content hash is " + got + ", not its name"})
		}
		if _, err := readPackTrailer(bytesReaderAt(data), int64(len(data))); err != nil {
			rep.Problems = append(rep.Problems, Problem{Kind: ProblemDamagedPack, Pack: name, Detail: "trailer: " + err.Error()})
		}
		for _, id := range byPack[i] {
			c := idx.chunks[id]
			stored := data[c.offset : c.offset+uint64(c.storedLen)]
			raw, err = decodeChunk(id, c.flags, stored, c.rawLen, raw)
			if err != nil {
				addChunkProblem(Problem{Kind: ProblemDamagedChunk, Chunk: id, Pack: name,
					Detail: fmt.Sprintf("at offset %d: %v", c.offset, err)})
			}
		}
		if progress != nil {
			progress(rep.BytesRead, total)
		}
	}
	return nil
}
