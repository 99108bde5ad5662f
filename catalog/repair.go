package catalog

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"mis/chunker"
	"mis/internal/units"
	"mis/layer"
	"mis/manifest"
	"mis/repo"
)

// RepairOptions configure Repair (mis verify --repair).
type RepairOptions struct {
	Holder   string        // for the writer lock, e.g. "mis verify --repair"
	Wait     time.Duration // wait this long for another writer
	OnWait   func(msg string)
	ReadData bool // check every chunk of every pack (repo.RepairOptions)
	// DropBroken removes the versions whose data is gone, except those a
	// clone or a mount holds (and the versions their layers rest on).
	DropBroken bool
	Progress   func(done, total int64)
}

// Repaired is what Repair found and did.
type Repaired struct {
	Index *repo.RepairReport `json:"index"`
	// Restored are versions brought back from their record files (the
	// metadata database had lost them).
	Restored []layer.Restored `json:"restored,omitempty"`
	// RecordFilesWritten counts record files written from records that
	// had none or a stale one.
	RecordFilesWritten int `json:"record_files_written"`
	// Broken are the versions that cannot be read whole any more.
	Broken []BrokenVersion `json:"broken,omitempty"`
	// Orphaned are holders (clones, mounts) whose version is gone.
	Orphaned []Holder `json:"orphaned,omitempty"`
}

// BrokenVersion is a version some of whose data is gone.
type BrokenVersion struct {
	ID   string   `json:"id"`
	Refs []string `json:"refs"` // the NAME:TAGs naming it
	// MissingChunks counts the distinct chunks it uses that are in no
	// pack; Problem says why its manifest cannot be read, if it cannot.
	MissingChunks int64    `json:"missing_chunks"`
	Problem       string   `json:"problem,omitempty"`
	HeldBy        []Holder `json:"held_by,omitempty"`
	Dropped       bool     `json:"dropped"`
	// Kept says why a broken version was not dropped (with DropBroken).
	Kept string `json:"kept,omitempty"`
}

// Label names the version for people.
func (b BrokenVersion) Label() string {
	if len(b.Refs) > 0 {
		return strings.Join(b.Refs, ", ")
	}
	return "version " + b.ID + " (untagged)"
}

// Repair takes the writer lock (waiting up to opt.Wait), rebuilds the
// chunk index from the packs (repo.Repo.Repair), restores the versions the
// metadata database lost from their record files, finds the versions
// whose data is gone and, with DropBroken, removes those no holder needs.
// Holders are respected as rm respects them: a broken version a clone or a
// mount holds is reported and kept (remove the clone, or unmount, and run
// repair again), and so are the versions its layers rest on.
func (c *Catalog) Repair(ctx context.Context, opt RepairOptions) (*Repaired, error) {
	w, idx, err := c.r.Repair(ctx, repo.RepairOptions{Holder: opt.Holder, Wait: opt.Wait, OnWait: opt.OnWait,
		ReadData: opt.ReadData, Progress: opt.Progress})
	out := &Repaired{Index: idx}
	if err != nil {
		return out, err
	}
	defer w.Close()
	if out.Restored, out.RecordFilesWritten, err = layer.RepairRecordFiles(ctx, w); err != nil {
		return out, err
	}
	broken, versions, err := c.brokenVersions(ctx)
	if err != nil {
		return out, err
	}
	holders, err := c.Holders()
	if err != nil {
		return out, err
	}
	for _, h := range holders {
		if versions[h.Version] == nil {
			out.Orphaned = append(out.Orphaned, h)
		}
	}
	for i := range broken {
		for _, h := range holders {
			if h.Version == broken[i].ID {
				broken[i].HeldBy = append(broken[i].HeldBy, h)
			}
		}
	}
	if opt.DropBroken {
		if err := c.dropBroken(ctx, w, broken, versions); err != nil {
			out.Broken = broken
			return out, err
		}
	}
	out.Broken = broken
	return out, nil
}

