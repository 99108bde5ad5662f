package catalog

import (
	"context"
	"errors"
	"fmt"

	"mis/clone"
	"mis/image"
	"mis/layer"
	"mis/manifest"
	"mis/mountfs"
	"mis/repo"
	"mis/treeclone"
)

// Parent says which version a new one rests on.
type Parent struct {
	None bool   // start a new history
	Ref  string // NAME:TAG chosen by the user
	ID   string // a version id (a clone's base)
	// The zero Parent means the latest version of the new version's name,
	// if it has one.
}

// NewVersion describes a version to make.
type NewVersion struct {
	Ref    layer.Ref
	Parent Parent
	Source string // where it came from, as info shows it
	// Build makes the new manifest, storing its chunks through w. parent
	// and pm are nil without a parent. It may set fields of v (TreeEdited).
	Build func(ctx context.Context, w *repo.Writer, parent *layer.Version, pm *manifest.Manifest, v *layer.Version) (*manifest.Manifest, error)
}

// Created is a version just made.
type Created struct {
	Version  *layer.Version
	Parent   *layer.Version // nil without a parent
	Manifest *manifest.Manifest
}

// Create makes a new version through writer w: it checks that the name is
// free (a taken tag, or a clone's name) before any work, finds and loads
// the parent once, builds, and saves the version and its tag in one commit
// under the names lock, which re-checks the name rule.
func (c *Catalog) Create(ctx context.Context, w *repo.Writer, nv NewVersion) (*Created, error) {
	if err := c.checkImageName(nv.Ref.Name); err != nil {
		return nil, err
	}
	var parent *layer.Version
	if err := w.View(ctx, func(tx *repo.Tx) error {
		if _, err := layer.Resolve(tx, nv.Ref); err == nil {
			return fmt.Errorf("%s already exists: choose another tag or remove it first", nv.Ref)
		}
		var err error
		parent, err = findParent(tx, nv)
		return err
	}); err != nil {
		return nil, err
	}
	var pm *manifest.Manifest
	if parent != nil {
		var err error
		if pm, err = layer.LoadManifest(ctx, c.r, parent); err != nil {
			return nil, fmt.Errorf("parent %s:%s: %w", parent.Name, parent.Tag, err)
		}
	}
	v := &layer.Version{Source: nv.Source}
	if parent != nil {
		v.Parent = parent.ID
	}
	m, err := nv.Build(ctx, w, parent, pm, v)
	if err != nil {
		return nil, err
	}
	err = c.lockNames(func() error {
		if err := c.checkImageName(nv.Ref.Name); err != nil {
			return err
		}
		return layer.SaveWithOptions(ctx, w, nv.Ref, v, m, layer.SaveOptions{ParentManifest: pm})
	})
	if err != nil {
		return nil, err
	}
	return &Created{Version: v, Parent: parent, Manifest: m}, nil
}

func findParent(tx *repo.Tx, nv NewVersion) (*layer.Version, error) {
	p := nv.Parent
	switch {
	case p.None:
		return nil, nil
	case p.ID != "":
		return layer.Get(tx, p.ID)
	case p.Ref != "":
		ref, err := layer.ParseRef(p.Ref)
		if err != nil {
			return nil, err
		}
		return layer.Resolve(tx, ref)
	}
	v, err := layer.Latest(tx, nv.Ref.Name)
	if errors.Is(err, layer.ErrNotFound) {
		return nil, nil
	}
	return v, err
}

// Imported is an image just imported.
type Imported struct {
	Created
	Stats image.ImportStats
}

// Import stores the disk image at path as version ref.
func (c *Catalog) Import(ctx context.Context, w *repo.Writer, path string, ref layer.Ref, parent Parent, opt image.ImportOptions) (*Imported, error) {
	f, _, err := image.OpenSource(path) // a clear error before any work
	if err != nil {
		return nil, err
	}
	f.Close()
	var st image.ImportStats
	made, err := c.Create(ctx, w, NewVersion{Ref: ref, Parent: parent, Source: path,
		Build: func(ctx context.Context, w *repo.Writer, _ *layer.Version, pm *manifest.Manifest, v *layer.Version) (*manifest.Manifest, error) {
			opt.Parent = pm
			m, s, err := image.ImportWithStats(ctx, w, c.r.Config().Chunker, path, opt)
			st = s
			markUnverified(v, opt, s)
			return m, err
		}})
	if err != nil {
		return nil, err
	}
	return &Imported{Created: *made, Stats: st}, nil
}

