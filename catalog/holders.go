package catalog

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"

	"mis/chunker"
	"mis/clone"
	"mis/layer"
	"mis/mountfs"
	"mis/repo"
	"mis/treeclone"
)

// Holder is something that needs a version to stay: a clone based on it,
// or a running mount of it.
type Holder struct {
	Kind    Kind   `json:"kind"`
	Name    string `json:"name"`    // the clone's name; for a mount, its directory
	Version string `json:"version"` // id of the version held
}

// Holders lists everything that holds a version, beyond its tags. Records
// of mounts whose server died are removed on the way.
func (c *Catalog) Holders() ([]Holder, error) {
	disk, err := c.clones.List()
	if err != nil {
		return nil, err
	}
	trees, err := treeclone.List(c.dir.Root())
	if err != nil {
		return nil, err
	}
	var out []Holder
	for _, d := range disk {
		out = append(out, Holder{Kind: KindDiskClone, Name: d.Name, Version: d.Base})
	}
	for _, t := range trees {
		out = append(out, Holder{Kind: KindTreeClone, Name: t.Name, Version: t.Base})
	}
	mounts, err := c.Mounts()
	if err != nil {
		return nil, err
	}
	for _, m := range mounts {
		out = append(out, Holder{Kind: KindMount, Name: m.Dir, Version: m.Version})
	}
	return out, nil
}

// HoldersOf lists the holders of one version.
func (c *Catalog) HoldersOf(versionID string) ([]Holder, error) {
	all, err := c.Holders()
	var out []Holder
	for _, h := range all {
		if h.Version == versionID {
			out = append(out, h)
		}
	}
	return out, err
}

// RemoveVersion removes tag ref, and its version when no other tag names
// it (layer.Remove). A version that clones are based on keeps its last
// tag: the check and the removal run under the names lock, so no clone of
// it is made meanwhile.
func (c *Catalog) RemoveVersion(ctx context.Context, w *repo.Writer, ref layer.Ref) (*layer.Removed, error) {
	var res *layer.Removed
	err := c.lockNames(func() error {
		if err := c.refuseHeldVersion(ctx, w, ref); err != nil {
			return err
		}
		var err error
		res, err = layer.Remove(ctx, w, ref)
		return err
	})
	return res, err
}

func (c *Catalog) refuseHeldVersion(ctx context.Context, w *repo.Writer, ref layer.Ref) error {
	return w.View(ctx, func(tx *repo.Tx) error {
		v, err := layer.Resolve(tx, ref)
		if err != nil {
			return err
		}
		holders, err := c.HoldersOf(v.ID)
		if err != nil || len(holders) == 0 {
			return err
		}
		tags, err := layer.List(tx)
		if err != nil {
			return err
		}
		for _, t := range tags {
			if t.Version.ID == v.ID && t.Ref != ref {
				return nil // another tag keeps the version
			}
		}
		return heldError(ref, holders)
	})
}

// heldError says what holds ref's version and what to do about it.
func heldError(ref layer.Ref, holders []Holder) error {
	var clones, mounts []string
	for _, h := range holders {
		if h.Kind == KindMount {
			mounts = append(mounts, h.Name)
		} else {
			clones = append(clones, h.Name)
		}
	}
	if len(clones) == 0 {
		return fmt.Errorf("%s is mounted at %s: unmount it first (mis umount DIR)", ref, strings.Join(mounts, ", "))
	}
	n := len(clones)
	if n > 10 {
		clones = append(clones[:10:10], fmt.Sprintf("and %d more", n-10))
	}
	msg := fmt.Sprintf("%s is the base of %d clone(s): %s; remove them first (mis rm CLONE)", ref, n, strings.Join(clones, ", "))
	if len(mounts) > 0 {
		msg += fmt.Sprintf("; it is also mounted at %s", strings.Join(mounts, ", "))
	}
	return errors.New(msg)
}

// GC frees the chunks no version uses (repo.Writer.GC), after checking
// that every holder's version still exists: a missing base means
// something is wrong, and gc refuses rather than free what a clone reads.
func (c *Catalog) GC(ctx context.Context, w *repo.Writer, opt repo.GCOptions) (repo.GCReport, error) {
	return w.GC(ctx, c.liveChunks(ctx), opt)
}