// brokenVersions checks every version: its manifest must resolve (and
// match its checksum) and every chunk it uses must be indexed.
func (c *Catalog) brokenVersions(ctx context.Context) ([]BrokenVersion, map[string]*layer.Version, error) {
	var all []*layer.Version
	names := map[string][]string{}
	if err := c.view(ctx, func(tx *repo.Tx) error {
		var err error
		if all, err = layer.Versions(tx); err != nil {
			return err
		}
		tags, err := layer.List(tx)
		for _, t := range tags {
			names[t.Version.ID] = append(names[t.Version.ID], t.Ref.String())
		}
		return err
	}); err != nil {
		return nil, nil, err
	}
	byID := map[string]*layer.Version{}
	for _, v := range all {
		byID[v.ID] = v
	}
	var broken []BrokenVersion
	for _, v := range all {
		b := BrokenVersion{ID: v.ID, Refs: names[v.ID]}
		if b.Refs == nil {
			b.Refs = []string{}
		}
		ids := map[chunker.ID]struct{}{}
		for _, ref := range v.Manifest {
			ids[ref.ID] = struct{}{}
		}
		m, err := layer.LoadManifest(ctx, c.r, v)
		switch {
		case err != nil:
			b.Problem = "its manifest cannot be read: " + err.Error()
		case v.Sum != "":
			if sum, err := layer.Sum(m); err != nil || sum != v.Sum {
				b.Problem = "its resolved manifest does not match its checksum (layer chain damaged)"
			}
		}
		if m != nil {
			m.ForEachRef(func(ref manifest.Ref) error {
				ids[ref.ID] = struct{}{}
				return nil
			})
		}
		missing, err := c.countMissing(ctx, ids)
		if err != nil {
			return nil, nil, err
		}
		b.MissingChunks = missing
		if b.Problem != "" || b.MissingChunks > 0 {
			broken = append(broken, b)
		}
	}
	sort.Slice(broken, func(i, j int) bool {
		a, b := byID[broken[i].ID], byID[broken[j].ID]
		if !a.Created.Equal(b.Created) {
			return a.Created.Before(b.Created)
		}
		return a.ID < b.ID
	})
	return broken, byID, nil
}