// markUnverified records on v that files were taken from the parent on
// metadata alone: nothing proves the version exports to the image.
func markUnverified(v *layer.Version, opt image.ImportOptions, st image.ImportStats) {
	v.Unverified = opt.TrustMetadata && st.ReusedFiles > 0
}

// Committed is a clone just committed as a version.
type Committed struct {
	Created
	Kind Kind
	// Disk clones: the clone's record, the bytes its layers hold and
	// what the import read and reused.
	Record       *clone.Clone
	ChangedBytes int64
	Stats        image.ImportStats
	// Tree clones: what the upper held.
	Tree treeclone.CommitStats
}

// Commit stores the current state of clone name (disk or tree) as version
// ref, whose parent is the clone's base. Only what the clone changed is
// read. The clone must not be mounted; it stays as it is.
func (c *Catalog) Commit(ctx context.Context, w *repo.Writer, name string, ref layer.Ref, opt image.ImportOptions) (*Committed, error) {
	switch c.CloneKind(name) {
	case KindDiskClone:
		return c.commitDisk(ctx, w, name, ref, opt)
	case KindTreeClone:
		return c.commitTree(ctx, w, name, ref)
	}
	return nil, fmt.Errorf("clone %s: %w", name, clone.ErrNotFound)
}

func (c *Catalog) commitDisk(ctx context.Context, w *repo.Writer, name string, ref layer.Ref, opt image.ImportOptions) (*Committed, error) {
	rec, err := c.clones.Get(name)
	if err != nil {
		return nil, err
	}
	out := &Committed{Kind: KindDiskClone, Record: rec}
	made, err := c.Create(ctx, w, NewVersion{Ref: ref, Parent: Parent{ID: rec.Base}, Source: "clone " + name,
		Build: func(ctx context.Context, w *repo.Writer, base *layer.Version, pm *manifest.Manifest, _ *layer.Version) (*manifest.Manifest, error) {
			dc, err := c.prepareDiskClone(ctx, rec, base, pm, mountfs.Options{Readahead: -1})
			if err != nil {
				return nil, err
			}
			defer dc.Base.Close()
			d, err := c.OpenDisk(dc, clone.DiskOptions{ReadOnly: true})
			if err != nil {
				return nil, err
			}
			defer d.Close()
			// Ranges no layer holds are the base's bytes, so the importer
			// takes them from the base unread.
			opt.Parent = pm
			opt.Unchanged = d.Unchanged
			m, st, err := image.ImportReader(ctx, w, c.r.Config().Chunker, d, d.Size(), "clone "+name, opt)
			if err != nil {
				return nil, fmt.Errorf("commit %s: %w", name, err)
			}
			out.Stats = st
			out.ChangedBytes = d.ChangedBlocks() * clone.BlockSize
			return m, nil
		}})
	if err != nil {
		return nil, err
	}
	out.Created = *made
	return out, nil
}

func (c *Catalog) commitTree(ctx context.Context, w *repo.Writer, name string, ref layer.Ref) (*Committed, error) {
	rec, err := treeclone.Get(c.dir.Root(), name)
	if err != nil {
		return nil, err
	}
	out := &Committed{Kind: KindTreeClone}
	made, err := c.Create(ctx, w, NewVersion{Ref: ref, Parent: Parent{ID: rec.Base}, Source: "tree clone " + name,
		Build: func(ctx context.Context, w *repo.Writer, _ *layer.Version, pm *manifest.Manifest, v *layer.Version) (*manifest.Manifest, error) {
			m, st, err := treeclone.Commit(ctx, w, c.r.Config().Chunker, pm, treeclone.Paths(c.dir.Root(), name).Upper)
			if err != nil {
				return nil, fmt.Errorf("commit tree clone %s: %w", name, treeMountedError(name, err))
			}
			out.Tree = st
			v.TreeEdited = st.NeedsFresh
			return m, nil
		}})
	if err != nil {
		return nil, err
	}
	out.Created = *made
	return out, nil
}