// PlanGC is GC's first half (repo.Writer.PlanGC) with the same check:
// what gc would do, to print or to pass to w.ExecuteGC.
func (c *Catalog) PlanGC(ctx context.Context, w *repo.Writer, opt repo.GCOptions) (*repo.GCPlan, error) {
	return w.PlanGC(ctx, c.liveChunks(ctx), opt)
}

func (c *Catalog) liveChunks(ctx context.Context) func(yield func(chunker.ID) error) error {
	versions := layer.LiveChunks(ctx, c.r)
	return func(yield func(chunker.ID) error) error {
		// A version whose record the metadata database lost still has its
		// record file; its chunks look unused. gc must not free them
		// before verify --repair restores it.
		rf, err := layer.CheckRecordFiles(ctx, c.r)
		if err != nil {
			return err
		}
		if n := len(rf.Lost); n > 0 {
			v := rf.Lost[0]
			return fmt.Errorf("refusing to collect garbage: %d version(s) (%s:%s, version %s...) have a record file but no record: the metadata database lost them; run mis verify --repair first", n, v.Name, v.Tag, v.ID)
		}
		holders, err := c.Holders()
		if err != nil {
			return err
		}
		if len(holders) > 0 {
			if err := c.view(ctx, func(tx *repo.Tx) error {
				for _, h := range holders {
					if _, err := layer.Get(tx, h.Version); err != nil {
						return fmt.Errorf("refusing to collect garbage: version %s, held by %s %s, is missing: %w", h.Version, h.Kind, h.Name, err)
					}
				}
				return nil
			}); err != nil {
				return err
			}
		}
		return versions(yield)
	}
}

// CloneInfo is one clone as mis clones lists it.
type CloneInfo struct {
	Kind Kind `json:"kind"` // "disk" (writable disk.raw) or "tree" (writable pN trees)
	clone.Clone
	BaseNow   string      `json:"base_now"` // NAME:TAG(s) naming the base version today
	Usage     clone.Usage `json:"usage"`
	Mounted   bool        `json:"mounted"`
	MountedAt string      `json:"mounted_at,omitempty"`
}

// ListClones returns every disk clone, then every tree clone, with its
// base's current names and the space its edits take.
func (c *Catalog) ListClones(ctx context.Context) ([]CloneInfo, error) {
	disk, err := c.clones.List()
	if err != nil {
		return nil, err
	}
	trees, err := treeclone.List(c.dir.Root())
	if err != nil {
		return nil, err
	}
	bases := map[string][]string{}
	if len(disk)+len(trees) > 0 {
		if err := c.view(ctx, func(tx *repo.Tx) error {
			tags, err := layer.List(tx)
			for _, t := range tags {
				bases[t.Version.ID] = append(bases[t.Version.ID], t.Ref.String())
			}
			return err
		}); err != nil {
			return nil, err
		}
	}
	out := []CloneInfo{}
	for i := range disk {
		d := &disk[i]
		row := CloneInfo{Kind: KindDiskClone, Clone: *d, BaseNow: strings.Join(bases[d.Base], ","), Usage: c.clones.Usage(d), Mounted: c.clones.InUse(d)}
		if row.Mounted {
			if mi, ok, _ := mountfs.FindMountBySource("mis:" + d.Name); ok {
				row.MountedAt = mi.Dir
			}
		}
		out = append(out, row)
	}
	for _, t := range trees {
		row := CloneInfo{Kind: KindTreeClone, BaseNow: strings.Join(bases[t.Base], ",")}
		row.Name, row.Base, row.Created = t.Name, t.Base, t.Created
		row.Usage.Delta = allocatedTree(treeclone.Paths(c.dir.Root(), t.Name).Upper)
		out = append(out, row)
	}
	return out, nil
}

// allocatedTree is the allocated size of a directory tree.
func allocatedTree(path string) int64 {
	var st syscall.Stat_t
	if syscall.Lstat(path, &st) != nil {
		return 0
	}
	total := st.Blocks * 512
	if st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		return total
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return total
	}
	for _, e := range entries {
		total += allocatedTree(path + "/" + e.Name())
	}
	return total
}
