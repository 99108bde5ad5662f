package layer

import (
	"context"
	"fmt"
	"sort"

	"mis/chunker"
	"mis/manifest"
	"mis/repo"
)

// VersionUsage is what one version holds in the repository: the distinct
// chunks it uses (the manifest streams of its chain of layers, which
// reading it needs, its file content and residual data),
// split into the ones no other version uses (removing the version and
// running gc frees them) and the ones it shares.
type VersionUsage struct {
	Version *Version `json:"-"`
	ID      string   `json:"id"`
	// Refs are the NAME:TAGs naming the version (none when untagged).
	Refs   []string `json:"refs"`
	Chunks int64    `json:"chunks"`
	// Raw bytes are uncompressed chunk sizes, stored bytes their size in
	// packs. Unique + shared = all the version's distinct chunks.
	UniqueChunks int64 `json:"unique_chunks"`
	UniqueRaw    int64 `json:"unique_raw_bytes"`
	UniqueStored int64 `json:"unique_stored_bytes"`
	SharedRaw    int64 `json:"shared_raw_bytes"`
	SharedStored int64 `json:"shared_stored_bytes"`
}

// Label names the version for people: its first tag, else its id.
func (u *VersionUsage) Label() string {
	if len(u.Refs) > 0 {
		return u.Refs[0]
	}
	return "version " + u.ID
}

// Usage is the per-version breakdown of a repository, versions oldest first.
type Usage struct {
	Versions []VersionUsage `json:"versions"`
	// Live counts the distinct chunks any version uses.
	LiveChunks int64 `json:"live_chunks"`
	LiveRaw    int64 `json:"live_raw_bytes"`
	LiveStored int64 `json:"live_stored_bytes"`
	// LiveByKind splits the live stored bytes by what the chunks hold.
	LiveByKind KindBytes `json:"live_by_kind"`
	// Missing counts referenced chunks absent from the index (mis verify
	// names them); they count as zero bytes.
	Missing int64 `json:"missing_chunks"`
}

// KindBytes are stored bytes by kind of chunk. A chunk used as file
// content and as residual data (rare: identical bytes cut alike) counts as
// residual; one used as manifest and data, as data.
type KindBytes struct {
	Manifest int64 `json:"manifest_stored_bytes"`
	Residual int64 `json:"residual_stored_bytes"`
	Content  int64 `json:"content_stored_bytes"`
}

const (
	kindManifest = 1 << iota
	kindData     // file content or residual
	kindResidual
)

// chunkUse is what Usage keeps per distinct chunk: 20 bytes beside the
// 32-byte key, so a repository of millions of chunks stays in tens of MiB.
type chunkUse struct {
	users  uint32 // versions using the chunk
	last   uint32 // index+1 of the last version that counted it
	raw    uint32
	stored uint32
	kinds  uint8
}

// lookupBatch bounds how many index entries one Lookup session holds.
const lookupBatch = 16384

