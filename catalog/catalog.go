// Package catalog is a repository seen as a whole: which names exist
// (images, disk clones, tree clones), what holds each version (clones
// based on it), and the operations that must respect both: making clones,
// making a version from a parent (import, commit), rm and gc.
//
// The rules that protect data live here and nowhere else, so every caller
// (the CLI today, a server tomorrow) gets them:
//   - images and clones never share a name; names are taken under the
//     repository's names lock (repodir.NamesLock), and the tag of a new
//     image is written under it too;
//   - a version that a clone is based on is not removed while no other tag
//     names it, and gc refuses while a clone's base version is missing;
//   - a new version checks its name before any work, loads its parent
//     once, and is saved in one commit.
//
// Lock order: the writer lock (repo.Writer), then the names lock, then a
// clone's own lock. Holders of the names lock hold it briefly.
package catalog

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"mis/clone"
	"mis/internal/repodir"
	"mis/layer"
	"mis/mountfs"
	"mis/repo"
	"mis/treeclone"
)

// Kind is what a name stands for.
type Kind string

const (
	KindNone      Kind = ""
	KindDiskClone Kind = "disk"
	KindTreeClone Kind = "tree"
)

// Catalog is one repository's names, clones and versions.
type Catalog struct {
	r      *repo.Repo
	dir    repodir.Dir
	clones *clone.Store
}

// Open returns the catalog of an open repository.
func Open(r *repo.Repo) *Catalog {
	return &Catalog{r: r, dir: repodir.Dir(r.Dir()), clones: clone.Open(r.Dir())}
}

// Repo is the repository the catalog describes.
func (c *Catalog) Repo() *repo.Repo { return c.r }

// Clones is the disk clone store.
func (c *Catalog) Clones() *clone.Store { return c.clones }

// CloneKind says whether name is an existing disk clone or tree clone. A
// NAME:TAG never is: clone names have no colon or slash.
func (c *Catalog) CloneKind(name string) Kind {
	if strings.ContainsAny(name, ":/") {
		return KindNone
	}
	if clone.ValidName(name) == nil && c.clones.Exists(name) {
		return KindDiskClone
	}
	if treeclone.CheckName(name) == nil {
		if _, err := treeclone.Get(c.dir.Root(), name); err == nil {
			return KindTreeClone
		}
	}
	return KindNone
}

// lockNames runs fn holding the names lock.
func (c *Catalog) lockNames(fn func() error) error { return c.clones.Locked(fn) }

// checkCloneNamesFree is the names rule for new clones, run under the
// names lock: no image, disk clone or tree clone has any of the names.
func (c *Catalog) checkCloneNamesFree(tx *repo.Tx, names []string) error {
	tags, err := layer.List(tx)
	if err != nil {
		return err
	}
	images := map[string]bool{}
	for _, t := range tags {
		images[t.Ref.Name] = true
	}
	for _, n := range names {
		switch c.CloneKind(n) {
		case KindTreeClone:
			return fmt.Errorf("%s is already a tree clone", n)
		case KindDiskClone:
			return fmt.Errorf("%s is already a clone", n)
		}
		if images[n] {
			return fmt.Errorf("%s is the name of an image: a clone needs a name of its own", n)
		}
	}
	return nil
}

// checkImageName is the names rule for a new version's name.
func (c *Catalog) checkImageName(name string) error {
	if c.CloneKind(name) != KindNone {
		return fmt.Errorf("%s is the name of a clone: an image needs a name of its own", name)
	}
	return nil
}

// mountedError turns clone.ErrMounted into advice naming the mount point.
func mountedError(name string, err error) error {
	if !errors.Is(err, clone.ErrMounted) {
		return err
	}
	if mi, ok, _ := mountfs.FindMountBySource("mis:" + name); ok {
		return fmt.Errorf("clone %s is mounted at %s: unmount it first (mis umount %s)", name, mi.Dir, mi.Dir)
	}
	return fmt.Errorf("clone %s is in use by a mis mount or commit (its delta is locked): unmount it first with mis umount DIR", name)
}

// treeMountedError is the same advice for tree clones.
func treeMountedError(name string, err error) error {
	if errors.Is(err, treeclone.ErrMounted) {
		return fmt.Errorf("tree clone %s is mounted: unmount it first (mis umount DIR)", name)
	}
	return err
}

// settleUnmounted waits (up to 10 s) for the server of a clone that was
// just unmounted to finish writing back and release the clone: mis umount
// returns when the kernel lets go, a moment before the server has closed
// its delta. A clone still in the mount table is not waited for.
func (c *Catalog) settleUnmounted(name string) {
	cl, err := c.clones.Get(name)
	if err != nil {
		return
	}
	if _, ok, _ := mountfs.FindMountBySource("mis:" + name); ok {
		return
	}
	for deadline := time.Now().Add(10 * time.Second); c.clones.InUse(cl) && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
}

// view runs fn in a short read-only metadata session.
func (c *Catalog) view(ctx context.Context, fn func(tx *repo.Tx) error) error {
	return c.r.View(ctx, fn)
}
