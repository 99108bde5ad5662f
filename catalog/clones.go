package catalog

import (
	"context"
	"fmt"

	"mis/clone"
	"mis/layer"
	"mis/manifest"
	"mis/mountfs"
	"mis/repo"
	"mis/treeclone"
)

// CloneVersion makes disk clones of version ref.
func (c *Catalog) CloneVersion(ctx context.Context, ref layer.Ref, names []string) ([]clone.Clone, error) {
	var v *layer.Version
	if err := c.view(ctx, func(tx *repo.Tx) error {
		var err error
		v, err = layer.Resolve(tx, ref)
		return err
	}); err != nil {
		return nil, err
	}
	if v.TreeEdited {
		return nil, fmt.Errorf("%s was edited as a file tree and has no disk image to clone: clone it with --tree, or export it with --fresh and import that", ref)
	}
	base := clone.Base{VersionID: v.ID, Ref: ref.String(), DiskSize: v.DiskSize}
	return c.clones.Create(base, names, clone.CreateOptions{Check: func(names []string) error {
		// Under the names lock, which rm also holds: the base cannot
		// disappear between this check and the records.
		return c.view(ctx, func(tx *repo.Tx) error {
			if _, err := layer.Get(tx, v.ID); err != nil {
				return fmt.Errorf("%s was removed meanwhile: %w", ref, err)
			}
			return c.checkCloneNamesFree(tx, names)
		})
	}})
}

// CloneClone makes disk clones of disk clone src (see clone.Store.CreateFromClone).
func (c *Catalog) CloneClone(ctx context.Context, src string, names []string) ([]clone.Clone, error) {
	c.settleUnmounted(src)
	made, err := c.clones.CreateFromClone(src, names, clone.CreateOptions{Check: func(names []string) error {
		return c.view(ctx, func(tx *repo.Tx) error { return c.checkCloneNamesFree(tx, names) })
	}})
	if err != nil {
		return nil, mountedError(src, err)
	}
	return made, nil
}

// TreeClone makes tree clones of version ref and returns the version.
func (c *Catalog) TreeClone(ctx context.Context, ref layer.Ref, names []string) (*layer.Version, error) {
	var v *layer.Version
	err := c.lockNames(func() error {
		if err := c.view(ctx, func(tx *repo.Tx) error {
			var err error
			if v, err = layer.Resolve(tx, ref); err != nil {
				return err
			}
			return c.checkCloneNamesFree(tx, names)
		}); err != nil {
			return err
		}
		for _, n := range names {
			if err := treeclone.Create(c.dir.Root(), n, v.ID); err != nil {
				return fmt.Errorf("tree clone %s: %w", n, err)
			}
		}
		return nil
	})
	return v, err
}

// RemoveClone removes a disk or tree clone and its edits (not while it is
// mounted) and says which kind it was.
func (c *Catalog) RemoveClone(name string) (Kind, error) {
	switch kind := c.CloneKind(name); kind {
	case KindTreeClone:
		return kind, treeMountedError(name, treeclone.Remove(c.dir.Root(), name))
	case KindDiskClone:
		c.settleUnmounted(name)
		return kind, mountedError(name, c.clones.Remove(name))
	}
	return KindNone, fmt.Errorf("clone %s: %w", name, clone.ErrNotFound)
}

// DiskClone is a disk clone's record with its base version prepared for
// serving: Base.Disk() is what the clone's delta layers rest on.
type DiskClone struct {
	Record *clone.Clone
	Base   *mountfs.FS
	// BaseVersion and BaseManifest are the base as stored.
	BaseVersion  *layer.Version
	BaseManifest *manifest.Manifest
}

// LoadDiskClone reads the record of disk clone name and prepares its base
// version's disk view. The caller closes Base.
func (c *Catalog) LoadDiskClone(ctx context.Context, name string, opt mountfs.Options) (*DiskClone, error) {
	rec, err := c.clones.Get(name)
	if err != nil {
		return nil, err
	}
	v, m, err := layer.LoadID(ctx, c.r, rec.Base)
	if err != nil {
		return nil, fmt.Errorf("clone %s: base %s: %w", name, rec.BaseRef, err)
	}
	return c.prepareDiskClone(ctx, rec, v, m, opt)
}

func (c *Catalog) prepareDiskClone(ctx context.Context, rec *clone.Clone, v *layer.Version, m *manifest.Manifest, opt mountfs.Options) (*DiskClone, error) {
	if m.DiskSize != rec.DiskSize {
		return nil, fmt.Errorf("clone %s: base %s has %d bytes, the clone %d", rec.Name, rec.BaseRef, m.DiskSize, rec.DiskSize)
	}
	fsys, err := mountfs.New(ctx, c.r, m, opt)
	if err != nil {
		return nil, err
	}
	return &DiskClone{Record: rec, Base: fsys, BaseVersion: v, BaseManifest: m}, nil
}

// Open opens the clone's disk over its base, once an unmount of it has
// settled; a clone mounted elsewhere is refused with advice.
func (c *Catalog) OpenDisk(dc *DiskClone, opt clone.DiskOptions) (*clone.Disk, error) {
	c.settleUnmounted(dc.Record.Name)
	d, err := c.clones.OpenDisk(dc.Record.Name, dc.Base.Disk(), opt)
	if err != nil {
		return nil, mountedError(dc.Record.Name, err)
	}
	return d, nil
}