// countMissing counts the chunks of ids the index lacks.
func (c *Catalog) countMissing(ctx context.Context, ids map[chunker.ID]struct{}) (int64, error) {
	const batch = 16384
	var n int64
	list := make([]chunker.ID, 0, min(len(ids), batch))
	flush := func() error {
		locs, err := c.r.Lookup(ctx, list)
		if err != nil {
			return err
		}
		n += int64(len(list) - len(locs))
		list = list[:0]
		return nil
	}
	for id := range ids {
		list = append(list, id)
		if len(list) == batch {
			if err := flush(); err != nil {
				return 0, err
			}
		}
	}
	if len(list) > 0 {
		if err := flush(); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// dropBroken removes the broken versions nothing holds: versions whose
// layers rest on another first (deepest first), so each drop rebases only
// versions that can still be read.
func (c *Catalog) dropBroken(ctx context.Context, w *repo.Writer, broken []BrokenVersion, versions map[string]*layer.Version) error {
	// Versions a kept version needs: its chain of layers.
	needed := map[string]string{}
	keep := func(id, why string) {
		for cur := versions[id]; cur != nil && cur.Base != ""; cur = versions[cur.Base] {
			if _, seen := needed[cur.Base]; seen {
				break
			}
			needed[cur.Base] = why
		}
	}
	// A held version whose manifest still reads is rebased when its base
	// goes, as rm does; one whose manifest does not read cannot be, so
	// its chain stays. (A sound version never rests on a version whose
	// manifest is unreadable: it could not be read either.)
	for _, b := range broken {
		if len(b.HeldBy) > 0 && b.Problem != "" {
			keep(b.ID, "the layers of held "+b.Label()+" rest on it")
		}
	}
	order := make([]int, len(broken))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(i, j int) bool {
		return versions[broken[order[i]].ID].Depth > versions[broken[order[j]].ID].Depth
	})
	for _, i := range order {
		b := &broken[i]
		switch {
		case len(b.HeldBy) > 0:
			b.Kept = HeldReason(b.HeldBy)
			continue
		case needed[b.ID] != "":
			b.Kept = needed[b.ID]
			continue
		}
		if _, err := c.DropVersion(ctx, w, b.ID); err != nil {
			b.Kept = "could not drop it: " + err.Error()
			continue
		}
		b.Dropped = true
	}
	return nil
}

// HeldReason says what holds a version and what to do about it.
func HeldReason(hs []Holder) string {
	var parts []string
	for _, h := range hs {
		switch h.Kind {
		case KindMount:
			parts = append(parts, "mounted at "+h.Name+" (unmount it first)")
		case KindTreeClone:
			parts = append(parts, "the base of tree clone "+h.Name+" (mis rm "+h.Name+" first)")
		default:
			parts = append(parts, "the base of clone "+h.Name+" (mis rm "+h.Name+" first)")
		}
	}
	return "held: " + strings.Join(parts, "; ")
}

// DropVersion removes version id and every tag naming it (layer.Drop),
// unless a clone or a mount holds it: the check and the removal run under
// the names lock, as RemoveVersion's do.
func (c *Catalog) DropVersion(ctx context.Context, w *repo.Writer, id string) (*layer.Removed, error) {
	var res *layer.Removed
	err := c.lockNames(func() error {
		holders, err := c.HoldersOf(id)
		if err != nil {
			return err
		}
		if len(holders) > 0 {
			return fmt.Errorf("version %s is %s", id, HeldReason(holders))
		}
		res, err = layer.Drop(ctx, w, id)
		return err
	})
	return res, err
}

// Lines says what verify --repair found and did, one line each, for
// people (dropBroken: whether --drop-broken was asked for).
func (rp *Repaired) Lines(dropBroken bool) []string {
	var out []string
	say := func(format string, a ...any) { out = append(out, fmt.Sprintf(format, a...)) }
	if ix := rp.Index; ix != nil {
		for _, p := range ix.MetaProblems {
			say("metadata: %s", p)
		}
		if ix.MetaMovedTo != "" {
			say("the metadata database was moved to %s and a new one made: the chunk index is rebuilt from the packs; versions come back from their record files; tags added with mis tag are lost", ix.MetaMovedTo)
		}
		if ix.MetaCopiedTo != "" {
			say("a copy of the metadata database was kept at %s before Badger cleaned it up", ix.MetaCopiedTo)
		}
		say("checked %d pack(s), %s; read %s", ix.Packs, units.Bytes(ix.PackBytes), units.Bytes(ix.BytesRead))
		for _, p := range ix.PacksGone {
			say("pack %s is gone from the store", p)
		}
		for _, d := range ix.Damaged {
			if d.Scanned {
				say("pack %s is damaged (%s) and no index entry describes it: %d chunk(s) found by walking its bodies, %d salvaged into a new pack, %d had another copy (what its lost part held is unknown); moved to %s",
					d.Name, d.Problem, d.Chunks, d.Salvaged, d.Duplicates, d.MovedTo)
				continue
			}
			say("pack %s is damaged (%s): %d chunk(s) salvaged into a new pack, %d had another copy, %d lost; moved to %s",
				d.Name, d.Problem, d.Salvaged, d.Duplicates, d.Lost, d.MovedTo)
		}
		if n := len(ix.PacksIndexed); n > 0 {
			say("indexed %d pack(s) that were not in the index", n)
		}
		if ix.Changed() {
			say("index: %d chunk(s): %d added, %d re-linked to another copy, %d corrected, %d unindexed (no intact copy anywhere), %d malformed entries removed",
				ix.Chunks, ix.ChunksAdded, ix.ChunksRelinked, ix.ChunksCorrected, ix.ChunksLost, ix.BadEntries)
		} else {
			say("index: %d chunk(s), nothing to change", ix.Chunks)
		}
	}
	for _, rs := range rp.Restored {
		if rs.Ref != "" {
			say("restored version %s as %s from its record file", rs.Version.ID, rs.Ref)
		} else {
			say("restored version %s (created as %s:%s, a tag another version holds now) from its record file, untagged", rs.Version.ID, rs.Version.Name, rs.Version.Tag)
		}
	}
	if rp.RecordFilesWritten > 0 {
		say("wrote %d version record file(s)", rp.RecordFilesWritten)
	}
	for _, b := range rp.Broken {
		what := fmt.Sprintf("misses %d chunk(s)", b.MissingChunks)
		if b.Problem != "" {
			what = b.Problem
		}
		switch {
		case b.Dropped:
			say("%s (version %s): %s: dropped", b.Label(), b.ID, what)
		case b.Kept != "":
			say("%s (version %s): %s: kept, %s", b.Label(), b.ID, what, b.Kept)
		case dropBroken:
			say("%s (version %s): %s", b.Label(), b.ID, what)
		case len(b.HeldBy) > 0:
			say("%s (version %s): %s; %s", b.Label(), b.ID, what, HeldReason(b.HeldBy))
		default:
			say("%s (version %s): %s; --drop-broken removes it", b.Label(), b.ID, what)
		}
	}
	for _, h := range rp.Orphaned {
		if h.Kind == KindMount {
			say("the mount at %s serves version %s, which is gone: unmount it (mis umount %s)", h.Name, h.Version, h.Name)
			continue
		}
		say("%s clone %s is based on version %s, which is gone: its base data is lost; remove it (mis rm %s): gc refuses to run until then", h.Kind, h.Name, h.Version, h.Name)
	}
	if rp.Index != nil && !rp.Index.Changed() && len(rp.Restored) == 0 && rp.RecordFilesWritten == 0 && len(rp.Broken) == 0 && len(rp.Orphaned) == 0 {
		say("nothing to repair")
	}
	return out
}