// ComputeUsage reads every version's manifest once and attributes each
// chunk to the versions using it. It holds only a read-only metadata
// session per lookup batch, so imports and mounts go on meanwhile.
func ComputeUsage(ctx context.Context, r *repo.Repo) (*Usage, error) {
	var versions []*Version
	refs := map[string][]string{}
	err := r.View(ctx, func(tx *repo.Tx) error {
		var err error
		if versions, err = Versions(tx); err != nil {
			return err
		}
		tags, err := List(tx)
		for _, t := range tags {
			refs[t.Version.ID] = append(refs[t.Version.ID], t.Ref.String())
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	sort.SliceStable(versions, func(i, j int) bool {
		if !versions[i].Created.Equal(versions[j].Created) {
			return versions[i].Created.Before(versions[j].Created)
		}
		return versions[i].ID < versions[j].ID
	})

	byID := make(map[string]*Version, len(versions))
	for _, v := range versions {
		byID[v.ID] = v
	}
	u := &Usage{Versions: make([]VersionUsage, len(versions))}
	uses := map[chunker.ID]*chunkUse{}
	for i, v := range versions {
		vu := &u.Versions[i]
		*vu = VersionUsage{Version: v, ID: v.ID, Refs: refs[v.ID]}
		if vu.Refs == nil {
			vu.Refs = []string{}
		}
		if err := u.countVersion(ctx, r, uint32(i+1), chainOf(v, byID), uses); err != nil {
			return nil, err
		}
	}
	// A chunk with one user is that version's alone; the rest is shared.
	for _, c := range uses {
		u.LiveChunks++
		u.LiveRaw += int64(c.raw)
		u.LiveStored += int64(c.stored)
		switch {
		case c.kinds&kindResidual != 0:
			u.LiveByKind.Residual += int64(c.stored)
		case c.kinds&kindData != 0:
			u.LiveByKind.Content += int64(c.stored)
		default:
			u.LiveByKind.Manifest += int64(c.stored)
		}
		if c.users == 1 {
			vu := &u.Versions[c.last-1]
			vu.UniqueChunks++
			vu.UniqueRaw += int64(c.raw)
			vu.UniqueStored += int64(c.stored)
		}
	}
	for i := range u.Versions {
		vu := &u.Versions[i]
		vu.SharedRaw -= vu.UniqueRaw
		vu.SharedStored -= vu.UniqueStored
	}
	return u, nil
}

// chainOf is v and the versions its stored layer rests on, top first. A
// base missing from the records ends the chain (LoadManifest reports it).
func chainOf(v *Version, byID map[string]*Version) []*Version {
	chain := []*Version{v}
	seen := map[string]bool{v.ID: true}
	for cur := v; cur.Base != "" && !seen[cur.Base] && byID[cur.Base] != nil; {
		seen[cur.Base] = true
		cur = byID[cur.Base]
		chain = append(chain, cur)
	}
	return chain
}

// countVersion adds version number n (1-based), chain[0], as a user of each
// distinct chunk it needs. Its Shared fields temporarily hold its totals.
func (u *Usage) countVersion(ctx context.Context, r *repo.Repo, n uint32, chain []*Version, uses map[chunker.ID]*chunkUse) error {
	v := chain[0]
	m, err := LoadManifest(ctx, r, v)
	if err != nil {
		return err
	}
	vu := &u.Versions[n-1]
	var mine []*chunkUse   // this version's distinct chunks, freed when done
	var fresh []chunker.ID // chunks no earlier version used: stored size unknown yet
	var kind uint8
	add := func(ref manifest.Ref) error {
		c := uses[ref.ID]
		if c == nil {
			c = &chunkUse{raw: ref.Size}
			uses[ref.ID] = c
			fresh = append(fresh, ref.ID)
		}
		c.kinds |= kind
		if c.last == n {
			return nil // counted for this version already
		}
		c.last = n
		c.users++
		mine = append(mine, c)
		return nil
	}
	kind = kindManifest
	for _, c := range chain {
		for _, ref := range c.Manifest {
			add(ref)
		}
	}
	kind = kindData
	if err := m.ForEachRef(add); err != nil {
		return err
	}
	for _, ref := range m.ResidualData {
		uses[ref.ID].kinds |= kindResidual
	}
	for start := 0; start < len(fresh); start += lookupBatch {
		batch := fresh[start:min(start+lookupBatch, len(fresh))]
		locs, err := r.Lookup(ctx, batch)
		if err != nil {
			return fmt.Errorf("%s: chunk index: %w", vu.Label(), err)
		}
		for _, id := range batch {
			loc, ok := locs[id]
			if !ok {
				u.Missing++
				continue
			}
			uses[id].stored = loc.StoredLen
		}
	}
	vu.Chunks = int64(len(mine))
	for _, c := range mine {
		vu.SharedRaw += int64(c.raw)
		vu.SharedStored += int64(c.stored)
	}
	return nil
}
